"""A service with no lanewatch code at all: run it under `opentelemetry-instrument`.

It serves WSGI through the standard OpenTelemetry WSGI middleware (what a
framework instrumentation would add) and, when DOWNSTREAM_URL is set, calls it
with requests (instrumented by opentelemetry-instrument) on every request.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if os.environ.get("DOWNSTREAM_URL"):
        requests.get(os.environ["DOWNSTREAM_URL"], timeout=5)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, OpenTelemetryMiddleware(app), server_class=Server, handler_class=Quiet)
    print(f"READY {server.server_port}", flush=True)
    server.serve_forever(0.05)
