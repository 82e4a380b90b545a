"""Lanes and instances: which lanes each service has live instances in, from heartbeats.

This is what decides a gray hop's verdict: served by base while the service
had no live gray instance is a fallback; while it had one, a leak.
"""

from __future__ import annotations

import time
from typing import Any

import dash
from dash import Output, html

from lanewatch.dashboard import components as C
from lanewatch.dashboard import tables
from lanewatch.dashboard.app import colours_for, get_query, get_settings, live_inputs
from lanewatch.dashboard.state import ViewState

dash.register_page(__name__, path="/lanes", name="Lanes & instances",
                   title="lanewatch: lanes and instances", order=4)  # type: ignore[no-untyped-call]


def layout(**kwargs: Any) -> html.Div:
    """The services x lanes matrix and the instance list."""
    return html.Div([
        html.Div([html.H2("Lanes and instances"), html.Span(
            "A gray hop served by base is a fallback when the service had no live gray instance, "
            "and a leak when it had one.", className="lw-sub")], className="lw-page-head"),
        html.Div([html.H3("Live lanes per service"), html.Div(id="lanes-matrix")],
                 className="lw-card"),
        html.Div([html.H3("Instances"), html.Div(id="lanes-instances")], className="lw-card"),
    ], className="lw-page")


def refresh(_tick: int | None, state: dict[str, Any] | None, _theme: str | None, tz: str | None,
            now: float | None = None) -> tuple[Any, Any]:
    """(matrix, instance table), filtered by service and lane."""
    q, vs = get_query(), ViewState.from_dict(state)
    rows = [r for r in q.instances()
            if (not vs.service or r["service"] == vs.service) and (not vs.lane or r["lane"] == vs.lane)]
    if not rows:
        settings = get_settings()
        msg = ("No instance matches these filters: clear them to see every service."
               if vs.service or vs.lane else
               f"No instances yet: run services with the lanewatch instrumentation "
               f"(heartbeats) and OTEL_EXPORTER_OTLP_ENDPOINT={C.otlp_hint(settings)}.")
        return C.empty_state(msg, id="lanes-empty"), None
    now = float(getattr(q, "clock", time.time)()) if now is None else now
    colours = colours_for(q, vs.window_s)
    return (tables.lanes_matrix(rows, now=now, tz=tz, colours=colours),
            tables.instances_table(rows, now=now, tz=tz, colours=colours))


dash.callback(Output("lanes-matrix", "children"), Output("lanes-instances", "children"),
              *live_inputs())(refresh)
