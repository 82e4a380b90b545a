"""Real OpenTelemetry SDK exporters -> `lanewatch up` on loopback -> the query API.

The collector runs as a real subprocess (``python -m lanewatch.cli up`` with
free ports and a ready file); spans come from the real Python SDK through its
OTLP/HTTP and OTLP/gRPC exporters; the verdicts are read back over HTTP.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lanewatch import lane as L
from lanewatch.testing import heartbeat_request, settled_summary, up_with_config, wait_until


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("lw")
    config = ("trace_wait_s: 1.0\nflush_interval_s: 0.2\nliveness_ttl_s: 30\n"
              "routing_rules:\n  - {service: B, match: {x-user-id: '100'}, lane: gray}\n")
    with up_with_config(tmp, config, "--otlp-grpc-port", "0") as (_, ep, _):
        yield ep


def get(ep: dict[str, Any], path: str) -> Any:
    with urllib.request.urlopen(ep["url"] + path, timeout=10) as r:
        return json.loads(r.read())


def post_metrics(ep: dict[str, Any], body: bytes) -> None:
    req = urllib.request.Request(ep["otlp_http"] + "/v1/metrics", body,
                                 {"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def provider(service: str, lane: str, exporter: Any) -> TracerProvider:
    attrs = {"service.name": service, L.INSTANCE_ID_ATTR: f"{service}-{lane}-e2e"}
    if lane != "base":
        attrs[L.INSTANCE_LANE_ATTR] = lane
    tp = TracerProvider(resource=Resource.create(attrs))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


def call_chain(tps: list[TracerProvider], lanes: list[str], sent: list[str],
               attrs: dict[str, str] | None = None) -> str:
    """A -> B -> C through real SDK spans: each hop a SERVER span carrying the lane it
    received, with a CLIENT span under it carrying the lane it sends."""
    parent_ctx = context.get_current()
    trace_id = ""
    for i, tp in enumerate(tps):
        tracer = tp.get_tracer("e2e")
        a = dict(attrs or {})
        if lanes[i] != "base":
            a[L.REQUEST_LANE_ATTR] = lanes[i]
        with tracer.start_as_current_span("serve", context=parent_ctx, kind=trace.SpanKind.SERVER,
                                          attributes=a) as server:
            trace_id = format(server.get_span_context().trace_id, "032x")
            if i + 1 < len(tps):
                ca = dict(attrs or {})
                if sent[i] != "base":
                    ca[L.REQUEST_LANE_ATTR] = sent[i]
                with tracer.start_as_current_span("call", kind=trace.SpanKind.CLIENT, attributes=ca):
                    parent_ctx = context.get_current()
    return trace_id


def wait_for(pred: Any, timeout: float = 15.0) -> Any:
    return wait_until(pred, timeout)


def test_sdk_exporters_over_http_and_grpc_are_judged(collector: dict[str, Any]) -> None:
    ep = collector
    for svc in "ABC":
        for lane in ("base", "gray"):
            post_metrics(ep, heartbeat_request(svc, "" if lane == "base" else lane, f"{svc}-{lane}-e2e"))
    http = lambda: HttpSpanExporter(endpoint=ep["otlp_http"] + "/v1/traces")
    grpc = lambda: GrpcSpanExporter(endpoint=ep["otlp_grpc"], insecure=True)
    a_gray, b_gray, c_gray = (provider(s, "gray", http()) for s in "ABC")
    a_base, b_base, c_base = (provider(s, "base", grpc()) for s in "ABC")

    for _ in range(3):  # gray stays gray end to end
        call_chain([a_gray, b_gray, c_gray], ["gray"] * 3, ["gray"] * 3)
    call_chain([a_base, b_base, c_base], ["base"] * 3, ["base"] * 3)  # base stays base
    leak = call_chain([a_gray, b_base, c_gray], ["gray"] * 3, ["gray"] * 3)  # base B serves gray
    intrusion = call_chain([a_base, b_gray, c_base], ["base"] * 3, ["base"] * 3)
    lost = call_chain([a_gray, b_base, c_base], ["gray", "base", "base"], ["gray", "base", "base"])
    rule = call_chain([a_base, b_gray, c_base], ["base"] * 3, ["base"] * 3, {"x-user-id": "100"})
    for tp in (a_gray, b_gray, c_gray, a_base, b_base, c_base):
        tp.shutdown()

    # all 8 traces final (one split by a slow export is judged again when its late part arrives)
    summary, violations = settled_summary(ep["url"], traces=8, violations=3, quiet_s=1.6)
    assert summary["hops"] == {"in_lane": 22, "fallback": 0, "leak": 1, "intrusion": 1, "uncertain": 0}
    assert summary["edges"]["tag_lost"] == 1
    assert summary["lanes"]["gray"]["traces"] == 5 and summary["lanes"]["gray"]["stayed"] == 3
    assert summary["lanes"]["base"]["traces"] == 3 and summary["lanes"]["base"]["stayed"] == 2
    kinds = {(v["kind"], v["service"], v["trace_id"]) for v in violations}
    assert kinds == {("leak", "B", leak), ("intrusion", "B", intrusion), ("tag_lost", "B", lost)}
    paths = {v["trace_id"]: v["lane_path"] for v in violations}
    assert paths[leak] == "A[gray] -> B[base, leak] -> C[gray]"
    assert paths[intrusion] == "A[base] -> B[gray, intrusion] -> C[base]"
    assert paths[lost] == "A[gray] -> B[base, tag_lost] -> C[base]"
    assert rule not in paths  # B's rule sent user 100 to gray: in lane


@pytest.mark.parametrize("first", ["callee_side", "caller_side"])
def test_a_trace_split_by_a_slow_export_is_judged_whole(tmp_path: Path, first: str) -> None:
    """A's spans reach the collector seconds after B's and C's (or before them): the trace is
    judged on what came, then again when the rest arrives. The end state is the one trace,
    gray entry, its tag lost into B, counted once."""
    config = "trace_wait_s: 1.0\nflush_interval_s: 0.2\nliveness_ttl_s: 30\n"
    with up_with_config(tmp_path, config) as (_, ep, _):
        for svc, lane in (("A", "gray"), ("B", ""), ("C", "")):
            post_metrics(ep, heartbeat_request(svc, lane, f"{svc}-{lane or 'base'}-e2e"))
        mem = {s: InMemorySpanExporter() for s in "ABC"}
        tps = [provider("A", "gray", mem["A"]), provider("B", "base", mem["B"]), provider("C", "base", mem["C"])]
        lost = call_chain(tps, ["gray", "base", "base"], ["gray", "base", "base"])
        caller = list(mem["A"].get_finished_spans())
        callee = [*mem["B"].get_finished_spans(), *mem["C"].get_finished_spans()]
        exporter = HttpSpanExporter(endpoint=ep["otlp_http"] + "/v1/traces")
        parts = (callee, caller) if first == "callee_side" else (caller, callee)
        assert exporter.export(parts[0]) == SpanExportResult.SUCCESS
        # the first part is judged alone: a trace, and no tag lost yet when A's call is missing
        settled_summary(ep["url"], traces=1, violations=0, quiet_s=1.6)
        assert exporter.export(parts[1]) == SpanExportResult.SUCCESS
        summary, violations = settled_summary(ep["url"], traces=1, violations=1, quiet_s=1.6)
        counters = get(ep, "/api/v1/summary?window=300")["counters"]
    assert summary["hops"] == {"in_lane": 3, "fallback": 0, "leak": 0, "intrusion": 0, "uncertain": 0}
    assert summary["edges"]["tag_lost"] == 1 and summary["edges"]["calls"] == 2
    assert summary["lanes"]["gray"]["traces"] == 1 and summary["lanes"]["gray"]["stayed"] == 0
    assert summary["lanes"].get("base", {}).get("traces", 0) == 0  # the first part's base entry undone
    assert [(v["kind"], v["service"], v["trace_id"], v["late"]) for v in violations] == [
        ("tag_lost", "B", lost, True)]
    assert violations[0]["lane_path"] == "A[gray] -> B[base, tag_lost] -> C[base]"
    assert counters.get("late_spans", 0) == len(parts[1])
