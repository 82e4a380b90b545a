"""Sampled traces through real OTLP exporters to a real collector: counts carry the weight.

The Python SDK's ratio sampler does not write ``th``, so a sampler here returns a
TraceState with ``ot=th:...`` (as a consistent probability sampler does); the weight
attribute is set on spans as a tail sampler would. Exported over OTLP/HTTP (batched:
the fast wire decoder), OTLP/gRPC and OTLP/JSON to ``lanewatch.server.Collector`` on free
loopback ports; read back from ``/api/v1/summary``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from lanewatch import config
from lanewatch.collect.bulk import trace_key
from lanewatch.collect.weights import integer_weight
from lanewatch.server import Collector
from lanewatch.testing import wait_until

WEIGHT_KEY = "sampling.weight"


class ThresholdSampler(Sampler):
    """Samples every trace and records ``ot=th:<th>`` in its TraceState (the children
    inherit the parent's TraceState, as a parent-based consistent sampler's would)."""

    def __init__(self, th: str) -> None:
        self.th = th

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None, trace_state: TraceState | None = None
                      ) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, TraceState([("ot", f"th:{self.th}")]))

    def get_description(self) -> str:
        return f"ThresholdSampler(th:{self.th})"


@pytest.fixture()
def collector(tmp_path: Path) -> Iterator[Collector]:
    settings = config.load(environ={}, flags={
        "otlp_http_port": 0, "otlp_grpc_port": 0, "port": 0, "data_dir": str(tmp_path / "data"),
        "trace_wait_s": 0.5, "flush_interval_s": 0.2, "sampling_weight_attribute": WEIGHT_KEY})
    with Collector(settings) as c:
        yield c


def _providers(sampler: Sampler | None, exporter: Callable[[], Any], batch: bool = False) -> list[TracerProvider]:
    """Services A and B, each with its own exporter (``exporter()``)."""
    out = []
    for service in ("A", "B"):
        kw = {"sampler": sampler} if sampler is not None else {}
        tp = TracerProvider(resource=Resource.create({"service.name": service}), **kw)
        tp.add_span_processor(BatchSpanProcessor(exporter(), max_export_batch_size=512) if batch
                              else SimpleSpanProcessor(exporter()))
        out.append(tp)
    return out


def _traces(tps: list[TracerProvider], n: int, attrs: dict[str, Any] | None = None) -> list[int]:
    """``n`` traces A -> B (SERVER, CLIENT, SERVER); their trace ids."""
    ids = []
    for _ in range(n):
        a, b = (tp.get_tracer("sampling") for tp in tps)
        with (a.start_as_current_span("serve", kind=SpanKind.SERVER, attributes=attrs) as root,
              a.start_as_current_span("call", kind=SpanKind.CLIENT, attributes=attrs),
              b.start_as_current_span("serve", kind=SpanKind.SERVER, attributes=attrs)):
            ids.append(root.get_span_context().trace_id)
    for tp in tps:
        tp.force_flush()
        tp.shutdown()
    return ids


def _summary(c: Collector) -> dict[str, Any]:
    with urllib.request.urlopen(c.endpoints()["url"] + "/api/v1/summary?window=300", timeout=10) as r:
        doc: dict[str, Any] = json.loads(r.read())
        return doc


def _settled(c: Collector, traces: int) -> dict[str, Any]:
    return wait_until(lambda: (s := _summary(c))["traces"] >= traces and s, timeout_s=30,
                      what=f"{traces} traces counted")


def test_thresholds_over_http_and_grpc_count_their_adjusted_counts(collector: Collector) -> None:
    ep = collector.endpoints()
    # th:c rejects 3/4 of 2^56: each trace stands for 4; batched, so the fast decoder reads them
    _traces(_providers(ThresholdSampler("c"), lambda: HttpSpanExporter(ep["otlp_http"] + "/v1/traces"), batch=True), 300)
    # th:8 (probability 1/2) over gRPC: 2 each
    _traces(_providers(ThresholdSampler("8"), lambda: GrpcSpanExporter(ep["otlp_grpc"], insecure=True)), 5)
    # junk thresholds: counted as 1 and in the counters, never refused
    _traces(_providers(ThresholdSampler("xyz"), lambda: HttpSpanExporter(ep["otlp_http"] + "/v1/traces")), 2)
    _traces(_providers(ThresholdSampler("123456789abcdef"), lambda: HttpSpanExporter(ep["otlp_http"] + "/v1/traces")), 1)
    s = _settled(collector, 300 * 4 + 5 * 2 + 3)
    assert s["traces"] == 300 * 4 + 5 * 2 + 3
    assert s["edges"]["calls"] == s["traces"]  # one call per trace, weighted as its trace
    assert sum(s["hops"].values()) == 2 * s["traces"]  # two hops per trace, each with its weight
    assert s["lanes"]["base"]["requests"] == 2 * s["traces"]
    assert s["estimated"] is True and s["lanes"]["base"]["estimated"] is True
    assert s["counters"]["spans_with_invalid_sampling_threshold"] == 3 * 3  # 3 junk traces of 3 spans
    assert s["counters"]["spans_received"] == 3 * (300 + 5 + 3)  # received as they came
    assert _check_json(collector)["estimated"] is True


def test_unsampled_traffic_is_exact_and_not_estimated(collector: Collector) -> None:
    ep = collector.endpoints()
    _traces(_providers(None, lambda: HttpSpanExporter(ep["otlp_http"] + "/v1/traces")), 4)
    # ot=th:0 is 100% sampling: a weight of 1, nothing extrapolated
    _traces(_providers(ThresholdSampler("0"), lambda: HttpSpanExporter(ep["otlp_http"] + "/v1/traces")), 3)
    s = _settled(collector, 7)
    assert s["traces"] == 7 and s["lanes"]["base"]["requests"] == 14
    assert s["estimated"] is False and s["lanes"]["base"]["estimated"] is False
    assert "spans_with_invalid_sampling_threshold" not in s["counters"]
    assert _check_json(collector)["estimated"] is False


def test_the_weight_attribute_counts_and_junk_weights_are_counted(collector: Collector) -> None:
    ep = collector.endpoints()
    _traces(_providers(None, lambda: HttpSpanExporter(ep["otlp_http"] + "/v1/traces")), 6, {WEIGHT_KEY: 3})  # an int attribute
    ids = _traces(_providers(None, lambda: HttpSpanExporter(ep["otlp_http"] + "/v1/traces")), 40, {WEIGHT_KEY: 2.5})
    # junk: not a number, negative, NaN, huge: each span counts 1 and is counted
    for junk in ("many", -2, float("nan"), 1e12):
        _traces(_providers(None, lambda: HttpSpanExporter(ep["otlp_http"] + "/v1/traces")), 1, {WEIGHT_KEY: junk})
    # a non-integer weight counts floor(2.5 + u) per trace, u from its trace id: unbiased
    want_25 = sum(integer_weight(2.5, _tkey(t)) for t in ids)
    assert 2 * 40 <= want_25 <= 3 * 40
    want = 6 * 3 + want_25 + 4
    s = _settled(collector, want)
    assert s["traces"] == want and s["lanes"]["base"]["requests"] == 2 * want
    assert s["estimated"] is True
    assert s["counters"]["spans_with_invalid_sampling_weight"] == 4 * 3


def test_otlp_json_reads_tracestate_and_numeric_weights(collector: Collector) -> None:
    ep = collector.endpoints()
    now = time.time_ns()
    spans = []
    for i, (state, weight) in enumerate([("ot=th:c", None), ("", {"doubleValue": 8.0}),
                                         ("", {"intValue": "5"}), ("ot=th:zz", None), ("", {"boolValue": True})]):
        span = {"traceId": os.urandom(16).hex(), "spanId": os.urandom(8).hex(), "name": "serve", "kind": 2,
                "startTimeUnixNano": str(now + i), "endTimeUnixNano": str(now + i + 5),
                "attributes": [{"key": WEIGHT_KEY, "value": weight}] if weight else []}
        if state:
            span["traceState"] = state
        spans.append(span)
    body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "J"}}]},
                               "scopeSpans": [{"spans": spans}]}]}
    req = urllib.request.Request(ep["otlp_http"] + "/v1/traces", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    s = _settled(collector, 4 + 8 + 5 + 1 + 1)
    assert s["traces"] == 19 and s["lanes"]["base"]["requests"] == 19 and s["estimated"] is True
    assert s["counters"]["spans_with_invalid_sampling_threshold"] == 1  # th:zz
    assert s["counters"]["spans_with_invalid_sampling_weight"] == 1  # a bool is no weight


def _check_json(c: Collector) -> dict[str, Any]:
    """``lanewatch check --json`` (a subprocess) against the collector's API."""
    p = subprocess.run([sys.executable, "-m", "lanewatch.cli", "check", "--url", c.endpoints()["url"], "--json",
                        "--window", "300", "--allow-empty"], check=False, capture_output=True, text=True,
                       timeout=60,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    doc: dict[str, Any] = json.loads(p.stdout)
    assert doc["estimated"] is doc["summary"]["estimated"]
    return doc


def _tkey(trace_id: int) -> int:
    import numpy as np
    hi, lo = np.array([trace_id >> 64], dtype=np.uint64), np.array([trace_id & (2**64 - 1)], dtype=np.uint64)
    return int(trace_key(hi, lo)[0])
