"""One snapshot per render (lanewatch.query.shared): the parts of a page read each rollup once,
and every answer is the same as when each part reads the store on its own."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lanewatch.config import Settings
from lanewatch.dashboard import cache
from lanewatch.query import Query
from lanewatch.query.shared import EDGE_KEYS, HOP_KEYS, SharedReads, narrow, one_snapshot
from lanewatch.store.base import Batch
from lanewatch.store.duck import DuckStore
from tests.unit.test_store_duck import random_rollups

T0 = 1_767_225_600
NOW = T0 + 119.5


class Counting:
    """The store, counting its rollup and instance reads by their arguments."""

    def __init__(self, store: DuckStore) -> None:
        self.store = store
        self.reads: Counter[Any] = Counter()
        self.lock = threading.Lock()

    def rollup(self, table: str, t0: int, t1: int, keys: Sequence[str],
               where: Mapping[str, str | None] | None = None, bucket_s: int = 1) -> pd.DataFrame:
        with self.lock:
            self.reads[(table, t0, t1, tuple(keys), tuple(sorted((where or {}).items())), bucket_s)] += 1
        return self.store.rollup(table, t0, t1, keys, where=where, bucket_s=bucket_s)

    def instances(self) -> pd.DataFrame:
        with self.lock:
            self.reads["instances"] += 1
        return self.store.instances()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
def store(tmp_path: Path) -> DuckStore:
    """Random rollups with negative corrections, and edges without an entry lane (NULL keys)."""
    s = DuckStore(tmp_path / "lanewatch.duckdb")
    rng = np.random.default_rng(11)
    for i in range(4):
        rollups = random_rollups(rng, T0 + 30 * i, 30)
        hop = rollups["hops"]  # errors within requests (as real corrections keep them)
        hop["errors"] = np.clip(hop["requests"], 0, None) // 3
        edges = rollups["edges"]
        edges["entry_lane"] = np.where(rng.random(len(edges["ts"])) < 0.3, None, edges["entry_lane"])
        s.write(Batch(rollups=rollups, instances=[
            {"service": "B", "lane": "gray", "instance": "b-gray", "first_seen": float(T0), "last_seen": NOW,
             "state": "up", "hops": 3, "errors": 0, "last_hop": NOW}]))
    return s


def _rows(df: pd.DataFrame, keys: Sequence[str]) -> list[tuple[Any, ...]]:
    def key(v: Any) -> Any:  # float sums differ in their last bits with the order of adding
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "<NULL>"
        return float(f"{v:.9g}") if isinstance(v, float) else v

    return sorted(tuple(key(v) for v in row) for row in df[[*keys, *(c for c in df.columns if c not in keys)]]
                  .itertuples(index=False))


@pytest.mark.parametrize("table,read_by,keys", [
    ("hops", HOP_KEYS, ["instance_lane", "expected_lane", "verdict"]),
    ("hops", HOP_KEYS, ["service", "instance_lane"]),
    ("hops", HOP_KEYS, ["expected_lane"]),
    ("edges", EDGE_KEYS, ["lane", "entry_lane"]),
    ("edges", EDGE_KEYS, ["caller", "callee"]),
    ("edges", EDGE_KEYS, ["entry_lane"]),
])
def test_narrowing_a_wider_read_is_the_stores_own_sum(store: DuckStore, table: str, read_by: tuple[str, ...],
                                                      keys: list[str]) -> None:
    """The reference is the store summing by the fewer keys itself (NULL keys and corrections
    that cancel out included)."""
    wide = store.rollup(table, T0, T0 + 120, read_by)
    got, want = narrow(wide, keys, read_by), store.rollup(table, T0, T0 + 120, keys)
    assert list(got.columns) == list(want.columns)
    assert _rows(got, keys) == _rows(want, keys)
    if table == "edges" and "entry_lane" in keys:
        assert got.entry_lane.isna().any() and got.entry_lane.dtype == want.entry_lane.dtype
        # as ClickHouse gives NULL keys (object columns, None): they stay None
        for k in read_by:
            wide[k] = pd.Series([None if pd.isna(v) else v for v in wide[k]], dtype=object)
        back = narrow(wide, keys, read_by)
        assert back.entry_lane.dtype == object and None in back.entry_lane.tolist()
        assert _rows(back, keys) == _rows(want, keys)


def _page(q: Query) -> list[Any]:
    """What the Overview asks at once (its summary, comparison and lanes), plus a lane view."""
    return cache.gather(lambda: q.summary(60), lambda: q.compare_all(None, 60), lambda: q.lanes(60),
                        lambda: q.summary(60, lane="gray"), lambda: q.summary(60, service="B"), q.instances)


def test_a_render_reads_each_rollup_once_and_answers_the_same(store: DuckStore) -> None:
    settings = Settings()
    alone = Counting(store)
    q = Query(alone, settings, clock=lambda: NOW)  # type: ignore[arg-type]
    want = [q.summary(60), q.compare_all(None, 60), q.lanes(60), q.summary(60, lane="gray"),
            q.summary(60, service="B"), q.instances()]
    assert want[0]["hops"]["leak"] > 0 and want[1]  # the data has something to say
    separate = sum(alone.reads.values())
    shared = Counting(store)
    got = _page(Query(shared, settings, clock=lambda: NOW))  # type: ignore[arg-type]
    assert got == want
    assert max(shared.reads.values()) == 1, shared.reads  # nothing read twice in one render
    hop_reads = [k for k in shared.reads if k != "instances" and k[0] == "hops" and k[4] == () and k[5] == 1]
    assert [k[3] for k in hop_reads if k[1] == int(NOW) + 1 - 60] == [HOP_KEYS]  # one hop read for the window
    assert sum(shared.reads.values()) < separate / 2, (sum(shared.reads.values()), separate)


def test_outside_a_render_every_read_goes_to_the_store(store: DuckStore) -> None:
    counting = Counting(store)
    reads = SharedReads(counting)
    for _ in range(2):
        reads.rollup("hops", T0, T0 + 60, HOP_KEYS)
    assert counting.reads[("hops", T0, T0 + 60, HOP_KEYS, (), 1)] == 2
    with one_snapshot() as snap:
        for _ in range(3):
            reads.rollup("hops", T0, T0 + 60, HOP_KEYS)
        reads.rollup("hops", T0, T0 + 61, HOP_KEYS)  # another window: its own read
        other = Counting(store)
        SharedReads(other).rollup("hops", T0, T0 + 60, HOP_KEYS)  # another store: its own read
    assert counting.reads[("hops", T0, T0 + 60, HOP_KEYS, (), 1)] == 3
    assert other.reads[("hops", T0, T0 + 60, HOP_KEYS, (), 1)] == 1
    assert (snap.made, snap.shared) == (3, 2)


def test_a_failed_read_fails_every_caller_that_shared_it(store: DuckStore) -> None:
    started, release = threading.Event(), threading.Event()

    class Failing:
        calls = 0

        def rollup(self, *a: Any, **kw: Any) -> pd.DataFrame:
            Failing.calls += 1
            started.set()
            release.wait(5)
            raise RuntimeError("store is closed")

    reads = SharedReads(Failing())

    def waiter() -> None:
        started.wait(5)
        release.set()
        reads.rollup("hops", T0, T0 + 60, HOP_KEYS)

    with pytest.raises(RuntimeError, match="store is closed"):
        cache.gather(lambda: reads.rollup("hops", T0, T0 + 60, HOP_KEYS), waiter)
    assert Failing.calls == 1
