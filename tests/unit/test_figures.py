"""Pure dashboard builders as plain functions: colours, URL state, times, figures, tables."""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go
import pytest
from dash import html
from dash_tree import find, text, texts

from lanewatch import lane as L
from lanewatch.config import Settings
from lanewatch.dashboard import components as C
from lanewatch.dashboard import figures as F
from lanewatch.dashboard import flowfig, tables, timefmt
from lanewatch.dashboard import state as S
from lanewatch.dashboard import theme as T

HOSTILE = "<img src=x onerror=alert(1)>"
T0 = 1_800_000_000  # 2027-01-15 08:00:00 UTC


# ---- colours ---------------------------------------------------------------------------------

def test_lane_colours_base_slate_first_lane_amber_then_one_palette() -> None:
    c = T.lane_colours(["blue", "base", "canary", "gray"])
    assert c["base"] == T.BASE_COLOUR
    assert c["gray"] == T.FIRST_LANE_COLOUR  # a lane named gray is the first gray lane
    assert [c["blue"], c["canary"]] == list(T.LANE_PALETTE[:2])
    assert T.lane_colours(["canary", "base"])["canary"] == T.FIRST_LANE_COLOUR


def test_lane_colours_do_not_depend_on_input_order() -> None:
    assert T.lane_colours(["x", "gray", "base", "a"]) == T.lane_colours(["a", "base", "x", "gray"])


def test_lane_palette_stays_clear_of_verdict_colours() -> None:
    assert not set(T.LANE_PALETTE) & set(T.VERDICT_COLOURS.values())
    assert T.FIRST_LANE_COLOUR not in T.VERDICT_COLOURS.values()


def test_every_verdict_has_a_colour_a_symbol_and_a_label() -> None:
    for v in L.VERDICT_NAMES:
        assert T.VERDICT_COLOURS[v] and T.VERDICT_SYMBOLS[v] and T.VERDICT_LABELS[v]
    assert len(set(T.VERDICT_SYMBOLS.values())) == len(set(T.VERDICT_COLOURS.values())) == len(L.VERDICT_NAMES)
    assert set(T.VERDICT_SEVERITY) == set(L.VERDICT_NAMES)


def test_worst_verdict() -> None:
    assert T.worst_verdict({"in_lane": 10}) == "in_lane"
    assert T.worst_verdict({"in_lane": 10, "fallback": 1, "leak": 2}) == "leak"
    assert T.worst_verdict({"tag_lost": 1, "intrusion": 1}) == "intrusion"


# ---- URL state -------------------------------------------------------------------------------

def test_url_state_round_trip() -> None:
    vs = S.ViewState(window_s=900, service="B", lane="gray", kind="leak")
    assert S.to_search(vs) == "?window=900&service=B&lane=gray&kind=leak"
    assert S.parse_search(S.to_search(vs)) == vs
    assert S.to_search(S.ViewState()) == ""
    hostile = S.ViewState(service=HOSTILE)
    assert S.parse_search(S.to_search(hostile)).service == HOSTILE


@pytest.mark.parametrize("search,window", [("?window=abc", 300), ("?window=1", 10),
                                           ("?window=99999999", 7 * 86400), ("", 300),
                                           ("?window=60.0", 60)])
def test_bad_windows_fall_back_or_clamp(search: str, window: int) -> None:
    assert S.parse_search(search).window_s == window


def test_unknown_kind_is_ignored() -> None:
    assert S.parse_search("?kind=in_lane").kind is None


def test_window_picker() -> None:
    assert S.picker_value(300) == ("300", None)
    assert S.picker_value(1200) == (S.CUSTOM, 20)
    assert S.window_from_picker("60", None) == 60
    assert S.window_from_picker(S.CUSTOM, 20) == 1200
    assert S.window_from_picker(S.CUSTOM, None) == S.DEFAULT_WINDOW_S


def test_step_keeps_charts_near_360_points() -> None:
    assert S.step_for(300) == 1
    assert S.step_for(900) == 3
    assert S.step_for(3600) == 10
    assert S.step_for(86400) == 240


# ---- times -----------------------------------------------------------------------------------

def test_local_axis_converts_to_the_viewers_zone_and_keeps_utc_for_hover() -> None:
    local, utc = timefmt.local_axis([T0, T0 + 1], "Asia/Tokyo")
    assert str(local[0]).startswith("2027-01-15T17:00:00")
    assert list(utc) == ["2027-01-15 08:00:00", "2027-01-15 08:00:01"]


def test_unknown_zone_is_utc() -> None:
    assert timefmt.local_time(T0, "Not/AZone") == "08:00:00 UTC"
    assert timefmt.local_time(T0, "Europe/Berlin") == "09:00:00 CET"
    assert timefmt.zone_label("Europe/Berlin", T0) == "Europe/Berlin (CET)"
    assert timefmt.utc_time(T0) == "2027-01-15 08:00:00 UTC"


def test_ago_and_window_labels() -> None:
    assert [timefmt.ago(x) for x in (0.2, 5, 300, 7300, 200000)] == [
        "just now", "5 s ago", "5 min ago", "2 h ago", "2 d ago"]
    assert [timefmt.window_label(x) for x in (60, 90, 300, 3600, 7200)] == [
        "last 1 min", "last 90 s", "last 5 min", "last 60 min", "last 2 h"]


# ---- time series -----------------------------------------------------------------------------

def series(lanes: dict[str, list[float]], step: int = 1) -> dict[str, Any]:
    n = len(next(iter(lanes.values())))
    ts = [T0 + i * step for i in range(n)]
    return {"step_s": step, "from": T0, "to": T0 + n * step,
            "lanes": {lane: {"ts": ts, "qps": v, "error_rate": [0.01] * n, "p50_ms": [5.0] * n,
                             "p95_ms": [9.0] * n, "p99_ms": [None] * n} for lane, v in lanes.items()}}


def test_lane_series_one_line_per_lane_in_lane_colours() -> None:
    colours = T.lane_colours(["base", "gray", "blue"])
    fig = F.lane_series_figure(series({"gray": [1, 2], "base": [3, 4], "blue": [0, 1]}), "qps",
                               colours=colours, tz="UTC", uirevision="keep")
    assert [t.name for t in fig.data] == ["base", "gray", "blue"]
    assert [t.line.color for t in fig.data] == [colours["base"], colours["gray"], colours["blue"]]
    assert len({t.line.dash for t in fig.data}) == 3  # not colour alone
    assert fig.layout.uirevision == "keep"
    assert list(fig.data[0].customdata) == ["2027-01-15 08:00:00", "2027-01-15 08:00:01"]
    assert "UTC" in fig.data[0].hovertemplate and "base" in fig.data[0].hovertemplate
    assert "local time, UTC" in fig.layout.xaxis.title.text


def test_lane_series_missing_points_are_gaps() -> None:
    fig = F.lane_series_figure(series({"base": [1.0, 2.0]}), "p99_ms", colours={}, tz=None)
    assert all(math.isnan(v) for v in fig.data[0].y)  # NaN: a gap, not zero


def test_lane_series_empty_says_so() -> None:
    fig = F.lane_series_figure({"lanes": {}}, "qps", colours={})
    assert fig.data == ()
    assert "No requests" in fig.layout.annotations[0].text


def test_complete_steps_withholds_the_live_edge() -> None:
    s = series({"base": [1, 2, 3, 4, 5, 0]})  # to = T0 + 6
    cut = F.complete_steps(s, settle_s=2)
    assert cut["lanes"]["base"]["qps"] == [1, 2, 3, 4]
    assert F.complete_steps(series({"base": [1, 2]}, step=10), settle_s=3)["lanes"]["base"]["ts"] == [T0]


def test_verdict_bars_count_and_colour_each_verdict() -> None:
    fig = F.verdict_figure({"in_lane": 100, "fallback": 5, "leak": 2, "intrusion": 0, "uncertain": 3}, tag_lost=1)
    bar = fig.data[0]
    assert list(bar.x) == [100, 5, 2, 0, 3, 1]
    assert list(bar.y) == ["in lane", "fallback", "leak", "intrusion", "uncertain", "tag lost"]
    assert list(bar.marker.color) == [T.VERDICT_COLOURS[v] for v in
                                      ("in_lane", "fallback", "leak", "intrusion", "uncertain", "tag_lost")]
    assert list(bar.text) == ["100", "5", "2", "0", "3", "1"]
    assert F.verdict_figure({}).data == ()


def test_compare_latency_shows_three_percentiles_per_side() -> None:
    s = series({"gray": [1, 2], "base": [3, 4]})
    cmp = {"service": "B", "lane": "gray", "base": "base", "series": s["lanes"]}
    fig = F.compare_figure(cmp, "latency", colours=T.lane_colours(["base", "gray"]))
    assert [t.name for t in fig.data] == ["base p50", "base p95", "base p99", "gray p50",
                                          "gray p95", "gray p99"]
    assert [t.line.dash for t in fig.data[:3]] == ["solid", "dash", "dot"]
    assert [t.name for t in F.compare_figure(cmp, "qps", colours={}).data] == ["base", "gray"]
    empty = F.compare_figure({"service": "B", "lane": "gray", "series": {}}, "qps", colours={})
    assert "No requests to B" in empty.layout.annotations[0].text
    hostile = F.compare_figure({"service": HOSTILE, "lane": "gray", "series": {}}, "qps", colours={})
    assert "&lt;img" in hostile.layout.annotations[0].text


# ---- flow ------------------------------------------------------------------------------------

def edge(caller: str, callee: str, lane: str, **counts: int) -> dict[str, Any]:
    calls = sum(counts.values()) or 10
    return {"caller": caller, "callee": callee, "lane": lane, "calls": calls, "rate": calls / 60,
            "errors": 0, **{v: counts.get(v, 0) for v in flowfig.EDGE_VERDICTS}}


def test_layered_positions_follow_call_depth() -> None:
    pos = flowfig.layered_positions(["A", "B", "C", "D"], [("A", "B"), ("B", "C"), ("A", "C")])
    assert [pos[n][0] for n in "ABCD"] == [0, 1, 2, 0]
    cyclic = flowfig.layered_positions(["A", "B"], [("A", "B"), ("B", "A")])
    assert set(cyclic) == {"A", "B"}


def test_flow_graph_marks_each_edge_with_its_worst_verdict() -> None:
    edges = [edge("A", "B", "gray", fallback=5), edge("B", "C", "gray", in_lane=4, leak=1),
             edge("B", "C", "base", in_lane=20)]
    fig = flowfig.flow_graph_figure(edges, {"A": ["base", "gray"], "B": ["base"],
                                            "C": ["base", "gray"]})
    markers = {t.name: t for t in fig.data if t.mode == "markers+text" and t.name != "service"}
    assert set(markers) == {"fallback", "leak", "in lane"}
    assert list(markers["leak"].customdata[0]) == ["B", "C", "gray"]
    assert markers["leak"].marker.symbol == T.VERDICT_SYMBOLS["leak"]
    assert "leak" in markers["leak"].text[0] and "gray" in markers["leak"].text[0]
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert sorted(t.line.color for t in lines) == sorted(
        T.VERDICT_COLOURS[v] for v in ("fallback", "leak", "in_lane"))
    heads = [s for t in lines for s in t.marker.size if s]
    assert len(heads) == 3 and all(t.marker.symbol == "arrow" for t in lines)  # one per edge
    nodes = next(t for t in fig.data if t.name == "service")
    assert any("base · gray" in x for x in nodes.text)


def test_flow_graph_escapes_service_names() -> None:
    fig = flowfig.flow_graph_figure([edge(HOSTILE, "B", "base", in_lane=1)], {})
    nodes = next(t for t in fig.data if t.name == "service")
    assert "&lt;img src=x onerror=alert(1)&gt;" in " ".join(nodes.text)
    assert "<img" not in " ".join(nodes.text)


def test_flow_graph_empty_and_selected() -> None:
    assert "No services yet" in flowfig.flow_graph_figure([], {}).layout.annotations[0].text
    edges = [edge("A", "B", "gray", leak=1)]
    plain = flowfig.flow_graph_figure(edges, {})
    chosen = flowfig.flow_graph_figure(edges, {}, selected=["A", "B", "gray"])
    assert chosen.data[0].line.width > plain.data[0].line.width


def test_flow_graph_draws_the_worst_edges_first_and_says_so() -> None:
    edges = [edge(f"S{i}", f"T{i}", "base", in_lane=100 + i) for i in range(10)]
    edges.append(edge("X", "Y", "gray", in_lane=1, leak=1))
    fig = flowfig.flow_graph_figure(edges, {}, max_edges=3)
    drawn = [list(p) for t in fig.data if t.name in ("leak", "in lane") for p in t.customdata]
    assert sorted(drawn) == [["S8", "T8", "base"], ["S9", "T9", "base"], ["X", "Y", "gray"]]
    assert "the 3 worst or busiest of 11 edges" in fig.layout.title.text


def test_sankey_expected_to_served_lane_coloured_by_verdict() -> None:
    flows = [{"service": "B", "expected_lane": "gray", "instance_lane": "base",
              "verdict": "fallback", "requests": 5},
             {"service": "C", "expected_lane": "gray", "instance_lane": "base",
              "verdict": "leak", "requests": 1},
             {"service": "A", "expected_lane": "gray", "instance_lane": "gray",
              "verdict": "in_lane", "requests": 6},
             {"service": "C", "expected_lane": "gray", "instance_lane": "gray",
              "verdict": "in_lane", "requests": 4}]
    fig = flowfig.sankey_figure(flows, colours=T.lane_colours(["base", "gray"]))
    s = fig.data[0]
    assert list(s.node.label) == ["expects gray", "served by base", "served by gray"]
    assert sorted(s.link.value) == [1, 5, 10]
    assert set(s.link.customdata) == {"fallback", "leak", "in lane"}
    assert flowfig.sankey_figure([], colours={}).data == ()


# ---- components and tables -------------------------------------------------------------------

def test_share_text_never_rounds_up_to_100() -> None:
    assert C.share_text(12_407, 12_408) == "99.9%"
    assert C.share_text(12_408, 12_408) == "100.0%"
    assert C.share_text(992, 1000) == "99.2%"
    assert C.share_text(0, 0) == "—"


def test_headline_card_says_share_and_count() -> None:
    card = C.headline_card("gray", {"traces": 12_408, "stayed": 12_309, "qps": 41.2,
                                    "error_rate": 0.003, "requests": 50_000},
                           T.lane_colours(["base", "gray"]), "last 5 min")
    t = text(card)
    assert "99.2%" in t and "of 12,408 gray traces stayed in lane, last 5 min" in t
    assert "99 violated" in t and "41.2 hops/s over all services" in t and "0.30% of hops failed" in t
    assert "lw-violated" in card.className and "req/s" not in t


def test_no_spans_hint_names_the_endpoint() -> None:
    assert C.no_spans(Settings()) == ("No spans yet: point OTEL_EXPORTER_OTLP_ENDPOINT at "
                                      "http://127.0.0.1:4318.")
    assert "http://HOST:4318" in C.no_spans(Settings(host="0.0.0.0"))
    assert "http://127.0.0.1:PORT" in C.no_spans(Settings(otlp_http_port=0))  # picked at start


def test_lane_path_reads_like_the_write_up() -> None:
    path = "A[gray] -> B[base, fallback] -> C[gray]"
    span = C.lane_path(path)
    assert text(span) == path
    verdicts = [s for s in find(span, html.Span) if "lw-v-" in (s.className or "")]
    assert [(s.children, s.className) for s in verdicts] == [("fallback", "lw-v-text lw-v-fallback")]
    odd = f"{HOSTILE} -> B[base, leak"
    assert text(C.lane_path(odd)) == odd


def test_trace_link_uses_the_template_only_for_hex_ids() -> None:
    link = find(tables.trace_link("ab" * 16, "http://jaeger:16686/trace/{trace_id}"), html.A)[0]
    assert link.href == "http://jaeger:16686/trace/" + "ab" * 16
    assert find(tables.trace_link("ab" * 16, ""), html.A)[0].href == "/trace?id=" + "ab" * 16
    assert find(tables.trace_link("javascript:alert(1)", "http://x/{trace_id}"), html.A) == []


VIOLATION = {"ts": T0, "kind": "leak", "service": "C", "caller": "B", "callee": "C",
             "request_lane": "gray", "instance_lane": "base", "entry_lane": "gray",
             "trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331",
             "lane_path": "A[gray] -> B[base, fallback] -> C[base, leak]", "late": False}


def test_violations_table_row() -> None:
    table = tables.violations_table([VIOLATION, {**VIOLATION, "caller": "", "callee": "",
                                                 "service": HOSTILE, "kind": "intrusion"}],
                                    template="http://t/{trace_id}", tz="Europe/Berlin",
                                    colours=T.lane_colours(["base", "gray"]))
    rows = find(table, html.Tr)[1:]
    first = text(rows[0])
    assert first.startswith("09:00:00 CET") and "B -> C" in first and "leak" in first
    assert "A[gray] -> B[base, fallback] -> C[base, leak]" in first
    assert find(rows[0], html.Td)[0].title == "2027-01-15 08:00:00 UTC"
    assert HOSTILE in texts(rows[1])


def test_escapes_group_by_kind_and_edge() -> None:
    rows = [VIOLATION] * 3 + [{**VIOLATION, "kind": "tag_lost", "caller": "A", "callee": "B"}]
    out = tables.escapes_table(rows, window_s=60, template="", colours={})
    body = [text(r) for r in find(out, html.Tr)[1:]]
    assert body[0].startswith("leakB -> C30.05/s") and body[1].startswith("tag lostA -> B1")


INSTANCES = [
    {"service": "B", "lane": "base", "instance": "b1", "first_seen": T0 - 100, "last_seen": T0 - 2,
     "state": "up", "live": True},
    {"service": "C", "lane": "gray", "instance": "c2", "first_seen": T0 - 900,
     "last_seen": T0 - 600, "state": "left", "live": False},
    {"service": "C", "lane": "base", "instance": "c1", "first_seen": T0 - 900, "last_seen": T0 - 1,
     "state": "up", "live": True},
]


def test_live_lanes_and_matrix() -> None:
    assert tables.live_lanes(INSTANCES) == {"B": ["base"], "C": ["base"]}
    m = tables.lanes_matrix(INSTANCES, now=T0, tz="UTC", colours={})
    rows = [text(r) for r in find(m, html.Tr)]
    assert rows[0] == "servicebasegray"
    assert rows[1] == "B● live, 1 instance, seen 2 s ago— none"
    assert rows[2] == "C● live, 1 instance, seen 1 s ago○ not live, last seen 10 min ago"


def test_instances_table_lists_live_first() -> None:
    t = tables.instances_table(INSTANCES, now=T0, tz="UTC", colours={})
    assert [text(find(r, html.Td)[2]) for r in find(t, html.Tr)[1:]] == ["b1", "c1", "c2"]


def test_compare_totals_show_the_difference() -> None:
    cmp = {"lane": "gray", "base": "base", "totals": {
        "gray": {"requests": 600, "errors": 12, "error_rate": 0.02, "p50_ms": 12.0, "p95_ms": 40.0,
                 "p99_ms": 80.0},
        "base": {"requests": 6000, "errors": 6, "error_rate": 0.001, "p50_ms": 10.0,
                 "p95_ms": 30.0, "p99_ms": None}}}
    rows = [text(r) for r in find(tables.compare_totals(cmp, 60, {}), html.Tr)]
    assert rows[1] == "requests per second10.0 req/s100.0 req/s"
    assert rows[3] == "error rate2.00%0.10%+1.90 pp"
    assert rows[4] == "p50 latency12.0 ms10.0 ms+2.0 ms"
    assert rows[6] == "p99 latency80.0 ms—"


def test_figures_are_plotly_figures() -> None:
    assert isinstance(F.empty_figure("x"), go.Figure)


def test_empty_figure_wraps_and_escapes_long_messages() -> None:
    msg = "No gray requests last 5 min while 3 gray instances are live (A, C): send gray traffic " + HOSTILE
    lines = F.empty_figure(msg).layout.annotations[0].text.split("<br>")
    assert len(lines) > 1 and all(len(line) <= F.WRAP_AT for line in lines)
    assert "&lt;img" in " ".join(lines) and "<img" not in " ".join(lines)
