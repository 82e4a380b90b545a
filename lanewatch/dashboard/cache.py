"""A small memo for the live pages: one Query call per view and per time step.

Pages refresh every second, but a series drawn in ``step_s``-second steps
only gains a point once per step. :func:`per_step` answers repeated calls
within the same step from memory, so a one-hour chart costs one query per
step instead of one per second. Keys include the Query's identity, so two
dashboards (or tests) never share entries.
"""

from __future__ import annotations

import contextvars
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from lanewatch.query.shared import consistent

V = TypeVar("V")

MAX_ENTRIES = 64
_lock = threading.Lock()
_memo: OrderedDict[Hashable, Any] = OrderedDict()
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lanewatch-dash")


def slot(query: Any, step_s: int) -> int:
    """The current step number of ``query``'s clock."""
    return int(query.clock()) // max(1, step_s)


def per_step(query: Any, step_s: int, key: Hashable, compute: Callable[[], V]) -> tuple[V, int]:
    """``compute()`` once per (query, key, step slot); returns (value, slot).

    With ``step_s == 1`` every second is a new slot: nothing is saved, and
    nothing is stale.
    """
    now_slot = slot(query, step_s)
    full_key = (id(query), key, step_s, now_slot)
    with _lock:
        if full_key in _memo:
            _memo.move_to_end(full_key)
            value: V = _memo[full_key]
            return value, now_slot
    value = compute()
    with _lock:
        _memo[full_key] = value
        while len(_memo) > MAX_ENTRIES:
            _memo.popitem(last=False)
    return value, now_slot


def gather(*calls: Callable[[], Any], store: Any = None) -> list[Any]:
    """Run independent Query calls side by side (DuckDB reads release the GIL); results in order.

    A page's first render asks for a summary, a series and a violation list at
    once; together they take about as long as the slowest of them. The calls are one
    moment of one render: a store read that several of them make is made once, and
    with ``store`` given, all of them again if a commit to it landed meanwhile
    (:func:`lanewatch.query.shared.consistent`; what :func:`per_step` kept is kept).
    """
    def run() -> list[Any]:
        futures = [_pool.submit(contextvars.copy_context().run, call) for call in calls]
        return [f.result() for f in futures]
    return consistent(store, run)


def clear() -> None:
    """Forget everything (a new dashboard, or tests)."""
    with _lock:
        _memo.clear()
