"""Real loopback servers for the instrumentation tests: WSGI, a tiny ASGI server, a header sink."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lanewatch.instrument import Lanewatch
from lanewatch.instrument.testing import HeaderSink as Sink

__all__ = ["ASGIService", "Configured", "Sink", "StartProbe", "WSGIService"]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class WSGIService:
    """A WSGI app served on 127.0.0.1 in a thread."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.server = make_server("127.0.0.1", 0, app, server_class=_ThreadingWSGIServer,
                                  handler_class=_QuietHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ASGIService:
    """A minimal HTTP/1.1 server for one ASGI app (no keep-alive), on its own event loop thread.

    uvicorn is not a dependency; this is enough for GET/POST with Content-Length.
    """

    url: str

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self._server: asyncio.base_events.Server | None = None

        async def boot() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            started.set()

        threading.Thread(target=self._run, args=(boot,), daemon=True).start()
        started.wait(5)
        assert self._server is not None
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def _run(self, boot: Callable[[], Any]) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(boot())
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ", 2)
        headers = [tuple(x.split(":", 1)) for x in head[1:] if ":" in x]
        raw = [(k.strip().lower().encode(), v.strip().encode()) for k, v in headers]
        length = int(dict(raw).get(b"content-length", b"0"))
        body = await reader.readexactly(length) if length else b""
        path, _, query = target.partition("?")
        host, port = writer.get_extra_info("sockname")[:2]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
                 "root_path": "", "headers": raw, "client": writer.get_extra_info("peername")[:2],
                 "server": (host, port)}
        sent_body = False
        status, out_headers, chunks = 500, [], []

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, out_headers
            if message["type"] == "http.response.start":
                status, out_headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        payload = b"".join(chunks)
        lines = [f"HTTP/1.1 {status} OK", f"content-length: {len(payload)}", "connection: close"]
        lines += [f"{k.decode()}: {v.decode()}" for k, v in out_headers if k.lower() != b"content-length"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        await writer.drain()
        writer.close()

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)


class StartProbe(SpanProcessor):
    """Records each span's attributes as they are right after the lane processor's on_start."""

    def __init__(self) -> None:
        self.at_start: list[tuple[str, Any, dict[str, Any]]] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.at_start.append((span.name, span.kind, dict(span.attributes or {})))

    def on_end(self, span: ReadableSpan) -> None:
        pass


class Configured:
    """A configured process (one per test) plus what the test inspects."""

    def __init__(self, handle: Lanewatch) -> None:
        self.handle = handle
        self.memory = InMemorySpanExporter()
        self.probe = StartProbe()
        handle.tracer_provider.add_span_processor(self.probe)
        handle.tracer_provider.add_span_processor(SimpleSpanProcessor(self.memory))

    @property
    def tp(self) -> Any:
        return self.handle.tracer_provider

    def spans(self, kind: Any = None) -> list[Any]:
        spans = self.memory.get_finished_spans()
        return [s for s in spans if kind is None or s.kind == kind]
