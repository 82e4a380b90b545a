"""The flush thread hands every batch to every sink; a failing sink or job spares the others."""

from __future__ import annotations

from lanewatch import config
from lanewatch.collect.engine import Engine
from lanewatch.collect.pipeline import Pipeline
from lanewatch.store.base import Batch
from lanewatch.testing import FakeClock, TraceBuilder


class Keep:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def write(self, batch: Batch) -> None:
        self.batches.append(batch)


class Broken:
    def write(self, batch: Batch) -> None:
        raise RuntimeError("sink down")


def _engine() -> tuple[Engine, FakeClock]:
    clock = FakeClock()
    return Engine(config.load(environ={}, flags={"trace_wait_s": 1.0}), clock=clock), clock


def test_every_sink_gets_every_batch_even_after_one_fails() -> None:
    engine, clock = _engine()
    first, second = Keep(), Keep()
    p = Pipeline(engine, [first, Broken(), second], interval_s=0.1, clock=clock)
    tb = TraceBuilder(t0=clock())
    tb.hop("A", "gray", "gray")
    engine.ingest("traces", tb.body(), "proto")
    p.flush()
    clock.advance(2)
    p.flush()
    assert len(first.batches) == len(second.batches) == 2
    assert first.batches[0] is second.batches[0]  # the same batch, not a copy
    assert sum(first.batches[1].rollups["traces"]["traces"]) == 1
    assert p.failures["Broken"] == 2
    assert not p.flush() and len(first.batches) == 2  # an empty flush reaches no sink


def test_upkeep_runs_every_job_and_counts_failures() -> None:
    engine, clock = _engine()
    ran: list[float] = []

    def boom(now: float) -> None:
        raise ValueError("x")

    p = Pipeline(engine, [], interval_s=0.1, jobs=[boom, ran.append], clock=clock)
    p.upkeep(clock())
    assert ran == [clock()] and p.failures["boom"] == 1


def test_stop_flushes_what_is_pending_to_the_sinks() -> None:
    engine, clock = _engine()
    sink = Keep()
    p = Pipeline(engine, [sink], interval_s=60, clock=clock)
    p.start()
    engine.ingest("traces", _one_hop(clock()), "proto")
    p.stop()
    assert sum(sum(b.rollups["hops"]["requests"]) for b in sink.batches) == 1


def _one_hop(t0: float) -> bytes:
    tb = TraceBuilder(t0=t0)
    tb.hop("A", "", "")
    return tb.body()


def test_ingest_is_refused_while_the_store_is_further_behind_than_max_unflushed_s() -> None:
    """What a kill -9 can lose is bounded: spans are not acknowledged while the store holds
    nothing newer than ``max_unflushed_s`` ago (here: its writes fail), and are again once
    a write succeeds."""
    import pytest

    from lanewatch.collect.ingest import Overloaded

    engine, clock = _engine()
    store = Keep()
    p = Pipeline(engine, [store], interval_s=0.1, clock=clock, store=store)
    p.start()
    p.stop()  # no thread: flushes are driven by hand below
    tb = TraceBuilder(t0=clock())
    tb.hop("A", "gray", "gray")
    body = tb.body()
    engine.ingest("traces", body, "proto")  # durable_at is the start: not behind yet
    broken = Broken()
    p.sinks, p.store = [broken], broken
    clock.advance(0.6)
    p.flush()  # fails: the store is as far behind as before
    engine.ingest("traces", tb.new_trace().body(), "proto")  # 0.6 s <= 1.0 s: still taken
    clock.advance(0.6)
    with pytest.raises(Overloaded, match="store is 1.2s behind"):
        engine.ingest("traces", tb.new_trace().body(), "proto")
    assert engine.flush().counters["requests_refused_store_behind"] == 1
    p.sinks, p.store = [store], store
    p.flush()
    engine.ingest("traces", tb.new_trace().body(), "proto")  # caught up: taken again


def test_counters_read_while_a_batch_is_being_written_are_counted_once() -> None:
    """A reader between the engine's flush and the store's commit saw the counts in neither
    (``counters`` came back ``{}``); one right after the commit must not see them twice."""
    import threading

    from lanewatch.query import Query
    from lanewatch.server import _LiveView
    from lanewatch.store.duck import DuckStore

    engine, clock = _engine()
    store = DuckStore(":memory:", clock=clock)
    query = Query(store, engine.settings, clock, live=_LiveView(engine))
    tb = TraceBuilder(t0=clock())
    tb.hop("A", "gray", "gray")
    engine.ingest("traces", tb.body(), "proto")
    seen: list[dict[str, int]] = []

    class ReadMidWrite:
        """Reads the counters as a reader would, before and after the store commits."""

        def write(self, batch: Batch) -> None:
            seen.append(query._counters())  # the batch is out of the engine, not in the store
            t = threading.Thread(target=store.write, args=(batch,))
            t.start()
            t.join()
            seen.append(query._counters())  # in the store now

    Pipeline(engine, [ReadMidWrite()], interval_s=0.1, clock=clock, store=store).flush()
    seen.append(query._counters())
    assert [c.get("spans_received") for c in seen] == [1, 1, 1]
    engine.ingest("traces", tb.new_trace().body(), "proto")
    assert query._counters()["spans_received"] == 2  # 1 stored + 1 pending
