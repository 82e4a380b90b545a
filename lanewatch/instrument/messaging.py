"""Carry the lane across message queues: header dicts, PRODUCER and CONSUMER spans.

A message's headers play the role of HTTP headers: the producer injects the
current context (traceparent, baggage, lane header, pass-through headers) and
the consumer extracts it. Extraction goes through the global propagator, so a
consumer in a lane with dyeing on dyes untagged messages, as a server would.

    with producer_span(tracer, "orders", headers) as span:
        queue.put(body, headers=headers)

    with consumer_span(tracer, "orders", message.headers):
        handle(message)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter

Headers = MutableMapping[str, Any]


class HeaderGetter(Getter[Mapping[str, Any]]):
    """Case-insensitive getter for message header maps; bytes values are decoded."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        key = key.lower()
        for name, value in carrier.items():
            if name.lower() == key:
                if isinstance(value, (bytes, bytearray)):
                    value = bytes(value).decode("utf-8", "replace")
                return [str(value)]
        return None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


header_getter = HeaderGetter()


def inject_headers(headers: Headers | None = None, context: Context | None = None) -> Headers:
    """Write the current (or given) context into ``headers`` and return them."""
    headers = {} if headers is None else headers
    propagate.inject(headers, context=context)
    return headers


def extract_context(headers: Mapping[str, Any]) -> Context:
    """The context carried by a message's headers (dyed if configured)."""
    return propagate.extract(headers, getter=header_getter)


@contextlib.contextmanager
def producer_span(
    tracer: trace.Tracer, destination: str, headers: Headers, system: str = "custom",
) -> Iterator[trace.Span]:
    """A PRODUCER span for sending to ``destination``; its context is injected into ``headers``."""
    with tracer.start_as_current_span(
        f"{destination} publish", kind=trace.SpanKind.PRODUCER,
        attributes={"messaging.destination.name": destination, "messaging.system": system},
    ) as span:
        inject_headers(headers)
        yield span


@contextlib.contextmanager
def consumer_span(
    tracer: trace.Tracer, destination: str, headers: Mapping[str, Any], system: str = "custom",
) -> Iterator[trace.Span]:
    """A CONSUMER span, child of the producer's, current (with the message's baggage) inside the block."""
    ctx = extract_context(headers)
    token = otel_context.attach(ctx)
    try:
        with tracer.start_as_current_span(
            f"{destination} process", context=ctx, kind=trace.SpanKind.CONSUMER,
            attributes={"messaging.destination.name": destination, "messaging.system": system},
        ) as span:
            yield span
    finally:
        otel_context.detach(token)
