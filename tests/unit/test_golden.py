"""Golden traces (tests/testdata/golden/*.yaml) through the real decode and pipeline.

Each golden trace is delivered several ways: in order, reversed, one span per
request shuffled, everything twice (exporter retries), and as OTLP/JSON. The
verdicts, lane path and violations must be the same every time; duplicates
must not count twice.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from lanewatch import config
from lanewatch import lane as L
from lanewatch.collect import decode
from lanewatch.collect.engine import Engine
from lanewatch.testing import FakeClock, SpanSpec, TraceBuilder, heartbeat_request

GOLDEN = sorted((Path(__file__).parents[1] / "testdata" / "golden").glob("*.yaml"))
DELIVERIES = ["in_order", "reversed", "one_per_request_shuffled", "duplicated", "json"]


@pytest.fixture(autouse=True, params=["per_span", "wire"])
def decode_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every case twice: small requests are read span by span; the second time every
    protobuf request goes through collect/wire.py (and its deferred attribute walk)."""
    if request.param == "wire":
        monkeypatch.setattr(decode, "FAST_MIN_BYTES", 0)
    return str(request.param)


def build(tb: TraceBuilder, node: dict[str, Any], caller: SpanSpec | None = None) -> None:
    kind = L.SpanKind.CONSUMER if node.get("kind") == "consumer" else L.SpanKind.SERVER
    hop = tb.hop(node["service"], lane=node.get("lane", ""), request_lane=node.get("request", ""),
                 caller=caller, kind=kind, dyed=node.get("dyed", False), attributes=node.get("attrs"))
    for child in node.get("calls", []):
        parent = tb.internal(hop) if node.get("via_internal") else hop
        send_kind = L.SpanKind.PRODUCER if child.get("via") == "producer" else L.SpanKind.CLIENT
        client = tb.call(parent, lane=node.get("sends"), kind=send_kind, attributes=node.get("attrs"))
        build(tb, child, client)


def make_pipeline(case: dict[str, Any], clock: FakeClock) -> Engine:
    settings = config.load(environ={}, flags={"trace_wait_s": 2.0})
    settings = config.with_overrides(settings, routing_rules=config.parse_rules(case.get("rules", [])))
    p = Engine(settings, clock=clock)
    for service, lanes in case.get("live", {}).items():
        for lane in lanes:
            p.ingest("metrics", heartbeat_request(service, "" if lane == "base" else lane), "proto")
    for service, lanes in case.get("leaving", {}).items():
        for lane in lanes:
            p.ingest("metrics", heartbeat_request(service, lane, up=False), "proto")
    return p


def deliver(p: Engine, tb: TraceBuilder, how: str) -> None:
    spans = list(tb.spans)
    if how == "in_order":
        p.ingest("traces", tb.body(spans), "proto")
    elif how == "reversed":
        for s in reversed(spans):
            p.ingest("traces", tb.body([s]), "proto")
    elif how == "one_per_request_shuffled":
        random.Random(7).shuffle(spans)
        for s in spans:
            p.ingest("traces", tb.body([s]), "proto")
    elif how == "duplicated":
        p.ingest("traces", tb.body(spans), "proto")
        p.ingest("traces", tb.body(spans[::-1]), "proto")
    elif how == "json":
        p.ingest("traces", tb.body(spans, fmt="json"), "json")


def run_case(case: dict[str, Any], how: str) -> tuple[Any, int]:
    clock = FakeClock()
    p = make_pipeline(case, clock)
    tb = TraceBuilder(t0=clock())
    build(tb, case["trace"])
    deliver(p, tb, how)
    first = p.flush()
    clock.advance(3.0)
    final = p.flush()
    return (first, final), len(tb.spans)


def hop_verdicts(batch: Any) -> dict[str, str]:
    hops = batch.rollups["hops"]
    out: dict[str, str] = {}
    for svc, verdict, n in zip(hops["service"], hops["verdict"], hops["requests"]):
        assert n == 1, f"{svc} counted {n} times"
        assert svc not in out, f"{svc} has two verdicts"
        out[svc] = verdict
    return out


@pytest.mark.parametrize("how", DELIVERIES)
@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden(path: Path, how: str) -> None:
    case = yaml.safe_load(path.read_text())
    (first, final), n_spans = run_case(case, how)
    exp = case["expect"]
    # hop verdicts are rolled up as spans arrive, before the trace is final
    assert hop_verdicts(first) == exp["hops"]
    assert not first.traces and not first.violations
    # the trace verdict once final
    traces = final.rollups["traces"]
    assert traces["entry_lane"] == [exp["entry_lane"]] and traces["traces"] == [1]
    assert traces["stayed"] == [1 if exp["stayed"] else 0]
    got = sorted(f"{v['kind']}@{v['service']}" for v in final.violations)
    assert got == sorted(exp["violations"])
    for v in final.violations:
        assert v["lane_path"] == exp["lane_path"] and not v["late"]
        assert len(v["trace_id"]) == 32
    kept = [t for t in final.traces]
    if not exp["stayed"]:
        assert [t["lane_path"] for t in kept] == [exp["lane_path"]]
    edges = final.rollups["edges"]
    assert sum(edges["tag_lost"]) == sum(1 for x in exp["violations"] if x.startswith("tag_lost"))
    dups = first.counters.get("duplicate_spans", 0) + final.counters.get("duplicate_spans", 0)
    assert dups == (n_spans if how == "duplicated" else 0)


def test_duplicates_are_counted_once_and_reported() -> None:
    case = yaml.safe_load((GOLDEN[0].parent / "scenario1_dye_at_gray_entry.yaml").read_text())
    (first, _final), _ = run_case(case, "duplicated")
    assert first.counters["duplicate_spans"] == 5  # 3 hops + 2 client spans, all sent twice
    assert sum(first.rollups["hops"]["requests"]) == 3


def test_late_span_reopens_the_trace_and_corrects_totals() -> None:
    case = yaml.safe_load((GOLDEN[0].parent / "leak_while_gray_live.yaml").read_text())
    clock = FakeClock()
    p = make_pipeline(case, clock)
    tb = TraceBuilder(t0=clock())
    build(tb, case["trace"])
    b_hop = next(s for s in tb.spans if s.service == "B" and s.kind == L.SpanKind.SERVER)
    p.ingest("traces", tb.body([s for s in tb.spans if s is not b_hop]), "proto")
    clock.advance(3)
    early = p.flush()
    assert early.rollups["traces"]["stayed"] == [1] and not early.violations
    p.ingest("traces", tb.body([b_hop]), "proto")  # B's span arrives after the trace was final
    clock.advance(3)
    late = p.flush()
    assert late.counters["late_spans"] == 1
    assert late.rollups["traces"]["traces"] == [0] and late.rollups["traces"]["stayed"] == [-1]
    assert [(v["kind"], v["service"], v["late"]) for v in late.violations] == [("leak", "B", True)]
    assert late.violations[0]["lane_path"] == "A[gray] -> B[base, leak] -> C[gray]"
    # the late span's edge pairs now: one call A -> B, none counted twice
    assert sum(early.rollups["edges"]["calls"]) == 1  # B -> C only: A's call had no callee yet
    assert list(zip(late.rollups["edges"]["caller"], late.rollups["edges"]["callee"])) == [("A", "B")]
    assert Counter(late.rollups["hops"]["verdict"]) == Counter({"leak": 1})
