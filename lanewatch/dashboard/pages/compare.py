"""Compare: is a lane worse than base, over the same window?

With a service in the filters, that service's lane (the filter's, else its
busiest non-base lane) is compared with base: verdict, totals, three series.
Without one, a table of verdicts for every service (the filter's lane, else
every non-base lane) vs base, worst first, each row linking to its single-
service view; the worst row's details follow, named as such.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import dash
from dash import Output, State, dcc, html

from lanewatch import lane as L
from lanewatch.dashboard import cache, tables
from lanewatch.dashboard import components as C
from lanewatch.dashboard import figures as F
from lanewatch.dashboard.app import GRAPH_CONFIG, colours_for, get_query, get_settings, live_inputs
from lanewatch.dashboard.state import ViewState, step_for, to_search
from lanewatch.dashboard.timefmt import window_label
from lanewatch.query.compare import DEFAULT_THRESHOLDS, confidence_text
from lanewatch.stats import Thresholds

dash.register_page(  # type: ignore[no-untyped-call]
    __name__, path="/compare", name="Compare", title="lanewatch: compare", order=3)

#: The per-service table shows at most this many rows (worst first) and says how many it hides.
MAX_ROWS = 200
def layout(**kwargs: Any) -> html.Div:
    """Heading, the per-service table, then verdict, totals and the three series."""
    graph: dict[str, Any] = {"config": GRAPH_CONFIG, "style": {"height": "280px"}}
    return html.Div([
        html.Div([html.H2(id="compare-title", children="Is gray worse than base?"),
                  html.Span(id="compare-note", className="lw-sub")], className="lw-page-head"),
        html.Div(id="compare-all", className="lw-card", hidden=True),
        dcc.Store(id="compare-all-key"),  # what the table shows: it is sent again only when it changes
        html.H3(id="compare-detail-head", hidden=True),
        html.Div([html.Div(id="compare-verdict", className="lw-card"),
                  html.Div(id="compare-totals", className="lw-card")], className="lw-grid-2"),
        html.Div([dcc.Graph(id="compare-qps", **graph), dcc.Graph(id="compare-errors", **graph)],
                 className="lw-grid-2 lw-charts"),
        html.Div(dcc.Graph(id="compare-latency", **graph), className="lw-charts"),
    ], className="lw-page")


def pick(rows: Sequence[Mapping[str, Any]], vs: ViewState) -> tuple[str | None, str | None]:
    """The (service, lane) of the details: the filters where set, else the worst row of
    ``Query.compare_all`` (rows worst first) that matches them."""
    lane = vs.lane if vs.lane and vs.lane != L.BASE else None
    for r in rows:
        if (lane is None or r["lane"] == lane) and (vs.service is None or r["service"] == vs.service):
            return str(r["service"]), str(r["lane"])
    return vs.service, lane


def advice(instances: Sequence[Mapping[str, Any]], vs: ViewState, window: str, settings: Any) -> str:
    """Why there is nothing to compare, from the live instances, in one sentence."""
    live: dict[str, set[str]] = {}
    for r in instances:
        if r.get("live") and r["lane"] != L.BASE and (not vs.service or r["service"] == vs.service) \
                and (not vs.lane or r["lane"] == vs.lane):
            live.setdefault(str(r["lane"]), set()).add(str(r["service"]))
    if live:
        lane = min(live, key=lambda x: (x != "gray", x))
        n = sum(1 for r in instances if r.get("live") and r["lane"] == lane
                and (not vs.service or r["service"] == vs.service))
        return (f"No {lane} requests {window} while {n} {lane} instance{'s' * (n != 1)} "
                f"{'are' if n != 1 else 'is'} live ({', '.join(sorted(live[lane]))}): send {lane} traffic "
                f"(through its entry or with its lane header) to compare it with base.")
    if instances:
        where = f" to {vs.service}" if vs.service else ""
        return (f"No lane besides base served requests{where} {window}: start an instance in a gray lane "
                "(OTEL_RESOURCE_ATTRIBUTES=service.lane=gray) to compare it with base.")
    return C.no_spans(settings)


def verdict_box(verdict: Mapping[str, Any] | None, lane: str, base: str,
                th: Thresholds = DEFAULT_THRESHOLDS) -> list[Any]:
    """The verdict, its confidence that ``lane`` is worse and the tests behind it, or why there is
    none yet. A badge and its words always agree: "worse" with its confidence, or "no significant
    difference" with the p-value and the level it was not shown worse at."""
    if verdict is None:
        return [html.H3("Verdict"), C.empty_state(
            f"No verdict yet: {lane} or {base} served fewer than {th.min_requests} requests in this "
            "window; widen the window or wait for traffic.", id="compare-no-verdict")]
    worse = bool(verdict.get("worse"))
    conf, alpha = float(verdict.get("confidence") or 0.0), float(verdict.get("alpha", th.alpha))
    badge = html.Span(f"{lane} is worse" if worse else "no significant difference",
                      className="lw-badge " + ("lw-v-intrusion" if worse else "lw-v-in_lane"))
    said = (f" confidence {confidence_text(conf)} that {lane} is worse" if worse else
            f" p = {float(verdict.get('p_value', 1 - conf)):.2g}: not shown worse at {confidence_text(1 - alpha)}")
    lines: list[Any] = [html.Div([badge, said], className="lw-alert-head", id="compare-verdict-head",
                                 **C._data(worse=str(worse).lower())),
                        html.Div(str(verdict.get("text", "")), className="lw-wrap")]
    errors, latency = verdict.get("errors") or {}, verdict.get("latency") or {}
    if errors:
        test = "Fisher's exact test" if errors.get("method") == "fisher" else f"two-proportion z = {errors.get('z')}"
        lines.append(html.Div(f"errors: {C.pct_text(errors.get('lane_rate'))} vs {C.pct_text(errors.get('base_rate'))}"
                              f", {test}, one-sided p = {float(errors.get('p_value', 1)):.2g}", className="lw-sub"))
    if latency:
        effect = 0.5 + float(latency.get("min_effect", verdict.get("min_latency_effect", 0.0)))
        lines.append(html.Div(f"latency: {lane} slower in {100 * float(latency['prob_slower']):.0f}% of pairs "
                              f"(worse above {100 * effect:.0f}%), Mann-Whitney z = {latency.get('z')}, "
                              f"one-sided p = {float(latency.get('p_value', 1)):.2g}", className="lw-sub"))
    lines.append(html.Div(f"significance level {alpha}; confidence = 1 − p of the claim that {lane} is worse",
                          className="lw-sub"))
    return [html.H3("Verdict"), *lines]


def _pair(a: Any, b: Any, fmt: str) -> str:
    def one(v: Any) -> str:
        return "—" if v is None else C.pct_text(float(v)) if fmt == "pct" else fmt.format(float(v))
    return f"{one(a)} vs {one(b)}"


def verdict_table(rows: Sequence[Mapping[str, Any]], vs: ViewState, colours: Mapping[str, str],
                  th: Thresholds = DEFAULT_THRESHOLDS) -> list[Any]:
    """Rows of ``Query.compare_all`` (worst first) as a table; each service links to its view."""
    body = []
    for r in rows[:MAX_ROWS]:
        worse = r.get("worse")
        badge = html.Span("worse" if worse else "not worse" if worse is False else "no verdict",
                          className="lw-badge " + ("lw-v-intrusion" if worse else "lw-v-in_lane"
                                                   if worse is False else ""))
        href = "/compare" + to_search(ViewState(vs.window_s, str(r["service"]), str(r["lane"]), vs.kind))
        conf = r.get("confidence")
        body.append(html.Tr([
            html.Td(dcc.Link(str(r["service"]), href=href), className="lw-svc"),
            html.Td(C.lane_chip(str(r["lane"]), colours)), html.Td([badge, " ", str(r.get("text", ""))]),
            html.Td(f"{int(r.get('lane_requests') or 0):,} vs {int(r.get('base_requests') or 0):,}"),
            html.Td(_pair(r.get("lane_error_rate"), r.get("base_error_rate"), "pct")),
            html.Td(_pair(r.get("lane_p50_ms"), r.get("base_p50_ms"), "{:,.1f} ms")),
            html.Td(confidence_text(float(conf)) if conf is not None else "—"),
        ], className="lw-row-worse" if worse else "", **C._data(service=str(r["service"]))))
    head = html.Thead(html.Tr([html.Th(h) for h in (
        "service", "lane", "verdict", "requests (lane vs base)", "error rate", "p50 latency",
        "confidence it is worse")]))
    hidden = len(rows) - min(len(rows), MAX_ROWS)
    note = (f"{hidden:,} more rows hidden (the least worse); filter by lane or service to see them."
            if hidden else f"No verdict below {th.min_requests} requests on either side; "
            f"significance level {th.alpha}.")
    if not rows:
        return [html.H3("Per service"), C.empty_state("No service served this lane in the window.")]
    return [html.H3("Per service, worst first"),
            html.Table([head, html.Tbody(body)], className="lw-table", id="compare-table"),
            html.Div(note, className="lw-sub")]


def refresh(_tick: int | None, state: dict[str, Any] | None, theme: str | None,
            tz: str | None, table_key: str | None = None) -> tuple[Any, ...]:
    """(title, note, table, table hidden, detail heading, detail hidden, verdict, totals, QPS,
    errors, latency, table key). The table is ``dash.no_update`` while what it shows is the
    ``table_key`` the page holds: re-rendered every second, its links lost clicks that landed
    during a re-render."""
    q, settings, vs, theme = get_query(), get_settings(), ViewState.from_dict(state), theme or "light"
    window, step = window_label(vs.window_s), step_for(vs.window_s)
    th = Thresholds(**dataclasses.asdict(settings.compare))
    lane_filter = vs.lane if vs.lane and vs.lane != L.BASE else None
    rows: list[dict[str, Any]] = []
    if not (vs.service and lane_filter):  # the table, or the worst lane of one service
        rows = cache.per_step(q, max(step, 5), ("compare_all", vs.window_s),
                              lambda: q.compare_all(None, vs.window_s))[0]
    service, lane = pick(rows, vs)
    if service is None or lane is None:
        msg = advice(q.instances(), vs, window, settings)
        fig = F.empty_figure("", theme)  # one hint per page: the verdict card says it
        return (f"Is {lane_filter or 'gray'} worse than base?", window, None, True, None, True,
                C.empty_state(msg, id="compare-empty"), None, fig, fig, fig, None)
    (cmp, _), colours = cache.gather(
        lambda: cache.per_step(q, step, ("compare", service, lane, vs.window_s),
                               lambda: q.compare(service, lane, vs.window_s, step_s=step)),
        lambda: colours_for(q, vs.window_s), store=q.store)
    cmp = {**cmp, "series": F.complete_steps({"lanes": cmp.get("series") or {}, "step_s": step})["lanes"]}
    base = str(cmp.get("base", L.BASE))
    kw: dict[str, Any] = {"colours": colours, "theme": theme, "tz": tz, "uirevision": f"{service}|{lane}"}
    detail = (verdict_box(cmp.get("verdict"), lane, base, th), tables.compare_totals(cmp, vs.window_s, colours),
              F.compare_figure(cmp, "qps", **kw), F.compare_figure(cmp, "error_rate", **kw),
              F.compare_figure(cmp, "latency", **kw))
    if vs.service:
        return (f"{service}: {lane} vs {base}", f"{window}; clear the service filter to compare every service",
                None, True, None, True, *detail, None)
    mine = [r for r in rows if lane_filter is None or r["lane"] == lane_filter]
    lanes_text = lane_filter or "each lane"
    head = f"Details: {service}, {lane} vs {base} (the worst row; pick another row above)"
    key = hashlib.sha1(repr((mine, vs, sorted(colours.items()), th)).encode()).hexdigest()
    table = dash.no_update if key == table_key else verdict_table(mine, vs, colours, th)
    return (f"Every service: {lanes_text} vs {base}", f"{window}; {len(mine)} service/lane pairs, worst first",
            table, False, head, False, *detail, key)


dash.callback(Output("compare-title", "children"), Output("compare-note", "children"),
              Output("compare-all", "children"), Output("compare-all", "hidden"),
              Output("compare-detail-head", "children"), Output("compare-detail-head", "hidden"),
              Output("compare-verdict", "children"), Output("compare-totals", "children"),
              Output("compare-qps", "figure"), Output("compare-errors", "figure"),
              Output("compare-latency", "figure"), Output("compare-all-key", "data"), *live_inputs(),
              State("compare-all-key", "data"))(refresh)
