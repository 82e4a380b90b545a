"""The API and dashboard's own bounded pool, so that queries and OTLP ingest cannot starve
each other (docs/design.md, "Overload").

Each connection is read by its own thread (cheap while it waits on the network: slow or
idle clients hold no worker), but at most ``workers`` requests run the application at
once. At most ``backlog`` more wait for a worker, each at most ``wait_s``; a request
beyond the backlog, or one that waited too long, is answered ``503`` with ``Retry-After``
at once. A waiting request whose client has already gone (it sent the request and
closed) is dropped without running its query. Connections beyond
:data:`MAX_CONNECTIONS` are answered ``503`` as they are accepted and closed.
``GET /api/v1/health/live`` bypasses the pool: liveness is not load.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import ThreadedWSGIServer

from lanewatch.web.security import SECURITY_HEADERS

#: Open API and dashboard connections; further ones are answered 503 and closed.
MAX_CONNECTIONS = 1024
#: The delay a refused client is told to wait, seconds.
RETRY_AFTER_S = 1
#: Idle or slow connections are closed after this long without a byte, seconds.
IDLE_TIMEOUT_S = 60.0
_BYPASS = frozenset({"/api/v1/health/live"})
_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nServer: lanewatch\r\nContent-Type: application/json\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in SECURITY_HEADERS.items()).encode()
            + b"Retry-After: %d\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s")


def _body(message: str) -> bytes:
    import orjson

    return orjson.dumps({"error": message})


class ApiPool:
    """WSGI middleware: the bounded pool around ``app``. ``count(name)`` is told of every
    request refused (``api_requests_refused_backlog``, ``api_requests_refused_wait``) or
    dropped because its client left (``api_requests_abandoned``)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], workers: int, backlog: int, wait_s: float,
                 count: Callable[[str], None]) -> None:
        self.app, self.workers, self.backlog, self.wait_s = app, workers, backlog, wait_s
        self._count = count
        self._sem = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self.waiting = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in _BYPASS:
            return self.app(environ, start_response)
        if not self._sem.acquire(blocking=False):
            with self._lock:
                full = self.waiting >= self.backlog
                if not full:
                    self.waiting += 1
            if full:
                return self._refuse(start_response, "api_requests_refused_backlog",
                                    f"the API is busy: {self.workers} requests running and "
                                    f"{self.backlog} waiting (api_workers, api_backlog); retry later")
            try:
                got = self._sem.acquire(timeout=self.wait_s)
            finally:
                with self._lock:
                    self.waiting -= 1
            if not got:
                return self._refuse(start_response, "api_requests_refused_wait",
                                    f"the API is busy: no worker free within {self.wait_s:g} s "
                                    "(api_wait_s); retry later")
        try:
            if _client_gone(environ.get("werkzeug.socket")):
                self._count("api_requests_abandoned")
                return self._refuse(start_response, "", "the client closed the connection")
            # run the whole answer inside the slot (a lazy body would escape the bound)
            out = self.app(environ, start_response)
            try:
                return [b"".join(out)]
            finally:
                close = getattr(out, "close", None)
                if close is not None:
                    close()
        finally:
            self._sem.release()

    def _refuse(self, start_response: Callable[..., Any], counter: str, message: str) -> list[bytes]:
        if counter:
            self._count(counter)
        body = _body(message)
        start_response("503 Service Unavailable", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Retry-After", str(RETRY_AFTER_S)), ("Connection", "close"), *SECURITY_HEADERS.items()])
        return [body]

    def state(self) -> dict[str, int]:
        with self._lock:
            return {"api_workers": self.workers, "api_waiting": self.waiting}


def _client_gone(sock: Any) -> bool:
    """The peer closed its side (a request sent, then the connection closed): no one waits
    for the answer."""
    if not isinstance(sock, socket.socket) or isinstance(sock, ssl.SSLSocket):
        return False  # TLS: peeking would read a record, not the peer's close
    timeout = sock.gettimeout()  # with a timeout, recv would first wait for data that long
    try:
        sock.settimeout(0.0)
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    finally:
        try:
            sock.settimeout(timeout)
        except OSError:
            pass


class BoundedServer(ThreadedWSGIServer):
    """Werkzeug's threaded server with at most :data:`MAX_CONNECTIONS` connections."""

    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, *args: Any, count: Callable[[str], None], **kwargs: Any) -> None:
        self._count = count
        self._open = 0
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            full = self._open >= MAX_CONNECTIONS
            if not full:
                self._open += 1
        if full:
            self._count("api_requests_refused_connections")
            body = _body(f"the API has {MAX_CONNECTIONS} connections open; retry later")
            try:
                if not isinstance(request, ssl.SSLSocket):  # before a handshake: no answer over TLS
                    request.settimeout(0.5)
                    request.sendall(_REFUSAL % (RETRY_AFTER_S, len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open -= 1


def make_bounded_server(host: str, port: int, app: Any, handler: Any, *, workers: int, backlog: int,
                        wait_s: float, count: Callable[[str], None]) -> BoundedServer:
    """The API and dashboard server: ``app`` behind an :class:`ApiPool`, connections capped,
    idle ones closed after :data:`IDLE_TIMEOUT_S`."""

    class Handler(handler):  # type: ignore[misc]
        timeout = IDLE_TIMEOUT_S

    pool = ApiPool(app, workers, backlog, wait_s, count)
    server = BoundedServer(host, port, pool, Handler, count=count)
    server.pool = pool  # type: ignore[attr-defined]
    return server
