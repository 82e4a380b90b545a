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
    # this Query has no alert engine: the card says so, and still counts the violations
    assert "OFF alert rules are off here" in text(alerts)
    assert f"{summary['violations']} violations, last 1 min" in text(alerts)
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
    # one hint per page: the card; the charts stay blank instead of repeating it
    figures = [out[3], out[5], out[6]]
    assert all("No spans" not in a.text for f in figures for a in f.layout.annotations)


# ---- violations ------------------------------------------------------------------------------

def test_violations_table_lists_the_leaks_with_trace_links(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import violations

    note, table, more_hidden, drawn, paused_hidden = violations.refresh(1, STATE, "light", "UTC")
    rows = find(table, html.Tr)[1:]
    assert more_hidden and paused_hidden  # all 6 fit on the first page
    assert violations.refresh(2, STATE, "light", "UTC", 0, False, drawn)[1] is no_update  # same
    assert note.startswith("6 violations, last 1 min")
    assert len(rows) == 6
    assert all(PATH in text(r) for r in rows)
    links = find(rows[0], html.A)
    assert links[0].href.startswith("http://jaeger:16686/trace/")
    stamps = [find(r, html.Td)[0].title for r in rows]
    assert stamps == sorted(stamps, reverse=True)  # newest first


def test_violations_kind_filter_and_empty_state(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import violations

    note, body, _, _, _ = violations.refresh(1, {**STATE, "kind": "intrusion"}, "light", "UTC")
    assert note == "no intrusion violations, last 1 min"
    assert "every hop and edge stayed in its lane" in text(body)
    assert violations.set_kind("leak", "?window=60") == "?window=60&kind=leak"
    assert violations.set_kind(None, "?window=60&kind=leak") == "?window=60"


def test_violations_page_by_page(app_context: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from lanewatch.dashboard.pages import violations

    monkeypatch.setattr(violations, "PAGE", 4)
    note, table, more_hidden, drawn, _ = violations.refresh(1, STATE, "light", "UTC", 0, False, None)
    assert note.startswith("6 violations, last 1 min; newest 4 shown")
    assert len(find(table, html.Tr)) == 5 and not more_hidden
    note, table, more_hidden, again, _ = violations.refresh(2, STATE, "light", "UTC", 1, False, drawn)
    assert len(find(table, html.Tr)) == 7 and more_hidden and again != drawn


# ---- flow ------------------------------------------------------------------------------------

def test_flow_graph_and_sankey_from_the_query(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import flow

    graph, sankey, edge_hidden, sankey_hidden = flow.refresh(1, STATE, "light", "UTC", None)
    assert not edge_hidden and not sankey_hidden
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
     latency, _key) = compare.refresh(1, STATE, "light", "UTC")
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


def test_compare_table_is_sent_again_only_when_what_it_shows_changes(app_context: dict[str, Any]) -> None:
    """Re-rendered every second, its links lost clicks that landed during a re-render (CI:
    test_compare_all_services_lists_verdicts_worst_first_and_links_each)."""
    from lanewatch.dashboard.pages import compare

    first = compare.refresh(1, STATE, "light", "UTC")
    table, key = first[2], first[-1]
    assert find(table, html.Tr) and isinstance(key, str)
    same = compare.refresh(2, STATE, "light", "UTC", key)
    assert same[2] is no_update and same[-1] == key and same[3] is False
    other = compare.refresh(3, {**STATE, "lane": "gray"}, "light", "UTC", key)  # another view
    assert other[-1] != key and find(other[2], html.Tr)
    assert compare.refresh(4, STATE, "light", "UTC", "stale")[2] is not no_update
    hidden = compare.refresh(5, {**STATE, "service": "C"}, "light", "UTC", key)
    assert hidden[2] is None and hidden[-1] is None  # shown again later: sent again


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
    assert out[8].layout.annotations[0].text.strip() == ""  # the hint once: the charts stay blank


# ---- lanes -----------------------------------------------------------------------------------

def test_lanes_matrix_shows_b_has_no_gray(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import lanes

    dead, matrix, instances, collectors = lanes.refresh(1, STATE, "light", "UTC")
    rows = {text(find(r, html.Td)[0]): text(r) for r in find(matrix, html.Tr)[1:]}
    assert rows["B"].endswith("— none")
    assert "● live" in rows["C"] and HOSTILE in rows
    assert len(find(instances, html.Tr)) == 7 and "6 instances" in text(instances)
    assert dead is None  # no dead lane in this store
    assert collectors is None  # one collector: no table
    _, empty, _, _ = lanes.refresh(1, {**STATE, "service": "nope"}, "light", "UTC")
    assert "clear them" in text(empty)


def test_collectors_card_shows_each_collector_and_its_own_counters() -> None:
    from lanewatch.dashboard.pages import lanes

    rows = [{"collector": "c0", "as_of": 1_800_000_000.0, "age_s": 0.4,
             "counters": {"spans_received": 1200, "duplicate_spans": 3, "unpaired_client_spans": 2,
                          "unpaired_server_spans": 1, "requests_refused_oversize": 4,
                          "spans_rejected_invalid": 1}},
            {"collector": "c1", "as_of": 1_799_999_900.0, "age_s": 100.0, "counters": {"spans_received": 7}}]
    card = lanes.collectors_card(rows)
    trs = [text(tr) for tr in find(card, html.Tr)[1:]]
    assert trs[0].startswith("c0") and "1,200" in trs[0] and trs[0].endswith("5")
    cells = [text(td) for td in find(find(card, html.Tr)[1], html.Td)]
    assert cells[2:] == ["1,200", "3", "3", "0", "0", "5"]
    assert "stopped?" in trs[1] and "stopped?" not in trs[0]
    assert lanes.collectors_card(rows[:1]) is None


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
    many = [{**rows[1], "instance": f"i{i:05d}", "last_seen": now - i} for i in range(2000)]
    capped = lanes.instance_rows(many, now=now, tz="UTC", colours=colours, per_lane=lanes.MAX_ROWS)
    assert len(find(capped, html.Tr)) == lanes.MAX_ROWS + 1
    assert "Showing 200 of 2,000 instances (1,800 hidden" in text(capped)
    # thousands of instances in several lanes: the newest few of each, and how many more
    many += [{**rows[0], "instance": f"g{i:05d}", "last_seen": now - i} for i in range(30)]
    top = lanes.instance_rows(many, now=now, tz="UTC", colours=colours)
    trs = find(top, html.Tr)[1:]
    assert len(trs) == 2 * (lanes.PER_LANE_ROWS + 1)
    assert [text(find(tr, html.Code)[0]) for tr in trs[:2]] == ["i00000", "i00001"]  # newest first
    assert "1,990 more base instances of A" in text(trs[lanes.PER_LANE_ROWS])
    assert "20 more gray instances of A" in text(trs[-1])
    assert "Showing 20 of 2,030 instances (2,010 hidden)" in text(top)


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
    assert out[:6] == ["/?lane=gray", "/alerts?lane=gray", "/flow?lane=gray", "/violations?lane=gray",
                       "/compare?lane=gray", "/lanes?lane=gray"]
    assert out[8] == "lw-nav-link lw-active" and out[6] == out[7] == "lw-nav-link"


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


# ---- issue 9: investigation (URL state, live tables, trace ids, loading, empty states) -------

def test_first_load_waits_for_the_url_and_controls_cannot_overwrite_it(
        app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard import shell_callbacks as SC

    # the Location has not reported the address yet: nothing is set, least of all defaults
    assert SC.sync(None, "300", None, None, None, None, None) == (no_update,) * 9
    # a control reporting its mount value before the URL was read changes nothing either
    assert SC.sync("?window=900&lane=gray", "300", None, None, None, None,
                   "shell-window") == (no_update,) * 9
    out = SC.sync("?window=900&lane=gray", None, None, None, None, None, "shell-url")
    assert out[5] == {"window_s": 900, "service": None, "lane": "gray", "kind": None}
    assert SC.sync("", None, None, None, None, None, None)[5]["window_s"] == 300  # no query: defaults


def test_kind_dropdown_keeps_the_shared_links_filters(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import violations

    # the dropdown reporting the URL's own kind (or none) must not rewrite the URL
    assert violations.set_kind("leak", "?window=900&lane=gray&kind=leak") is no_update
    assert violations.set_kind(None, "?window=900&lane=gray") is no_update
    assert violations.set_kind("leak", "?window=900&lane=gray") == "?window=900&lane=gray&kind=leak"


def test_pages_show_loading_until_the_url_was_read(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import flow, violations

    first = text(violations.layout())
    assert "loading violations…" in first
    out = violations.refresh(1, None, "light", "UTC")
    assert out[1] is no_update and out[3] is None  # the placeholder stays
    assert flow.refresh(1, None, "light", "UTC", None)[0] is no_update
    graph = find(flow.layout(), __import__("dash").dcc.Graph)[0]
    assert graph.figure.layout.annotations[0].text == "loading…"


def test_violations_hold_still_while_the_viewer_selects(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard.pages import violations

    *_, drawn, paused_hidden = violations.refresh(1, STATE, "light", "UTC", 0, False)
    assert paused_hidden
    held = violations.refresh(2, STATE, "light", "UTC", 0, True, drawn)
    assert held[:4] == (no_update,) * 4 and held[4] is False  # the "paused" line shows
    paused = [d for d in find(violations.layout(), html.Div)
              if getattr(d, "id", None) == "violations-paused"]
    assert paused[0].hidden is True and text(paused[0]).startswith("Paused")
    assert "select" in violations.PAUSED and "pointer" in violations.PAUSED


def test_trace_ids_are_full_copyable_and_link_to_the_built_in_view(
        app_context: dict[str, Any]) -> None:
    import dataclasses

    from dash import dcc

    from lanewatch.dashboard.app import set_context
    from lanewatch.dashboard.pages import violations

    tid = f"{int(NOW) - 59:032x}"
    table = violations.refresh(1, STATE, "light", "UTC")[1]
    assert tid in text(table)  # never shortened
    clip = find(table, dcc.Clipboard)
    assert len(clip) == 6 and clip[-1].content == f"{int(NOW) - 59:032x}"
    set_context(app_context["query"], dataclasses.replace(app_context["settings"],
                                                          trace_url_template=""))
    try:
        note, table, *_ = violations.refresh(1, STATE, "light", "UTC")
    finally:
        set_context(app_context["query"], app_context["settings"])
    hrefs = [a.href for a in find(table, html.A)]
    assert hrefs[-1] == f"/trace?id={tid}" and "trace view" in note


@pytest.fixture
def trace_query(app_context: dict[str, Any]) -> Iterator[str]:
    """A store with one kept (violating) trace; the pages point at it while the test runs."""
    from lanewatch.dashboard.app import set_context

    tid = "0af7651916cd43dd8448eb211c80319c"
    store = DuckStore(":memory:", clock=app_context["clock"])
    viol = {"ts": int(NOW) - 5, "kind": "leak", "service": "C", "caller": "B", "callee": "C",
            "request_lane": "gray", "instance_lane": "base", "entry_lane": "gray",
            "trace_id": tid, "span_id": "b7ad6b7169203331", "lane_path": PATH, "late": False}
    store.write(Batch(violations=[viol], traces=[{
        "trace_id": tid, "ts": int(NOW) - 5, "entry_lane": "gray", "stayed": False,
        "lane_path": PATH, "hops": 3}]))
    set_context(Query(store, app_context["settings"], clock=app_context["clock"]),
                app_context["settings"])
    yield tid
    set_context(app_context["query"], app_context["settings"])
    store.close()


def test_trace_view_shows_path_hops_and_violations(trace_query: str) -> None:
    from lanewatch.dashboard.pages import trace

    body = trace.render(trace_query, "UTC")
    shown = text(body)
    assert trace_query in shown and PATH in shown and "left its lane" in shown
    assert "Violations (1)" in shown and "hops3" in shown
    assert f"/api/v1/traces/{trace_query}" in [a.href for a in find(body, html.A)]
    assert trace.render(trace_query.upper(), "UTC") is not None
    missing = trace.render("ab" * 16, "UTC")
    assert missing.id == "trace-missing" and "was not kept" in text(missing)
    for bad in ("abc", "zz" * 16, "<img src=x>"):
        err = trace.render(bad, "UTC")
        assert err.id == "trace-error" and "is not a trace id" in text(err)
    assert trace.render("", "UTC").id == "trace-empty"


def test_nav_links_keep_the_view_but_not_the_trace_id(app_context: dict[str, Any]) -> None:
    from lanewatch.dashboard import shell_callbacks as SC

    assert SC.nav("?id=" + "ab" * 16 + "&lane=gray", "/trace")[0] == "/?lane=gray"


def test_flow_lane_filter_keeps_the_lanes_intrusion_and_tag_lost_edges(
        app_context: dict[str, Any]) -> None:
    """Base traffic that reached C-gray (intrusion) and a tag lost inside gray B: the Sankey
    shows them under lane=gray, so the graph must too."""
    from lanewatch.dashboard.app import set_context
    from lanewatch.dashboard.pages import flow

    t = int(NOW) - 10
    zero = {"errors": 0, "in_lane": 0, "fallback": 0, "leak": 0, "intrusion": 0, "tag_lost": 0,
            "tag_lost_inside": 0}
    edges = [{"caller": "A", "callee": "B", "lane": "gray", "entry_lane": "gray", "calls": 5, **zero,
              "in_lane": 5},
             {"caller": "B", "callee": "C", "lane": "base", "entry_lane": "gray", "calls": 3, **zero,
              "in_lane": 2, "tag_lost": 1, "tag_lost_inside": 1},  # gray B sent no tag: a gray trace's edge
             {"caller": "A", "callee": "C", "lane": "base", "entry_lane": "base", "calls": 4, **zero,
              "in_lane": 3, "intrusion": 1}]
    cols: dict[str, list[Any]] = {k: [row[k] for row in edges]
                                  for k in ("caller", "callee", "lane", "entry_lane", "calls", *zero)}
    cols["ts"] = [t] * len(edges)
    hops = {"ts": [t, t], "service": ["C", "B"], "instance_lane": ["gray", "gray"],
            "request_lane": ["base", "gray"], "expected_lane": ["base", "gray"],
            "verdict": ["intrusion", "in_lane"], "requests": [1, 5], "errors": [0, 0],
            "latency_sum_ms": [1.0, 5.0]}
    base = {"ts": t, "service": "C", "request_lane": "base", "lane_path": "", "late": False,
            "span_id": "1" * 16}
    viols = [{**base, "kind": "intrusion", "caller": "A", "callee": "C", "instance_lane": "gray",
              "entry_lane": "base", "trace_id": "1" * 32},
             {**base, "kind": "tag_lost", "caller": "B", "callee": "C", "instance_lane": "base",
              "entry_lane": "gray", "trace_id": "2" * 32, "span_id": "2" * 16}]
    store = DuckStore(":memory:", clock=app_context["clock"])
    store.write(Batch(rollups={"edges": cols, "hops": hops}, violations=viols))
    set_context(Query(store, app_context["settings"], clock=app_context["clock"]),
                app_context["settings"])
    try:
        graph, sankey, _, _ = flow.refresh(1, {**STATE, "lane": "gray"}, "light", "UTC", None)
    finally:
        set_context(app_context["query"], app_context["settings"])
        store.close()
    markers = {t.name: [list(c) for c in t.customdata] for t in graph.data
               if t.mode == "markers+text" and t.name != "service"}
    assert ["A", "C", "base"] in markers["intrusion"]
    assert ["B", "C", "gray"] in markers["tag lost"]  # drawn in the lane of its trace: gray's loss
    assert ["A", "B", "gray"] in markers["in lane"]
    assert "intrusion" in str(sankey.data[0].link.customdata)  # the Sankey shows it too


# ---- issue 9: the seams (import cycle, Dash internals) -------------------------------------

def test_dashboard_modules_import_without_cycles() -> None:
    """Every import between dashboard modules, also inside functions, forms no cycle."""
    import ast
    from pathlib import Path

    import lanewatch.dashboard as pkg

    root = Path(pkg.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        name = f"lanewatch.dashboard.{path.stem}"
        deps = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                continue
            deps |= {m for m in mods if m.startswith("lanewatch.dashboard.")
                     and (root / f"{m.rsplit('.', 1)[1]}.py").exists() and m != name}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(d == goal or (d not in seen and reaches(d, goal, seen | {d}))
                   for d in graph.get(start, ()))

    cycles = [m for m in graph if reaches(m, m, {m})]
    assert cycles == []


def test_forget_page_callbacks_empties_dashs_global_registry() -> None:
    """Fails loudly when Dash moves or reshapes the private registry we must reset."""
    import dash
    from dash import _callback

    from lanewatch.dashboard.app import forget_page_callbacks

    before = len(_callback.GLOBAL_CALLBACK_LIST)
    dash.callback(dash.Output("probe-out", "children"), dash.Input("probe-in", "value"))(
        lambda v: v)
    assert len(_callback.GLOBAL_CALLBACK_LIST) == before + 1
    assert any(k.startswith("probe-out") for k in _callback.GLOBAL_CALLBACK_MAP)
    assert forget_page_callbacks() == before + 1
    assert _callback.GLOBAL_CALLBACK_LIST == [] and _callback.GLOBAL_CALLBACK_MAP == {}


def test_flow_draws_one_edge_per_lane_carried() -> None:
    from lanewatch.dashboard.pages.flow import drawn_edges

    rows = [{"caller": "B", "callee": "C", "lane": "gray", "sent_lane": "gray", "entry_lane": "gray",
             "calls": 7, "rate": 0.7, "tag_lost": 0},
            {"caller": "B", "callee": "C", "lane": "gray", "sent_lane": "base", "entry_lane": "gray",
             "calls": 3, "rate": 0.3, "tag_lost": 3},
            {"caller": "B", "callee": "C", "lane": "base", "sent_lane": "base", "entry_lane": "base",
             "calls": 5, "rate": 0.5, "tag_lost": 0}]
    assert drawn_edges(rows) == [
        {"caller": "B", "callee": "C", "lane": "gray", "calls": 10, "rate": 1.0, "tag_lost": 3},
        {"caller": "B", "callee": "C", "lane": "base", "calls": 5, "rate": 0.5, "tag_lost": 0}]
