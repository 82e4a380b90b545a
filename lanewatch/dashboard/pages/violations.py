"""Violations: every leak, intrusion and lost tag in the window, newest first.

Each row links its trace through ``settings.trace_url_template``. The kind
filter is part of the URL (``?kind=leak``) like the shared filters.
"""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from lanewatch.dashboard import components as C
from lanewatch.dashboard import tables
from lanewatch.dashboard.app import colours_for, get_query, get_settings, live_inputs
from lanewatch.dashboard.state import KINDS, ViewState, to_search
from lanewatch.dashboard.theme import VERDICT_LABELS
from lanewatch.dashboard.timefmt import window_label

dash.register_page(__name__, path="/violations", name="Violations",
                   title="lanewatch: violations", order=2)

LIMIT = 500


def layout(kind: str | None = None, **kwargs: Any) -> html.Div:
    """Kind filter, a count line and the table."""
    options = [{"label": VERDICT_LABELS[k], "value": k} for k in KINDS]
    return html.Div([
        html.Div([html.H2("Violations"), html.Span(id="violations-note", className="lw-sub")],
                 className="lw-page-head"),
        html.Label(["kind", dcc.Dropdown(id="violations-kind", options=options,
                                         value=kind if kind in KINDS else None,
                                         placeholder="all kinds")],
                   className="lw-ctl lw-ctl-inline"),
        html.Div(id="violations-table"),
    ], className="lw-page")


def refresh(_tick: int | None, state: dict[str, Any] | None, _theme: str | None,
            tz: str | None) -> tuple[Any, Any]:
    """(count line, table or empty state) for the window, filters and kind."""
    q, settings, vs = get_query(), get_settings(), ViewState.from_dict(state)
    window = window_label(vs.window_s)
    rows = q.violations(vs.window_s, kind=vs.kind, service=vs.service, lane=vs.lane, limit=LIMIT)
    what = VERDICT_LABELS[vs.kind] + " violations" if vs.kind else "violations"
    if not rows:
        if not q.lanes(vs.window_s) and not q.instances():
            return "", C.empty_state(C.no_spans(settings), id="violations-empty")
        return (f"no {what}, {window}",
                C.empty_state(f"No {what} {window}: every hop and edge stayed in its lane. "
                              "Widen the window or clear the filters to look further back.",
                              id="violations-empty"))
    more = " (newest shown; narrow the filters for the rest)" if len(rows) >= LIMIT else ""
    note = f"{len(rows):,} {what}, {window}{more}"
    if not settings.trace_url_template:
        note += ". Set trace_url_template to link trace ids to Jaeger or Tempo."
    table = tables.violations_table(rows, template=settings.trace_url_template, tz=tz,
                                    colours=colours_for(q, vs.window_s))
    return note, table


dash.callback(Output("violations-note", "children"), Output("violations-table", "children"),
              *live_inputs())(refresh)


def set_kind(kind: str | None, state: dict[str, Any] | None) -> str:
    """The URL query string with the chosen kind."""
    vs = ViewState.from_dict(state)
    return to_search(ViewState(vs.window_s, vs.service, vs.lane, kind or None))


dash.callback(Output("shell-url", "search", allow_duplicate=True),
              Input("violations-kind", "value"), State("shell-state", "data"),
              prevent_initial_call=True)(set_kind)
