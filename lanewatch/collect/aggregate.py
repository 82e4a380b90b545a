"""Per-second rollups with dictionary-encoded keys and numpy bincount.

A :class:`Rollup` accumulates one store table (see ``lanewatch.rollups.ROLLUPS``)
between flushes: each distinct key tuple (second, service, lanes...) gets an
integer code from a ``dict`` with ``__missing__``, and a batch's metrics are
summed per code with one ``np.bincount`` each. :meth:`Rollup.drain` hands the
rows out as columns and starts afresh, so codes never grow without bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from lanewatch.rollups import ROLLUPS

#: A metric's weights that add nothing (e.g. no weighted span in the batch): no bincount.
NOTHING: npt.NDArray[np.float64] = np.zeros(0)


class _Codes(dict[tuple[Any, ...], int]):
    """Key tuple -> dense integer code, handed out on first sight."""

    def __missing__(self, key: tuple[Any, ...]) -> int:
        code = self[key] = len(self)
        return code


class Rollup:
    """Mergeable counters for one table, keyed without ``res`` (always 1 here)."""

    def __init__(self, table: str) -> None:
        keys, metrics = ROLLUPS[table]
        self.table = table
        self.key_names = tuple(k for k in keys if k != "res")
        self.metric_names = metrics
        self._reset()

    def _reset(self) -> None:
        self._codes = _Codes()
        self._acc = np.zeros((len(self.metric_names), 64), dtype=np.float64)

    def _grow(self, size: int) -> None:
        if size > self._acc.shape[1]:
            acc = np.zeros((len(self.metric_names), max(size, 2 * self._acc.shape[1])))
            acc[:, : self._acc.shape[1]] = self._acc
            self._acc = acc

    def add(self, keys: Iterable[tuple[Any, ...]], n: int,
            weights: Sequence[npt.NDArray[Any] | None]) -> None:
        """Add ``n`` rows: ``keys`` yields one key tuple per row, ``weights`` one
        array per metric (``None`` counts 1 per row, :data:`NOTHING` adds nothing)."""
        if n == 0:
            return
        idx = np.fromiter(map(self._codes.__getitem__, keys), dtype=np.int64, count=n)
        size = len(self._codes)
        self._grow(size)
        for m, w in enumerate(weights):
            if w is not NOTHING:
                self._acc[m, :size] += np.bincount(idx, weights=w, minlength=size)

    def add_columns(self, columns: Sequence[npt.NDArray[np.integer[Any]]],
                    names: Sequence[Callable[[npt.NDArray[Any]], list[Any]] | None],
                    weights: Sequence[npt.NDArray[Any] | None],
                    bounds: Sequence[tuple[int, int] | None] | None = None) -> None:
        """Add rows given as integer key columns: rows are grouped in numpy first (one
        packed int64 per row), so Python sees one key tuple per *group*; ``names[i]``
        turns column i's codes into key values (``None``: the integers themselves).
        ``bounds[i]``, when known, is ``(lowest, highest)`` of column i (saves a scan)."""
        n = len(columns[0])
        if n == 0:
            return
        packed = np.zeros(n, dtype=np.int64)
        room = 1
        for i, c in enumerate(columns):
            b = bounds[i] if bounds else None
            lo, hi = b if b is not None else (int(c.min()), int(c.max()))
            width = hi - lo + 1
            room *= width
            if room >= 1 << 62:  # would overflow: group by tuples instead
                self.add(zip(*[(f(c) if f else c.tolist()) for c, f in zip(columns, names)]), n, weights)
                return
            packed = packed * width + (c - lo)
        uniq, inverse = np.unique(packed, return_inverse=True)
        first = np.empty(len(uniq), dtype=np.int64)
        first[inverse[::-1]] = np.arange(n - 1, -1, -1)
        keys = zip(*[(f(c[first]) if f else c[first].tolist()) for c, f in zip(columns, names)])
        idx = np.fromiter(map(self._codes.__getitem__, keys), dtype=np.int64, count=len(uniq))
        self._grow(len(self._codes))
        for m, w in enumerate(weights):  # one row per group: distinct codes, a plain add
            if w is not NOTHING:
                self._acc[m, idx] += np.bincount(inverse, weights=w, minlength=len(uniq))

    def add_one(self, key: tuple[Any, ...], values: Sequence[float]) -> None:
        code = self._codes[key]
        self._grow(code + 1)
        self._acc[:, code] += values

    def __len__(self) -> int:
        return len(self._codes)

    def drain(self) -> dict[str, list[Any]]:
        """All rows accumulated since the last drain, as columns (with ``res`` = 1)."""
        size = len(self._codes)
        cols: dict[str, list[Any]] = {k: [] for k in ROLLUPS[self.table][0]}
        for metric in self.metric_names:
            cols[metric] = []
        if size == 0:
            return cols
        keys = list(self._codes)
        acc = self._acc[:, :size]
        keep = np.flatnonzero(np.any(acc != 0, axis=0))
        for j, name in enumerate(self.key_names):
            cols[name] = [keys[i][j] for i in keep]
        cols["res"] = [1] * len(keep)
        for m, metric in enumerate(self.metric_names):
            col = acc[m][keep]
            cols[metric] = col.tolist() if metric.endswith("_ms") else col.round().astype(np.int64).tolist()
        self._reset()
        return cols
