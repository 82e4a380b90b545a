"""OTLP/HTTP receiver: ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs``, protobuf or JSON.

Only the wire lives here: routing, content type, content encoding, size limits,
``Content-Length`` and chunked bodies, and mapping the sink's answer onto the
OTLP/HTTP response (200 with optional partial success; 400/413/415/5xx with a
``google.rpc.Status`` body in the request's format; 503 with ``Retry-After``).
Decoding is the sink's job. Every request refused before the sink sees it is
reported with ``sink.count_drop(reason)``; POSTs to other paths count as
``unknown_path``. With a token, a
request without ``Authorization: Bearer <token>`` is 401 (``unauthenticated``); with a TLS
context every connection is TLS (a failed handshake counts as ``tls_handshake``).
"""

from __future__ import annotations

import logging
import math
import socket
import socketserver
import ssl
import sys
import threading
import time
import zlib
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from lanewatch import access
from lanewatch.collect.ingest import (
    DecodeError,
    Format,
    IngestResult,
    Overloaded,
    Signal,
    Sink,
    TooLarge,
)
from lanewatch.collect.receivers.guard import SinkGuard
from lanewatch.collect.schema import varint

logger = logging.getLogger(__name__)

_PATHS: dict[str, Signal] = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}
_FORMATS: dict[str, Format] = {"application/x-protobuf": "proto", "application/json": "json"}
_CONTENT_TYPES: dict[str, str] = {"proto": "application/x-protobuf", "json": "application/json"}
_RESPONSES: dict[str, tuple[Any, str]] = {
    "traces": (ExportTraceServiceResponse, "rejected_spans"),
    "metrics": (ExportMetricsServiceResponse, "rejected_data_points"),
    "logs": (ExportLogsServiceResponse, "rejected_log_records"),
}
_ENDPOINTS = ", ".join(_PATHS)
_EMPTY_OK: dict[str, bytes] = {"proto": b"", "json": b"{}"}
#: HTTP status -> google.rpc.Code for error bodies.
_RPC_CODES = {400: 3, 401: 16, 404: 5, 405: 12, 411: 3, 413: 8, 414: 8, 415: 3, 431: 8, 500: 13, 501: 12, 503: 14,
              505: 12}
#: Errors the standard library's HTTP parser answers itself (``send_error``) -> the reason counted.
_PARSER_ERRORS = {400: "bad_request", 414: "uri_too_long", 431: "header_too_large",
                  501: "unsupported_method", 505: "unsupported_version"}
_LINGER_S = 1.0  # after refusing an unread body, drain it this long so the client reads our answer


class _Refused(Exception):
    def __init__(self, status: int, message: str, reason: str | None = None, close: bool = False,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason
        self.close, self.headers = close, headers


class _Gone(Exception):
    """The client went away before sending the whole body."""


def _status_body(fmt: Format, status: int, message: str) -> bytes:
    code = _RPC_CODES.get(status, 2)
    if fmt == "json":
        return orjson.dumps({"code": code, "message": message})
    try:
        from google.rpc.status_pb2 import Status
    except ImportError:  # googleapis-common-protos missing: same wire bytes by hand
        raw = message.encode()
        return b"\x08" + varint(code) + b"\x12" + varint(len(raw)) + raw
    return bytes(Status(code=code, message=message).SerializeToString())


def _success_body(signal: Signal, fmt: Format, result: IngestResult) -> bytes:
    if result.rejected <= 0 and not result.message:
        return _EMPTY_OK[fmt]
    cls, field = _RESPONSES[signal]
    msg = cls()
    setattr(msg.partial_success, field, max(result.rejected, 0))
    msg.partial_success.error_message = result.message
    if fmt == "proto":
        return bytes(msg.SerializeToString())
    return str(json_format.MessageToJson(msg, indent=None)).encode()


def _codings(header: str) -> list[str]:
    """Content codings in the order they must be undone; 415 for any we cannot undo."""
    codings = [c.strip().lower() for c in header.split(",") if c.strip()]
    for c in codings:
        if c not in ("identity", "gzip", "x-gzip", "deflate"):
            raise _Refused(415, f"unsupported Content-Encoding {c!r}: send gzip, deflate or "
                           "identity", "bad_encoding", close=True)
    return [c for c in reversed(codings) if c != "identity"]


def _decompress(body: bytes, codings: list[str], limit: int) -> bytes:
    for coding in codings:
        try:
            if coding == "deflate":
                try:
                    body = _inflate(body, zlib.MAX_WBITS, limit)
                except zlib.error:  # some clients send raw deflate without the zlib header
                    body = _inflate(body, -zlib.MAX_WBITS, limit)
            else:
                body = _inflate(body, 16 + zlib.MAX_WBITS, limit)
        except zlib.error as e:
            raise _Refused(400, f"corrupt {coding} body: {e}", "decompress_error") from None
    return body


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    """Inflate at most ``limit`` bytes (413 beyond: a zip bomb never fills memory)."""
    out: list[bytes] = []
    total = 0
    while True:  # gzip allows several concatenated members
        d = zlib.decompressobj(wbits)
        chunk = d.decompress(data, limit - total + 1)
        total += len(chunk)
        out.append(chunk)
        if total > limit:
            raise _Refused(413, f"decompressed body exceeds the limit of {limit} bytes",
                           "oversize")
        if not d.eof:
            raise zlib.error("truncated stream")
        data = d.unused_data
        if not data or wbits <= zlib.MAX_WBITS:
            return b"".join(out)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lanewatch"
    timeout = 120.0  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True
    server: _Server
    _pending = False  # a request body is (maybe) unread on the socket
    _close_after = False  # the request's framing obliges us to close after answering

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What ``http.server`` refuses itself (a malformed request line, a header too long,
        too many headers, an unknown method or HTTP version): a counted google.rpc.Status in
        JSON, like every other refusal, and the connection closed."""
        self.server.guard.count_drop(_PARSER_ERRORS.get(code, "http_error"))
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        text = f"{message or phrase}: {explain}" if explain else (message or phrase)
        try:
            self._reply(code, "json", _status_body("json", code, text), close=True)
        except OSError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a line per request would cost more than parsing it."""

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):  # handshake here, not in the accepting thread
            self.request.settimeout(self.timeout)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.server.guard.count_drop(access.REFUSED_TLS)
                raise
        super().setup()

    def do_POST(self) -> None:
        fmt: Format = "json"
        self._pending = "Transfer-Encoding" in self.headers or \
            self.headers.get("Content-Length", "0").strip() != "0"
        try:
            if not access.bearer_ok(self.headers.get("Authorization"), self.server.token):
                raise _Refused(401, "missing or wrong bearer token: send Authorization: Bearer <token> "
                               "(OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>)",
                               access.REFUSED_OTLP, close=True, headers=(("WWW-Authenticate", "Bearer"),))
            path = self.path.split("?", 1)[0]
            signal = _PATHS.get(path)
            if signal is None:
                raise _Refused(404, f"no OTLP endpoint at {path}: use {_ENDPOINTS}",
                               "unknown_path", close=True)
            ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            fmt = _FORMATS.get(ctype, "json")
            if ctype not in _FORMATS:
                raise _Refused(415, f"unsupported Content-Type {ctype!r}: send "
                               "application/x-protobuf or application/json",
                               "bad_content_type", close=True)
            codings = _codings(self.headers.get("Content-Encoding") or "")
            body = self._read_body()
            self._export(signal, fmt, _decompress(body, codings, self.server.max_body_bytes))
        except _Refused as r:
            if r.reason:
                self.server.guard.count_drop(r.reason)
            self._reply(r.status, fmt, _status_body(fmt, r.status, r.message), r.headers, r.close)
        except _Gone:
            self.server.guard.count_drop("incomplete_body")
            self.close_connection = True
        except OSError:  # the client left while we answered
            self.close_connection = True

    def _not_allowed(self) -> None:
        self._pending = "Transfer-Encoding" in self.headers or \
            self.headers.get("Content-Length", "0").strip() != "0"
        path = self.path.split("?", 1)[0]
        status, headers = (405, (("Allow", "POST"),)) if path in _PATHS else (404, ())
        message = f"{self.command} {path}: OTLP takes POST {_ENDPOINTS}"
        try:
            self._reply(status, "json", _status_body("json", status, message), headers,
                        close=self._pending)
        except OSError:
            self.close_connection = True

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def handle_expect_100(self) -> bool:
        """Refuse an oversize body before the client sends it."""
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.server.max_body_bytes:
            self.server.guard.count_drop("oversize")
            message = f"body of {length} bytes exceeds the limit of {self.server.max_body_bytes}"
            self._reply(413, "json", _status_body("json", 413, message), close=True)
            return False
        return super().handle_expect_100()

    def _framing(self) -> None:
        """RFC 9112 §6: refuse what cannot be framed safely (411 when no length is given at
        all, 400 for conflicting lengths or chunked in HTTP/1.0); a request with both
        ``Transfer-Encoding`` and ``Content-Length`` is read chunked and the connection closed."""
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or ()}
        chunked = "Transfer-Encoding" in self.headers
        if len(lengths) > 1:
            raise _Refused(400, f"conflicting Content-Length values {sorted(lengths)}", "bad_request",
                           close=True)
        if chunked and self.request_version == "HTTP/1.0":
            raise _Refused(400, "Transfer-Encoding in an HTTP/1.0 request: send Content-Length",
                           "bad_request", close=True)
        if not chunked and not lengths:
            self._pending = True  # a body may follow anyway: drained before closing
            raise _Refused(411, "Content-Length required: send Content-Length or "
                           "Transfer-Encoding: chunked", "length_required", close=True)
        self._close_after = chunked and bool(lengths)

    def _read_body(self) -> bytes:
        limit = self.server.max_body_bytes
        self._framing()
        try:
            if "Transfer-Encoding" in self.headers:
                if self.headers["Transfer-Encoding"].strip().lower() != "chunked":
                    raise _Refused(400, "unsupported Transfer-Encoding: send chunked or "
                                   "Content-Length", "bad_request", close=True)
                body = self._read_chunked(limit)
            else:
                raw = self.headers.get("Content-Length", "0").strip()
                if not raw.isdigit():
                    raise _Refused(400, f"bad Content-Length {raw!r}", "bad_request", close=True)
                n = int(raw)
                if n > limit:
                    raise _Refused(413, f"body of {n} bytes exceeds the limit of {limit}",
                                   "oversize", close=True)
                body = self.rfile.read(n)
                if len(body) < n:
                    raise _Gone
        except OSError:
            raise _Gone from None
        self._pending = False
        return body

    def _read_chunked(self, limit: int) -> bytes:
        rfile, parts, total = self.rfile, [], 0
        while True:
            line = rfile.readline(1024)
            if not line:
                raise _Gone
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                size = -1
            if size < 0 or not line.endswith(b"\n"):
                raise _Refused(400, "malformed chunk size line", "bad_request", close=True)
            if size == 0:
                break
            total += size
            if total > limit:
                raise _Refused(413, f"chunked body exceeds the limit of {limit} bytes",
                               "oversize", close=True)
            chunk = rfile.read(size)
            if len(chunk) < size or not rfile.readline(3):
                raise _Gone
            parts.append(chunk)
        for _ in range(100):  # trailer section, ignored
            line = rfile.readline(8192)
            if not line:
                raise _Gone
            if line in (b"\r\n", b"\n"):
                return b"".join(parts)
        raise _Refused(400, "too many trailer lines", "bad_request", close=True)

    def _export(self, signal: Signal, fmt: Format, body: bytes) -> None:
        try:
            result = self.server.sink.ingest(signal, body, fmt)
        except TooLarge as e:  # counted by the sink
            raise _Refused(413, str(e)) from None
        except DecodeError as e:
            raise _Refused(400, str(e) or "invalid OTLP export request") from None
        except Overloaded as e:
            try:
                retry = str(max(1, math.ceil(e.retry_after_s)))
            except (TypeError, ValueError, OverflowError):
                retry = "1"
            raise _Refused(503, str(e) or "overloaded, retry later",
                           headers=(("Retry-After", retry),)) from None
        except Exception as e:  # noqa: BLE001 - a sink bug must not kill the connection thread
            self.server.guard.log_internal(e)
            raise _Refused(500, f"internal error: {type(e).__name__}: {e}",
                           "internal_error") from None
        self._reply(200, fmt, _success_body(signal, fmt, result), close=self._close_after)

    def _reply(self, status: int, fmt: Format, body: bytes,
               headers: tuple[tuple[str, str], ...] = (), close: bool = False) -> None:
        head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Date: {_date()}",
                f"Content-Type: {_CONTENT_TYPES[fmt]}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers]
        if close:
            head.append("Connection: close")
            self.close_connection = True
        if self.command == "HEAD":
            body = b""
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        if close and self._pending:
            self._linger()

    def _linger(self) -> None:
        """Half-close, then discard what the client still sends for a moment, so that it
        reads our answer instead of a connection reset."""
        sock: socket.socket = self.connection
        try:
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _LINGER_S
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                if not sock.recv(65536):
                    break
        except OSError:
            pass


_date_cache: tuple[int, str] = (0, "")


def _date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sink: Sink, max_body_bytes: int, token: str = "",
                 tls: ssl.SSLContext | None = None) -> None:
        self.sink, self.max_body_bytes, self.token = sink, max_body_bytes, token
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._lock = threading.Lock()
        self.guard = SinkGuard(sink, logger, "OTLP/HTTP request")
        super().__init__(address, _Handler)
        if tls is not None:  # accept() then hands out TLS sockets; each handshakes in its thread
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn(), a DNS lookup per start.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        t = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                             name="otlp-http-conn", daemon=True)
        with self._lock:
            self._conns[request] = t
        t.start()

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._conns.pop(request, None)
        super().shutdown_request(request)

    def close_connections(self, timeout_s: float) -> None:
        """Wake every connection thread (idle keep-alive ones too) and wait for them."""
        with self._lock:
            conns = list(self._conns.items())
        for sock, _ in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout_s
        for _, t in conns:
            t.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # resets and timeouts: the client's business
            logger.debug("OTLP/HTTP connection from %s ended: %r", client_address, exc)
        elif isinstance(exc, Exception):
            self.guard.log_internal(exc)


class OtlpHttpReceiver:
    """OTLP/HTTP receiver on a threaded standard-library server with keep-alive.

    ``start()`` binds (port 0 picks a free port, see :attr:`port`) and serves in
    daemon threads; ``stop()`` closes the listener and every open connection and
    waits for their threads. Bodies above ``max_body_bytes`` (before or after
    decompression) are refused with 413 and counted as ``oversize``. ``token``: the bearer
    token every request must carry (empty: none); ``tls``: serve TLS with this context.
    """

    def __init__(self, sink: Sink, host: str = "127.0.0.1", port: int = 4318,
                 max_body_bytes: int = 16 << 20, *, token: str = "",
                 tls: ssl.SSLContext | None = None) -> None:
        self._sink, self._host, self._port = sink, host, port
        self._max_body_bytes = max_body_bytes
        self._token, self._tls = token, tls
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        """The bound port once started (the configured one before)."""
        return self._port

    def start(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            cls = _Server6 if ":" in self._host else _Server
            server = cls((self._host, self._port), self._sink, self._max_body_bytes, self._token, self._tls)
            self._port = int(server.server_address[1])
            self._thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                                            name=f"otlp-http:{self._port}", daemon=True)
            self._server = server
            self._thread.start()
        logger.info("OTLP/HTTP receiver listening on %s:%d", self._host, self._port)

    def stop(self) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            if server is None or thread is None:
                return
            server.shutdown()
            server.server_close()
            server.close_connections(timeout_s=2.0)
            thread.join(timeout=2.0)
        logger.info("OTLP/HTTP receiver on port %d stopped", self._port)


class _Server6(_Server):
    address_family = socket.AF_INET6
