"""Per-step series of :meth:`lanewatch.query.Query.series`, read incrementally.

A live dashboard asks for the same window every second; only the last few
steps have changed. When the store can say what changed
(``version()`` and ``changed_since(version)``, as :class:`DuckStore` does),
:class:`SeriesReader` keeps the per-step arrays of settled steps and re-reads
only the steps at or after the oldest timestamp written since, plus the
current partial step. Without that, every call reads the whole window.
Results are identical either way (tested).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from lanewatch.query.parts import Q_COLUMNS, cube_quantiles, hist_cube
from lanewatch.store.base import ChangeFeed, LatencyCells
from lanewatch.store.base import StoreReader as Store

#: Per lane: ``req`` and ``err`` per step, and the latency quantiles (NaN: none).
Arrays = dict[str, npt.NDArray[np.float64]]
_FIELDS = ("req", "err", *Q_COLUMNS)


def _empty(n: int) -> Arrays:
    return {f: np.zeros(n) if f in ("req", "err") else np.full(n, np.nan) for f in _FIELDS}


def read_steps(store: Store, t0: int, t1: int, step_s: int, where: dict[str, str | None]) -> dict[str, Arrays]:
    """Arrays per instance lane on the grid ``t0, t0 + step, ... < t1`` (``t0`` step-aligned)."""
    n = -(-(t1 - t0) // step_s)
    hops = store.rollup("hops", t0, t1, ["ts", "instance_lane"], where=where, bucket_s=step_s)
    out: dict[str, Arrays] = {}
    idx = (hops["ts"].to_numpy(dtype=np.int64) - t0) // step_s
    lanes = hops["instance_lane"].to_numpy()
    for name in pd.unique(lanes):
        mine = (lanes == name) & (idx >= 0) & (idx < n)
        arrays = out[str(name)] = _empty(n)
        np.add.at(arrays["req"], idx[mine], hops["requests"].to_numpy(dtype=np.float64)[mine])
        np.add.at(arrays["err"], idx[mine], hops["errors"].to_numpy(dtype=np.float64)[mine])
    hists = histograms(store, t0, t1, where, step_s, n)
    if hists:
        cube, bmin, _ = next(iter(hists.values()))
        qs = cube_quantiles(cube, bmin)
        for name, (_, _, slot) in hists.items():
            arrays = out.setdefault(name, _empty(n))
            for col in Q_COLUMNS:
                arrays[col] = qs[col][:, slot]
    return out


def histograms(store: Store, t0: int, t1: int, where: dict[str, str | None], step_s: int,
               n_steps: int) -> dict[str, tuple[npt.NDArray[np.float64], int, int]]:
    """Latency histograms per instance lane: name -> (cube, bmin, slot of the lane in the cube).

    ``n_steps == 1`` means one histogram over the whole window.
    """
    if isinstance(store, LatencyCells):  # the fast path: integer cells, summed per step in SQL
        names, cells = store.latency_cells(t0, t1, where, minute_ok=n_steps == 1 or step_s % 60 == 0, step_s=step_s)
    else:
        df = store.rollup("latency", t0, t1, ["ts", "instance_lane", "bucket"], where=where, bucket_s=step_s)
        codes, uniques = pd.factorize(df["instance_lane"])
        names = [str(u) for u in uniques]
        cells = {"ts": df["ts"].to_numpy(), "lane": codes, "bucket": df["bucket"].to_numpy(),
                 "count": df["count"].to_numpy()}
    cube, present, bmin = hist_cube(cells, t0, step_s, n_steps)
    return {names[int(code)]: (cube, bmin, i) for i, code in enumerate(present)}


@dataclass
class _Entry:
    version: int
    t0: int
    settled: int  # steps before this start time are complete and cached
    lanes: dict[str, Arrays]


class SeriesReader:
    """:func:`read_steps` with a small cache of settled steps per (filters, step)."""

    def __init__(self, store: Store, max_entries: int = 64) -> None:
        self.store = store
        self._cache: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def read(self, t0: int, t1: int, step_s: int, where: dict[str, str | None]) -> dict[str, Arrays]:
        """Arrays per instance lane on the grid from ``t0`` (step-aligned) up to ``t1``."""
        store = self.store
        if not isinstance(store, ChangeFeed):
            return read_steps(store, t0, t1, step_s, where)
        version = int(store.version())  # before reading: a write racing the read is re-read next time
        key = (step_s, *sorted(where.items()))
        with self._lock:
            entry = self._cache.get(key)
        start = t0
        if entry is not None and entry.t0 <= t0:
            changed = store.changed_since(entry.version)
            start = entry.settled if changed is None else min(entry.settled, changed // step_s * step_s)
            start = max(t0, min(start, t1))
        fresh = read_steps(self.store, start, t1, step_s, where) if start < t1 else {}
        lanes = fresh if start == t0 or entry is None else _splice(entry, t0, start, t1, step_s, fresh)
        settled = max(t0, (t1 - 1) // step_s * step_s)
        keep = (settled - t0) // step_s
        with self._lock:
            self._cache[key] = _Entry(version, t0, settled, {k: {f: a[:keep] for f, a in v.items()}
                                                             for k, v in lanes.items()})
            self._cache.move_to_end(key)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return lanes


def _splice(entry: _Entry, t0: int, start: int, t1: int, step_s: int,
            fresh: dict[str, Arrays]) -> dict[str, Arrays]:
    """Cached steps ``[t0, start)`` followed by the freshly read steps ``[start, t1)``."""
    a, b = (t0 - entry.t0) // step_s, (start - entry.t0) // step_s
    n_new = -(-(t1 - start) // step_s)
    out: dict[str, Arrays] = {}
    for name in set(entry.lanes) | set(fresh):
        old = entry.lanes.get(name)
        new = fresh.get(name) or _empty(n_new)
        out[name] = {f: np.concatenate([old[f][a:b] if old else _empty(b - a)[f], new[f]]) for f in _FIELDS}
    return out
