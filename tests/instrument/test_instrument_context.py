"""The lane across asyncio, thread pools and a message queue (producer -> consumer)."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from instrument_helpers import Configured, Sink
from opentelemetry.trace import SpanKind

from lanewatch import lane as L
from lanewatch.instrument import (
    ContextExecutor,
    consumer_span,
    current_lane,
    extract_context,
    inject_headers,
    producer_span,
    use_lane,
    wrap,
)

Make = Callable[..., Configured]


def test_asyncio_tasks_keep_the_lane(lanewatch: Make) -> None:
    lw = lanewatch()
    tracer = lw.handle.tracer()

    async def work(name: str) -> str:
        await asyncio.sleep(0.001)
        with tracer.start_as_current_span(name):
            return current_lane()

    async def main() -> list[str]:
        task = asyncio.create_task(work("task"))
        gathered = await asyncio.gather(work("g1"), work("g2"))
        threaded = await asyncio.to_thread(current_lane)
        plain_executor = await asyncio.get_running_loop().run_in_executor(None, current_lane)
        wrapped_executor = await asyncio.get_running_loop().run_in_executor(None, wrap(current_lane))
        return [await task, *gathered, threaded, plain_executor, wrapped_executor]

    with use_lane("gray"):
        lanes = asyncio.run(main())
    assert lanes == ["gray", "gray", "gray", "gray", "base", "gray"]
    assert {s.attributes[L.REQUEST_LANE_ATTR] for s in lw.spans()} == {"gray"}


def test_thread_pools(lanewatch: Make) -> None:
    lw = lanewatch()
    tracer = lw.handle.tracer()

    def job(name: str) -> str:
        with tracer.start_as_current_span(name):
            return current_lane()

    with use_lane("gray"), ThreadPoolExecutor(2) as plain, ContextExecutor(2) as carried:
        assert plain.submit(job, "plain").result() == "base"
        assert plain.submit(wrap(job), "wrapped").result() == "gray"
        assert list(carried.map(job, ["m1", "m2"])) == ["gray", "gray"]
    by_name = {s.name: (s.attributes or {}).get(L.REQUEST_LANE_ATTR) for s in lw.spans()}
    assert by_name == {"plain": None, "wrapped": "gray", "m1": "gray", "m2": "gray"}


def test_use_lane_rejects_bad_names() -> None:
    try:
        with use_lane("no good"):
            pass
    except ValueError:
        return
    raise AssertionError("expected ValueError")


def test_message_queue_producer_to_consumer(lanewatch: Make, sink: Sink) -> None:
    lw = lanewatch(lane="gray", dyeing=True, passthrough_headers=["x-user-id"])
    tracer = lw.handle.tracer()
    inbox: queue.Queue[tuple[dict[str, Any], str] | None] = queue.Queue()

    def consumer() -> None:
        while (item := inbox.get()) is not None:
            headers, body = item
            with consumer_span(tracer, "orders", headers):
                requests.get(sink.url + "/" + body, timeout=5)

    worker = threading.Thread(target=consumer)
    worker.start()
    with use_lane("blue", **{"x-user-id": "7"}):
        headers: dict[str, Any] = {}
        with producer_span(tracer, "orders", headers) as produced:
            inbox.put((headers, "tagged"))
    # Kafka-style: byte values, other capitalisation; and one message with no lane at all.
    inbox.put(({k.upper(): v.encode() for k, v in inject_headers({}, extract_context(headers)).items()}, "bytes"))
    inbox.put(({}, "untagged"))
    inbox.put(None)
    worker.join(10)

    assert headers["x-mse-tag"] == "blue" and headers["x-user-id"] == "7"
    assert [r.get("x-mse-tag") for r in sink.requests] == ["blue", "blue", "gray"]
    consumers = lw.spans(SpanKind.CONSUMER)
    assert [c.attributes[L.REQUEST_LANE_ATTR] for c in consumers] == ["blue", "blue", "gray"]
    assert [c.attributes.get(L.DYED_ATTR) for c in consumers] == [None, None, True]
    assert consumers[0].parent.span_id == produced.get_span_context().span_id
    assert consumers[0].attributes["x-user-id"] == "7"
    producer = lw.spans(SpanKind.PRODUCER)[0]
    assert producer.attributes[L.REQUEST_LANE_ATTR] == "blue"
