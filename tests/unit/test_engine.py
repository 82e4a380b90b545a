"""The column-wise engine against the plain reference rules, liveness, and bad input."""

from __future__ import annotations

import random

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from lanewatch import config
from lanewatch import lane as L
from lanewatch.collect import classify
from lanewatch.collect.engine import Engine
from lanewatch.collect.ingest import DecodeError, Overloaded
from lanewatch.collect.liveness import Liveness
from lanewatch.testing import FakeClock, TraceBuilder, heartbeat_request


def test_column_wise_verdicts_agree_with_the_reference_rule() -> None:
    rng = random.Random(1)
    lanes = ["base", "gray", "gray2", "canary"]
    services = ["A", "B", "C"]
    state = {(s, ln): rng.choice(list(L.Live)) for s in services for ln in lanes}
    n = 5000
    svc = np.asarray([rng.choice(services) for _ in range(n)], dtype=object)
    inst = np.asarray([rng.choice(lanes) for _ in range(n)], dtype=object)
    exp = np.asarray([rng.choice(lanes) for _ in range(n)], dtype=object)
    is_hop = np.asarray([rng.random() < 0.7 for _ in range(n)])
    got = classify.hop_verdicts(svc, inst, exp, is_hop, np.zeros(n), lambda s, ln, t: state[(s, ln)])
    for i in range(n):
        want = L.hop_verdict(exp[i], inst[i], state[(svc[i], exp[i])]) if is_hop[i] else -1
        assert got[i] == want, (svc[i], inst[i], exp[i])
    assert {int(v) for v in got} == {-1, *L.HOP_VERDICTS}  # every hop verdict was exercised
    # a plain boolean answer is NO / YES
    yes_no = classify.hop_verdicts(svc, inst, exp, is_hop, np.zeros(n), lambda s, ln, t: state[(s, ln)] is L.Live.YES)
    assert L.Verdict.UNCERTAIN not in yes_no.tolist()


def test_uncertain_is_base_serving_a_lane_that_is_only_overdue() -> None:
    v = L.hop_verdict
    assert v("gray", "base", L.Live.OVERDUE) is L.Verdict.UNCERTAIN
    assert v("gray", "base", L.Live.NO) is v("gray", "base", False) is L.Verdict.FALLBACK
    assert v("gray", "base", L.Live.YES) is v("gray", "base", True) is L.Verdict.LEAK
    assert v("gray", "canary", L.Live.OVERDUE) is L.Verdict.LEAK  # not served by base
    assert v("gray", "gray", L.Live.OVERDUE) is L.Verdict.IN_LANE
    assert v("base", "gray", L.Live.OVERDUE) is L.Verdict.INTRUSION
    assert not L.Verdict.UNCERTAIN.is_violation and L.Verdict.UNCERTAIN in L.HOP_VERDICTS
    assert "uncertain" not in L.VIOLATION_NAMES


def test_rules_pick_the_expected_lane_for_their_service_only() -> None:
    rules = {"B": [(config.Rule("B", {"x-user-id": "100"}, "gray"), "gray")]}
    svc = np.asarray(["A", "B", "B", "B"], dtype=object)
    got = classify.expected_lanes(svc, np.asarray(["base", "base", "base", "canary"], dtype=object),
                                  np.asarray([True] * 4), {"x-user-id": ["100", "100", "101", "100"]}, rules)
    assert got.tolist() == ["base", "gray", "base", "gray"]


def test_liveness_intervals_ttl_and_goodbye() -> None:
    clock = FakeClock(1000.0)
    lv = Liveness(ttl_s=5, clock=clock)
    lv.observe("C", "gray", "c1", 1000.0)
    clock.advance(3)
    lv.observe("C", "gray", "c1", 1003.0)
    assert lv.is_live("C", "gray", 1007.9) and not lv.is_live("C", "gray", 1008.1)
    assert not lv.is_live("C", "gray", 999.0) and not lv.is_live("C", "base", 1001.0)
    clock.advance(2)
    lv.observe("C", "gray", "c1", 1005.0, up=False)  # graceful stop: no grace period after it
    assert lv.is_live("C", "gray", 1004.0) and not lv.is_live("C", "gray", 1005.5)
    lv.observe("C", "gray", "c1", 1006.0, revive=False)  # a span it was still finishing
    assert not lv.is_live("C", "gray", 1006.0)
    clock.advance(20)
    lv.observe("C", "gray", "c1", 1025.0)  # came back (a heartbeat)
    assert lv.is_live("C", "gray", 1026.0) and not lv.is_live("C", "gray", 1015.0)
    assert [r["state"] for r in lv.take_changes()] == ["up"] and lv.take_changes() == []


def test_declared_topology_is_always_live() -> None:
    lv = Liveness(ttl_s=5, topology={"B": ["gray"]})
    assert lv.is_live("B", "gray", 0.0) and not lv.is_live("B", "gray2", 0.0)


def _pipeline(**flags: object) -> tuple[Engine, FakeClock]:
    clock = FakeClock()
    return Engine(config.load(environ={}, flags=flags), clock=clock), clock


@pytest.mark.parametrize("body,fmt", [(b"\x0a\xff\xff\xff", "proto"), (b"{not json", "json"),
                                      (b"[1, 2]", "json"),
                                      (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 5}]}]}]}',
                                       "json")])
def test_malformed_payloads_raise_decode_error_with_a_message(body: bytes, fmt: str) -> None:
    p, _ = _pipeline()
    with pytest.raises(DecodeError, match="malformed OTLP"):
        p.ingest("traces", body, fmt)  # type: ignore[arg-type]


def test_invalid_ids_are_rejected_as_partial_success_and_counted() -> None:
    p, _ = _pipeline()
    tb = TraceBuilder()
    tb.hop("A", "gray", "gray")
    req = tb.request()
    bad = req.resource_spans[0].scope_spans[0].spans.add()
    bad.CopyFrom(req.resource_spans[0].scope_spans[0].spans[0])
    bad.trace_id = b"short"
    res = p.ingest("traces", req.SerializeToString(), "proto")
    assert (res.accepted, res.rejected) == (1, 1) and "trace_id must be 16 bytes" in res.message
    assert p.flush().counters["spans_rejected_invalid"] == 1


@pytest.mark.parametrize("kind", [6, 300, -1, 2**64 - 1])
def test_a_junk_span_kind_reads_as_unspecified_in_json_and_protobuf(kind: int) -> None:
    """Not a hop, not a crash: a kind outside SpanKind is UNSPECIFIED (JSON ints are unbounded)."""
    import json

    import orjson

    p, _ = _pipeline()
    tb = TraceBuilder()
    tb.hop("A", "gray", "gray")
    doc = orjson.loads(tb.body(fmt="json"))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["kind"] = kind
    assert p.ingest("traces", json.dumps(doc).encode(), "json").accepted == 1
    if -2**31 <= kind < 2**31:
        req = tb.request()
        req.resource_spans[0].scope_spans[0].spans[0].kind = kind
        assert p.ingest("traces", req.SerializeToString(), "proto").accepted == 1
    assert "hops" not in p.flush().counters  # UNSPECIFIED spans are no hops


def test_junk_lane_values_count_as_base_and_are_counted() -> None:
    p, _ = _pipeline()
    tb = TraceBuilder()
    tb.hop("A", "", "<script>alert(1)</script>")
    tb.hop("A", "", "x" * 500)
    req: ExportTraceServiceRequest = tb.request()
    span = req.resource_spans[0].scope_spans[0].spans.add()
    span.CopyFrom(req.resource_spans[0].scope_spans[0].spans[0])
    span.span_id = b"\x01" * 8
    del span.attributes[:]
    span.attributes.append(KeyValue(key="lane", value=AnyValue(int_value=7)))  # non-string: reads ''
    p.ingest("traces", req.SerializeToString(), "proto")
    b = p.flush()
    assert b.counters["invalid_lane_values"] == 2
    assert set(b.rollups["hops"]["request_lane"]) == {"base"}
    assert set(b.rollups["hops"]["verdict"]) == {"in_lane"}


def test_undecodable_attribute_values_are_counted_not_fatal() -> None:
    p, _ = _pipeline()
    tb = TraceBuilder()
    tb.hop("A", "", "GRAY")
    body = tb.body().replace(b"GRAY", b"\xff\xfe\xfd\xfc")  # invalid UTF-8, same length
    res = p.ingest("traces", body, "proto")
    assert (res.accepted, res.rejected) == (1, 0)
    b = p.flush()
    assert b.counters["invalid_lane_values"] == 1 and b.rollups["hops"]["request_lane"] == ["base"]


def test_a_header_captured_as_a_string_array_is_read_as_its_first_value() -> None:
    key = "http.request.header.x-mse-tag"  # as the Java agent records a captured header
    p = Engine(config.load(environ={}, flags={"request_lane_attributes": ["lane", key]}), clock=FakeClock())
    tb = TraceBuilder()
    tb.hop("A", "gray")
    req = tb.request()
    span = req.resource_spans[0].scope_spans[0].spans[0]
    kv = span.attributes.add(key=key)
    kv.value.array_value.values.add(string_value="gray")
    p.ingest("traces", req.SerializeToString(), "proto")
    hops = p.flush().rollups["hops"]
    assert (hops["request_lane"], hops["verdict"]) == (["gray"], ["in_lane"])


def test_backpressure_when_spans_pile_up() -> None:
    p, clock = _pipeline(max_pending_spans=2, trace_wait_s=5.0)
    tb = TraceBuilder()
    for _ in range(5):
        tb.new_trace().hop("A", "gray", "gray")
    p.ingest("traces", tb.body(), "proto")  # 5 spans held, over twice the bound
    with pytest.raises(Overloaded, match="retry later"):
        p.ingest("traces", tb.body(), "proto")
    clock.advance(1)
    b = p.flush()  # over the bound: finalised early, counted
    assert b.counters["spans_finalised_early"] >= 3 and b.counters["requests_refused_overloaded"] == 1
    assert p.ingest("traces", TraceBuilder().body(), "proto").accepted == 0  # accepted again


def test_too_many_lanes_and_services_overflow_into_a_counted_bucket() -> None:
    p, _ = _pipeline(max_lanes=3, max_services=2)
    tb = TraceBuilder()
    for i in range(6):
        tb.new_trace().hop(f"svc{i}", f"lane{i}", f"lane{i}")
    p.ingest("traces", tb.body(), "proto")
    b = p.flush()
    assert set(b.rollups["hops"]["service"]) == {"svc0", "svc1", "_other"}
    assert "_other" in b.rollups["hops"]["instance_lane"]
    assert b.counters["services_over_limit"] == 4 and b.counters["lanes_over_limit"] >= 3


def test_heartbeat_zero_ends_liveness_at_once() -> None:
    p, clock = _pipeline()
    p.ingest("metrics", heartbeat_request("C", "gray"), "proto")
    assert p.liveness.is_live("C", "gray", clock())
    p.ingest("metrics", heartbeat_request("C", "gray", up=False), "proto")
    assert not p.liveness.is_live("C", "gray", clock() + 0.01)
    assert [r["state"] for r in p.flush().instances] == ["left"]


def test_detail_limit_keeps_violating_traces_before_sampled_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    import lanewatch.collect.engine as pl

    p, clock = _pipeline(sample_ok_traces=1.0, trace_wait_s=1.0)
    for svc in "AB":
        p.ingest("metrics", heartbeat_request(svc, "gray"), "proto")
    tb = TraceBuilder(t0=clock())
    for _ in range(3):  # in lane, sampled
        a = tb.new_trace().hop("A", "gray", "gray")
        tb.hop("B", "gray", "gray", caller=tb.call(a))
    a = tb.new_trace().hop("A", "gray", "gray")
    tb.hop("B", "", "gray", caller=tb.call(a))  # a leak
    p.ingest("traces", tb.body(), "proto")
    monkeypatch.setattr(pl, "MAX_DETAILED_TRACES", 1)
    clock.advance(2)
    b = p.flush()
    assert [v["kind"] for v in b.violations] == ["leak"] and len(b.traces) == 1
    assert sum(b.rollups["traces"]["traces"]) == 4  # every trace still counted


def test_a_failing_batch_is_counted_and_spares_the_request_that_filled_it(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import lanewatch.collect.engine as pl

    p, _ = _pipeline()
    tb = TraceBuilder()
    for _ in range(3):
        tb.new_trace().hop("A", "gray", "gray")

    def broken(*_: object) -> None:
        raise RuntimeError("a bug in the span path")

    monkeypatch.setattr(pl, "BATCH_SPANS", 2)
    monkeypatch.setattr(p, "_ingest_spans", broken)
    assert p.ingest("traces", tb.body(), "proto").accepted == 3  # filled the batch: still accepted
    assert p.flush().counters["spans_lost_internal_error"] == 3
    assert "span path failed on a batch of 3 spans" in caplog.text


def test_a_malformed_request_is_counted_as_well_as_refused() -> None:
    """A new user's finding: 400s for malformed bodies were answered but counted nowhere."""
    eng = Engine(config.load(environ={}, flags={}), FakeClock())
    for body, fmt in ((b'{"resourceSpans":[{"resource":', "json"), (b"\xff\x01\x02garbage", "proto")):
        with pytest.raises(DecodeError):
            eng.ingest("traces", body, fmt)  # type: ignore[arg-type]
    assert eng.pending_counters()["requests_refused_malformed"] == 2
