"""Keep the request lane across thread pools, and set it by hand where needed.

asyncio tasks copy ``contextvars`` by themselves, so the lane (baggage in the
OpenTelemetry context) follows ``asyncio.create_task`` and ``gather`` with no
help. ``concurrent.futures.ThreadPoolExecutor`` does not: a function submitted
to a pool runs in the worker's empty context, and a call it makes leaves with
no lane (the collector reports that as ``tag_lost`` inside the service). Use
:func:`wrap` or :class:`ContextExecutor`. ``asyncio.to_thread`` copies the
context; ``loop.run_in_executor`` does not (give it a wrapped function or a
:class:`ContextExecutor`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from opentelemetry import baggage
from opentelemetry import context as otel_context

from lanewatch import lane as L

P = ParamSpec("P")
R = TypeVar("R")


def wrap(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind ``fn`` to the *current* OpenTelemetry context (lane, baggage, parent span).

    The returned callable attaches that context while it runs, in whatever
    thread calls it, and detaches it afterwards.
    """
    captured = otel_context.get_current()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        token = otel_context.attach(captured)
        try:
            return fn(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return run


class ContextExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in the submitter's context.

    A drop-in replacement: ``submit`` (and so ``map``) captures the caller's
    OpenTelemetry context at submit time, so spans and outgoing calls in the
    task carry the caller's lane.
    """

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        return super().submit(wrap(fn), *args, **kwargs)


def current_lane(context: otel_context.Context | None = None) -> str:
    """The request lane of ``context`` (default: current); ``base`` when unset or invalid."""
    value = baggage.get_baggage(L.REQUEST_LANE_ATTR, context)
    if isinstance(value, str) and L.is_valid_lane(value):
        return value
    return L.BASE


@contextlib.contextmanager
def use_lane(lane: str, **passthrough: str) -> Iterator[otel_context.Context]:
    """Run a block in request lane ``lane`` (plus pass-through baggage entries).

    For work that starts without an incoming request: batch jobs, schedulers,
    tests. ``use_lane("base")`` clears the lane. Pass-through keys with dashes
    can be given through a dict: ``use_lane("gray", **{"x-user-id": "100"})``.
    """
    if lane != L.BASE and not L.is_valid_lane(lane):
        raise ValueError(f"not a valid lane name: {lane!r}")
    ctx = otel_context.get_current()
    if lane == L.BASE:
        ctx = baggage.remove_baggage(L.REQUEST_LANE_ATTR, ctx)
    else:
        ctx = baggage.set_baggage(L.REQUEST_LANE_ATTR, lane, ctx)
    for key, value in passthrough.items():
        ctx = baggage.set_baggage(key, value, ctx)
    token = otel_context.attach(ctx)
    try:
        yield ctx
    finally:
        otel_context.detach(token)
