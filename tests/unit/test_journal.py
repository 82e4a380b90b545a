"""The open spans kept with each batch: restarts in the middle change no verdict.

The reference is one engine that never stops; the subject is stopped and resumed from its
store's journal at random flushes, with spans of one trace arriving on both sides of a
restart. Both must store the same rollups, and after every commit the journal must hold
exactly the spans the engine has open.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from lanewatch import config
from lanewatch.collect.engine import Engine
from lanewatch.collect.pipeline import Pipeline
from lanewatch.store.base import TraceJournal
from lanewatch.store.duck import DuckStore
from lanewatch.testing import FakeClock, SpanSpec, TraceBuilder

SETTINGS = config.load(environ={}, flags={"trace_wait_s": 3.0})
LANES = ["", "gray", "gray2"]


def _traffic(rng: random.Random, t0: float, n: int) -> list[tuple[float, list[SpanSpec]]]:
    """``n`` chains A -> B -> C with random lanes, each span sent at its own random time
    (0-6 s after t0), so traces are open across flushes and restarts."""
    sends: list[tuple[float, list[SpanSpec]]] = []
    for _ in range(n):
        tb = TraceBuilder(t0=t0)
        lane = rng.choice(LANES)
        parent = tb.hop("A", rng.choice(LANES), lane)
        for svc in "BC":
            sent = lane if rng.random() < 0.9 else ""
            parent = tb.hop(svc, rng.choice(LANES), sent, caller=tb.call(parent, lane=sent),
                            error=rng.random() < 0.1)
        first = rng.uniform(0, 4)
        for s in tb.spans:
            sends.append((first + rng.uniform(0, 2), [s]))
    return sorted(sends, key=lambda x: x[0])


def _rollups(store: DuckStore) -> dict[str, pd.DataFrame]:
    out = {}
    for table, keys in (("traces", ["ts", "entry_lane"]), ("edges", ["ts", "caller", "callee", "lane"]),
                        ("hops", ["ts", "service", "instance_lane", "request_lane", "verdict"])):
        f = store.rollup(table, 0, 2**40, keys)
        out[table] = f.sort_values(keys).reset_index(drop=True)
    return out


def _run(tmp: Path, name: str, sends: list[tuple[float, list[SpanSpec]]], restarts: set[int]) -> DuckStore:
    clock = FakeClock()
    t0 = clock()
    path = tmp / f"{name}.db"
    store = DuckStore(path, clock=clock)
    engine = Engine(SETTINGS, clock)
    engine.resume(store.open_spans())
    pipe = Pipeline(engine, [store], interval_s=1.0, clock=clock)
    i = 0
    for step in range(40):  # one flush per 0.5 s of clock, 20 s in all
        while i < len(sends) and sends[i][0] <= step * 0.5:
            tb = TraceBuilder(t0=t0)
            engine.ingest("traces", tb.body(sends[i][1]), "proto")
            i += 1
        clock.advance(0.5)
        pipe.flush()
        kept = store.open_spans()
        held = 0 if kept.rows is None else len(kept.rows["sid"])
        assert held == engine.assembly.n_open  # the journal is the open spans, no more, no less
        if step in restarts:
            pipe.stop()
            store.close()
            store = DuckStore(path, clock=clock)
            resumed = store.open_spans()
            assert resumed.clean
            engine = Engine(SETTINGS, clock)
            assert engine.resume(resumed) == held
            pipe = Pipeline(engine, [store], interval_s=1.0, clock=clock)
    assert i == len(sends)
    return store


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_restarts_at_random_flushes_change_no_rollup(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    sends = _traffic(rng, FakeClock()(), 300)
    reference = _run(tmp_path, "reference", sends, set())
    subject = _run(tmp_path, "subject", sends, set(rng.sample(range(2, 14), 4)))
    want, got = _rollups(reference), _rollups(subject)
    assert int(want["traces"]["traces"].sum()) == 300
    assert int(want["edges"]["tag_lost"].sum()) > 0  # violations were exercised
    for table in want:
        pd.testing.assert_frame_equal(got[table], want[table], check_dtype=False)
    assert reference.open_spans().rows is None and subject.open_spans().rows is None


def test_a_store_without_a_journal_gets_every_open_trace_judged_at_stop() -> None:
    clock = FakeClock()
    engine = Engine(SETTINGS, clock)
    batches = []

    class Plain:
        def write(self, batch: object) -> None:
            batches.append(batch)

    assert not isinstance(Plain(), TraceJournal)
    tb = TraceBuilder(t0=clock())
    a = tb.hop("A", "gray", "gray")
    tb.hop("B", "", "", caller=tb.call(a, lane=""))
    engine.ingest("traces", tb.body(), "proto")
    pipe = Pipeline(engine, [Plain()], interval_s=1.0, clock=clock)
    pipe.flush()
    assert not sum(b.rollups["traces"]["traces"] for b in batches if len(b.rollups["traces"]["traces"]))
    pipe.stop()  # 0 s after the spans: inside trace_wait_s, judged anyway
    last = batches[-1]
    assert list(last.rollups["traces"]["traces"]) == [1] and list(last.rollups["traces"]["stayed"]) == [0]
    assert sum(last.rollups["edges"]["tag_lost"]) == 1 and last.open_spans is None


def test_an_unclean_stop_is_counted_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    store = DuckStore(path)
    store._con.close()  # the process died: close never ran
    again = DuckStore(path)
    engine = Engine(SETTINGS)
    kept = again.open_spans()
    assert not kept.clean
    engine.resume(kept)
    assert engine.flush().counters["restarts_unclean"] == 1
    again.close()
    assert DuckStore(path).open_spans().clean
