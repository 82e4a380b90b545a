"""OTLP/HTTP receiver against the real SDK exporter and hand-made HTTP requests."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import time
import zlib
from collections.abc import Iterator

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lanewatch.collect.ingest import DecodeError, IngestResult, Overloaded
from lanewatch.collect.receivers.http import OtlpHttpReceiver
from lanewatch.testing import RecordingSink

MAX_BODY = 1 << 20
PROTO = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def receiver(sink: RecordingSink) -> Iterator[OtlpHttpReceiver]:
    r = OtlpHttpReceiver(sink, port=0, max_body_bytes=MAX_BODY)
    r.start()
    yield r
    r.stop()


def post(port: int, body: bytes, headers: dict[str, str], path: str = "/v1/traces",
         method: str = "POST") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def raw(port: int, data: bytes) -> http.client.HTTPResponse:
    """Send bytes exactly as given; parse the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        resp.read()
        return resp


def spans(n: int = 3) -> list:  # type: ignore[type-arg]
    memory = InMemorySpanExporter()
    resource = Resource.create({"service.name": "A", "service.lane": "gray"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for i in range(n):
        with tracer.start_as_current_span(f"op{i}", attributes={"lane": "gray"}):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_sdk_exporter_delivers(receiver: OtlpHttpReceiver, sink: RecordingSink,
                               compression: Compression) -> None:
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{receiver.port}/v1/traces",
                                compression=compression, timeout=5)
    assert exporter.export(spans(3)) == SpanExportResult.SUCCESS
    exporter.shutdown()  # type: ignore[no-untyped-call]
    assert [(s, f) for s, _, f in sink.calls] == [("traces", "proto")]
    request = ExportTraceServiceRequest.FromString(sink.bodies[0])  # decompressed for the sink
    names = [s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert sorted(names) == ["op0", "op1", "op2"]
    assert sink.drops == []


def test_json_with_charset(receiver: OtlpHttpReceiver, sink: RecordingSink) -> None:
    body = b'{"resourceSpans": []}'
    resp = post(receiver.port, body, {"Content-Type": "application/json; charset=utf-8"})
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/json"
    assert sink.calls == [("traces", len(body), "json")]


def test_metrics_path(receiver: OtlpHttpReceiver, sink: RecordingSink) -> None:
    assert post(receiver.port, b"", PROTO, path="/v1/metrics").status == 200
    assert sink.calls == [("metrics", 0, "proto")]


def test_chunked_by_hand(receiver: OtlpHttpReceiver, sink: RecordingSink) -> None:
    payload = gzip.compress(b"x" * 5000)
    chunks = [payload[:100], payload[100:]]
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\nX-T: 1\r\n\r\n"
    head = (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert raw(receiver.port, head + body).status == 200
    assert sink.calls == [("traces", 5000, "proto")]


def test_chunked_oversize(receiver: OtlpHttpReceiver, sink: RecordingSink) -> None:
    chunk = b"%x\r\n%s\r\n" % (MAX_BODY // 2 + 1, b"a" * (MAX_BODY // 2 + 1))
    head = (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    resp = raw(receiver.port, head + chunk * 2 + b"0\r\n\r\n")
    assert resp.status == 413
    assert sink.calls == [] and sink.drops == [("oversize", 1)]


def test_bad_content_type(receiver: OtlpHttpReceiver, sink: RecordingSink) -> None:
    resp = post(receiver.port, b"hello", {"Content-Type": "text/plain"})
    assert resp.status == 415
    assert sink.calls == [] and sink.drops == [("bad_content_type", 1)]


def test_unknown_encoding(receiver: OtlpHttpReceiver, sink: RecordingSink) -> None:
    resp = post(receiver.port, b"x", {**PROTO, "Content-Encoding": "br"})
    assert resp.status == 415
    assert sink.drops == [("bad_encoding", 1)]


def test_deflate(receiver: OtlpHttpReceiver, sink: RecordingSink) -> None:
    assert post(receiver.port, zlib.compress(b"y" * 300), {**PROTO, "Content-Encoding": "deflate"}
                ).status == 200
    assert sink.calls == [("traces", 300, "proto")]


def test_oversize_content_length_is_not_read(receiver: OtlpHttpReceiver,
                                             sink: RecordingSink) -> None:
    head = (f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            f"Content-Length: {100 * MAX_BODY}\r\n\r\n").encode()
    t0 = time.monotonic()
    resp = raw(receiver.port, head + b"partial")
    assert resp.status == 413 and resp.getheader("Connection") == "close"
    assert time.monotonic() - t0 < 3
    assert sink.calls == [] and sink.drops == [("oversize", 1)]


def test_gzip_bomb(receiver: OtlpHttpReceiver, sink: RecordingSink) -> None:
    bomb = zlib.compressobj(1, zlib.DEFLATED, 31)
    body = bomb.compress(bytes(50 << 20)) + bomb.flush()
    resp = post(receiver.port, body, {**PROTO, "Content-Encoding": "gzip"})
    assert resp.status == 413
    assert sink.calls == [] and sink.drops == [("oversize", 1)]


@pytest.mark.parametrize("body", [b"\x1f\x8bnot gzip at all", gzip.compress(b"z" * 1000)[:-12]])
def test_corrupt_gzip(receiver: OtlpHttpReceiver, sink: RecordingSink, body: bytes) -> None:
    resp = post(receiver.port, body, {**PROTO, "Content-Encoding": "gzip"})
    assert resp.status == 400
    assert sink.drops == [("decompress_error", 1)]


def test_decode_error_proto_and_json(receiver: OtlpHttpReceiver, sink: RecordingSink) -> None:
    sink.error = DecodeError("span 3: trace_id must be 16 bytes")
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    conn.request("POST", "/v1/traces", body=b"\x01", headers=PROTO)
    resp = conn.getresponse()
    assert resp.status == 400 and resp.getheader("Content-Type") == "application/x-protobuf"
    status = Status.FromString(resp.read())
    assert status.code == 3 and status.message == "span 3: trace_id must be 16 bytes"
    conn.request("POST", "/v1/traces", body=b"{", headers={"Content-Type": "application/json"})
    resp = conn.getresponse()  # same connection: a 400 after a read body keeps it alive
    assert resp.status == 400
    assert json.loads(resp.read()) == {"code": 3, "message": "span 3: trace_id must be 16 bytes"}
    conn.close()


def test_not_found_and_method_not_allowed(receiver: OtlpHttpReceiver, sink: RecordingSink) -> None:
    assert post(receiver.port, b"x", PROTO, path="/v1/profiles").status == 404
    assert sink.drops == [("unknown_path", 1)]
    resp = post(receiver.port, b"", {}, method="GET")
    assert resp.status == 405 and resp.getheader("Allow") == "POST"
    assert post(receiver.port, b"", {}, path="/", method="GET").status == 404
    assert sink.calls == []


def test_partial_success(receiver: OtlpHttpReceiver, sink: RecordingSink) -> None:
    sink.result = IngestResult(accepted=7, rejected=3, message="3 spans without trace id")
    resp = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    resp.request("POST", "/v1/traces", body=b"", headers=PROTO)
    msg = ExportTraceServiceResponse.FromString(resp.getresponse().read())
    assert msg.partial_success.rejected_spans == 3
    assert msg.partial_success.error_message == "3 spans without trace id"
    resp.request("POST", "/v1/metrics", body=b"", headers=PROTO)
    metrics = ExportMetricsServiceResponse.FromString(resp.getresponse().read())
    assert metrics.partial_success.rejected_data_points == 3
    resp.request("POST", "/v1/traces", body=b"{}", headers={"Content-Type": "application/json"})
    doc = json.loads(resp.getresponse().read())
    assert doc == {"partialSuccess": {"rejectedSpans": "3",
                                      "errorMessage": "3 spans without trace id"}}
    resp.request("POST", "/v1/metrics", body=b"{}", headers={"Content-Type": "application/json"})
    assert json.loads(resp.getresponse().read())["partialSuccess"]["rejectedDataPoints"] == "3"
    resp.request("POST", "/v1/logs", body=b"", headers=PROTO)
    logs = ExportLogsServiceResponse.FromString(resp.getresponse().read())
    assert logs.partial_success.rejected_log_records == 3
    resp.request("POST", "/v1/logs", body=b"{}", headers={"Content-Type": "application/json"})
    assert json.loads(resp.getresponse().read())["partialSuccess"]["rejectedLogRecords"] == "3"
    resp.close()
    assert [c[0] for c in sink.calls] == ["traces", "metrics", "traces", "metrics", "logs", "logs"]


@pytest.mark.parametrize(("after", "header"), [(2.5, "3"), (0.01, "1")])
def test_overloaded(receiver: OtlpHttpReceiver, sink: RecordingSink, after: float,
                    header: str) -> None:
    sink.error = Overloaded("queue full", retry_after_s=after)
    resp = post(receiver.port, b"", PROTO)
    assert resp.status == 503 and resp.getheader("Retry-After") == header


def test_sink_crash_is_500_and_server_survives(receiver: OtlpHttpReceiver,
                                               sink: RecordingSink) -> None:
    sink.error = KeyError("boom")
    resp = post(receiver.port, b"", {"Content-Type": "application/json"})
    assert resp.status == 500 and sink.drops == [("internal_error", 1)]
    sink.error = None
    assert post(receiver.port, b"", PROTO).status == 200


def test_keep_alive(receiver: OtlpHttpReceiver, sink: RecordingSink) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    socks = set()
    for i in range(5):
        conn.request("POST", "/v1/traces", body=b"a" * i, headers=PROTO)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b""
        socks.add(id(conn.sock))
    conn.close()
    assert len(socks) == 1 and len(sink.calls) == 5


def test_expect_continue_oversize(receiver: OtlpHttpReceiver, sink: RecordingSink) -> None:
    head = (f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            f"Expect: 100-continue\r\nContent-Length: {2 * MAX_BODY}\r\n\r\n").encode()
    assert raw(receiver.port, head).status == 413
    assert sink.drops == [("oversize", 1)]


def test_client_leaves_mid_body(receiver: OtlpHttpReceiver, sink: RecordingSink,
                                caplog: pytest.LogCaptureFixture) -> None:
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"resource")
    deadline = time.monotonic() + 5
    while not sink.drops and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.drops == [("incomplete_body", 1)] and sink.calls == []
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")]
    assert post(receiver.port, b"", PROTO).status == 200


def test_stop_closes_everything(sink: RecordingSink) -> None:
    before = set(threading.enumerate())
    r = OtlpHttpReceiver(sink, port=0)
    r.start()
    idle = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    idle.request("POST", "/v1/traces", body=b"", headers=PROTO)
    assert idle.getresponse().read() == b""  # leaves an idle keep-alive connection open
    t0 = time.monotonic()
    r.stop()
    r.stop()
    assert time.monotonic() - t0 < 3
    assert set(threading.enumerate()) <= before
    with socket.socket() as s:  # the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", r.port))
    idle.close()
