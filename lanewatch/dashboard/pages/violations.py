"""Violations: every leak, intrusion and lost tag in the window, newest first.

Each row links its trace through ``settings.trace_url_template``. The kind
filter is part of the URL (``?kind=leak``) like the shared filters.
"""

from __future__ import annotations

import hashlib
import json
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
                   title="lanewatch: violations", order=2)  # type: ignore[no-untyped-call]

#: Rows drawn at first and per "show more"; the most ever asked for.
PAGE = 50
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
        html.Button("Show 50 more", id="violations-more", n_clicks=0, className="lw-button",
                    hidden=True),
        dcc.Store(id="violations-drawn"),
    ], className="lw-page")


def fingerprint(rows: list[dict[str, Any]], *extra: Any) -> str:
    """Identity of a drawn table: unchanged rows are not sent again."""
    ids = [(r.get("ts"), r.get("kind"), r.get("trace_id"), r.get("span_id")) for r in rows]
    return hashlib.sha1(json.dumps([ids, extra], default=str).encode()).hexdigest()


def refresh(_tick: int | None, state: dict[str, Any] | None, _theme: str | None,
            tz: str | None, more: int | None = 0, drawn: str | None = None
            ) -> tuple[Any, Any, bool, Any]:
    """(count line, table or empty state, "more" button hidden, drawn key).

    The newest :data:`PAGE` rows are drawn (more per click on "show more");
    the table is only sent again when its rows changed.
    """
    q, settings, vs = get_query(), get_settings(), ViewState.from_dict(state)
    window = window_label(vs.window_s)
    rows = q.violations(vs.window_s, kind=vs.kind, service=vs.service, lane=vs.lane, limit=LIMIT)
    what = VERDICT_LABELS[vs.kind] + " violations" if vs.kind else "violations"
    if not rows:
        if not q.lanes(vs.window_s) and not q.instances():
            return "", C.empty_state(C.no_spans(settings), id="violations-empty"), True, None
        return (f"no {what}, {window}",
                C.empty_state(f"No {what} {window}: every hop and edge stayed in its lane. "
                              "Widen the window or clear the filters to look further back.",
                              id="violations-empty"), True, None)
    shown = rows[:min(LIMIT, PAGE * (1 + (more or 0)))]
    total = f"{len(rows):,}" + ("+" if len(rows) >= LIMIT else "")
    note = f"{total} {what}, {window}"
    if len(shown) < len(rows):
        note += f"; newest {len(shown):,} shown"
    if not settings.trace_url_template:
        note += ". Set trace_url_template to link trace ids to Jaeger or Tempo."
    key = fingerprint(shown, tz, settings.trace_url_template)
    table = dash.no_update if key == drawn else tables.violations_table(
        shown, template=settings.trace_url_template, tz=tz, colours=colours_for(q, vs.window_s))
    return note, table, len(shown) >= len(rows), key


dash.callback(Output("violations-note", "children"), Output("violations-table", "children"),
              Output("violations-more", "hidden"), Output("violations-drawn", "data"),
              *live_inputs(), Input("violations-more", "n_clicks"),
              State("violations-drawn", "data"))(refresh)


def set_kind(kind: str | None, state: dict[str, Any] | None) -> str:
    """The URL query string with the chosen kind."""
    vs = ViewState.from_dict(state)
    return to_search(ViewState(vs.window_s, vs.service, vs.lane, kind or None))


dash.callback(Output("shell-url", "search", allow_duplicate=True),
              Input("violations-kind", "value"), State("shell-state", "data"),
              prevent_initial_call=True)(set_kind)
