"""``/metrics`` of ``lanewatch serve``: the totals read from a shared store instead of counted
from batches (serve receives none).

Each scrape (at most once per :data:`REUSE_S`) sums the rollups whose span time is at or
after the process's start, over every collector: counters since start, as a process's own
would be (Prometheus takes a restart as a counter reset). Late rows of spans that started
before serve did are not counted; everything else is, once, whichever collector wrote it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from lanewatch.metrics.totals import MetricsSink, Snapshot
from lanewatch.rollups import ROLLUPS
from lanewatch.store.base import Batch, StoreReader

#: A snapshot is reused for this long (several scrapers, the dashboard's health).
REUSE_S = 1.0
_FAR = 2**62


class StoreTotals:
    """A ``MetricsSink`` look-alike (``snapshot()``, ``max_series``) over ``store``."""

    def __init__(self, store: StoreReader, since: float, max_series: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.since, self.max_series, self.clock = store, int(since), max_series, clock
        self._memo: tuple[float, Snapshot] | None = None
        self._lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._memo is not None and self.clock() < self._memo[0]:
                return self._memo[1]
            sink = MetricsSink(self.max_series)
            sink.write(self._batch())
            snap = sink.snapshot()
            self._memo = (self.clock() + REUSE_S, snap)
            return snap

    def _batch(self) -> Batch:
        rollups: dict[str, Any] = {}
        for table in ("hops", "latency", "edges", "traces"):
            keys = [k for k in ROLLUPS[table][0] if k not in ("ts", "res")]
            df = self.store.rollup(table, self.since, _FAR, keys)
            rollups[table] = {c: df[c].tolist() for c in df.columns}
        return Batch(rollups=rollups, counters=self.store.counters())
