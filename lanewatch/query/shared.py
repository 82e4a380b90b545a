"""One snapshot per render: identical store reads made while a page renders are made once.

A dashboard page asks the :class:`~lanewatch.query.Query` for a summary, a comparison, series
and lists at once (:func:`lanewatch.dashboard.cache.gather`), and several of those read the
same rollup over the same window. Inside :func:`one_snapshot` the Query's reads go through
:class:`SharedReads`: the first caller of a read runs it, every other caller of the same read
(same store, table, window, keys, filters and bucket; from any thread that carries the context)
waits for that result and gets it. Outside it every read goes to the store, as before.

A render is one moment: sharing within it changes no answer. Nothing is kept after it.
Callers must not modify a shared frame (the Query's code filters and groups into new ones).

It is one moment of the store too (:func:`consistent`): a snapshot's reads are several queries,
and a flush committed between two of them (a trace's edges read before it, its trace count
after) gave a summary that disagreed with itself. :func:`consistent` reads the store's change
feed before and after, and reads again when a commit landed in between.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from lanewatch.store.base import ChangeFeed

T = TypeVar("T")
#: How many times :func:`consistent` reads; the last read is returned even if a commit raced it.
CONSISTENT_TRIES = 3


class Rollups(Protocol):
    """The one read the summary's helpers make."""

    def rollup(self, table: str, t0: int, t1: int, keys: Sequence[str],
               where: Mapping[str, str | None] | None = None, bucket_s: int = 1) -> pd.DataFrame: ...


class _Snapshot:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reads: dict[Hashable, Future[Any]] = {}
        #: reads made, and reads answered from another caller's (for tests and benchmarks)
        self.made = self.shared = 0


_current: ContextVar[_Snapshot | None] = ContextVar("lanewatch_snapshot", default=None)


@contextmanager
def one_snapshot() -> Iterator[_Snapshot]:
    """Share identical reads made in this block (and in threads that copy its context)."""
    snap = _Snapshot()
    token = _current.set(snap)
    try:
        yield snap
    finally:
        _current.reset(token)


def consistent(store: Any, read: Callable[[], T], tries: int = CONSISTENT_TRIES) -> T:
    """``read()`` in one snapshot of ``store``: inside :func:`one_snapshot`, and again (up to
    ``tries`` times in all) while the store's change feed says a commit landed during it. Exact
    on DuckDB (one transaction per batch); on ClickHouse, whose batch is several inserts, it
    narrows the race to the milliseconds between them. Inside an enclosing snapshot, the
    enclosing call decides: ``read()`` runs once, its reads shared."""
    if _current.get() is not None:
        return read()
    feed = store if isinstance(store, ChangeFeed) else None
    for _ in range(max(1, tries)):
        before = feed.version() if feed is not None else None
        with one_snapshot():
            out = read()
        if feed is None or feed.version() == before:
            break
    return out


def _shared(key: Hashable, read: Any) -> Any:
    snap = _current.get()
    if snap is None:
        return read()
    with snap.lock:
        fut = snap.reads.get(key)
        mine = fut is None
        if mine:
            fut = snap.reads[key] = Future()
            snap.made += 1
        else:
            snap.shared += 1
    assert fut is not None
    if not mine:
        return fut.result()
    try:
        value = read()
    except BaseException as e:
        fut.set_exception(e)
        raise
    fut.set_result(value)
    return value


class SharedReads:
    """``store``'s rollups and instances, shared within :func:`one_snapshot`."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def rollup(self, table: str, t0: int, t1: int, keys: Sequence[str],
               where: Mapping[str, str | None] | None = None, bucket_s: int = 1) -> pd.DataFrame:
        key = (id(self.store), "rollup", table, int(t0), int(t1), tuple(keys),
               tuple(sorted((k, v) for k, v in (where or {}).items() if v is not None)), int(bucket_s))
        frame: pd.DataFrame = _shared(key, lambda: self.store.rollup(table, t0, t1, keys, where=where,
                                                                      bucket_s=bucket_s))
        return frame

    def instances(self) -> pd.DataFrame:
        frame: pd.DataFrame = _shared((id(self.store), "instances"), self.store.instances)
        return frame


#: The hop and edge reads a page's parts share (each part sums them by its own keys: :func:`narrow`).
HOP_KEYS: tuple[str, ...] = ("service", "instance_lane", "expected_lane", "verdict")
EDGE_KEYS: tuple[str, ...] = ("caller", "callee", "lane", "entry_lane")


def narrow(frame: pd.DataFrame, keys: Sequence[str], read_by: Sequence[str]) -> pd.DataFrame:
    """``frame``, a rollup read by the keys ``read_by``, summed by ``keys`` (a subset), as the
    store sums a rollup: one row per key (NULL keys kept), the metrics summed, sorted by the
    keys (NULL last). Key columns keep their type (NULL: None in object columns, as
    ClickHouse's; NaN in string columns, as DuckDB's).

    Vectorised: each key factorised (sorted), the codes combined into one group number, the
    metrics summed by ``bincount`` (a pandas ``groupby`` on string keys cost several times as
    much on the few thousand rows of a page's read; every part of a page narrows one)."""
    keys = list(keys)
    metrics = [c for c in frame.columns if c not in read_by]
    codes, uniques = [], []
    for k in keys:
        c, u = pd.factorize(frame[k], sort=True, use_na_sentinel=False)
        codes.append(c)
        uniques.append(u)
    sizes = [max(1, len(u)) for u in uniques]
    combined = np.ravel_multi_index(codes, sizes) if len(frame) else np.zeros(0, dtype=np.int64)
    groups, slot = np.unique(combined, return_inverse=True)
    picked = np.unravel_index(groups, sizes)
    out: dict[str, Any] = {}
    for k, u, at in zip(keys, uniques, picked):
        values = [None if pd.isna(v) else v for v in np.asarray(u, dtype=object)[at].tolist()]
        out[k] = pd.Series(values, dtype=frame[k].dtype)
    for m in metrics:
        values = frame[m].to_numpy()
        acc = np.bincount(slot, weights=values.astype(np.float64), minlength=len(groups))
        out[m] = acc if values.dtype.kind == "f" else np.rint(acc).astype(values.dtype)
    return pd.DataFrame(out, columns=[*keys, *metrics])


def hops_by(reads: Rollups, t0: int, t1: int, keys: Sequence[str], service: str | None = None) -> pd.DataFrame:
    """The ``hops`` rollup summed by ``keys`` (of :data:`HOP_KEYS`), of ``service`` when given:
    from the one hop read every part of a render shares."""
    wide = reads.rollup("hops", t0, t1, HOP_KEYS)
    if service is not None:
        wide = wide[wide.service == service]
    return narrow(wide, keys, HOP_KEYS)


def edges_by(reads: Rollups, t0: int, t1: int, keys: Sequence[str]) -> pd.DataFrame:
    """The ``edges`` rollup summed by ``keys`` (of :data:`EDGE_KEYS`), from the shared edge read."""
    return narrow(reads.rollup("edges", t0, t1, EDGE_KEYS), keys, EDGE_KEYS)
