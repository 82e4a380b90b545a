"""Instance churn: cadence learned from heartbeats, overdue instances make ``uncertain`` hops,
a goodbye or the TTL make fallbacks, a reporting instance still makes leaks, and a span is
evidence of its instance from its start (issue 13)."""

from __future__ import annotations

from lanewatch import config
from lanewatch import lane as L
from lanewatch.collect.engine import Engine
from lanewatch.collect.liveness import Liveness, state_at
from lanewatch.testing import FakeClock, TraceBuilder, heartbeat_request

T0 = 1_800_000_000.0
TTL = 15.0


def beating(every: float = 2.0, n: int = 4) -> tuple[Liveness, FakeClock]:
    """A gray C beating ``n`` times every ``every`` s from T0 (its last beat at the clock)."""
    clock = FakeClock(T0)
    lv = Liveness(ttl_s=TTL, clock=clock)
    for i in range(n):
        if i:
            clock.advance(every)
        lv.observe("C", "gray", "c1", clock(), beat=True)
    return lv, clock


def test_cadence_is_learned_from_heartbeats_and_silence_past_twice_it_is_overdue() -> None:
    lv, clock = beating()
    last = clock()
    assert lv.rows() and lv._by_key[("C", "gray", "c1")].cadence == 2.0
    assert lv.state("C", "gray", last + 3.9) is L.Live.YES
    assert lv.state("C", "gray", last + 4.5) is L.Live.OVERDUE
    assert lv.is_live("C", "gray", last + 4.5)  # overdue is still live until the TTL, for other uses
    assert lv.state("C", "gray", last + TTL - 0.1) is L.Live.OVERDUE
    assert lv.state("C", "gray", last + TTL + 0.1) is L.Live.NO


def test_an_instance_without_a_learned_cadence_is_live_until_the_ttl() -> None:
    lv, clock = beating(n=1)
    assert lv.state("C", "gray", clock() + TTL - 0.1) is L.Live.YES
    spans = Liveness(ttl_s=TTL, clock=clock)  # spans alone teach no cadence
    for _ in range(5):
        spans.observe("C", "gray", "c1", clock())
        clock.advance(0.1)
    assert spans.state("C", "gray", clock() + 5) is L.Live.YES


def test_a_goodbye_is_gone_at_once_and_a_reporting_instance_stays_live() -> None:
    lv, clock = beating()
    clock.advance(1)
    lv.observe("C", "gray", "c1", clock(), up=False)  # polite leave (heartbeat 0)
    assert lv.state("C", "gray", clock() + 0.5) is L.Live.NO
    lv2, _ = beating(n=20)  # keeps beating: never overdue while it does
    assert all(lv2.state("C", "gray", T0 + k / 2) is L.Live.YES for k in range(80))


def test_a_silence_splits_the_intervals_so_late_spans_see_the_gap_as_overdue() -> None:
    lv, clock = beating()
    last = clock()
    clock.advance(8)  # 8 s silent (overdue after 4), then back within the TTL
    lv.observe("C", "gray", "c1", clock(), beat=True)
    assert lv.state("C", "gray", last + 2) is L.Live.YES
    assert lv.state("C", "gray", last + 6) is L.Live.OVERDUE  # a late span of that moment
    assert lv.state("C", "gray", clock() + 1) is L.Live.YES
    assert lv.is_live("C", "gray", last + 6)  # as before: within the TTL


def test_state_at_is_the_plain_rule() -> None:
    iv = [[0.0, 10.0], [30.0, 40.0]]
    assert state_at(iv, False, 12.0, 15.0, 4.0) is L.Live.YES
    assert state_at(iv, False, 20.0, 15.0, 4.0) is L.Live.OVERDUE
    assert state_at(iv, False, 26.0, 15.0, 4.0) is L.Live.NO  # past the TTL, before the return
    assert state_at(iv, True, 40.5, 15.0, 4.0) is L.Live.NO
    assert state_at(iv, False, 50.0, 15.0, 4.0) is L.Live.OVERDUE
    assert state_at([], False, 1.0, 15.0, 4.0) is L.Live.NO


def test_peers_share_the_cadence_and_rows_without_it_mean_not_learned() -> None:
    lv, clock = beating()
    rows = lv.take_shared("c1")
    assert rows[0]["cadence"] == 2.0
    other = Liveness(ttl_s=TTL, clock=clock)
    assert other.merge_peers(rows) == 1
    assert other.state("C", "gray", clock() + 5) is L.Live.OVERDUE
    old = [{k: v for k, v in r.items() if k != "cadence"} | {"collector": "c0"} for r in rows]
    older = Liveness(ttl_s=TTL, clock=clock)
    assert older.merge_peers(old) == 1 and older.state("C", "gray", clock() + 5) is L.Live.YES
    bad = Liveness(ttl_s=TTL, clock=clock)
    bad.merge_peers([{**rows[0], "cadence": "nan"}])
    assert bad.state("C", "gray", clock() + 5) is L.Live.YES  # a junk cadence is not learned


def _engine() -> tuple[Engine, FakeClock]:
    clock = FakeClock(T0)
    return Engine(config.load(environ={}, flags={"liveness_ttl_s": TTL}), clock=clock), clock


def _verdicts(e: Engine) -> dict[str, int]:
    hops = e.flush().rollups["hops"]
    out: dict[str, int] = {}
    for v, n in zip(hops["verdict"], hops["requests"]):
        out[str(v)] = out.get(str(v), 0) + int(n)
    return out


def _base_hop_for_gray(e: Engine, t: float) -> None:
    tb = TraceBuilder(t)
    tb.hop("C", "", "gray")
    e.ingest("traces", tb.body(), "proto")


def test_engine_uncertain_while_overdue_then_fallback_past_the_ttl_and_leak_while_beating() -> None:
    e, clock = _engine()
    for i in range(4):
        if i:
            clock.advance(2)
        e.ingest("metrics", heartbeat_request("C", "gray", time_ns=int(clock() * 1e9)), "proto")
    _base_hop_for_gray(e, clock() - 0.5)
    assert _verdicts(e) == {"leak": 1}
    clock.advance(6)  # killed: no heartbeat for 6 s (cadence 2)
    _base_hop_for_gray(e, clock() - 0.1)
    assert _verdicts(e) == {"uncertain": 1}
    clock.advance(TTL)
    _base_hop_for_gray(e, clock() - 0.1)
    assert _verdicts(e) == {"fallback": 1}


def test_engine_a_polite_leave_is_a_fallback_at_once() -> None:
    e, clock = _engine()
    for i in range(3):
        if i:
            clock.advance(2)
        e.ingest("metrics", heartbeat_request("C", "gray", time_ns=int(clock() * 1e9)), "proto")
    clock.advance(1)
    e.ingest("metrics", heartbeat_request("C", "gray", up=False, time_ns=int(clock() * 1e9)), "proto")
    clock.advance(0.5)
    _base_hop_for_gray(e, clock() - 0.1)
    assert _verdicts(e) == {"fallback": 1}


def test_a_span_is_evidence_from_its_start() -> None:
    """A gray span running t-2 s..t, then a base hop of a gray request at t-1 s: a leak."""
    e, clock = _engine()
    t = clock()
    gray = TraceBuilder(t - 2)
    gray.hop("C", "gray", "gray", duration_ms=1998)
    base = TraceBuilder(t - 1)
    base.hop("C", "", "gray")
    e.ingest("traces", gray.request(gray.spans + base.spans).SerializeToString(), "proto")
    assert _verdicts(e) == {"in_lane": 1, "leak": 1}


def test_one_silence_is_not_a_cadence_two_slow_gaps_are() -> None:
    lv, clock = beating()
    inst = lv._by_key[("C", "gray", "c1")]
    clock.advance(8)
    lv.observe("C", "gray", "c1", clock(), beat=True)
    assert inst.cadence == 2.0  # one overdue gap: a silence
    clock.advance(10)
    lv.observe("C", "gray", "c1", clock(), beat=True)
    assert inst.cadence == 10.0  # a second one: it reports every ~10 s now
