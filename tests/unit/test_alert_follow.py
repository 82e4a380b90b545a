"""``lanewatch serve``'s alert window follows the store: re-read from the oldest second that
changed, the same evidence as reading the whole window afresh at every evaluation.

The reference is an engine that reads everything each time (a new engine per evaluation); the
follower reads the seconds its store's change feed names. Random writes: recent rows, late
rows, rows older than the window, rows a second ahead, corrections with negative counts.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from lanewatch import config
from lanewatch.alerts.engine import AlertEngine
from lanewatch.alerts.evidence import Evidence
from lanewatch.store.base import Batch
from lanewatch.store.duck import DuckStore
from lanewatch.testing import FakeClock

SERVICES, LANES = ("A", "B", "C"), ("base", "gray")


def rows(rng: random.Random, now: float, n: int) -> Batch:
    """``n`` rows per table; one batch in ten has rows from before the window."""
    very_late = rng.random() < 0.1

    def ts() -> int:
        r = rng.random()
        if r < 0.6:
            return int(now) - rng.randint(0, 2)
        if r < 0.85:
            return int(now) - rng.randint(3, 45)  # late, inside the window
        if r < 0.95 and very_late:
            return int(now) - rng.randint(61, 400)  # older than the window (60 s)
        return int(now) + 1

    def count() -> int:
        return rng.randint(1, 9) if rng.random() > 0.1 else -rng.randint(1, 3)

    hops: dict[str, list[Any]] = {k: [] for k in ("ts", "service", "instance_lane", "request_lane",
                                                  "expected_lane", "verdict", "requests", "errors",
                                                  "latency_sum_ms")}
    lat: dict[str, list[Any]] = {k: [] for k in ("ts", "service", "instance_lane", "request_lane", "bucket", "count")}
    edges: dict[str, list[Any]] = {k: [] for k in ("ts", "caller", "callee", "lane", "entry_lane", "calls",
                                                   "errors", "in_lane", "fallback", "leak", "intrusion",
                                                   "tag_lost", "tag_lost_inside")}
    traces: dict[str, list[Any]] = {k: [] for k in ("ts", "entry_lane", "traces", "stayed")}
    for _ in range(n):
        svc, inst, exp = rng.choice(SERVICES), rng.choice(LANES), rng.choice(LANES)
        verdict = "in_lane" if inst == exp else rng.choice(["leak", "fallback", "intrusion"])
        c = count()
        for k, v in zip(hops, (ts(), svc, inst, exp, exp, verdict, c, rng.randint(0, 1), 10.0 * c)):
            hops[k].append(v)
        for k, v in zip(lat, (ts(), svc, inst, exp, rng.randint(0, 30), count())):
            lat[k].append(v)
        calls = count()
        for k, v in zip(edges, (ts(), svc, rng.choice(SERVICES), inst, exp, calls, 0, calls, 0, 0, 0,
                                rng.randint(0, 1), 0)):
            edges[k].append(v)
        for k, v in zip(traces, (ts(), exp, count(), rng.randint(0, 1))):
            traces[k].append(v)
    return Batch(rollups={"hops": hops, "latency": lat, "edges": edges, "traces": traces})


def comparable(ev: Evidence) -> tuple[Any, ...]:
    def nonzero(d: dict[Any, Any]) -> dict[Any, Any]:
        out = {}
        for k, v in d.items():
            arr = np.atleast_1d(np.asarray(v, dtype=float))
            if arr.any():
                out[k] = tuple(arr.tolist())
        return out
    return nonzero(ev.hops), nonzero(ev.latency), nonzero(ev.edges), nonzero(ev.traces)


class NoFeed:
    """The store without its change feed, recording the first second each rollup read asked for."""

    def __init__(self, store: DuckStore) -> None:
        self.store, self.starts = store, []

    def rollup(self, table: str, t0: int, t1: int, keys: Any, **kw: Any) -> Any:
        self.starts.append(t0)
        return self.store.rollup(table, t0, t1, keys, **kw)


class Reads(NoFeed):
    """The store with its change feed, recording as :class:`NoFeed` does."""

    def version(self) -> int:
        return self.store.version()

    def changed_since(self, version: int) -> int | None:
        return self.store.changed_since(version)


def test_following_the_feed_gives_the_evidence_of_a_full_read(tmp_path: Path) -> None:
    rng = random.Random(12)
    clock = FakeClock(1_800_000_000.0)
    settings = config.load(environ={}, flags={})
    store = DuckStore(tmp_path / "s.duckdb", clock=clock)
    reads = Reads(store)
    follower = AlertEngine(settings, list, clock=clock)
    follower.follow(reads)
    span = max(follower.window_s, follower.dead_s)
    partial = 0
    try:
        for step in range(60):
            if rng.random() < 0.8:
                store.write(rows(rng, clock(), rng.randint(1, 12)))
            reads.starts.clear()
            got = comparable(follower.evidence(clock()))
            partial += min(reads.starts) > int(clock()) - span
            reference = AlertEngine(settings, list, clock=clock)
            reference.follow(store)
            assert got == comparable(reference.evidence(clock())), f"step {step}"
            clock.advance(rng.choice([0.3, 1.0, 1.0, 1.0, 2.0, 7.0]))
    finally:
        store.close()
    assert partial >= 40  # most evaluations read only what changed


def test_a_store_without_a_change_feed_is_read_whole(tmp_path: Path) -> None:
    rng = random.Random(3)
    clock = FakeClock(1_800_000_000.0)
    settings = config.load(environ={}, flags={})
    store = DuckStore(tmp_path / "s.duckdb", clock=clock)
    reads = NoFeed(store)
    follower = AlertEngine(settings, list, clock=clock)
    follower.follow(reads)
    span = max(follower.window_s, follower.dead_s)
    try:
        for _ in range(5):
            store.write(rows(rng, clock(), 5))
            reads.starts.clear()
            follower.evidence(clock())
            assert set(reads.starts) == {int(clock()) - span}
            clock.advance(1.0)
    finally:
        store.close()


def test_with_every_alert_switched_off_serve_does_not_read_the_store(tmp_path: Path) -> None:
    clock = FakeClock(1_800_000_000.0)
    settings = config.load(environ={}, flags={"alerts.enabled": False})
    store = DuckStore(tmp_path / "s.duckdb", clock=clock)
    reads = Reads(store)
    engine = AlertEngine(settings, list, clock=clock)
    engine.follow(reads)
    try:
        assert engine.evaluate() == [] and reads.starts == []
    finally:
        store.close()


def test_rows_ahead_of_the_last_read_are_read_when_their_second_comes(tmp_path: Path) -> None:
    """A row a second ahead (a skewed clock) is not in the read that came before its second;
    the next read starts where the last one stopped even if what changed since is newer."""
    clock = FakeClock(1_800_000_000.0)
    settings = config.load(environ={}, flags={})
    store = DuckStore(tmp_path / "s.duckdb", clock=clock)
    follower = AlertEngine(settings, list, clock=clock)
    follower.follow(store)
    now = int(clock())

    def traces(ts: int, n: int) -> Batch:
        return Batch(rollups={"traces": {"ts": [ts], "entry_lane": ["gray"], "traces": [n], "stayed": [n]}})

    try:
        store.write(traces(now + 1, 5))  # ahead of this read's end
        assert follower.evidence(clock()).traces == {}
        clock.advance(3.0)
        store.write(traces(now + 3, 2))  # the only change since: newer than the row ahead
        assert follower.evidence(clock()).traces == {"gray": 7}
    finally:
        store.close()
