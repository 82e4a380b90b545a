"""Real OTLP export from configure(): spans and heartbeats, over HTTP and gRPC, to loopback receivers."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from opentelemetry.propagate import get_global_textmap, set_global_textmap
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from lanewatch import lane as L
from lanewatch.instrument import configure, use_lane
from lanewatch.instrument.testing import OTLPRecorder, attrs


@pytest.fixture(autouse=True)
def _restore_propagator() -> Iterator[None]:
    before = get_global_textmap()
    yield
    set_global_textmap(before)


def test_heartbeat_and_spans_over_http(recorder: OTLPRecorder) -> None:
    handle = configure(service_name="cart", lane="gray", endpoint=recorder.url, heartbeat_interval_s=0.2,
                       export_delay_ms=50, instance_id="cart-gray-1", handle_sigterm=False,
                       set_global_tracer_provider=False, environ={})
    try:
        # An idle instance: no spans at all, yet it reports itself live.
        recorder.wait_for(lambda r: len(r.points(L.HEARTBEAT_METRIC)) >= 2, timeout_s=5)
        beats = recorder.points(L.HEARTBEAT_METRIC)
        assert {p.value for p in beats} == {1}
        res = beats[0].resource
        assert (res[L.SERVICE_NAME_ATTR], res[L.INSTANCE_LANE_ATTR], res[L.INSTANCE_ID_ATTR]) == (
            "cart", "gray", "cart-gray-1")
        assert recorder.spans() == []
        with use_lane("gray"):
            handle.tracer().start_span("work").end()
        span = recorder.wait_for(lambda r: r.spans(), timeout_s=5)[0]
        assert span.attributes[L.REQUEST_LANE_ATTR] == "gray"
        assert span.resource[L.INSTANCE_LANE_ATTR] == "gray"
    finally:
        handle.shutdown()
    values = [p.value for p in recorder.points(L.HEARTBEAT_METRIC)]
    assert values[-1] == 0 and values.count(0) == 1 and set(values[:-1]) == {1}
    n = len(values)
    handle.shutdown()  # idempotent: no second leaving beat
    assert len(recorder.points(L.HEARTBEAT_METRIC)) == n


class _GrpcRecorder(metrics_service_pb2_grpc.MetricsServiceServicer, trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.metrics: list[Any] = []
        self.traces: list[Any] = []

    def Export(self, request: Any, context: Any) -> Any:
        if isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
            self.metrics.append(request)
            return metrics_service_pb2.ExportMetricsServiceResponse()
        self.traces.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_heartbeat_over_grpc() -> None:
    rec = _GrpcRecorder()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(rec, server)  # type: ignore[no-untyped-call]
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(rec, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        handle = configure(service_name="stock", lane="gray", endpoint=f"http://127.0.0.1:{port}",
                           protocol="grpc", heartbeat_interval_s=0.2, export_delay_ms=50, handle_sigterm=False,
                           set_global_tracer_provider=False, environ={})
        with use_lane("gray"):
            handle.tracer().start_span("work").end()
        handle.force_flush()
        handle.shutdown()
    finally:
        server.stop(0)
    points = [(attrs(rm.resource.attributes), m.gauge.data_points[0].as_int)
              for req in rec.metrics for rm in req.resource_metrics
              for sm in rm.scope_metrics for m in sm.metrics if m.name == L.HEARTBEAT_METRIC]
    assert points and points[-1][1] == 0
    assert points[-1][0][L.INSTANCE_LANE_ATTR] == "gray" and points[-1][0][L.SERVICE_NAME_ATTR] == "stock"
    spans = [s for req in rec.traces for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert [attrs(s.attributes)[L.REQUEST_LANE_ATTR] for s in spans] == ["gray"]
