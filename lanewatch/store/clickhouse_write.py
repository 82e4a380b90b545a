"""What the ClickHouse store inserts per batch, as columns (one block per table, never row by
row), and the per-collector running totals it writes (instances, counters)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from lanewatch.store import duck_frames as F
from lanewatch.store.clickhouse_schema import NULL_KEY, physical_tables
from lanewatch.store.duck_schema import MINUTE

Columns = tuple[list[str], list[list[Any]]]


class Stamp:
    """Strictly increasing nanosecond stamps (``ver``, ``seq``, ``at_ns``): wall time, so that
    stamps of different processes interleave by when they were taken."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self, n: int = 1) -> int:
        """The first of ``n`` consecutive fresh stamps."""
        with self._lock:
            first = max(self._last + 1, time.time_ns())
            self._last = first + n - 1
            return first


def rollup_blocks(table: str, columns: Mapping[str, Sequence[Any]]) -> list[tuple[str, Columns]]:
    """Per physical table of rollup ``table``: the batch's rows summed by key (rows summing to
    zero dropped), NULL string keys as :data:`NULL_KEY`; rows in the order their key first
    appears. Grouped with numpy (keys factorized, sums by ``np.add.reduceat``): a pandas
    groupby per physical table cost more than the inserts at a few hundred keys per flush."""
    frame = F.rollup_frame(table, columns)
    cols: dict[str, npt.NDArray[Any]] = {}
    for c in frame.columns:
        v = frame[c].to_numpy()
        if v.dtype == object:
            v = v.copy()
            v[pd.isna(v)] = NULL_KEY
        cols[c] = v
    out: list[tuple[str, Columns]] = []
    for p in physical_tables(table):
        view = dict(cols)
        if p.minute:
            view["ts"] = cols["ts"] // MINUTE * MINUTE
            view["res"] = np.full(len(frame), MINUTE, dtype=np.int32)
        keys, metrics = list(p.keys), list(p.metrics)
        block = _sum_by_key([view[k] for k in keys], [view[m] for m in metrics])
        if block is not None:
            out.append((p.name, (keys + metrics, [c.tolist() for c in block])))
    return out


def _sum_by_key(keys: Sequence[npt.NDArray[Any]],
                metrics: Sequence[npt.NDArray[Any]]) -> list[npt.NDArray[Any]] | None:
    """Key columns then metric columns, one row per distinct key (first-appearance order),
    metrics summed; rows whose metrics are all zero dropped (None when no row is left)."""
    n = len(keys[0]) if keys else 0
    if not n:
        return None
    group = np.zeros(n, dtype=np.int64)
    for k in keys:  # pair codes re-factorized after each key: codes stay below n
        codes, uniques = pd.factorize(k)
        group, _ = pd.factorize(group * len(uniques) + codes)
    order = np.argsort(group, kind="stable")
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    first = order[starts]
    sums = [np.add.reduceat(m[order], starts) for m in metrics]
    keep = np.zeros(len(starts), dtype=bool)
    for m in sums:
        keep |= m != 0
    if not keep.any():
        return None
    return [k[first][keep] for k in keys] + [m[keep] for m in sums]


def _none(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def record_block(rows: list[dict[str, Any]], columns: Sequence[str], seq0: int) -> Columns:
    """Violation or kept-trace rows as columns, ``seq`` numbering them from ``seq0``."""
    frame = F.record_frame(rows, columns, seq0)
    data: list[list[Any]] = [frame["seq"].astype(np.uint64).tolist()]
    for c in columns:
        if c in ("late", "stayed"):
            data.append([None if v is None or _none(v) is None else int(bool(v)) for v in frame[c].tolist()])
        elif c == "ts":
            data.append(frame[c].astype(np.int64).tolist())
        else:
            data.append([None if _none(v) is None else str(v) for v in frame[c].tolist()])
    return ["seq", *columns], data


class Instances:
    """This collector's running row per instance (what DuckDB's upsert keeps): min first_seen,
    max last_seen, the state of the newest last_seen, hops and errors added, max last_hop."""

    def __init__(self, loaded: Sequence[Sequence[Any]] = ()) -> None:
        self.rows: dict[tuple[str, str, str], list[Any]] = {}
        for service, lane, instance, first, last, state, hops, errors, last_hop in loaded:
            self.rows[(service, lane, instance)] = [float(first), float(last), state, int(hops),
                                                   int(errors), last_hop]

    def add(self, batch_rows: Sequence[Mapping[str, Any]], keep_from: int) -> list[tuple[str, str, str]]:
        """Fold a batch's rows in; the keys that changed. A row whose instance fell out of
        retention (``last_seen < keep_from``) starts afresh, as DuckDB deletes it."""
        changed: dict[tuple[str, str, str], None] = {}
        frame = F.instance_frame([dict(r) for r in batch_rows])
        for r in frame.itertuples(index=False):
            key = tuple(NULL_KEY if v is None else str(v) for v in (r.service, r.lane, r.instance))
            last_hop = _none(float(r.last_hop))
            old = self.rows.get(key)  # type: ignore[arg-type]
            if old is None or old[1] < keep_from:
                self.rows[key] = [float(r.first_seen), float(r.last_seen), r.state, int(r.hops),  # type: ignore[index]
                                  int(r.errors), last_hop]
            else:
                if r.last_seen >= old[1]:
                    old[2] = r.state
                old[0] = min(old[0], float(r.first_seen))
                old[1] = max(old[1], float(r.last_seen))
                old[3] += int(r.hops)
                old[4] += int(r.errors)
                if last_hop is not None:
                    old[5] = last_hop if old[5] is None else max(old[5], last_hop)
            changed[key] = None  # type: ignore[index]
        return list(changed)

    def block(self, keys: Sequence[tuple[str, str, str]], collector: str, ver: int) -> Columns:
        cols = ["service", "lane", "instance", "collector", "first_seen", "last_seen", "state", "hops",
                "errors", "last_hop", "ver"]
        rows = [[*k, collector, *self.rows[k], ver] for k in keys]
        return cols, [list(c) for c in zip(*rows)] if rows else [[] for _ in cols]


def counter_block(totals: Mapping[str, int], names: Sequence[str], collector: str, ver: int) -> Columns:
    return (["collector", "name", "value", "ver"],
            [[collector] * len(names), list(names), [int(totals[n]) for n in names], [ver] * len(names)])


def frame_of(names: Sequence[str], cols: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """A result as a DataFrame named by ``names`` (its columns, keeping them when empty)."""
    return pd.DataFrame({n: list(c) for n, c in zip(names, cols)}, columns=list(names))
