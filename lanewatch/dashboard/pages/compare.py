"""Compare: is a lane worse than base for one service, over the same window?

The service and lane come from the shared filters; without them the first
service and the first non-base lane in the window are compared.
"""

from __future__ import annotations

from typing import Any

import dash
from dash import Output, dcc, html

from lanewatch import lane as L
from lanewatch.dashboard import cache, tables
from lanewatch.dashboard import components as C
from lanewatch.dashboard import figures as F
from lanewatch.dashboard.app import GRAPH_CONFIG, colours_for, get_query, get_settings, live_inputs
from lanewatch.dashboard.state import ViewState, step_for
from lanewatch.dashboard.theme import order_lanes
from lanewatch.dashboard.timefmt import window_label
from lanewatch.stats import Thresholds

dash.register_page(  # type: ignore[no-untyped-call]
    __name__, path="/compare", name="Compare", title="lanewatch: compare", order=3)


def layout(**kwargs: Any) -> html.Div:
    """Heading, verdict, totals and the three series."""
    graph: dict[str, Any] = {"config": GRAPH_CONFIG, "style": {"height": "280px"}}
    return html.Div([
        html.Div([html.H2(id="compare-title", children="Is gray worse than base?"),
                  html.Span(id="compare-note", className="lw-sub")], className="lw-page-head"),
        html.Div([html.Div(id="compare-verdict", className="lw-card"),
                  html.Div(id="compare-totals", className="lw-card")], className="lw-grid-2"),
        html.Div([dcc.Graph(id="compare-qps", **graph), dcc.Graph(id="compare-errors", **graph)],
                 className="lw-grid-2 lw-charts"),
        html.Div(dcc.Graph(id="compare-latency", **graph), className="lw-charts"),
    ], className="lw-page")


def pick(flows: list[dict[str, Any]], vs: ViewState) -> tuple[str | None, str | None]:
    """The (service, lane) to compare: the filters, else the busiest non-base lane and the
    service that served most of it (from ``Query.flows``)."""
    served: dict[tuple[str, str], int] = {}
    for r in flows:
        key = (r["service"], r["instance_lane"])
        served[key] = served.get(key, 0) + int(r["requests"])
    lane = vs.lane if vs.lane and vs.lane != L.BASE else None
    if lane is None:
        per_lane: dict[str, int] = {}
        for (_, x), n in served.items():
            if x != L.BASE:
                per_lane[x] = per_lane.get(x, 0) + n
        lane = max(order_lanes(per_lane), key=lambda x: per_lane[x], default=None)
    service = vs.service
    if service is None:
        candidates = {s: n for (s, x), n in served.items() if x == lane} or \
            {s: n for (s, _), n in served.items()}
        service = max(sorted(candidates), key=lambda s: candidates[s], default=None)
    return service, lane


def verdict_box(verdict: dict[str, Any] | None, lane: str, base: str) -> list[Any]:
    """The comparison's verdict with its confidence, or why there is none yet."""
    if verdict is None:
        return [html.H3("Verdict"), C.empty_state(
            f"No verdict yet: {lane} or {base} served fewer than {Thresholds().min_requests} requests in this "
            "window; widen the window or wait for traffic.", id="compare-no-verdict")]
    worse = bool(verdict.get("worse"))
    badge = html.Span(f"{lane} is worse" if worse else "no significant difference",
                      className="lw-badge " + ("lw-v-intrusion" if worse else "lw-v-in_lane"))
    conf = verdict.get("confidence")
    lines = [html.Div([badge, f" confidence {100 * float(conf):.1f}%" if conf is not None else ""],
                      className="lw-alert-head", id="compare-verdict-head"),
             html.Div(str(verdict.get("text", "")))]
    errors, latency = verdict.get("errors") or {}, verdict.get("latency") or {}
    if errors:
        lines.append(html.Div(f"errors: {C.pct_text(errors.get('lane_rate'))} vs "
                              f"{C.pct_text(errors.get('base_rate'))}, two-proportion z = "
                              f"{errors.get('z')}, p = {float(errors.get('p_value', 1)):.2g}",
                              className="lw-sub"))
    if latency:
        lines.append(html.Div(f"latency: {lane} slower in {100 * float(latency['prob_slower']):.0f}% "
                              f"of pairs, Mann-Whitney z = {latency.get('z')}, "
                              f"p = {float(latency.get('p_value', 1)):.2g}", className="lw-sub"))
    if "alpha" in verdict:
        lines.append(html.Div(f"significance level {verdict['alpha']}", className="lw-sub"))
    return [html.H3("Verdict"), *lines]


def refresh(_tick: int | None, state: dict[str, Any] | None, theme: str | None,
            tz: str | None) -> tuple[Any, ...]:
    """(title, note, verdict, totals, QPS, errors, latency) for the chosen service and lane."""
    q, vs, theme = get_query(), ViewState.from_dict(state), theme or "light"
    window = window_label(vs.window_s)
    chosen = vs.service and vs.lane and vs.lane != L.BASE
    service, lane = (vs.service, vs.lane) if chosen else pick(q.flows(vs.window_s), vs)
    if service is None or lane is None:
        if lane is not None or service is not None:
            msg = ("No lane besides base served requests in this window: start a gray instance "
                   "(OTEL_RESOURCE_ATTRIBUTES=service.lane=gray) to compare it with base.")
        elif q.instances():
            msg = f"No requests {window}: widen the window or send some traffic."
        else:
            msg = C.no_spans(get_settings())
        fig = F.empty_figure("", theme)  # one hint per page: the verdict card says it
        return ("Is gray worse than base?", "", C.empty_state(msg, id="compare-empty"), None,
                fig, fig, fig)
    step = step_for(vs.window_s)
    (cmp, _), colours = cache.gather(
        lambda: cache.per_step(q, step, ("compare", service, lane, vs.window_s),
                               lambda: q.compare(service, lane, vs.window_s, step_s=step)),
        lambda: colours_for(q, vs.window_s))
    cmp = {**cmp, "series": F.complete_steps({"lanes": cmp.get("series") or {}, "step_s": step})
           ["lanes"]}
    note = (f"{window}; pick another service or lane with the filters above"
            if not (vs.service and vs.lane) else window)
    kw: dict[str, Any] = {"colours": colours, "theme": theme, "tz": tz,
                          "uirevision": f"{service}|{lane}"}
    return (f"{service}: {lane} vs {cmp.get('base', L.BASE)}", note,
            verdict_box(cmp.get("verdict"), lane, str(cmp.get("base", L.BASE))), tables.compare_totals(cmp, vs.window_s, colours),
            F.compare_figure(cmp, "qps", **kw), F.compare_figure(cmp, "error_rate", **kw),
            F.compare_figure(cmp, "latency", **kw))


dash.callback(Output("compare-title", "children"), Output("compare-note", "children"),
              Output("compare-verdict", "children"), Output("compare-totals", "children"),
              Output("compare-qps", "figure"), Output("compare-errors", "figure"),
              Output("compare-latency", "figure"), *live_inputs())(refresh)
