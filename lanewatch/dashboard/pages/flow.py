"""Flow: the service graph per lane, the selected edge's violations, and a lane Sankey.

With a lane filter both views show what belongs to that lane (``docs/design.md``,
"Lane filters on the Flow page"): the Sankey the hops that expected or were
served by the lane, the graph the edges ``Query.edges(window, lane=L)`` keeps
plus every edge on which ``Query.violations(window, lane=L)`` found one of the
lane's violations (an intrusion into a gray instance, a tag lost inside a gray
service), drawn in the lane it carried.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dash
from dash import Input, Output, dcc, html

from lanewatch.dashboard import cache, flowfig, tables
from lanewatch.dashboard import components as C
from lanewatch.dashboard import figures as F
from lanewatch.dashboard.context import (
    GRAPH_CONFIG,
    colours_for,
    get_query,
    get_settings,
    live_inputs,
)
from lanewatch.dashboard.state import KINDS, ViewState
from lanewatch.dashboard.timefmt import window_label

dash.register_page(  # type: ignore[no-untyped-call]
    __name__, path="/flow", name="Flow", title="lanewatch: flow", order=1)

#: Violations listed for a selected edge; violations read to find a lane's edges.
SHOWN = 50
LANE_VIOLATIONS = 500


def layout(**kwargs: Any) -> html.Div:
    """Graph, the clicked edge's violations, and the Sankey (each saying "loading…" at first)."""
    loading = F.empty_figure("loading…")
    return html.Div([
        html.Div([html.H2("Where does each lane flow?"),
                  html.Span("Click an edge's marker to list its violations.", className="lw-sub")],
                 className="lw-page-head"),
        html.Div(dcc.Graph(id="flow-graph", config=GRAPH_CONFIG, figure=loading,
                           style={"height": "460px"}), className="lw-card"),
        html.Div([html.H3(id="flow-edge-title", children="Selected edge"),
                  html.Div(id="flow-edge-violations")], className="lw-card", id="flow-edge-card"),
        html.Div(dcc.Graph(id="flow-sankey", config=GRAPH_CONFIG, figure=loading,
                           style={"height": "380px"}), className="lw-card", id="flow-sankey-card"),
        dcc.Store(id="flow-selected"),
    ], className="lw-page")


def _identity(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row.get(k) for k in ("caller", "callee", "lane", "sent_lane", "entry_lane"))


def lane_edges(q: Any, window_s: int, lane: str | None,
               violations: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The edges of a lane view: ``Query.edges(window, lane)``, plus the edges that carried
    one of the lane's violations (``Query.violations(window, lane=lane)``) under another lane.

    Rows keep every column the query returns (``sent_lane``, ``entry_lane``...).
    """
    rows = q.edges(window_s, lane=lane)
    if not lane:
        return list(rows)
    viols = q.violations(window_s, lane=lane, limit=LANE_VIOLATIONS) if violations is None \
        else violations
    drawn = {(r["caller"], r["callee"], k) for r in rows for k in KINDS if r.get(k)}
    missing = {(v.get("caller"), v.get("callee"), v.get("kind")) for v in viols
               if v.get("caller") and v.get("callee")} - drawn
    if not missing:
        return list(rows)
    have = {_identity(r) for r in rows}
    extra = [r for r in q.edges(window_s)
             if _identity(r) not in have and any((r["caller"], r["callee"], k) in missing
                                                 for k in KINDS if r.get(k))]
    return list(rows) + extra


def drawn_edges(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per drawn edge (caller, callee, lane carried): ``Query.edges`` may give several
    (sent gray, and sent nothing after a tag was lost inside the caller); their counts add up."""
    out: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for r in rows:
        key = (r["caller"], r["callee"], r["lane"])
        have = out.get(key)
        if have is None:
            out[key] = {k: v for k, v in r.items() if k not in ("sent_lane", "entry_lane")}
            continue
        for k, v in r.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k in have:
                have[k] = round(have[k] + v, 3) if k == "rate" else have[k] + v
    return list(out.values())


def _edges(rows: list[dict[str, Any]], service: str | None) -> list[dict[str, Any]]:
    if not service:
        return rows
    return [r for r in rows if service in (r["caller"], r["callee"])]


def refresh(_tick: int | None, state: dict[str, Any] | None, theme: str | None, _tz: str | None,
            selected: list[str] | None) -> tuple[Any, Any, Any, Any]:
    """(service graph, Sankey, edge card hidden, Sankey card hidden) for the window and filters.

    A fresh install shows one sentence on the graph and hides the other cards.
    """
    if state is None:
        return dash.no_update, dash.no_update, dash.no_update, dash.no_update
    q, vs, theme = get_query(), ViewState.from_dict(state), theme or "light"
    window = window_label(vs.window_s)
    instances, all_edges, flows, colours = cache.gather(
        q.instances, lambda: lane_edges(q, vs.window_s, vs.lane),
        lambda: q.flows(vs.window_s, service=vs.service), lambda: colours_for(q, vs.window_s), store=q.store)
    live = tables.live_lanes(instances)
    edges = _edges(drawn_edges(all_edges), vs.service)
    if not edges and not instances:
        return F.empty_figure(C.no_spans(get_settings()), theme), F.empty_figure("", theme), \
            True, True
    if vs.service:
        live = {k: v for k, v in live.items()
                if k == vs.service or any(k in (r["caller"], r["callee"]) for r in edges)}
    graph = flowfig.flow_graph_figure(edges, live, theme=theme, selected=selected, window=window)
    if vs.lane:
        flows = [r for r in flows if vs.lane in (r["expected_lane"], r["instance_lane"])]
    sankey = flowfig.sankey_figure(flows, colours=colours, theme=theme,
                                   title=f"Expected lane → lane that served it, per hop, {window}")
    return graph, sankey, False, False


dash.callback(Output("flow-graph", "figure"), Output("flow-sankey", "figure"),
              Output("flow-edge-card", "hidden"), Output("flow-sankey-card", "hidden"),
              *live_inputs(), Input("flow-selected", "data"))(refresh)


def select(click: dict[str, Any] | None) -> list[str] | None:
    """The clicked edge marker's ``[caller, callee, lane]``, or None."""
    for point in (click or {}).get("points", []):
        data = point.get("customdata")
        if isinstance(data, list) and len(data) == 3:
            return [str(x) for x in data]
    return None


dash.callback(Output("flow-selected", "data"), Input("flow-graph", "clickData"))(select)


def edge_violations(selected: list[str] | None, _tick: int | None, state: dict[str, Any] | None,
                    tz: str | None) -> tuple[str, Any]:
    """(title, table) of violations on the selected edge."""
    if not selected:
        return "Selected edge", C.empty_state("Click an edge's marker in the graph to list its "
                                              "violations here.")
    caller, callee, lane = selected
    q, settings, vs = get_query(), get_settings(), ViewState.from_dict(state)
    rows = [r for r in q.violations(vs.window_s, limit=2000)
            if r.get("caller") == caller and callee in (r.get("callee"), r.get("service"))]
    title = f"{caller} -> {callee}, lane {lane}: {len(rows):,} violations, {window_label(vs.window_s)}"
    if not rows:
        return title, C.empty_state("No violations on this edge in the window: it stayed in lane.")
    if len(rows) > SHOWN:
        title += f" (newest {SHOWN} shown)"
    return title, tables.violations_table(rows[:SHOWN], template=settings.trace_url_template,
                                          tz=tz, colours=colours_for(q, vs.window_s))


dash.callback(Output("flow-edge-title", "children"), Output("flow-edge-violations", "children"),
              Input("flow-selected", "data"), *live_inputs()[:2], Input("shell-tz", "data"))(
    edge_violations)
