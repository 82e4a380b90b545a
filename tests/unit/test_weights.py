"""Sampling weights (collect/weights.py): the threshold and attribute parses against the spec's
formula, the column-wise weights and integer counts against plain per-span references, and
weighted hop rollups of the engine against a per-span sum."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from lanewatch import config
from lanewatch.collect import bulk, decode, wire
from lanewatch.collect import weights as W
from lanewatch.collect.engine import Engine
from lanewatch.testing import FakeClock


@pytest.mark.parametrize("state,want", [
    ("", 1.0), ("k=v", 1.0), ("ot=th:0", 1.0), ("ot=th:8", 2.0), ("ot=th:c", 4.0), ("ot=th:C", 4.0),
    ("ot=th:e", 8.0), ("ot=rv:1234;th:f", 16.0), ("a=b, ot=th:8 ,c=d", 2.0), ("ot=rv:abc", 1.0),
    ("ot=th:fd70a4", 2**56 / (2**56 - 0xFD70A400000000)), ("ot=th:00000000000001", 2**56 / (2**56 - 1)),
])
def test_thresholds_give_the_specs_adjusted_count(state: str, want: float) -> None:
    assert W.threshold_weight(state) == want
    assert W.threshold_weight(state.encode()) == want


@pytest.mark.parametrize("state", ["ot=th:", "ot=th:xyz", "ot=th:123456789abcdef", "ot=th:-1", "ot=th: 8",
                                   "ot=th:ffffffffffffff", "ot=th:fffff8"])
def test_junk_and_huge_thresholds_are_junk(state: str) -> None:
    assert math.isnan(W.threshold_weight(state))


def _any(**kw: Any) -> bytes:
    return AnyValue(**kw).SerializeToString()


@pytest.mark.parametrize("raw,want", [
    (b"", W.ABSENT), ("", W.ABSENT), (_any(int_value=3), 3.0), (_any(double_value=2.5), 2.5),
    (_any(string_value="4"), 4.0), ("7.25", 7.25), (_any(double_value=float(1 << 20)), float(1 << 20)),
])
def test_weight_attributes_read_numbers(raw: bytes | str, want: float) -> None:
    assert W.attribute_weight(raw) == want


@pytest.mark.parametrize("raw", [_any(int_value=-2), _any(int_value=0), _any(double_value=float("nan")),
                                 _any(double_value=float("inf")), _any(double_value=1e12), _any(bool_value=True),
                                 _any(string_value="many"), "nan", "-1", b"\xff\xff", "not a number"])
def test_junk_weight_attributes_are_junk(raw: bytes | str) -> None:
    assert math.isnan(W.attribute_weight(raw))


def test_span_weights_match_a_per_span_reference_on_random_columns() -> None:
    rng = random.Random(4)
    states = ["ot=th:8", "ot=th:c", "ot=th:zz", "k=v", "ot=th:0", "ot=th:fd70a4"]
    values: list[bytes | str] = [b"", _any(int_value=3), _any(double_value=1.5), _any(string_value="x"),
                                 _any(int_value=-1), "", "2"]
    sw = W.SpanWeights("w")
    for _ in range(200):
        n = rng.randint(1, 60)
        state_at = np.array(sorted(rng.sample(range(n), rng.randint(0, n))), dtype=np.int64)
        st = [rng.choice(states) for _ in state_at]
        attr_at = np.array(sorted(rng.sample(range(n), rng.randint(0, n))), dtype=np.int64)
        av = [rng.choice(values) for _ in attr_at]
        w, bad_th, bad_attr = sw.of(n, state_at, st, attr_at, av)
        want, want_th, want_attr = [1.0] * n, 0, 0
        for i, s in zip(state_at.tolist(), st):
            x = W.threshold_weight(s)
            want_th += math.isnan(x)
            want[i] = 1.0 if math.isnan(x) else x
        for i, v in zip(attr_at.tolist(), av):
            x = W.attribute_weight(v)
            want_attr += math.isnan(x)
            if x > 0:  # a valid attribute wins over the threshold
                want[i] = x
        assert (bad_th, bad_attr) == (want_th, want_attr)
        assert (w.tolist() if w is not None else [1.0] * n) == want
        assert w is None or any(x != 1.0 for x in want)


def test_integer_weights_match_the_plain_reference_and_are_unbiased() -> None:
    rng = np.random.default_rng(9)
    n = 200_000
    tkey = bulk.trace_key(rng.integers(0, 2**63, n, dtype=np.uint64), rng.integers(0, 2**63, n, dtype=np.uint64))
    w = rng.choice([1.0, 2.0, 1 / 0.3, 2.5, 0.4, 1000.75], n)
    got = W.integer_weights(w, tkey)
    sample = rng.choice(n, 2000, replace=False)
    assert [W.integer_weight(float(w[i]), int(tkey[i])) for i in sample] == got[sample].tolist()
    assert ((got == np.floor(w)) | (got == np.floor(w) + 1)).all()
    assert (got[w == 2.0] == 2).all() and (got[w == 1.0] == 1).all()  # integers stay as they are
    for x in (1 / 0.3, 2.5, 0.4, 1000.75):
        mean = got[w == x].mean()
        sd = 0.5 / math.sqrt((w == x).sum())  # the rounding's variance is at most 1/4
        assert abs(mean - x) < 5 * sd, (x, mean)


def _request(spans: list[tuple[bytes, str, Any]]) -> bytes:
    """SERVER spans of service S: (trace id, tracestate, weight attribute value or None)."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="S")))
    ss = rs.scope_spans.add()
    for i, (tid, state, weight) in enumerate(spans):
        sp = ss.spans.add(trace_id=tid, span_id=(i + 1).to_bytes(8, "big"), kind=2,
                          start_time_unix_nano=1_700_000_000 * 10**9 + i * 10**6,
                          end_time_unix_nano=1_700_000_000 * 10**9 + i * 10**6 + 5 * 10**6, trace_state=state)
        if weight is not None:
            sp.attributes.append(KeyValue(key="w", value=weight))
        if i % 3 == 0:
            sp.status.code = 2
    return req.SerializeToString()


@pytest.mark.parametrize("fast", [False, True])
def test_engine_hop_rollups_sum_integer_weights_per_span(fast: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if fast:
        monkeypatch.setattr(decode, "FAST_MIN_BYTES", 0)
    rng = random.Random(2)
    spans = [(rng.randbytes(16), rng.choice(["", "ot=th:8", "ot=th:fd70a4", "ot=th:q"]),
              rng.choice([None, AnyValue(double_value=2.5), AnyValue(string_value="oops")])) for _ in range(300)]
    eng = Engine(config.load(environ={}, flags={"sampling_weight_attribute": "w"}), clock=FakeClock(1_700_000_100))
    body = _request(spans)
    if fast:
        assert wire.fast_traces(body, eng.keys) is not None
    eng.ingest("traces", body, "proto")
    batch = eng.flush()
    hops = batch.rollups["hops"]
    want = {"requests": 0.0, "errors": 0.0, "weighted": 0}
    for i, (tid, state, weight) in enumerate(spans):
        w = W.threshold_weight(state)
        w = 1.0 if math.isnan(w) else w
        if weight is not None and weight.HasField("double_value"):
            w = weight.double_value
        tk = int(bulk.trace_key(np.array([int.from_bytes(tid[:8], "big")], dtype=np.uint64),
                                np.array([int.from_bytes(tid[8:], "big")], dtype=np.uint64))[0])
        k = W.integer_weight(w, tk)
        want["requests"] += k
        want["errors"] += k * (i % 3 == 0)
        want["weighted"] += w != 1.0
    assert {m: sum(hops[m]) for m in want} == want
    assert sum(batch.rollups["latency"]["count"]) == want["requests"]
    assert batch.counters["spans_with_invalid_sampling_threshold"] == sum(s == "ot=th:q" for _, s, _ in spans)
    assert batch.counters["spans_with_invalid_sampling_weight"] == sum(
        v is not None and v.HasField("string_value") for _, _, v in spans)
