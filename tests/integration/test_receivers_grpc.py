"""OTLP/gRPC receiver against the real SDK exporters and a raw grpc channel."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import grpc
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lanewatch.collect.ingest import DecodeError, IngestResult, Overloaded
from lanewatch.collect.receivers.grpc import OtlpGrpcReceiver
from lanewatch.testing import RecordingSink

MAX_BODY = 1 << 20
TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
METRICS = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def receiver(sink: RecordingSink) -> Iterator[OtlpGrpcReceiver]:
    r = OtlpGrpcReceiver(sink, port=0, max_body_bytes=MAX_BODY)
    r.start()
    yield r
    r.stop()


@pytest.fixture
def channel(receiver: OtlpGrpcReceiver) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{receiver.port}",
                               options=[("grpc.max_send_message_length", -1)]) as ch:
        yield ch


def call(channel: grpc.Channel, method: str, body: bytes,
         compression: grpc.Compression | None = None) -> bytes:
    stub = channel.unary_unary(method, request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
    return stub(body, timeout=5, compression=compression)  # type: ignore[no-any-return]


@pytest.mark.parametrize("compression", [None, grpc.Compression.Gzip])
def test_sdk_span_exporter(receiver: OtlpGrpcReceiver, sink: RecordingSink,
                           compression: grpc.Compression | None) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "B"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for name in ("a", "b"):
        with provider.get_tracer("t").start_as_current_span(name):
            pass
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{receiver.port}", insecure=True,
                                compression=compression, timeout=5)
    assert exporter.export(list(memory.get_finished_spans())) == SpanExportResult.SUCCESS
    exporter.shutdown()
    provider.shutdown()
    assert [(s, f) for s, _, f in sink.calls] == [("traces", "proto")]
    request = ExportTraceServiceRequest.FromString(sink.bodies[0])
    assert sorted(s.name for s in request.resource_spans[0].scope_spans[0].spans) == ["a", "b"]


def test_sdk_metric_exporter(receiver: OtlpGrpcReceiver, sink: RecordingSink) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader],
                             resource=Resource.create({"service.name": "C"}))
    provider.get_meter("m").create_counter("lanewatch.instance.up").add(1)
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    exporter = OTLPMetricExporter(endpoint=f"127.0.0.1:{receiver.port}", insecure=True, timeout=5)
    assert exporter.export(data) == MetricExportResult.SUCCESS
    exporter.shutdown()
    assert [(s, f) for s, _, f in sink.calls] == [("metrics", "proto")]
    request = ExportMetricsServiceRequest.FromString(sink.bodies[0])
    names = [m.name for rm in request.resource_metrics for sm in rm.scope_metrics
             for m in sm.metrics]
    assert names == ["lanewatch.instance.up"]


def test_partial_success(channel: grpc.Channel, sink: RecordingSink) -> None:
    sink.result = IngestResult(accepted=1, rejected=2, message="2 spans without ids")
    traces = ExportTraceServiceResponse.FromString(call(channel, TRACES, b""))
    assert traces.partial_success.rejected_spans == 2
    assert traces.partial_success.error_message == "2 spans without ids"
    metrics = ExportMetricsServiceResponse.FromString(call(channel, METRICS, b""))
    assert metrics.partial_success.rejected_data_points == 2
    logs = ExportLogsServiceResponse.FromString(call(channel, LOGS, b""))
    assert logs.partial_success.rejected_log_records == 2
    assert [c[0] for c in sink.calls] == ["traces", "metrics", "logs"]
    sink.result = IngestResult(accepted=3)
    assert not ExportTraceServiceResponse.FromString(call(channel, TRACES, b"")).HasField(
        "partial_success")


def rpc_error(channel: grpc.Channel, body: bytes = b"",
              compression: grpc.Compression | None = None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(channel, TRACES, body, compression)
    return info.value


def test_error_codes(channel: grpc.Channel, sink: RecordingSink) -> None:
    sink.error = DecodeError("span 0: bad trace id")
    err = rpc_error(channel)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "span 0: bad trace id"

    sink.error = Overloaded("queue full", retry_after_s=2.2)
    err = rpc_error(channel)
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    trailers = dict(err.trailing_metadata())
    assert RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]).retry_delay.seconds == 3
    status = Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0] and status.details[0].Is(
        RetryInfo.DESCRIPTOR)

    sink.error = KeyError("boom")
    err = rpc_error(channel)
    assert err.code() == grpc.StatusCode.INTERNAL
    assert "KeyError" in err.details()
    assert sink.drops == [("internal_error", 1)]
    sink.error = None
    call(channel, TRACES, b"")  # the server survived


def test_oversize(channel: grpc.Channel, sink: RecordingSink) -> None:
    err = rpc_error(channel, bytes(MAX_BODY + 1))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    err = rpc_error(channel, bytes(MAX_BODY + 1000), grpc.Compression.Gzip)  # small on the wire
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sink.drops == [("oversize", 1), ("oversize", 1)]
    err = rpc_error(channel, bytes(3 * MAX_BODY))  # refused by grpc itself, before our code
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sink.calls == []
    assert call(channel, TRACES, bytes(MAX_BODY)) == b""  # exactly the limit is fine


def test_stop_frees_port(sink: RecordingSink) -> None:
    before = set(threading.enumerate())
    r = OtlpGrpcReceiver(sink, port=0)
    r.start()
    with grpc.insecure_channel(f"127.0.0.1:{r.port}") as ch:
        call(ch, TRACES, b"")
    r.stop()
    r.stop()
    # only the receiver's own threads are checked: other tests' threads may come and go
    assert [t.name for t in set(threading.enumerate()) - before if t.name.startswith("otlp-grpc")] == []
    with socket.socket() as s:
        s.bind(("127.0.0.1", r.port))
    again = OtlpGrpcReceiver(sink, port=r.port)  # and a new receiver can take it
    again.start()
    busy = OtlpGrpcReceiver(sink, port=r.port)
    with pytest.raises(OSError):
        busy.start()
    again.stop()
