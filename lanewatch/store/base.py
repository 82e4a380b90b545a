"""The store interface: what the collector writes and the read side asks for.

Every rollup row is *mergeable*: counters and histogram buckets are summed, so
a row may be written in several pieces (late spans, several collector
processes, downsampling) and readers always ``SUM`` by their keys. A
correction is a row with negative counts (a late span that turns a finalised
trace from stayed to violated writes ``stayed = -1``).

Timestamps are whole seconds since the epoch, in span time (the start of the
span). ``res`` is the width of the row's time bucket in seconds: 1 for fresh
rows, 60 once downsampled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from lanewatch.rollups import ROLLUPS  # noqa: F401 -- re-exported: the rollup schema the store keeps

#: One row per violation found (hop or edge), newest kept, bounded.
VIOLATION_COLUMNS: tuple[str, ...] = (
    "ts", "kind", "service", "caller", "callee", "request_lane", "instance_lane",
    "entry_lane", "trace_id", "span_id", "lane_path", "late", "expected_lane")

#: One row per kept trace (every violating one, a sample of the rest).
TRACE_COLUMNS: tuple[str, ...] = ("trace_id", "ts", "entry_lane", "stayed", "lane_path", "hops")

#: One row per instance ever seen: what decides fallback vs leak.
#: ``hops``/``errors``: hops the instance served (and failed) since first seen (in a Batch: since
#: its previous row); ``last_hop``: span start of its newest hop (None: none yet).
INSTANCE_COLUMNS: tuple[str, ...] = ("service", "lane", "instance", "first_seen", "last_seen", "state",
                                     "hops", "errors", "last_hop")

#: One row per instance a collector tracks, replaced whenever it changes: what every other
#: collector needs to judge with global liveness (:class:`SharedLiveness`). ``intervals``: JSON
#: ``[[start, end], ...]`` (span time, end inclusive); ``left``: said goodbye (heartbeat 0);
#: ``collector``: who wrote it; ``cadence``: the instance's learned reporting cadence in
#: seconds (``None`` until learned; what says when it is overdue, ``collect.liveness``).
LIVENESS_COLUMNS: tuple[str, ...] = ("collector", "service", "lane", "instance", "intervals", "left", "cadence")


@dataclass
class OpenSpans:
    """The change to the set of spans whose traces are still open (not judged yet), so that a
    restart resumes them (see :class:`TraceJournal`).

    A store keeps: every ``added`` chunk (``seq``, columns of
    :data:`lanewatch.collect.bulk.COLUMNS` without ``tkey``), minus the chunks numbered below
    ``live_from`` (their traces were judged), plus ``carry`` (rows of older chunks whose traces
    are still open; it replaces the previous carry). Name columns (``svc``, ``inst``, ``req``,
    ``recv``, ``exp``) are codes into ``names``: ``names[i]`` is the name of code
    ``names_from + i`` (codes only grow). ``reset``: forget what was kept before (the first
    flush of a process, which writes everything again with its own codes)."""

    added: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    carry: dict[str, Any] | None = None
    live_from: int = 0
    names: list[str] = field(default_factory=list)
    names_from: int = 0
    reset: bool = False


@dataclass
class Resumed:
    """What a :class:`TraceJournal` kept: the open spans (columns as in :class:`OpenSpans`, name
    codes into ``names``) and whether the process that wrote them stopped cleanly."""

    rows: dict[str, Any] | None
    names: list[str]
    clean: bool


@dataclass
class Batch:
    """What the pipeline hands the store on each flush: rows per table.

    ``rollups[table]`` maps each column of :data:`ROLLUPS` to a sequence (list
    or numpy array) of equal length. ``violations``/``traces``/``instances``
    are lists of dicts with the columns named above.
    """

    rollups: dict[str, Mapping[str, Sequence[Any]]] = field(default_factory=dict)
    violations: list[dict[str, Any]] = field(default_factory=list)
    traces: list[dict[str, Any]] = field(default_factory=list)
    instances: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    #: the change to the open spans (None: the engine keeps no journal)
    open_spans: OpenSpans | None = None
    #: the engine's number of this batch (1, 2, ... per process; 0: not numbered). A store that
    #: keeps it with the counters lets readers add exactly the counts it does not have yet
    #: (``Engine.pending_counters(after=...)``).
    seq: int = 0
    #: who wrote it (``collector_id``); a store shared by several collectors keeps counters,
    #: open spans and liveness per collector
    collector: str = ""
    #: the writer's clock when the batch was cut: its liveness rows are complete up to then
    as_of: float = 0.0
    #: rows of :data:`LIVENESS_COLUMNS` that changed since the previous batch
    liveness: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.violations or self.traces or self.instances or self.counters
                    or self.liveness or self.open_spans is not None
                    or any(len(next(iter(c.values()), ())) for c in self.rollups.values()))


class StoreWriter(Protocol):
    """What a collector needs of a store: ``lanewatch collect`` holds only this."""

    def write(self, batch: Batch) -> None:
        """Add one batch (one transaction where the backend has them)."""
        ...

    def maintain(self, now: float) -> None:
        """Apply retention and downsampling."""
        ...

    def close(self) -> None: ...


class StoreReader(Protocol):
    """What the API, dashboard, alerts and ``check`` need of a store: ``lanewatch serve`` holds
    only this.

    Reads return pandas DataFrames with the named columns (empty frames keep
    their columns). Filters in ``where`` are equality on key columns; ``None``
    values are ignored. Optional fast paths are declared capabilities
    (:class:`LatencyCells`, :class:`ChangeFeed`, :class:`NumberedCounters`), tested with
    ``isinstance``.
    """

    def rollup(self, table: str, t0: int, t1: int, keys: Sequence[str],
               where: Mapping[str, str | None] | None = None, bucket_s: int = 1) -> pd.DataFrame:
        """Sum the table's metrics over ``t0 <= ts < t1`` grouped by ``keys``.

        When ``ts`` is among the keys it is floored to ``bucket_s``. A ``res``
        column is never grouped on; downsampled rows land in their minute.
        """
        ...

    def violations(self, t0: int, t1: int, where: Mapping[str, str | None] | None = None,
                   limit: int = 500) -> pd.DataFrame:
        """Newest first."""
        ...

    def traces(self, t0: int, t1: int, where: Mapping[str, str | None] | None = None,
               limit: int = 500) -> pd.DataFrame: ...

    def trace(self, trace_id: str) -> dict[str, Any] | None: ...

    def instances(self) -> pd.DataFrame:
        """One row per (service, lane, instance), merged over every collector that saw it."""
        ...

    def counters(self) -> dict[str, int]:
        """Cumulative counters (drops, duplicates, unpaired spans...), persisted, summed over
        every collector."""
        ...

    def close(self) -> None: ...


class Store(StoreWriter, StoreReader, Protocol):
    """Both sides: the embedded store of ``lanewatch up``. Implementations:
    :mod:`lanewatch.store.duck` (embedded, one process) and :mod:`lanewatch.store.clickhouse`
    (shared by any number of ``collect`` and ``serve`` processes)."""


@runtime_checkable
class LatencyCells(Protocol):
    """Latency histogram cells as integer arrays (a faster path than ``rollup("latency")``)."""

    def latency_cells(self, t0: int, t1: int, where: Mapping[str, str | None] | None = None,
                      minute_ok: bool = False, step_s: int = 1) -> tuple[list[str], dict[str, Any]]:
        """``(lane names, {"ts", "lane", "bucket", "count": arrays})``; ``lane`` indexes the
        names; a cell may repeat (sum them). With ``step_s > 1`` ``ts`` is the start of its
        step (steps counted from ``t0``); ``minute_ok``: whole minutes may come from the
        per-minute rows."""
        ...


@runtime_checkable
class ChangeFeed(Protocol):
    """Lets live readers re-read only the seconds that changed, whoever wrote them (in a shared
    store: other processes too)."""

    def version(self) -> int:
        """A number that grows with every committed change to the rollups."""
        ...

    def changed_since(self, version: int) -> int | None:
        """The oldest ``ts`` whose sums may differ from what was readable at ``version``
        (None: nothing changed; 0: anything may have). It may say more changed, never less."""
        ...


@runtime_checkable
class NumberedCounters(Protocol):
    """Counters read with the number of the newest batch of *this* process they include, so a
    reader adds exactly the live counts the store does not have yet."""

    def counters_at(self) -> tuple[dict[str, int], int]: ...


@runtime_checkable
class PerCollector(Protocol):
    """A store shared by several collectors: what each one wrote, and when it last did."""

    def collectors(self) -> list[dict[str, Any]]:
        """One row per collector: ``collector``, ``as_of`` (its clock at its newest batch),
        ``counters`` (its cumulative counters)."""
        ...


@runtime_checkable
class SharedLiveness(Protocol):
    """A store through which collectors share liveness (each writes ``Batch.liveness``): every
    collector judges with every instance's liveness, wherever its telemetry arrived."""

    def peer_liveness(self, collector: str) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """The liveness rows written by every collector but ``collector``
        (:data:`LIVENESS_COLUMNS`, the newest per instance and writer), and each such writer's
        ``as_of`` (its rows are complete up to then)."""
        ...


@runtime_checkable
class AlertHistory(Protocol):
    """A store that keeps the alert history (a declared capability: ``isinstance(store,
    AlertHistory)``). Rows are alert state changes with the columns of
    :data:`lanewatch.store.duck_alerts.ALERT_EVENT_COLUMNS`."""

    def write_alert_events(self, rows: Sequence[dict[str, Any]], keep: int) -> None: ...

    def alert_events(self, limit: int = 200, fingerprint: str | None = None,
                     name: str | None = None) -> list[dict[str, Any]]: ...


@runtime_checkable
class AlertLease(Protocol):
    """A store shared by several processes that evaluate alerts (a declared capability): one of
    them at a time holds the lease and is the one that records state changes and notifies, so
    the history and the receivers get each change once."""

    def alert_lease(self, holder: str, ttl_s: float, now: float) -> str:
        """Take the lease for ``holder`` until ``now + ttl_s`` when it is free, expired or
        ``holder``'s already; the holder after that (``holder`` when it has it)."""
        ...


@runtime_checkable
class TraceJournal(Protocol):
    """A store that keeps the open spans with each batch, in the batch's transaction (a declared
    capability): a restart, graceful or not, resumes the traces that were still open, so
    nothing it acknowledged and flushed goes unjudged. Without it the collector judges every
    open trace at stop (and a crash loses them)."""

    def open_spans(self) -> Resumed:
        """What the last process kept (call once, before the first write)."""
        ...
