"""Test helpers shipped for users: a recording OTLP/HTTP receiver, a header sink, flat records.

:class:`OTLPRecorder` listens on a loopback port, accepts OTLP/HTTP exports
(``/v1/traces``, ``/v1/metrics``; protobuf or JSON; gzip; ``Content-Length`` or
chunked, as Node's exporters send) and keeps what it got as frozen records, so
a test can check the lanes its own services put on the wire::

    with OTLPRecorder() as rec:
        handle = configure(service_name="cart", lane="gray", endpoint=rec.url)
        ...
        spans = rec.wait_for(lambda r: len(r.spans()) >= 2)
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def any_value(v: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a plain Python value."""
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attrs(v.kvlist_value.values)
    return getattr(v, kind) if kind else None


def attrs(kvs: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` list -> dict."""
    return {kv.key: any_value(kv.value) for kv in kvs if isinstance(kv, KeyValue)}


@dataclass(frozen=True)
class RecordedSpan:
    """One exported span, flattened."""

    service: str
    resource: dict[str, Any]
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedPoint:
    """One exported number data point (gauge or sum), flattened."""

    metric: str
    value: float
    resource: dict[str, Any]
    time_unix_nano: int


def _hex_ids_to_base64(obj: Any) -> Any:
    """OTLP/JSON carries ids as hex; protobuf's JSON mapping wants base64."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str):
                out[k] = base64.b64encode(bytes.fromhex(v)).decode()
            else:
                out[k] = _hex_ids_to_base64(v)
        return out
    if isinstance(obj, list):
        return [_hex_ids_to_base64(x) for x in obj]
    return obj


class HeaderSink:
    """An uninstrumented HTTP server on ``127.0.0.1`` that records each request's headers (lower-case keys).

    Put it at the end of a chain to see what a service really sends:
    ``x-mse-tag``, ``baggage``, pass-through headers.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests: list[dict[str, str]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                sink.requests.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class OTLPRecorder:
    """A minimal OTLP/HTTP receiver on ``127.0.0.1`` that records what it gets."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="otlp-recorder", daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43123`` (exporters add ``/v1/traces``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def spans(self) -> list[RecordedSpan]:
        """Every span received so far, in arrival order."""
        out = []
        with self._lock:
            requests = list(self.traces)
        for req in requests:
            for rs in req.resource_spans:
                res = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append(RecordedSpan(
                            str(res.get("service.name", "")), res, s.name, s.kind, s.trace_id.hex(),
                            s.span_id.hex(), s.parent_span_id.hex(), attrs(s.attributes)))
        return out

    def points(self, metric: str | None = None) -> list[RecordedPoint]:
        """Every gauge/sum data point received so far (of ``metric`` if given)."""
        out = []
        with self._lock:
            requests = list(self.metrics)
        for req in requests:
            for rm in req.resource_metrics:
                res = attrs(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if metric is not None and m.name != metric:
                            continue
                        data = m.gauge if m.HasField("gauge") else m.sum
                        for p in data.data_points:
                            value = p.as_int if p.HasField("as_int") else p.as_double
                            out.append(RecordedPoint(m.name, value, res, p.time_unix_nano))
        return out

    def wait_for(self, predicate: Callable[[OTLPRecorder], Any], timeout_s: float = 10.0) -> Any:
        """Poll ``predicate(self)`` until it is truthy; return its value or raise ``TimeoutError``."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"OTLP recorder: condition not met in {timeout_s}s ({self.errors[-3:]})")
            time.sleep(0.05)

    def _record(self, path: str, body: bytes, content_type: str) -> None:
        msg: ExportTraceServiceRequest | ExportMetricsServiceRequest
        msg = ExportTraceServiceRequest() if path.endswith("/v1/traces") else ExportMetricsServiceRequest()
        if "json" in content_type:
            json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), msg, ignore_unknown_fields=True)
        else:
            msg.ParseFromString(body)
        with self._lock:
            if isinstance(msg, ExportTraceServiceRequest):
                self.traces.append(msg)
            else:
                self.metrics.append(msg)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        chunk = self.rfile.read(size)
                        self.rfile.readline()
                        if size == 0:
                            break
                        chunks.append(chunk)
                    body = b"".join(chunks)
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    body = gzip.decompress(body)
                return body

            def do_POST(self) -> None:
                ctype = self.headers.get("Content-Type", "application/x-protobuf")
                try:
                    path = self.path.split("?")[0]
                    if not path.endswith(("/v1/traces", "/v1/metrics")):
                        raise ValueError(f"unknown path {path}")
                    recorder._record(path, self._body(), ctype)
                    status, reply = 200, b"{}" if "json" in ctype else b""
                except Exception as exc:  # noqa: BLE001 - answer 400, keep the error
                    recorder.errors.append(repr(exc))
                    status, reply = 400, b""
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        return Handler
