"""Violations: every leak, intrusion and lost tag in the window, newest first.

Each row shows the full trace id with a copy button, linked through
``settings.trace_url_template`` or else to the built-in trace view
(``/trace?id=``). The kind filter is part of the URL (``?kind=leak``) like the
shared filters. The table is only sent again when its rows changed, and holds
still (with a visible "paused" line) while the viewer selects text in it or
points at it, so that a trace id can be selected and copied while new
violations arrive.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from lanewatch.dashboard import components as C
from lanewatch.dashboard import tables
from lanewatch.dashboard.context import colours_for, get_query, get_settings, live_inputs
from lanewatch.dashboard.state import KINDS, ViewState, parse_search, to_search
from lanewatch.dashboard.theme import VERDICT_LABELS
from lanewatch.dashboard.timefmt import window_label

dash.register_page(__name__, path="/violations", name="Violations",
                   title="lanewatch: violations", order=2)  # type: ignore[no-untyped-call]

#: Rows drawn at first and per "show more"; the most ever asked for.
PAGE = 50
LIMIT = 500
PAUSED = ("Paused while you select text in the table or point at it: "
          "move the pointer away and clear the selection to see new violations.")


def layout(kind: str | None = None, **kwargs: Any) -> html.Div:
    """Kind filter, a count line, the paused line and the table (loading until data)."""
    options = [{"label": VERDICT_LABELS[k], "value": k} for k in KINDS]
    return html.Div([
        html.Div([html.H2("Violations"), html.Span(id="violations-note", className="lw-sub")],
                 className="lw-page-head"),
        html.Label(["kind", dcc.Dropdown(id="violations-kind", options=options,
                                         value=kind if kind in KINDS else None,
                                         placeholder="all kinds")],
                   className="lw-ctl lw-ctl-inline"),
        html.Div(PAUSED, id="violations-paused", className="lw-paused", hidden=True),
        html.Div(C.loading("violations"), id="violations-table"),
        html.Button("Show 50 more", id="violations-more", n_clicks=0, className="lw-button",
                    hidden=True),
        dcc.Store(id="violations-drawn"),
        dcc.Store(id="violations-hold", data=False),
    ], className="lw-page")


def refresh(_tick: int | None, state: dict[str, Any] | None, _theme: str | None,
            tz: str | None, more: int | None = 0, hold: bool | None = False,
            drawn: str | None = None) -> tuple[Any, Any, Any, Any, bool]:
    """(count line, table or empty state, "more" button hidden, drawn key, paused line hidden).

    The newest :data:`PAGE` rows are drawn (more per click on "show more");
    the table is only sent again when its rows changed, and not at all while
    ``hold`` (the viewer selects text in it or points at it). Before the shell
    has read the URL (``state`` is None) the loading placeholder stays.
    """
    if state is None:
        return "", dash.no_update, True, None, True
    if hold and drawn:
        return dash.no_update, dash.no_update, dash.no_update, dash.no_update, False
    q, settings, vs = get_query(), get_settings(), ViewState.from_dict(state)
    window = window_label(vs.window_s)
    rows = q.violations(vs.window_s, kind=vs.kind, service=vs.service, lane=vs.lane, limit=LIMIT)
    what = VERDICT_LABELS[vs.kind] + " violations" if vs.kind else "violations"
    if not rows:
        if not q.lanes(vs.window_s) and not q.instances():
            return "", C.empty_state(C.no_spans(settings), id="violations-empty"), True, None, True
        return (f"no {what}, {window}",
                C.empty_state(f"No {what} {window}: every hop and edge stayed in its lane. "
                              "Widen the window or clear the filters to look further back.",
                              id="violations-empty"), True, None, True)
    shown = rows[:min(LIMIT, PAGE * (1 + (more or 0)))]
    total = f"{len(rows):,}" + ("+" if len(rows) >= LIMIT else "")
    note = f"{total} {what}, {window}"
    if len(shown) < len(rows):
        note += f"; newest {len(shown):,} shown"
    if not settings.trace_url_template:
        note += ". Trace ids open lanewatch's trace view (set trace_url_template for Jaeger or Tempo)"
    key = tables.fingerprint(shown, tz, settings.trace_url_template)
    table = dash.no_update if key == drawn else tables.violations_table(
        shown, template=settings.trace_url_template, tz=tz, colours=colours_for(q, vs.window_s))
    return note, table, len(shown) >= len(rows), key, True


dash.callback(Output("violations-note", "children"), Output("violations-table", "children"),
              Output("violations-more", "hidden"), Output("violations-drawn", "data"),
              Output("violations-paused", "hidden"), *live_inputs(),
              Input("violations-more", "n_clicks"), Input("violations-hold", "data"),
              State("violations-drawn", "data"))(refresh)

#: True while the viewer has a text selection inside the table or points at it.
HOLD_JS = tables.hold_js("violations-table")
dash.clientside_callback(HOLD_JS, Output("violations-hold", "data"),
                         Input("shell-tick", "n_intervals"))


def set_kind(kind: str | None, search: str | None) -> Any:
    """The URL query string with the chosen kind; unchanged when the URL already says it.

    Built from the URL itself (not the shell state, which may not have read
    the URL yet), so that the dropdown reporting its first value can never
    replace a shared link's filters.
    """
    vs = parse_search(search)
    if (kind or None) == vs.kind:
        return dash.no_update
    return to_search(dataclasses.replace(vs, kind=kind or None))


dash.callback(Output("shell-url", "search", allow_duplicate=True),
              Input("violations-kind", "value"), State("shell-url", "search"),
              prevent_initial_call=True)(set_kind)
