"""Lanes and instances: which lanes each service has live instances in, from heartbeats.

This is what decides a gray hop's verdict: served by base while the service
had no live gray instance is a fallback; while it had one, a leak.

Refreshed every 5 s (instances come and go on the scale of ``liveness_ttl_s``), and
bounded for thousands of instances: at most :data:`PER_LANE_ROWS` rows per service and
lane, :data:`MAX_ROWS` in all.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import dash
from dash import Output, html

from lanewatch.dashboard import cache, tables
from lanewatch.dashboard import components as C
from lanewatch.dashboard.app import colours_for, get_query, get_settings, live_inputs
from lanewatch.dashboard.state import ViewState
from lanewatch.dashboard.timefmt import ago, utc_time

dash.register_page(__name__, path="/lanes", name="Lanes & instances",
                   title="lanewatch: lanes and instances", order=4)  # type: ignore[no-untyped-call]


#: The instance table renders at most this many rows and says how many it hides.
MAX_ROWS = 200
#: ... and at most this many per service and lane (live and newest first), with a "more" row,
#: unless a service and a lane are picked.
PER_LANE_ROWS = 10


def layout(**kwargs: Any) -> html.Div:
    """Dead lanes, the services x lanes matrix and the instance list."""
    return html.Div([
        html.Div([html.H2("Lanes and instances"), html.Span(
            "A gray hop served by base is a fallback when the service had no live gray instance, "
            "a leak when it had one, and uncertain when its only gray instance had gone silent "
            "(overdue, not yet past the liveness TTL).", className="lw-sub")], className="lw-page-head"),
        html.Div(id="lanes-dead"),
        html.Div([html.H3("Live lanes per service"), html.Div(id="lanes-matrix")],
                 className="lw-card"),
        html.Div([html.H3("Instances"), html.Div(id="lanes-instances")], className="lw-card"),
        html.Div(id="lanes-collectors"),
    ], className="lw-page")


#: A collector whose newest batch is older than this is shown as stopped (engine.PEER_GONE_S).
STOPPED_AFTER_S = 10.0
#: The per-collector columns: (heading, counters summed, what they count).
COLLECTOR_COLUMNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("spans received", ("spans_received",), "spans taken from OTLP requests"),
    ("duplicates", ("duplicate_spans",), "spans received twice (exporter retries), counted once"),
    ("unpaired", ("unpaired_client_spans", "unpaired_server_spans"),
     "client spans without their server span, server spans without their client span"),
    ("late", ("late_spans",), "spans that arrived after their trace was judged"),
    ("before peers' liveness", ("spans_judged_before_peer_liveness",),
     "spans judged before every other collector's liveness covered them (liveness_wait_s)"),
)


def collectors_card(rows: Sequence[Mapping[str, Any]]) -> html.Div | None:
    """Several collectors on a shared store (docs/scale-out.md): one row each, with its own
    counters (the summary and /metrics sum them); None with one collector."""
    if len(rows) < 2:
        return None
    body = []
    for r in rows:
        c, age = r.get("counters") or {}, r.get("age_s")
        stopped = age is None or float(age) > STOPPED_AFTER_S
        refused = sum(int(v) for k, v in c.items() if k.startswith(("requests_refused_", "spans_rejected_",
                                                                      "spans_lost_")))
        cells = [html.Td(html.Code(str(r["collector"]))),
                 html.Td("no batch yet" if age is None else f"{'stopped? ' if stopped else ''}{ago(float(age))}",
                         className="lw-gone" if stopped else "lw-live",
                         title="" if r.get("as_of") is None else utc_time(float(r["as_of"])))]
        cells += [html.Td(f"{sum(int(c.get(k, 0)) for k in keys):,}") for _, keys, _ in COLLECTOR_COLUMNS]
        cells.append(html.Td(f"{refused:,}"))
        body.append(html.Tr(cells))
    head = html.Thead(html.Tr([html.Th("collector"), html.Th("newest batch")]
                              + [html.Th(h, title=t) for h, _, t in COLLECTOR_COLUMNS]
                              + [html.Th("refused or lost", title="requests refused, spans rejected or lost")]))
    return html.Div([html.H3("Collectors"),
                     html.Table([head, html.Tbody(body)], className="lw-table", id="lanes-collector-table"),
                     html.Div("Each collector's own counts since it first wrote the store; the Overview, "
                              "the API summary and /metrics show their sums.", className="lw-sub")],
                    className="lw-card")


def dead_card(dead: Sequence[Mapping[str, Any]], colours: Mapping[str, str]) -> html.Div | None:
    """``summary["dead_lanes"]`` as one line each: live instances that received no traffic."""
    if not dead:
        return None
    items = []
    for d in dead:
        lane, svc, n = str(d.get("lane")), str(d.get("service")), int(d.get("live_instances") or 0)
        idle = ago(float(d.get("idle_s") or 0)).removesuffix(" ago")
        line = (f" on {svc}: no {lane} hops for {idle} while {n} {lane} instance{'s' * (n != 1)} "
                f"{'are' if n != 1 else 'is'} live and {svc} served "
                f"{int(d.get('service_requests') or 0):,} requests")
        items.append(html.Li([html.Span("dead", className="lw-badge"), " ", C.lane_chip(lane, colours), line],
                             **C._data(service=svc, lane=lane)))
    return html.Div([html.H3("Dead lanes"), html.Ul(items)], className="lw-card lw-dead", id="lanes-dead-card")


def _top_per_lane(instances: Sequence[Mapping[str, Any]], per_lane: int
                  ) -> list[tuple[list[Mapping[str, Any]], int, str, str]]:
    """Per (service, lane), in that order: its first ``per_lane`` instances (live, then the
    newest first), how many more it has, the service and the lane."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in instances:
        groups.setdefault((str(r["service"]), str(r["lane"])), []).append(r)
    out = []
    for (svc, lane), rows in sorted(groups.items()):
        rows.sort(key=lambda r: (not r.get("live"), -float(r["last_seen"]), str(r["instance"])))
        out.append((rows[:per_lane], max(0, len(rows) - per_lane), svc, lane))
    return out


def instance_rows(instances: Sequence[Mapping[str, Any]], *, now: float, tz: str | None,
                  colours: Mapping[str, str], dead: Sequence[Mapping[str, Any]] = (),
                  per_lane: int = PER_LANE_ROWS) -> html.Div:
    """One row per instance, by service and lane (live and newest first): traffic served
    (``hops``, ``errors``, ``last_hop`` when the Query gives them), marked when its lane is dead
    there; at most ``per_lane`` per service and lane (a row says how many more) and
    :data:`MAX_ROWS` in all."""
    dead_at = {(str(d.get("service")), str(d.get("lane"))) for d in dead}
    shown: list[Mapping[str, Any] | tuple[int, str, str]] = []
    for top, more, svc, lane in _top_per_lane(instances, per_lane):
        shown += top[:MAX_ROWS - len(shown)]
        if more and len(shown) < MAX_ROWS:
            shown.append((more, svc, lane))
    body = []
    for r in shown:
        if isinstance(r, tuple):
            more, svc, lane = r
            body.append(html.Tr(html.Td(
                f"… {more:,} more {lane} instance{'s' * (more != 1)} of {svc}: pick {svc} and {lane} "
                "above to list them", colSpan=9), className="lw-more", **C._data(service=svc, lane=lane)))
            continue
        hops, errors, last = r.get("hops"), r.get("errors"), r.get("last_hop")
        is_dead = (r["service"], r["lane"]) in dead_at and r.get("live")
        body.append(html.Tr([
            html.Td(r["service"], className="lw-svc"),
            html.Td([C.lane_chip(r["lane"], colours)] + ([" ", html.Span("dead", className="lw-badge")]
                                                          if is_dead else [])),
            html.Td(html.Code(r["instance"])),
            html.Td("live" if r.get("live") else "not live", className="lw-live" if r.get("live") else "lw-gone"),
            html.Td(f"{int(hops):,}" if hops is not None else "—"),
            html.Td(f"{int(errors):,} ({C.pct_text(int(errors) / int(hops))})" if hops and errors is not None
                    else "—" if errors is None else f"{int(errors):,}"),
            html.Td(ago(now - float(last)), title=utc_time(float(last))) if last is not None else
            html.Td("never" if hops is not None else "—"),
            tables.time_cell(float(r["first_seen"]), tz, True),
            html.Td(ago(now - float(r["last_seen"])), title=utc_time(float(r["last_seen"]))),
        ], className="lw-row-dead" if is_dead else "", **C._data(service=str(r["service"]), lane=str(r["lane"]))))
    head = html.Thead(html.Tr([html.Th(h) for h in ("service", "lane", "instance", "live", "hops served",
                                                    "errors", "last hop", "first seen", "last seen")]))
    n = len(instances)
    listed = sum(1 for r in shown if not isinstance(r, tuple))
    hidden = n - listed
    note = (f"Showing {listed:,} of {n:,} instances ({hidden:,} hidden): at most {per_lane:,} per service "
            f"and lane, live and newest first, and {MAX_ROWS:,} in all; pick a service and a lane to "
            "see the rest." if hidden else
            f"{n:,} instance{'s' * (n != 1)}; hops and errors since each was first seen.")
    return html.Div([html.Table([head, html.Tbody(body)], className="lw-table", id="lanes-instance-table"),
                     html.Div(note, className="lw-sub", id="lanes-instances-note")])


def refresh(_tick: int | None, state: dict[str, Any] | None, theme: str | None, tz: str | None,
            now: float | None = None) -> tuple[Any, Any, Any, Any]:
    """(dead lanes, matrix, instance table, collectors), filtered by service and lane."""
    q = get_query()
    return (*_lanes(_tick, state, theme, tz, now), collectors_card(q.collectors()))


def _lanes(_tick: int | None, state: dict[str, Any] | None, _theme: str | None, tz: str | None,
           now: float | None = None) -> tuple[Any, Any, Any]:
    q, vs = get_query(), ViewState.from_dict(state)
    rows = [r for r in q.instances()
            if (not vs.service or r["service"] == vs.service) and (not vs.lane or r["lane"] == vs.lane)]
    if not rows:
        settings = get_settings()
        msg = ("No instance matches these filters: clear them to see every service."
               if vs.service or vs.lane else
               f"No instances yet: run services with the lanewatch instrumentation "
               f"(heartbeats) and OTEL_EXPORTER_OTLP_ENDPOINT={C.otlp_hint(settings)}.")
        return None, C.empty_state(msg, id="lanes-empty"), None
    now = float(getattr(q, "clock", time.time)()) if now is None else now
    colours = colours_for(q, vs.window_s)
    summary, _ = cache.per_step(q, 5, ("lanes-summary", vs.window_s), lambda: q.summary(vs.window_s))
    dead = [d for d in summary.get("dead_lanes") or []
            if (not vs.service or d.get("service") == vs.service) and (not vs.lane or d.get("lane") == vs.lane)]
    return (dead_card(dead, colours), tables.lanes_matrix(rows, now=now, tz=tz, colours=colours),
            instance_rows(rows, now=now, tz=tz, colours=colours, dead=dead,
                          per_lane=MAX_ROWS if vs.service and vs.lane else PER_LANE_ROWS))


dash.callback(Output("lanes-dead", "children"), Output("lanes-matrix", "children"),
              Output("lanes-instances", "children"), Output("lanes-collectors", "children"),
              *live_inputs("shell-slow"))(refresh)
