"""Real HTTP on loopback: WSGI/ASGI servers, requests/httpx/urllib3 clients, one configured process."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import requests
import urllib3
from instrument_helpers import ASGIService, Configured, Sink, WSGIService
from opentelemetry.trace import SpanKind

from lanewatch import lane as L
from lanewatch.instrument import ContextExecutor, LaneASGIMiddleware, LaneWSGIMiddleware

Make = Callable[..., Configured]


def calling(*targets: Callable[[], Any]) -> Callable[..., Iterable[bytes]]:
    """A WSGI app that makes the given outgoing calls, then answers 200."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        for call in targets:
            call()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def get(url: str, **headers: str) -> int:
    """The test's own client: stdlib urllib (not instrumented), so it adds no spans."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as resp:
        return int(resp.status)


def test_lane_on_server_and_every_client(lanewatch: Make, sink: Sink) -> None:
    lw = lanewatch(lane="gray")
    app = calling(lambda: requests.get(sink.url + "/r", timeout=5),
                  lambda: httpx.get(sink.url + "/h", timeout=5),
                  lambda: urllib3.PoolManager().request("GET", sink.url + "/u"))
    svc = WSGIService(LaneWSGIMiddleware(app, tracer_provider=lw.tp))
    try:
        assert get(svc.url + "/a", **{"x-mse-tag": "gray"}) == 200
    finally:
        svc.stop()
    assert [r["x-mse-tag"] for r in sink.requests] == ["gray"] * 3
    assert all("lane=gray" in r["baggage"] for r in sink.requests)
    server = [s.attributes.get(L.REQUEST_LANE_ATTR) for s in lw.spans(SpanKind.SERVER)]
    clients = [s.attributes.get(L.REQUEST_LANE_ATTR) for s in lw.spans(SpanKind.CLIENT)]
    assert server == ["gray"] and clients == ["gray"] * 3


def test_dyeing_stamps_the_server_span_at_start(lanewatch: Make, sink: Sink) -> None:
    lw = lanewatch(lane="gray", dyeing=True)
    svc = WSGIService(LaneWSGIMiddleware(calling(lambda: requests.get(sink.url, timeout=5)), tracer_provider=lw.tp))
    try:
        assert get(svc.url + "/entry") == 200
    finally:
        svc.stop()
    assert sink.requests[0]["x-mse-tag"] == "gray"
    at_start = {kind: attrs for _, kind, attrs in lw.probe.at_start}
    assert at_start[SpanKind.SERVER][L.REQUEST_LANE_ATTR] == "gray"
    assert at_start[SpanKind.SERVER][L.DYED_ATTR] is True
    assert at_start[SpanKind.CLIENT][L.REQUEST_LANE_ATTR] == "gray"
    assert L.DYED_ATTR not in at_start[SpanKind.CLIENT]


def test_incoming_tag_beats_dyeing(lanewatch: Make, sink: Sink) -> None:
    lw = lanewatch(lane="gray", dyeing=True)
    svc = WSGIService(LaneWSGIMiddleware(calling(lambda: requests.get(sink.url, timeout=5)), tracer_provider=lw.tp))
    try:
        get(svc.url, **{"x-mse-tag": "blue"})
        get(svc.url, baggage="lane=blue")
    finally:
        svc.stop()
    assert [r["x-mse-tag"] for r in sink.requests] == ["blue", "blue"]
    for span in lw.spans(SpanKind.SERVER):
        assert span.attributes[L.REQUEST_LANE_ATTR] == "blue"
        assert L.DYED_ATTR not in span.attributes


def test_passthrough_headers_arrive_three_hops_down(lanewatch: Make, sink: Sink) -> None:
    lw = lanewatch(passthrough_headers=["x-user-id"])
    c = WSGIService(LaneWSGIMiddleware(
        calling(lambda: urllib3.PoolManager().request("GET", sink.url + "/after-c")), tracer_provider=lw.tp))
    b = WSGIService(LaneWSGIMiddleware(calling(lambda: httpx.get(c.url + "/c", timeout=5)), tracer_provider=lw.tp))
    a = WSGIService(LaneWSGIMiddleware(calling(lambda: requests.get(b.url + "/b", timeout=5)), tracer_provider=lw.tp))
    try:
        get(a.url + "/a", **{"x-user-id": "100"})                     # scenario 3: no lane tag at all
        get(a.url + "/a", **{"x-user-id": "101", "x-mse-tag": "gray"})
    finally:
        for svc in (a, b, c):
            svc.stop()
    first, second = sink.requests
    assert first["x-user-id"] == "100" and "x-mse-tag" not in first
    assert second["x-user-id"] == "101" and second["x-mse-tag"] == "gray"
    servers = lw.spans(SpanKind.SERVER)
    assert len(servers) == 6
    assert sorted(s.attributes["x-user-id"] for s in servers) == ["100"] * 3 + ["101"] * 3
    for span in lw.spans(SpanKind.CLIENT):
        assert span.attributes["x-user-id"] in ("100", "101")
    lanes = {s.attributes["x-user-id"]: s.attributes.get(L.REQUEST_LANE_ATTR) for s in servers}
    assert lanes == {"100": None, "101": "gray"}


def test_thread_pool_loses_the_lane_unless_wrapped(lanewatch: Make, sink: Sink) -> None:
    lw = lanewatch(lane="gray")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with ThreadPoolExecutor(1) as plain:
            plain.submit(requests.get, sink.url + "/plain", timeout=5).result()
        with ContextExecutor(1) as carried:
            list(carried.map(lambda p: requests.get(sink.url + p, timeout=5), ["/carried"]))
        start_response("200 OK", [])
        return [b""]

    svc = WSGIService(LaneWSGIMiddleware(app, tracer_provider=lw.tp))
    try:
        get(svc.url, **{"x-mse-tag": "gray"})
    finally:
        svc.stop()
    plain, carried = sink.requests
    assert "x-mse-tag" not in plain             # what the collector reports as tag_lost inside a service
    assert carried["x-mse-tag"] == "gray"
    client = {s.attributes["http.url"].rsplit("/", 1)[1]: s for s in lw.spans(SpanKind.CLIENT)}
    server = lw.spans(SpanKind.SERVER)[0]
    assert client["carried"].attributes[L.REQUEST_LANE_ATTR] == "gray"
    assert client["carried"].parent.span_id == server.context.span_id
    assert L.REQUEST_LANE_ATTR not in client["plain"].attributes


def test_asgi_with_asyncio_tasks(lanewatch: Make, sink: Sink) -> None:
    lw = lanewatch(lane="gray", dyeing=True)

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        async with httpx.AsyncClient() as client:
            async def call(path: str) -> int:
                await asyncio.sleep(0)
                return (await client.get(sink.url + path)).status_code
            await asyncio.gather(call("/t1"), asyncio.create_task(call("/t2")))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    svc = ASGIService(LaneASGIMiddleware(app, tracer_provider=lw.tp))
    try:
        assert get(svc.url + "/x", **{"x-mse-tag": "blue"}) == 200
        assert get(svc.url + "/y") == 200
    finally:
        svc.stop()
    assert sorted(r["x-mse-tag"] for r in sink.requests) == ["blue", "blue", "gray", "gray"]
    servers = lw.spans(SpanKind.SERVER)
    assert sorted(s.attributes[L.REQUEST_LANE_ATTR] for s in servers) == ["blue", "gray"]
    assert [s.attributes.get(L.DYED_ATTR) for s in servers if s.attributes[L.REQUEST_LANE_ATTR] == "gray"] == [True]
    assert {s.attributes.get(L.REQUEST_LANE_ATTR) for s in lw.spans(SpanKind.CLIENT)} == {"blue", "gray"}


def test_asgi_other_scopes_pass_through(lanewatch: Make) -> None:
    lanewatch()
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        seen.append(scope["type"])

    async def noop(*args: Any) -> dict[str, Any]:
        return {}

    asyncio.run(LaneASGIMiddleware(app)({"type": "lifespan"}, noop, noop))
    assert seen == ["lifespan"]
