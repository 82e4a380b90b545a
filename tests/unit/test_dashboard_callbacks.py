"""Dashboard callbacks as plain functions over a real Query on a real DuckStore.

The store is filled through ``DuckStore.write(Batch(...))`` with the write-up's
A -> B -> C mesh: gray copies of A and C, no gray B (gray falls back to base
there), some leaks at C, and a service with a hostile name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flask
import numpy as np
import plotly.graph_objects as go
import pytest
from dash import Patch, dcc, html, no_update
from dash_tree import find, text

from lanewatch.config import Settings
from lanewatch.query import Query
from lanewatch.store.base import Batch
from lanewatch.store.duck import DuckStore
from lanewatch.testing import FakeClock

NOW = 1_800_000_000.0
HOSTILE = "<img src=x onerror=alert(1)>"
PATH = "A[gray] -> B[base, fallback] -> C[base, leak]"


def seed_batch(t_end: int, seconds: int = 120) -> Batch:
    """``seconds`` of A -> B -> C traffic in base and gray, ending at ``t_end`` (exclusive)."""
    ts = np.arange(t_end - seconds, t_end)
    n = len(ts)
    # (service, instance lane, request lane, expected lane, verdict, requests per second)
    hop_kinds = [("A", "base", "base", "base", "in_lane", 20), ("A", "gray", "gray", "gray", "in_lane", 5),
                 ("B", "base", "base", "base", "in_lane", 20), ("B", "base", "gray", "gray", "fallback", 5),
                 ("C", "base", "base", "base", "in_lane", 20), ("C", "gray", "gray", "gray", "in_lane", 4),
                 (HOSTILE, "base", "base", "base", "in_lane", 2)]
    hops: dict[str, list[Any]] = {k: [] for k in ("ts", "service", "instance_lane", "request_lane",
                                                   "expected_lane", "verdict", "requests", "errors",
                                                   "latency_sum_ms")}
    lat: dict[str, list[Any]] = {k: [] for k in ("ts", "service", "instance_lane", "request_lane",
                                                  "bucket", "count")}
    for svc, inst, req, exp, verdict, rps in hop_kinds:
        hops["ts"] += list(ts)
        for key, value in (("service", svc), ("instance_lane", inst), ("request_lane", req),
                           ("expected_lane", exp), ("verdict", verdict), ("requests", rps),
                           ("errors", 1 if inst == "gray" else 0), ("latency_sum_ms", rps * 20.0)):
            hops[key] += [value] * n
        lat["ts"] += list(ts)
        for key, value in (("service", svc), ("instance_lane", inst), ("request_lane", req),
                           ("bucket", 40 if inst == "gray" else 30), ("count", rps)):
            lat[key] += [value] * n
    # one leak at C every 10 s: gray expected, served by base while a gray C was live
    leak_ts = ts[::10]
    for key, value in (("service", "C"), ("instance_lane", "base"), ("request_lane", "gray"),
                       ("expected_lane", "gray"), ("verdict", "leak"), ("requests", 1), ("errors", 0),
                       ("latency_sum_ms", 20.0)):
        hops[key] += [value] * len(leak_ts)
    hops["ts"] += list(leak_ts)
    edge_rows = [("A", "B", "base", 20, 0), ("A", "B", "gray", 5, 0), ("B", "C", "base", 20, 0),
                 ("B", "C", "gray", 5, 1)]
    edges: dict[str, list[Any]] = {k: [] for k in ("ts", "caller", "callee", "lane", "entry_lane", "calls", "errors",
                                                    "in_lane", "fallback", "leak", "intrusion", "tag_lost",
                                                    "tag_lost_inside")}
    for caller, callee, lane, calls, leak_every_10 in edge_rows:
        edges["ts"] += list(ts)
        leaks = [1 if leak_every_10 and i % 10 == 0 else 0 for i in range(n)]
        for key, value in (("caller", caller), ("callee", callee), ("lane", lane), ("entry_lane", lane),
                           ("calls", calls),
                           ("errors", 0), ("fallback", 5 if (callee, lane) == ("B", "gray") else 0),
                           ("intrusion", 0), ("tag_lost", 0), ("tag_lost_inside", 0)):
            edges[key] += [value] * n
        edges["leak"] += leaks
        edges["in_lane"] += [calls - (5 if (callee, lane) == ("B", "gray") else 0) - x for x in leaks]
    traces = {"ts": list(ts) * 2, "entry_lane": ["base"] * n + ["gray"] * n,
              "traces": [20] * n + [5] * n, "stayed": [20] * n + [5 - (i % 10 == 0) for i in range(n)]}
    violations = [{"ts": int(t), "kind": "leak", "service": "C", "caller": "B", "callee": "C",
                   "request_lane": "gray", "instance_lane": "base", "entry_lane": "gray",
                   "trace_id": f"{int(t):032x}", "span_id": f"{int(t):016x}", "lane_path": PATH,
                   "late": False} for t in leak_ts]
    instances = [{"service": s, "lane": lane, "instance": f"{s}-{lane}-1", "first_seen": t_end - seconds,
                  "last_seen": t_end - 1, "state": "up"}
                 for s, lane in (("A", "base"), ("A", "gray"), ("B", "base"), ("C", "base"),
                                 ("C", "gray"), (HOSTILE, "base"))]
    return Batch(rollups={"hops": hops, "latency": lat, "edges": edges, "traces": traces},
                 violations=violations, instances=instances)


@pytest.fixture(scope="module")
def app_context() -> Iterator[dict[str, Any]]:
    """A real Query over a filled DuckStore, with the dashboard created around it."""
    from lanewatch.dashboard.app import create_dash, set_context

    clock = FakeClock(NOW)
    store = DuckStore(":memory:", clock=clock)
    store.write(seed_batch(int(NOW) + 1))
    empty_store = DuckStore(":memory:", clock=clock)
    settings = Settings(trace_url_template="http://jaeger:16686/trace/{trace_id}")
    query = Query(store, settings, clock=clock)
    create_dash(flask.Flask(__name__), query, settings)
    yield {"query": query, "settings": settings, "clock": clock,
           "empty": Query(empty_store, settings, clock=clock)}
    set_context(query, settings)
    store.close()
    empty_store.close()


STATE = {"window_s": 60, "service": None, "lane": None, "kind": None}


# ---- overview --------------------------------------------------------------------------------

def test_overview_headlines_match_the_summary(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import overview

    out = overview.refresh(1, STATE, "light", "Europe/Berlin", None)
    note, cards, alerts, verdicts, escapes, qps, errors, counters, key = out
    summary = app_context["query"].summary(60)
    assert [c.__dict__["data-lane"] for c in cards] == ["base", "gray"]
    gray = text(cards[1])
    stats = summary["lanes"]["gray"]
    assert f"of {stats['traces']:,} gray traces stayed in lane, last 1 min" in gray
    assert "98.0%" in gray and f"{stats['traces'] - stats['stayed']} violated" in gray
    assert "A: gray is worse than base (errors 20.0% vs 0.00%" in gray  # the worst service, from Compare
    assert cards[1].__dict__["data-state"] == "violated" and cards[0].__dict__["data-state"] == "ok"
    assert note.startswith("last 1 min, up to 09:00:01 CET")
    assert "FIRING" in text(alerts) and f"{summary['violations']} violations" in text(alerts)
    assert list(verdicts.data[0].x)[:3] == [summary["hops"]["in_lane"], summary["hops"]["fallback"],
                                            summary["hops"]["leak"]]
    assert "B -> C" in text(escapes) and PATH in text(escapes)
    assert [t.name for t in qps.data] == ["base", "gray"] == [t.name for t in errors.data]
    assert qps.data[1].y[5] == pytest.approx(9.0)  # gray instances: 5 req/s at A-gray + 4 at C-gray
    assert "no drops" in text(counters)
    assert key


def test_overview_second_refresh_patches_the_charts(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import overview

    clock = app_context["clock"]
    first = overview.refresh(1, STATE, "light", "UTC", None)
    same_second = overview.refresh(2, STATE, "light", "UTC", first[-1])
    assert same_second[5] is no_update and same_second[6] is no_update  # nothing new to draw
    try:
        clock.advance(1)
        again = overview.refresh(3, STATE, "light", "UTC", first[-1])
        assert isinstance(again[5], Patch) and isinstance(again[6], Patch)
        assert again[-1] != first[-1]
        changed = overview.refresh(4, STATE, "dark", "UTC", again[-1])  # new theme: new figure
        assert isinstance(changed[5], go.Figure)
    finally:
        clock.t = NOW


def test_overview_lane_filter_shows_one_lane(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import overview

    out = overview.refresh(1, {**STATE, "lane": "gray"}, "light", "UTC", None)
    assert [c.__dict__["data-lane"] for c in out[1]] == ["gray"]


def test_overview_empty_store_says_where_to_send_spans(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.app import set_context
    from lanewatch.dashboard.pages import overview

    set_context(app_context["empty"], app_context["settings"])
    try:
        out = overview.refresh(1, STATE, "light", "UTC", None)
    finally:
        set_context(app_context["query"], app_context["settings"])
    assert text(out[1]) == ("No spans yet: point OTEL_EXPORTER_OTLP_ENDPOINT at "
                            "http://127.0.0.1:4318.")
    assert "No spans yet" in out[5].layout.annotations[0].text


# ---- violations ------------------------------------------------------------------------------

def test_violations_table_lists_the_leaks_with_trace_links(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import violations

    note, table, more_hidden, drawn = violations.refresh(1, STATE, "light", "UTC")
    rows = find(table, html.Tr)[1:]
    assert more_hidden  # all 6 fit on the first page
    assert violations.refresh(2, STATE, "light", "UTC", 0, drawn)[1] is no_update  # same rows
    assert note.startswith("6 violations, last 1 min")
    assert len(rows) == 6
    assert all(PATH in text(r) for r in rows)
    links = find(rows[0], html.A)
    assert links[0].href.startswith("http://jaeger:16686/trace/")
    stamps = [find(r, html.Td)[0].title for r in rows]
    assert stamps == sorted(stamps, reverse=True)  # newest first


def test_violations_kind_filter_and_empty_state(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import violations

    note, body, _, _ = violations.refresh(1, {**STATE, "kind": "intrusion"}, "light", "UTC")
    assert note == "no intrusion violations, last 1 min"
    assert "every hop and edge stayed in its lane" in text(body)
    assert violations.set_kind("leak", STATE) == "?window=60&kind=leak"
    assert violations.set_kind(None, {**STATE, "kind": "leak"}) == "?window=60"


def test_violations_page_by_page(app_context: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from lanewatch.dashboard.pages import violations

    monkeypatch.setattr(violations, "PAGE", 4)
    note, table, more_hidden, drawn = violations.refresh(1, STATE, "light", "UTC", 0, None)
    assert note.startswith("6 violations, last 1 min; newest 4 shown")
    assert len(find(table, html.Tr)) == 5 and not more_hidden
    note, table, more_hidden, again = violations.refresh(2, STATE, "light", "UTC", 1, drawn)
    assert len(find(table, html.Tr)) == 7 and more_hidden and again != drawn


# ---- flow ------------------------------------------------------------------------------------

def test_flow_graph_and_sankey_from_the_query(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import flow

    graph, sankey = flow.refresh(1, STATE, "light", "UTC", None)
    markers = {t.name: t for t in graph.data if t.mode == "markers+text" and t.name != "service"}
    assert list(markers["leak"].customdata[0]) == ["B", "C", "gray"]
    assert list(markers["fallback"].customdata[0]) == ["A", "B", "gray"]
    labels = list(sankey.data[0].node.label)
    assert labels == ["expects base", "expects gray", "served by base", "served by gray"]


def test_flow_click_selects_an_edge_and_lists_its_violations(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import flow

    selected = flow.select({"points": [{"customdata": ["B", "C", "gray"]}]})
    assert selected == ["B", "C", "gray"]
    assert flow.select({"points": [{"customdata": None}]}) is None
    title, table = flow.edge_violations(selected, 1, STATE, "UTC")
    assert title == "B -> C, lane gray: 6 violations, last 1 min"
    assert len(find(table, html.Tr)) == 7
    title, empty = flow.edge_violations(["A", "B", "gray"], 1, STATE, "UTC")
    assert "it stayed in lane" in text(empty)


# ---- compare ---------------------------------------------------------------------------------

def test_compare_all_services_shows_a_verdict_table_then_the_worst_rows_details(
        app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import compare

    (title, note, table, table_hidden, head, head_hidden, verdict, totals, qps, _,
     latency) = compare.refresh(1, STATE, "light", "UTC")
    assert title == "Every service: each lane vs base" and table_hidden is False and head_hidden is False
    assert note == "last 1 min; 2 service/lane pairs, worst first"
    rows = find(table, html.Tr)[1:]
    assert [r.__dict__["data-service"] for r in rows] == ["A", "C"]  # the services gray served
    assert all("worse" in text(r) and "gray is worse than base" in text(r) for r in rows)
    links = [find(r, dcc.Link)[0].href for r in rows]
    assert links == ["/compare?window=60&service=A&lane=gray", "/compare?window=60&service=C&lane=gray"]
    assert head.startswith("Details: A, gray vs base (the worst row")
    assert "gray is worse" in text(verdict) and "confidence >99.9% that gray is worse" in text(verdict)
    assert [t.name for t in qps.data] == ["base", "gray"]
    assert len(latency.data) == 6
    assert "requests per second5.00 req/s20.0 req/s" in text(totals)


def test_compare_one_service_has_no_table(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import compare

    out = compare.refresh(1, {**STATE, "service": "C"}, "light", "UTC")
    assert out[0] == "C: gray vs base" and out[3] is True and "clear the service filter" in out[1]
    assert "errors: 25.0% vs 0.00%" in text(out[6])


def test_compare_without_enough_requests_has_no_verdict(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import compare

    out = compare.refresh(1, {**STATE, "service": HOSTILE, "lane": "gray"}, "light", "UTC")
    assert out[0] == f"{HOSTILE}: gray vs base"
    assert "No verdict yet" in text(out[6])


def test_compare_advice_comes_from_the_live_instances(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import compare

    out = compare.refresh(1, {**STATE, "service": "B"}, "light", "UTC")  # B has no gray instance
    assert "No lane besides base served requests to B" in text(out[6])
    msg = compare.advice([{"service": "A", "lane": "gray", "live": True}, {"service": "C", "lane": "gray",
                                                                           "live": True}],
                         compare.ViewState(), "last 5 min", app_context["settings"])
    assert msg.startswith("No gray requests last 5 min while 2 gray instances are live (A, C)")
    assert "start" not in msg
    assert out[8].layout.annotations[0].text == "Nothing to compare yet (see above)."  # the hint once


# ---- lanes -----------------------------------------------------------------------------------

def test_lanes_matrix_shows_b_has_no_gray(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import lanes

    dead, matrix, instances = lanes.refresh(1, STATE, "light", "UTC")
    rows = {text(find(r, html.Td)[0]): text(r) for r in find(matrix, html.Tr)[1:]}
    assert rows["B"].endswith("— none")
    assert "● live" in rows["C"] and HOSTILE in rows
    assert len(find(instances, html.Tr)) == 7 and "6 instances" in text(instances)
    assert dead is None  # no dead lane in this store
    _, empty, _ = lanes.refresh(1, {**STATE, "service": "nope"}, "light", "UTC")
    assert "clear them" in text(empty)


def test_instance_rows_show_traffic_mark_dead_lanes_and_cap_the_rows(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard import theme as T
    from lanewatch.dashboard.pages import lanes

    colours = T.lane_colours(["base", "gray"])
    now = 1_800_000_000.0
    rows = [{"service": "A", "lane": "gray", "instance": "a-g", "live": True, "first_seen": now - 600,
             "last_seen": now - 1, "state": "up", "hops": 0, "errors": 0, "last_hop": None},
            {"service": "A", "lane": "base", "instance": "a-b", "live": True, "first_seen": now - 600,
             "last_seen": now - 1, "state": "up", "hops": 12_000, "errors": 30, "last_hop": now - 2},
            {"service": "C", "lane": "base", "instance": "c-b", "live": False, "first_seen": now - 600,
             "last_seen": now - 100, "state": "up"}]  # an older Query: no traffic columns
    dead = [{"service": "A", "lane": "gray", "live_instances": 1, "idle_s": 130.0, "last_hop_ts": None,
             "service_requests": 12_000}]
    table = lanes.instance_rows(rows, now=now, tz="UTC", colours=colours, dead=dead)
    trs = {tr.__dict__["data-instance"] if "data-instance" in tr.__dict__ else text(find(tr, html.Code)[0]): tr
           for tr in find(table, html.Tr)[1:]}
    assert "dead" in text(trs["a-g"]) and trs["a-g"].className == "lw-row-dead"
    assert "never" in text(trs["a-g"])
    assert "12,000" in text(trs["a-b"]) and "30 (0.25%)" in text(trs["a-b"]) and "2 s ago" in text(trs["a-b"])
    assert "dead" not in text(trs["a-b"]) and text(trs["c-b"]).count("—") == 3
    card = lanes.dead_card(dead, colours)
    assert "on A: no gray hops for 2 min while 1 gray instance is live and A served 12,000 requests" in text(card)
    assert lanes.dead_card([], colours) is None
    many = [{**rows[1], "instance": f"i{i:05d}"} for i in range(2000)]
    capped = lanes.instance_rows(many, now=now, tz="UTC", colours=colours)
    assert len(find(capped, html.Tr)) == lanes.MAX_ROWS + 1
    assert "Showing 500 of 2,000 instances (1,500 hidden" in text(capped)


# ---- shell -----------------------------------------------------------------------------------

def test_shell_sync_from_url_then_from_controls(app_context: dict[str, Any]) -> None:
    from dash import no_update

    from lanewatch.dashboard import shell_callbacks as SC

    out = SC.sync("?window=1200&service=B&lane=gray", None, None, None, None, None, None)
    search, window, custom, service, lane, state, hidden, svc_opts, lane_opts = out
    assert (search, window, custom, service, lane, hidden) == (no_update, "custom", 20, "B", "gray",
                                                               False)
    assert state["window_s"] == 1200
    assert {"label": HOSTILE, "value": HOSTILE} in svc_opts
    assert [o["value"] for o in lane_opts] == ["base", "gray"]
    out = SC.sync("?window=1200&service=B&lane=gray", "60", None, "B", None, state, "shell-window")
    assert out[0] == "?window=60&service=B" and out[5]["lane"] is None
    unchanged_url = SC.sync("", "300", None, None, None, STATE, "shell-lane")
    assert unchanged_url[0] is no_update and unchanged_url[5]["window_s"] == 300


def test_shell_options_keep_the_selection_and_nav_keeps_the_query(
        app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard import shell_callbacks as SC

    svc, lanes_ = SC.options({**STATE, "service": "gone", "lane": "blue"})
    assert {"label": "gone", "value": "gone"} in svc and {"label": "blue", "value": "blue"} in lanes_
    out = SC.nav("?lane=gray", "/flow")
    assert out[:5] == ["/?lane=gray", "/flow?lane=gray", "/violations?lane=gray",
                       "/compare?lane=gray", "/lanes?lane=gray"]
    assert out[6] == "lw-nav-link lw-active" and out[5] == "lw-nav-link"


# ---- demo faults -----------------------------------------------------------------------------

def test_demo_faults_panel_lists_and_switches(app_context: dict[str, Any]) -> None:
    import dataclasses

    from lanewatch.dashboard.app import set_context
    from lanewatch.dashboard.pages import overview
    from lanewatch.demo.control import ControlApp, ControlServer
    from lanewatch.demo.faults import FAULT_NAMES, Switchboard
    from lanewatch.demo.registry import Registry

    board = Switchboard()  # the demo's real control server
    board.set("c_gray_down", True)
    server = ControlServer(ControlApp(Registry(), board)).start()
    set_context(app_context["query"], dataclasses.replace(app_context["settings"],
                                                          demo_control_url=server.url))
    on_now = lambda: sorted(k for k, v in board.snapshot().items() if v)
    try:
        options, on, status, known = overview.faults(1, [], None, None)
        assert [o["value"] for o in options] == sorted(FAULT_NAMES)
        assert on == ["c_gray_down"] and status == f"1 of {len(FAULT_NAMES)} faults on."
        options, on, status, known = overview.faults(None, ["c_gray_down", "proxy_strips_tag"],
                                                     known, "overview-faults")
        assert on_now() == ["c_gray_down", "proxy_strips_tag"]
        assert on == ["c_gray_down", "proxy_strips_tag"]
        overview.faults(None, [], known, "overview-faults")
        assert on_now() == []
        panel = overview.layout()
        assert next(d for d in find(panel, html.Div) if getattr(d, "id", None) == "overview-demo").hidden is False
    finally:
        server.stop()
    _, _, status, _ = overview.faults(2, [], known, None)
    assert "does not answer" in status and "lanewatch demo" in status
    set_context(app_context["query"], app_context["settings"])
    assert overview.faults(1, [], None, None)[2] == ""  # no demo: nothing to show
    assert next(d for d in find(overview.layout(), html.Div) if getattr(d, "id", None) == "overview-demo").hidden
