"""The flush thread: the engine's batches, on a timer, to every sink; periodic upkeep.

:class:`Pipeline` owns the thread and nothing else: the span path is the
:class:`~lanewatch.collect.engine.Engine`, storage is a sink
(:class:`~lanewatch.collect.sink.BatchSink`), and upkeep (store retention, forgetting
old instances) is a list of jobs run every ``upkeep_every_s``. A failing sink or job is
logged and counted (:attr:`Pipeline.failures`); the others go on.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from lanewatch.collect.engine import Engine
from lanewatch.collect.sink import BatchSink
from lanewatch.store.base import Batch, SharedLiveness

log = logging.getLogger(__name__)

#: With several collectors, the names they admitted are read from the store this often.
NAMES_EVERY_S = 5.0
#: A periodic upkeep job: called with the clock's time.
Job = Callable[[float], None]


class Pipeline:
    """Flush ``engine`` every ``interval_s`` on a thread and hand each non-empty batch to
    every sink in order; run ``jobs`` every ``upkeep_every_s``. :meth:`stop` flushes once more."""

    def __init__(self, engine: Engine, sinks: Sequence[BatchSink] = (), *, interval_s: float,
                 jobs: Sequence[Job] = (), upkeep_every_s: float = 60.0,
                 clock: Callable[[], float] = time.time, store: BatchSink | None = None) -> None:
        self.engine, self.sinks, self.jobs = engine, list(sinks), list(jobs)
        #: the sink whose writes make spans durable: after each of its writes the engine learns
        #: by when every accepted span was in it (``Engine.durable_at``), and sheds beyond
        self.store = store
        self.interval_s, self.upkeep_every_s, self.clock = interval_s, upkeep_every_s, clock
        #: failures per sink or job name (``type(sink).__name__`` / the job's ``__name__``)
        self.failures: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_upkeep = clock()
        self._names_at = float("-inf")

    def flush(self, final: bool = False) -> Batch:
        """One flush: the engine's batch to every sink (a failing sink does not stop the others).
        ``final``: the last one before a stop."""
        taken = self.clock()  # every span accepted before this is in the batch
        batch = self.engine.flush(final)
        stored = True
        if batch:
            for sink in self.sinks:
                try:
                    sink.write(batch)
                except Exception:  # logged and counted: the other sinks and later flushes go on
                    log.exception("batch sink %s failed", type(sink).__name__)
                    self.failures[type(sink).__name__] += 1
                    if sink is self.store:
                        stored = False
                        if batch.open_spans is not None:  # the journal may have missed this change
                            self.engine.rejournal()
        elif self.engine.sharing and self.store is not None:
            # nothing new, but the other collectors learn that our liveness is current up to
            # now (the batch's as_of): their spans need not wait for us
            try:
                self.store.write(batch)
            except Exception:
                log.exception("batch sink %s failed", type(self.store).__name__)
                self.failures[type(self.store).__name__] += 1
                stored = False
        if self.store is not None and stored:
            self.engine.stored(taken)
        if self.engine.sharing:
            self.merge_peers()
            now = self.clock()
            if now - self._names_at >= NAMES_EVERY_S:
                self._names_at = now
                try:
                    self.adopt_names(now)
                except Exception:
                    log.exception("reading the names other collectors admitted failed")
                    self.failures["peer_names"] += 1
        return batch

    def adopt_names(self, now: float) -> None:
        """With several collectors (every :data:`NAMES_EVERY_S`, and at start): the names of services and lanes in the shared
        store's last hour are admitted here too (see ``Engine.adopt_names``)."""
        if not self.engine.sharing or self.store is None:
            return
        reader: Any = self.store
        t0, t1 = int(now) - 3600, int(now) + 1
        services = reader.rollup("hops", t0, t1, ["service"])
        lanes = reader.rollup("hops", t0, t1, ["instance_lane", "request_lane", "expected_lane"])
        names = set()
        for col in ("instance_lane", "request_lane", "expected_lane"):
            names |= {str(x) for x in lanes[col] if isinstance(x, str)}
        self.engine.adopt_names(sorted(str(x) for x in services["service"] if isinstance(x, str)), sorted(names))

    def merge_peers(self) -> None:
        """Read the other collectors' liveness from the store into the engine (a failure is
        logged and counted; the spans then wait at most ``liveness_wait_s``)."""
        if not isinstance(self.store, SharedLiveness):
            return
        try:
            rows, as_of = self.store.peer_liveness(self.engine.collector)
            self.engine.merge_peer_liveness(rows, as_of)
        except Exception:
            log.exception("reading the other collectors' liveness failed")
            self.failures["peer_liveness"] += 1

    def upkeep(self, now: float) -> None:
        """Run every job now."""
        self._last_upkeep = now
        for job in self.jobs:
            try:
                job(now)
            except Exception:
                name = getattr(job, "__name__", type(job).__name__)
                log.exception("upkeep job %s failed", name)
                self.failures[name] += 1

    def _loop(self) -> None:
        due = time.monotonic()
        while True:  # flushes start every interval_s (a slow one delays only the next)
            due = max(due + self.interval_s, time.monotonic())
            if self._stop.wait(due - time.monotonic()):
                break
            try:
                self.flush()
            except Exception:  # the engine itself failed: keep flushing
                log.exception("flush failed")
                self.failures["engine"] += 1
            now = self.clock()
            if now - self._last_upkeep >= self.upkeep_every_s:
                self.upkeep(now)

    def start(self) -> None:
        if self.store is not None:
            self.engine.stored(self.clock())
        self._thread = threading.Thread(target=self._loop, name="lanewatch-flush", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush(final=True)


#: The young-generation threshold of the cyclic garbage collector in a collector process
#: (Python's default is 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Garbage collection for a collector process; call once, after start-up.

    The span path allocates and frees objects by the hundred thousand per request (an
    OTLP/JSON body becomes a tree of dicts and strings) and none of them form cycles, yet
    with the default settings the cyclic collector scans them every 700 allocations and
    scans everything start-up built on every full collection. Start-up's objects live as
    long as the process, so they are frozen out of collection, and the young generation
    is collected every :data:`GC_YOUNG_THRESHOLD` allocations. Cycles are still collected.
    ``bench/bench_collector.py`` measures both settings side by side."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 10)

