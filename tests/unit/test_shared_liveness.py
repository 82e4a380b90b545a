"""Two collectors judging with global liveness (engine side of SharedLiveness).

Each golden trace goes whole to one engine, heartbeats go to the engine of their service
(as the load-balancing exporter routes them); the engines hand each other their liveness
rows as a shared store would. Verdicts, lane paths and violations must equal those of one
engine that received everything. The store side is in tests/integration/test_store_contract.py
and the whole path over ClickHouse in tests/integration/test_scale_out.py.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from lanewatch import config
from lanewatch.collect.engine import PEER_GONE_S, Engine
from lanewatch.store.base import Batch
from lanewatch.testing import FakeClock, TraceBuilder, heartbeat_request
from tests.unit.test_golden import GOLDEN, build, hop_verdicts


def engine(case: dict[str, Any], clock: FakeClock, name: str, sharing: bool) -> Engine:
    settings = config.load(environ={}, flags={"trace_wait_s": 2.0, "collector_id": name})
    settings = config.with_overrides(settings, routing_rules=config.parse_rules(case.get("rules", [])))
    e = Engine(settings, clock=clock)
    e.sharing = sharing
    return e


def heartbeats(case: dict[str, Any]) -> list[tuple[str, bytes]]:
    out = [(s, heartbeat_request(s, "" if lane == "base" else lane))
           for s, lanes in case.get("live", {}).items() for lane in lanes]
    out += [(s, heartbeat_request(s, lane, up=False)) for s, lanes in case.get("leaving", {}).items()
            for lane in lanes]
    return out


def exchange(engines: list[Engine], batches: list[Batch]) -> None:
    """What the store does between them: every engine gets the others' rows and as_of."""
    for e in engines:
        rows = [r for b in batches if b.collector != e.collector for r in b.liveness]
        e.merge_peer_liveness(rows, {b.collector: b.as_of for b in batches})


def outcome(first: Batch, final: Batch) -> tuple[Any, ...]:
    return (hop_verdicts(first), sorted(f"{v['kind']}@{v['service']}:{v['lane_path']}" for v in final.violations),
            final.rollups["traces"]["stayed"],
            # violating traces (in-lane ones are kept by a 1% sample of their random trace id)
            sorted(t["lane_path"] for t in final.traces if not t["stayed"]))


def one_collector(case: dict[str, Any]) -> tuple[Any, ...]:
    clock = FakeClock()
    e = engine(case, clock, "solo", sharing=False)
    for _, body in heartbeats(case):
        e.ingest("metrics", body, "proto")
    tb = TraceBuilder(t0=clock())
    build(tb, case["trace"])
    e.ingest("traces", tb.body(tb.spans), "proto")
    first = e.flush()
    clock.advance(3.0)
    return outcome(first, e.flush())


def two_collectors(case: dict[str, Any], trace_to: int) -> tuple[Any, ...]:
    clock = FakeClock()
    engines = [engine(case, clock, f"c{i}", sharing=True) for i in range(2)]
    for service, body in heartbeats(case):
        engines[zlib.crc32(service.encode()) % 2].ingest("metrics", body, "proto")
    clock.advance(0.5)
    exchange(engines, [e.flush() for e in engines])
    clock.advance(0.1)  # the trace arrives after the peer's newest batch
    tb = TraceBuilder(t0=clock())
    build(tb, case["trace"])
    engines[trace_to].ingest("traces", tb.body(tb.spans), "proto")
    clock.advance(0.4)
    batches = [e.flush() for e in engines]
    exchange(engines, batches)
    first = batches[trace_to]
    assert not first.rollups["hops"]["service"], "judged before the peer's liveness covered the arrival"
    clock.advance(0.5)
    batches = [e.flush() for e in engines]  # the peer's as_of now covers the arrival
    exchange(engines, batches)
    first = batches[trace_to]
    clock.advance(3.0)
    batches = [e.flush() for e in engines]
    assert not any(b.counters.get("spans_judged_before_peer_liveness") for b in batches)
    other = batches[1 - trace_to]
    assert not other.rollups["hops"]["service"] and not other.violations
    return outcome(first, batches[trace_to])


@pytest.mark.parametrize("trace_to", [0, 1])
@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_two_collectors_judge_as_one(path: Path, trace_to: int) -> None:
    case = yaml.safe_load(path.read_text())
    want = one_collector(case)
    assert want[0] == case["expect"]["hops"]  # the reference is right to begin with
    assert two_collectors(case, trace_to) == want


def test_without_sharing_a_heartbeat_on_the_other_collector_turns_a_leak_into_a_fallback() -> None:
    """Why liveness must be global: the failure the sharing prevents, shown for real."""
    case = yaml.safe_load((GOLDEN[0].parent / "leak_while_gray_live.yaml").read_text())
    clock = FakeClock()
    engines = [engine(case, clock, f"c{i}", sharing=False) for i in range(2)]
    trace_to = 1 - zlib.crc32(b"B") % 2  # not where B's heartbeats go
    for service, body in heartbeats(case):
        engines[zlib.crc32(service.encode()) % 2].ingest("metrics", body, "proto")
    tb = TraceBuilder(t0=clock())
    build(tb, case["trace"])
    engines[trace_to].ingest("traces", tb.body(tb.spans), "proto")
    assert hop_verdicts(engines[trace_to].flush())["B"] == "fallback"


def test_a_silent_peer_holds_spans_at_most_liveness_wait_s_then_they_are_judged_and_counted() -> None:
    case = yaml.safe_load((GOLDEN[0].parent / "leak_while_gray_live.yaml").read_text())
    clock = FakeClock()
    e = engine(case, clock, "c0", sharing=True)
    e.merge_peer_liveness([], {"c1": clock() - 1.0})  # a peer one second behind
    tb = TraceBuilder(t0=clock())
    build(tb, case["trace"])
    e.ingest("traces", tb.body(tb.spans), "proto")
    wait = e.settings.liveness_wait_s
    clock.advance(wait / 2)
    assert not e.flush().rollups["hops"]["service"]
    assert e.durable_at is None or e.durable_at <= clock() - wait / 2  # held spans are not durable
    e.stored(clock())
    assert e.durable_at is not None and e.durable_at < clock()
    clock.advance(wait)
    b = e.flush()
    assert sorted(b.rollups["hops"]["service"]) == ["A", "B", "C"]
    assert b.counters["spans_judged_before_peer_liveness"] == len(tb.spans)


def test_a_peer_gone_for_long_is_not_waited_for() -> None:
    case = yaml.safe_load((GOLDEN[0].parent / "leak_while_gray_live.yaml").read_text())
    clock = FakeClock()
    e = engine(case, clock, "c0", sharing=True)
    e.merge_peer_liveness([], {"c1": clock() - PEER_GONE_S - 1})
    tb = TraceBuilder(t0=clock())
    build(tb, case["trace"])
    e.ingest("traces", tb.body(tb.spans), "proto")
    b = e.flush()
    assert sorted(b.rollups["hops"]["service"]) == ["A", "B", "C"]
    assert not b.counters.get("spans_judged_before_peer_liveness")


def test_unreadable_peer_rows_are_counted_not_fatal() -> None:
    clock = FakeClock()
    e = engine({}, clock, "c0", sharing=True)
    e.merge_peer_liveness([{"collector": "c1", "service": "B", "lane": "gray", "instance": "b1",
                            "intervals": "not json", "left": False},
                           {"collector": "c1", "service": "B", "lane": "gray", "instance": "b2",
                            "intervals": f"[[{clock() - 1}, {clock()}]]", "left": False}], {"c1": clock()})
    assert e.liveness.is_live("B", "gray", clock() - 0.5)
    assert e.flush().counters["peer_liveness_unreadable"] == 1


def test_names_other_collectors_admitted_are_admitted_here_so_caps_agree() -> None:
    """max_services 2: another collector admitted X and Y first. A collector that adopts them
    maps a new Z to '_other' as that one does (alone it would have admitted Z)."""
    clock = FakeClock()
    here = engine({}, clock, "c0", sharing=True)
    other = engine({}, clock, "c1", sharing=True)
    for e in (here, other):
        e.services.limit = 2
    assert other.services.map(["X", "Y", "Z"]) == ["X", "Y", "_other"]
    assert here.services.map(["Z"]) == ["Z"]  # alone, this collector would admit Z
    here2 = engine({}, clock, "c2", sharing=True)
    here2.services.limit = 2
    here2.services.map(["X"])  # cached
    here2.adopt_names(["X", "Y"], [])
    assert here2.services.map(["Z", "X", "Y"]) == other.services.map(["Z", "X", "Y"]) == ["_other", "X", "Y"]
    # adopting never goes past the limit, and drops cached overflow lookups
    full = engine({}, clock, "c3", sharing=True)
    full.services.limit = 1
    assert full.services.map(["A", "X"]) == ["A", "_other"]
    full.adopt_names(["X"], [])
    assert full.services.map(["X"]) == ["_other"] and full.services.known == {"A"}
