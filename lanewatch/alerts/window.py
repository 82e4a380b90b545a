"""The alert rules' evidence: sliding-window sums of the span path's batches, in span time.

Each batch's rollup rows are added as they come (:meth:`Window.add`) and kept per second;
a running total per window span is updated on add and on expiry (:meth:`Window.advance`),
so evaluating the rules costs the same whatever the traffic: no store query, no re-summing
of seconds. Rows of seconds already out of the window (very late spans) are counted in
:attr:`Window.too_late` and left out; rows from the future (skewed clocks) are kept in the
second they say, at most :data:`FUTURE_S` ahead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from lanewatch.histogram import N_BUCKETS
from lanewatch.store.base import Batch

#: Rows stamped further ahead than this are kept as if they were this far ahead.
FUTURE_S = 300

#: family -> (rollup table, key columns, metric columns); ``latency`` is special: its
#: metrics are the histogram buckets (column ``bucket``, value ``count``).
FAMILIES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "hops": ("hops", ("service", "instance_lane", "expected_lane", "verdict"), ("requests", "errors")),
    "latency": ("latency", ("service", "instance_lane"), tuple(str(b) for b in range(N_BUCKETS))),
    "edges": ("edges", ("caller", "callee", "lane", "entry_lane"), ("calls", "tag_lost", "tag_lost_inside")),
    "traces": ("traces", ("entry_lane",), ("traces",)),
}


class Family:
    """Sums of one family's metrics per key over each of ``spans`` seconds back from now."""

    def __init__(self, n_metrics: int, spans: Iterable[int]) -> None:
        self.spans = sorted({int(s) for s in spans})
        self.keys: list[tuple[str, ...]] = []
        self._index: dict[tuple[str, ...], int] = {}
        self._totals = {s: np.zeros((16, n_metrics)) for s in self.spans}
        #: second -> pieces (key index, metric column, value) added for that second
        self._seconds: dict[int, list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64],
                                            npt.NDArray[np.float64]]]] = {}
        #: per span: the oldest second still in its total
        self._start = {s: -(1 << 62) for s in self.spans}

    def index(self, key: tuple[Any, ...]) -> int:
        """The row of ``key``; values that are not strings (None from an old store row) are
        keyed by their ``str``."""
        i = self._index.get(key)
        if i is not None:
            return i
        canon = tuple(v if isinstance(v, str) else str(v) for v in key)
        i = self._index.get(canon)
        if i is None:
            i = self._index[canon] = len(self.keys)
            self.keys.append(key)
            if i >= len(self._totals[self.spans[0]]):
                for s, t in self._totals.items():
                    grown = np.zeros((2 * len(t), t.shape[1]))
                    grown[: len(t)] = t
                    self._totals[s] = grown
        self._index[key] = i
        return i

    def add(self, sec: int, idx: npt.NDArray[np.int64], col: npt.NDArray[np.int64],
            val: npt.NDArray[np.float64]) -> bool:
        """Add values of one second; False (nothing added) when it is out of every span."""
        if sec < self._start[self.spans[-1]]:
            return False
        self._seconds.setdefault(sec, []).append((idx, col, val))
        for s, total in self._totals.items():
            if sec >= self._start[s]:
                np.add.at(total, (idx, col), val)
        return True

    def advance(self, now: int) -> None:
        """Drop seconds older than each span back from ``now`` from that span's total."""
        for s in self.spans:
            start = now - s + 1
            if start <= self._start[s]:
                continue
            old = self._start[s]
            total = self._totals[s]
            for sec in [x for x in self._seconds if old <= x < start]:
                for idx, col, val in self._seconds[sec]:
                    np.subtract.at(total, (idx, col), val)
            self._start[s] = start
        oldest = self._start[self.spans[-1]]
        for sec in [x for x in self._seconds if x < oldest]:
            del self._seconds[sec]

    def drop_from(self, sec: int) -> None:
        """Forget every second from ``sec`` on (to add those seconds again, re-read)."""
        for x in [x for x in self._seconds if x >= sec]:
            for idx, col, val in self._seconds.pop(x):
                for s, total in self._totals.items():
                    if x >= self._start[s]:
                        np.subtract.at(total, (idx, col), val)

    def totals(self, span: int) -> npt.NDArray[np.float64]:
        """One row per key of :attr:`keys` (in that order): the sums over ``span`` seconds."""
        return self._totals[span][: len(self.keys)]


class Window:
    """The families of :data:`FAMILIES`, each summed over ``spans`` (seconds) back from now."""

    def __init__(self, spans: Iterable[int]) -> None:
        self.spans = sorted({int(s) for s in spans})
        self.families = {name: Family(len(metrics), self.spans)
                         for name, (_, _, metrics) in FAMILIES.items()}
        self.now = 0
        #: rollup rows left out because their second was already out of the window
        self.too_late = 0

    def add(self, batch: Batch) -> None:
        """Add a batch's rollup rows (any table the window does not read is ignored)."""
        for name, (table, keys, metrics) in FAMILIES.items():
            cols = batch.rollups.get(table)
            if cols and len(cols.get("ts", ())):
                self._add(name, cols, keys, metrics)

    def _add(self, name: str, cols: Mapping[str, Sequence[Any]], keys: tuple[str, ...],
             metrics: tuple[str, ...]) -> None:
        fam = self.families[name]
        ts = np.minimum(np.asarray(cols["ts"], dtype=np.int64), self.now + FUTURE_S if self.now else
                        np.iinfo(np.int64).max)
        idx = np.fromiter((fam.index(k) for k in zip(*(cols[c] for c in keys))),
                          dtype=np.int64, count=len(ts))
        if name == "latency":
            col = np.clip(np.asarray(cols["bucket"], dtype=np.int64), 0, N_BUCKETS - 1)[:, None]
            val = np.asarray(cols["count"], dtype=np.float64)[:, None]
        else:
            col = np.broadcast_to(np.arange(len(metrics)), (len(ts), len(metrics)))
            val = np.column_stack([np.asarray(cols[m], dtype=np.float64) for m in metrics])
        rows = np.broadcast_to(idx[:, None], col.shape)
        for sec in np.unique(ts).tolist():
            sel = ts == sec
            if not fam.add(int(sec), rows[sel].ravel(), col[sel].ravel(), val[sel].ravel()):
                self.too_late += int(sel.sum())

    def drop_from(self, sec: int) -> None:
        """Forget every family's seconds from ``sec`` on: a reader that follows a store re-reads
        the seconds that changed and adds them again (:meth:`AlertEngine.evidence`)."""
        for fam in self.families.values():
            fam.drop_from(sec)

    def advance(self, now: float) -> None:
        """Move the window's end to ``now`` (seconds since the epoch)."""
        self.now = int(now)
        for fam in self.families.values():
            fam.advance(self.now)
