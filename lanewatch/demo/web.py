"""Small HTTP helpers shared by the demo's processes (stdlib only).

Control-plane calls (registry, faults, readiness) go through :mod:`http.client`
on purpose: the OpenTelemetry instrumentations patch ``requests``, ``httpx`` and
``urllib3``, and the demo's own bookkeeping must not show up as spans.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per connection, daemon threads."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class QuietHandler(WSGIRequestHandler):
    """wsgiref's handler without a stderr line per request."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def make_server(host: str, port: int, app: WSGIApp) -> ThreadingWSGIServer:
    """Bind ``host:port`` (0 = a free port) and return the server, not yet serving."""
    server = ThreadingWSGIServer((host, port), QuietHandler)
    server.set_app(app)
    return server


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when ``host:port`` can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def request(method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None,
            timeout: float = 2.0) -> tuple[int, bytes]:
    """One uninstrumented HTTP request; JSON-encodes ``body`` when given. Returns (status, body)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        hdrs = dict(headers or {})
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


#: Headers that belong to one connection and are not forwarded by a proxy.
HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-connection", "proxy-authorization", "te",
                        "trailer", "transfer-encoding", "upgrade", "host", "content-length"))

_SET_BY_SERVER = frozenset(("server", "date"))


def forward(method: str, addr: str, path: str, headers: Mapping[str, str], body: bytes = b"",
            timeout: float = 10.0) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send a request on to ``addr`` (host:port) as a proxy does; returns (status, headers, body).

    Raises ``OSError`` (e.g. ``ConnectionRefusedError``) when the upstream cannot be reached.
    """
    host, _, port = addr.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        out = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
        conn.request(method, path, body=body or None, headers=out)
        resp = conn.getresponse()
        data = resp.read()
        kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP | _SET_BY_SERVER]
        return resp.status, kept, data
    finally:
        conn.close()


def get_json(url: str, timeout: float = 2.0) -> Any:
    """GET ``url`` and decode its JSON body; raises ``OSError`` on a non-2xx answer."""
    status, data = request("GET", url, timeout=timeout)
    if not 200 <= status < 300:
        raise OSError(f"GET {url}: HTTP {status}: {data[:200]!r}")
    return json.loads(data)


def post_json(url: str, body: Any, timeout: float = 2.0) -> Any:
    """POST ``body`` as JSON and decode the JSON answer; raises ``OSError`` on a non-2xx answer."""
    status, data = request("POST", url, body=body, timeout=timeout)
    if not 200 <= status < 300:
        raise OSError(f"POST {url}: HTTP {status}: {data[:200]!r}")
    return json.loads(data) if data else None


def json_response(start_response: Callable[..., Any], status: int, body: Any) -> list[bytes]:
    """Answer a WSGI request with JSON (and permissive CORS, for the dashboard)."""
    data = json.dumps(body).encode()
    start_response(f"{status} {http.client.responses.get(status, '')}", [
        ("Content-Type", "application/json"), ("Content-Length", str(len(data))),
        ("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Headers", "Content-Type"),
        ("Access-Control-Allow-Methods", "GET, POST, OPTIONS")])
    return [data]


def text_response(start_response: Callable[..., Any], status: int, text: str,
                  headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    """Answer a WSGI request with plain text."""
    data = text.encode()
    start_response(f"{status} {http.client.responses.get(status, '')}", [
        ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data))), *headers])
    return [data]


def read_body(environ: Mapping[str, Any], limit: int = 1 << 20) -> bytes:
    """The request body of a WSGI request (at most ``limit`` bytes)."""
    try:
        n = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        n = 0
    return environ["wsgi.input"].read(min(n, limit)) if n > 0 else b""


def incoming_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request headers of a WSGI environ, lower-case names."""
    out = {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        out["content-type"] = str(environ["CONTENT_TYPE"])
    return out
