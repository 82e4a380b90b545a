"""OTLP/gRPC receiver: ``TraceService/Export``, ``MetricsService/Export`` and ``LogsService/Export``.

The methods are registered as generic handlers with an identity request
deserializer: the request bytes go to the sink untouched, which parses them
once with its own reduced schema. Responses are the real OTLP response
messages (partial success when the sink rejected items). Errors follow the
OTLP specification: ``DecodeError`` -> ``INVALID_ARGUMENT`` (not retried),
``Overloaded`` -> ``UNAVAILABLE`` with a ``RetryInfo`` delay (retried), a
message above ``max_body_bytes`` -> ``RESOURCE_EXHAUSTED`` without ``RetryInfo``
(not retried, counted as ``oversize``), and so is ``TooLarge`` (too many spans or
points, counted by the sink), a sink bug -> ``INTERNAL``.

gRPC itself decompresses gzip requests. Messages up to twice ``max_body_bytes``
reach the handler, which refuses and counts the oversize ones; grpc refuses
larger ones (compressed or not) before any lanewatch code runs, so those are
seen by the client only.

With a token, a call without the metadata ``authorization: Bearer <token>`` is
``UNAUTHENTICATED`` (counted as ``unauthenticated``); with ``tls`` (PEM key and
certificate chain) the port is a TLS port.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from lanewatch import access
from lanewatch.collect.ingest import DecodeError, Overloaded, Signal, Sink, TooLarge
from lanewatch.collect.receivers.guard import SinkGuard

logger = logging.getLogger(__name__)

#: (service, signal, response class, rejected-count field)
_SERVICES: tuple[tuple[str, Signal, Any, str], ...] = (
    ("opentelemetry.proto.collector.trace.v1.TraceService", "traces",
     ExportTraceServiceResponse, "rejected_spans"),
    ("opentelemetry.proto.collector.metrics.v1.MetricsService", "metrics",
     ExportMetricsServiceResponse, "rejected_data_points"),
    ("opentelemetry.proto.collector.logs.v1.LogsService", "logs",
     ExportLogsServiceResponse, "rejected_log_records"),
)
_WORKERS = 8
_GRACE_S = 0.5


def _identity(data: bytes) -> bytes:
    return data


def _retry_trailers(code: grpc.StatusCode, message: str,
                    retry_after_s: float) -> tuple[tuple[str, bytes], ...]:
    """RetryInfo both where the OTel Python exporter reads it and as standard status details."""
    try:
        seconds = max(1, math.ceil(retry_after_s))
    except (TypeError, ValueError, OverflowError):
        seconds = 1
    info = RetryInfo(retry_delay=Duration(seconds=seconds))
    detail = AnyProto()
    detail.Pack(info)
    status = Status(code=code.value[0], message=message, details=[detail])
    return (("google.rpc.retryinfo-bin", info.SerializeToString()),
            ("grpc-status-details-bin", status.SerializeToString()))


class OtlpGrpcReceiver:
    """OTLP/gRPC receiver on a grpcio server with a thread pool.

    ``start()`` binds (port 0 picks a free port, see :attr:`port`) and serves in
    grpc's threads; ``stop()`` ends in-flight calls after a short grace period,
    frees the port and joins the worker threads. ``token``: the bearer token every call
    must carry (empty: none); ``tls``: (private key PEM, certificate chain PEM) to serve TLS.
    """

    def __init__(self, sink: Sink, host: str = "127.0.0.1", port: int = 4317,
                 max_body_bytes: int = 16 << 20, *, token: str = "",
                 tls: tuple[bytes, bytes] | None = None) -> None:
        self._sink, self._host, self._port = sink, host, port
        self._max_body_bytes = max_body_bytes
        self._token, self._tls = token, tls
        self._server: grpc.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._guard = SinkGuard(sink, logger, "OTLP/gRPC export")

    @property
    def port(self) -> int:
        """The bound port once started (the configured one before)."""
        return self._port

    def start(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            handlers = [grpc.method_handlers_generic_handler(service, {
                "Export": grpc.unary_unary_rpc_method_handler(
                    self._handler(signal, cls, field), request_deserializer=_identity,
                    response_serializer=cls.SerializeToString)})
                for service, signal, cls, field in _SERVICES]
            limit = min(2 * self._max_body_bytes, 2**31 - 1)
            executor = ThreadPoolExecutor(_WORKERS, thread_name_prefix="otlp-grpc")
            server = grpc.server(executor, handlers=handlers, options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.so_reuseport", 0),  # a busy port is an error, not a silent share
            ])
            host = f"[{self._host}]" if ":" in self._host else self._host
            try:
                address = f"{host}:{self._port}"
                port = (server.add_secure_port(address, grpc.ssl_server_credentials([self._tls]))
                        if self._tls is not None else server.add_insecure_port(address))
            except RuntimeError:  # newer grpcio raises where older ones returned 0
                port = 0
            if port == 0:
                executor.shutdown(wait=False)
                raise OSError(f"OTLP/gRPC receiver cannot bind {host}:{self._port}") from None
            server.start()
            self._server, self._executor, self._port = server, executor, port
        logger.info("OTLP/gRPC receiver listening on %s:%d", self._host, self._port)

    def stop(self) -> None:
        with self._lock:
            server, executor = self._server, self._executor
            self._server = self._executor = None
            if server is None or executor is None:
                return
            server.stop(grace=_GRACE_S).wait(timeout=_GRACE_S + 2.0)
            executor.shutdown(wait=True)
        logger.info("OTLP/gRPC receiver on port %d stopped", self._port)

    def _handler(self, signal: Signal, cls: Any,
                 field: str) -> Callable[[bytes, grpc.ServicerContext], Any]:
        def export(body: bytes, context: grpc.ServicerContext) -> Any:
            if self._token:
                given = next((str(v) for k, v in context.invocation_metadata() or ()
                              if k == "authorization"), None)
                if not access.bearer_ok(given, self._token):
                    self._guard.count_drop(access.REFUSED_OTLP)
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token: send "
                                  "the metadata authorization: Bearer <token>")
            if len(body) > self._max_body_bytes:
                self._guard.count_drop("oversize")
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"message of {len(body)} bytes "
                              f"exceeds the limit of {self._max_body_bytes}")
            trailers: tuple[tuple[str, bytes], ...] = ()
            try:
                result = self._sink.ingest(signal, body, "proto")
            except TooLarge as e:  # counted by the sink; no RetryInfo: not retryable
                code, message = grpc.StatusCode.RESOURCE_EXHAUSTED, str(e)
            except DecodeError as e:
                code, message = grpc.StatusCode.INVALID_ARGUMENT, str(e) or "invalid request"
            except Overloaded as e:
                code, message = grpc.StatusCode.UNAVAILABLE, str(e) or "overloaded, retry later"
                trailers = _retry_trailers(code, message, e.retry_after_s)
            except Exception as e:  # noqa: BLE001 - a sink bug must not escape into grpc's threads
                self._guard.log_internal(e)
                self._guard.count_drop("internal_error")
                code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(e).__name__}: {e}"
            else:
                response = cls()
                if result.rejected > 0 or result.message:
                    setattr(response.partial_success, field, max(result.rejected, 0))
                    response.partial_success.error_message = result.message
                return response
            if trailers:
                context.set_trailing_metadata(trailers)
            context.abort(code, message)

        return export
