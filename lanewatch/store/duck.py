"""The embedded default store: one DuckDB file, written and read by one process.

DuckDB holds a file lock while the file is open for writing, so the process
that runs the collector also answers queries. Writes go through one
connection under a lock, in one transaction per batch, inserting whole
frames (never row by row). Reads take a cursor from a small pool and run
concurrently with writes (DuckDB isolates them). Table layout and read
planning: :mod:`lanewatch.store.duck_schema`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd

from lanewatch.store import duck_alerts, duck_journal
from lanewatch.store import duck_frames as F
from lanewatch.store import duck_write as W
from lanewatch.store.base import INSTANCE_COLUMNS, TRACE_COLUMNS, VIOLATION_COLUMNS, Batch, Resumed
from lanewatch.store.duck_read import (
    MAX_PACKED_LANES,
    cells_sql,
    records_sql,
    rollup_sql,
    unpack_cells,
)
from lanewatch.store.duck_schema import (
    MIGRATIONS,
    MINUTE,
    SCHEMA_VERSION,
    all_physical,
    ddl,
    physical_tables,
)

log = logging.getLogger(__name__)

#: Late rows older than this (behind the clock's minute) are not compacted; readers sum anyway.
COMPACT_LOOKBACK_S = 600
_BOUNDED = ("violations", "kept_traces")
#: DuckDB folds its write-ahead log into the file once the log is this big (its default is
#: 16MB). The open spans pass through the log once when written and once when deleted, so at
#: 100k spans/s the default would checkpoint every few seconds; 64MB costs at most ~1 s of
#: log replay after a crash (bench/bench_journal.py).
CHECKPOINT_THRESHOLD = "64MB"
#: Row of table ``counters`` holding the number of the newest batch written (not a counter).
_BATCH_SEQ = "__batch_seq"


class DuckStore:
    """:class:`~lanewatch.store.base.Store` on an embedded DuckDB file (``":memory:"`` for tests).

    ``clock`` decides when a minute has closed (its rows are then compacted);
    ``maintain(now)`` applies ``retention_s`` and ``downsample_after_s``;
    violations and kept traces keep the newest ``max_violations`` rows each;
    ``memory_limit_mib`` bounds DuckDB's caches and query memory (None: DuckDB's default).
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time,
                 retention_s: int = 7 * 86400, downsample_after_s: int = 3600,
                 max_violations: int = 100_000, memory_limit_mib: int | None = None) -> None:
        if retention_s <= 0 or downsample_after_s <= 0 or max_violations <= 0:
            raise ValueError("retention_s, downsample_after_s and max_violations must be > 0")
        self.path = str(path)
        self.retention_s = int(retention_s)
        self.downsample_after_s = int(downsample_after_s)
        self.max_violations = int(max_violations)
        self._clock = clock
        self._con = duckdb.connect(self.path)
        self._con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
        if memory_limit_mib is not None:  # DuckDB's default is 80% of RAM, and its caches fill it
            self._con.execute(f"SET memory_limit = '{int(memory_limit_mib)}MiB'")
        self._lock = threading.Lock()
        self._pool: list[duckdb.DuckDBPyConnection] = []
        self._pool_lock = threading.Lock()
        self._closed = False
        for stmt in ddl():
            self._con.execute(stmt)
        self._check_version()
        #: the process that wrote the file last did not stop cleanly (killed, crashed)
        self.unclean = self._scalar("SELECT value FROM meta WHERE key = 'running'") == "1"
        self._set_meta("running", "1")
        self._con.execute("DELETE FROM counters WHERE name = ?", [_BATCH_SEQ])  # a new process counts anew
        self._lanes = W.LaneIds(self._con)
        self._log = W.ChangeLog()
        #: per-second rows before this were downsampled away; reads there use the minute table
        self._minutes_before = int(self._scalar("SELECT value FROM meta WHERE key = 'minutes_before'") or 0)
        self._seq = 1 + max(self._scalar(f"SELECT COALESCE(MAX(seq), 0) FROM {t}") for t in _BOUNDED)
        self._compacted_minute = int(clock()) // MINUTE * MINUTE
        #: per rollup table, the oldest and newest ts written since its last compaction
        self._dirty: dict[str, tuple[int, int]] = {}

    # ---- writes -------------------------------------------------------------------------
    def write(self, batch: Batch) -> None:
        """Add a batch in one transaction: rollups appended, records bounded, instances upserted."""
        rollups = {t: F.rollup_frame(t, cols) for t, cols in batch.rollups.items()
                   if len(next(iter(cols.values()), ()))}
        with self._lock:
            n_lanes = len(self._lanes.names)
            try:
                with self._transaction() as con:
                    self._write(con, batch, rollups)
            except BaseException:
                self._lanes.truncate(n_lanes)
                raise
            if rollups:  # after the commit: a reader that saw this version sees these rows
                self._log.record(min(int(f["ts"].min()) for f in rollups.values()))

    def _write(self, con: duckdb.DuckDBPyConnection, batch: Batch, rollups: dict[str, pd.DataFrame]) -> None:
        for table, frame in rollups.items():
            if "lane_id" in physical_tables(table)[0].keys:
                frame["lane_id"] = self._lanes.codes(con, frame["instance_lane"])
            W.insert_rollup(con, table, frame)
            low = int(frame["ts"].min())
            high = int(frame["ts"].max())
            old = self._dirty.get(table, (low, high))
            self._dirty[table] = (min(old[0], low), max(old[1], high))
        for table, rows, to_frame, key in (("violations", batch.violations, F.violation_frame, None),
                                           ("kept_traces", batch.traces, F.trace_frame, "trace_id")):
            if rows:
                W.insert_records(con, table, to_frame(rows, self._seq), self.max_violations, key)
                self._seq += len(rows)
        if batch.instances:
            W.upsert_instances(con, F.instance_frame(batch.instances))
        if batch.counters:
            W.add_counters(con, F.counter_frame(batch.counters))
        W.write_per_collector(con, batch)
        if batch.seq:
            con.execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
                        "value = excluded.value", [_BATCH_SEQ, batch.seq])
        if batch.open_spans is not None:
            duck_journal.write(con, batch.open_spans)
        self._maybe_compact(con)

    def _maybe_compact(self, con: duckdb.DuckDBPyConnection) -> None:
        """Once the clock passes a minute, merge the rows written in small batches since
        (per table, back to its oldest row written, at most ``COMPACT_LOOKBACK_S``)."""
        minute = int(self._clock()) // MINUTE * MINUTE
        if minute <= self._compacted_minute:
            return
        for table, (low, _) in self._dirty.items():
            lo = max(low // MINUTE * MINUTE, minute - COMPACT_LOOKBACK_S)
            if lo < minute:
                for p in physical_tables(table):
                    W.rewrite(con, p, f"ts >= {lo} AND ts < {minute}")
        self._compacted_minute = minute
        self._dirty = {t: (max(low, minute), high) for t, (low, high) in self._dirty.items() if high >= minute}

    def maintain(self, now: float) -> None:
        """Apply retention and downsampling, in one transaction.

        Rows older than ``retention_s`` go from every table. Per-second rows
        older than ``downsample_after_s`` (whole minutes) go from the per-second
        tables: the per-minute table holds the same sums per minute, and reads
        before that point are served from it (rows land in their minute).
        """
        keep_from = int(now) - self.retention_s
        minute_cut = max(self._minutes_before, (int(now) - self.downsample_after_s) // MINUTE * MINUTE)
        with self._lock:
            self._maintain(keep_from, minute_cut)

    def _maintain(self, keep_from: int, minute_cut: int) -> None:
        # Route reads before the cut to the minute table first: it holds every row, so
        # reads are right before, during and after the deletes (and if they roll back).
        self._minutes_before = minute_cut
        with self._transaction() as con:
            for p in all_physical():
                con.execute(f"DELETE FROM {p.name} WHERE ts < ?",
                            [keep_from if p.minute else max(keep_from, minute_cut)])
            for table in _BOUNDED:
                con.execute(f"DELETE FROM {table} WHERE ts < ?", [keep_from])
            con.execute("DELETE FROM instances WHERE last_seen < ?", [keep_from])
            con.execute("INSERT INTO meta VALUES ('minutes_before', ?) ON CONFLICT (key) "
                        "DO UPDATE SET value = excluded.value", [str(minute_cut)])
        self._log.record(0)  # per-step sums before minute_cut are per minute now

    def version(self) -> int:
        """Counts committed changes to the rollups (see :meth:`changed_since`). Read under the
        writers' lock: a commit is counted before anyone can read the version after it, so two
        equal versions mean no commit between them (:func:`lanewatch.query.shared.consistent`)."""
        with self._lock:
            return self._log.version

    def changed_since(self, version: int) -> int | None:
        """The oldest ``ts`` whose sums may differ from what was readable at ``version``
        (None: nothing changed; 0: anything may have). Lets readers re-read only that."""
        return self._log.since(version)

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._closed:
            raise RuntimeError("store is closed")
        self._con.begin()
        try:
            yield self._con
        except BaseException:
            self._con.rollback()
            raise
        self._con.commit()

    # ---- reads --------------------------------------------------------------------------
    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._closed:
            raise RuntimeError("store is closed")
        with self._pool_lock:
            cur = self._pool.pop() if self._pool else None
        if cur is None:
            with self._lock:
                cur = self._con.cursor()
        try:
            yield cur
        finally:
            with self._pool_lock:
                self._pool.append(cur)

    def _df(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self._cursor() as cur:
            return cur.execute(sql, list(params)).df()

    def _scalar(self, sql: str) -> Any:
        rows = self._con.execute(sql).fetchall()  # fetchone would leave the result open
        return rows[0][0] if rows else None

    def rollup(self, table: str, t0: int, t1: int, keys: Sequence[str],
               where: Mapping[str, str | None] | None = None, bucket_s: int = 1) -> pd.DataFrame:
        """Sum ``table``'s metrics over ``t0 <= ts < t1`` by ``keys`` (see the Store protocol)."""
        return self._df(*rollup_sql(table, t0, t1, keys, where, bucket_s, self._minutes_before))

    def violations(self, t0: int, t1: int, where: Mapping[str, str | None] | None = None,
                   limit: int = 500) -> pd.DataFrame:
        return self._df(*records_sql("violations", VIOLATION_COLUMNS, t0, t1, where, limit))

    def traces(self, t0: int, t1: int, where: Mapping[str, str | None] | None = None,
               limit: int = 500) -> pd.DataFrame:
        return self._df(*records_sql("kept_traces", TRACE_COLUMNS, t0, t1, where, limit))

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The newest kept row of a trace, ``hops`` decoded from JSON; None when not kept."""
        with self._cursor() as cur:
            row = cur.execute(f"SELECT {', '.join(TRACE_COLUMNS)} FROM kept_traces WHERE trace_id = ?"
                              " ORDER BY seq DESC LIMIT 1", [trace_id.lower()]).fetchall()
        if not row:
            return None
        out = dict(zip(TRACE_COLUMNS, row[0]))
        if isinstance(out["hops"], str):
            try:
                out["hops"] = json.loads(out["hops"])
            except ValueError:
                log.debug("trace %s: hops are not JSON", trace_id)
        return out

    def latency_cells(self, t0: int, t1: int, where: Mapping[str, str | None] | None = None,
                      minute_ok: bool = False, step_s: int = 1) -> tuple[list[str], dict[str, npt.NDArray[Any]]]:
        """Latency histogram cells ``ts, lane, bucket, count`` in ``t0 <= ts < t1`` as numpy
        arrays; ``lane`` indexes the returned lane names. A cell may repeat (sum them).

        A faster path than ``rollup("latency", ...)`` for quantile series: no
        strings, and with ``step_s > 1`` the cells are summed per step in SQL on one
        integer key (``ts`` is then the step's start, steps counted from ``t0``).
        ``minute_ok`` lets whole minutes come from the per-minute table (``ts``
        floored to the minute).
        """
        names = list(self._lanes.names)
        packed = step_s > 1 and len(names) <= MAX_PACKED_LANES
        sql, params = cells_sql(t0, t1, where, minute_ok, step_s if packed else 1, self._minutes_before)
        with self._cursor() as cur:
            cols = cur.execute(sql, params).fetchnumpy()
        if packed:
            out = unpack_cells(np.asarray(cols["k"], dtype=np.int64), int(t0), int(step_s))
            out["count"] = np.asarray(cols["count"])
            return names, out
        return names, {k: np.asarray(cols[c]) for k, c in
                       (("ts", "ts"), ("lane", "lane_id"), ("bucket", "bucket"), ("count", "count"))}

    def write_alert_events(self, rows: Sequence[dict[str, Any]], keep: int) -> None:
        """Append alert state changes (:data:`~lanewatch.store.duck_alerts.ALERT_EVENT_COLUMNS`);
        the newest ``keep`` are kept."""
        with self._lock, self._transaction() as con:
            duck_alerts.write(con, rows, keep)

    def alert_events(self, limit: int = 200, fingerprint: str | None = None,
                     name: str | None = None) -> list[dict[str, Any]]:
        """The newest alert state changes (of one alert, or one alert name), newest first."""
        with self._cursor() as cur:
            return duck_alerts.read(cur, limit, fingerprint, name)

    def instances(self) -> pd.DataFrame:
        return self._df(f"SELECT {', '.join(INSTANCE_COLUMNS)} FROM instances "
                        "ORDER BY service, lane, instance")

    def counters(self) -> dict[str, int]:
        return self.counters_at()[0]

    def counters_at(self) -> tuple[dict[str, int], int]:
        """The cumulative counters and the number of the newest batch they include (this
        process's; 0: none yet), read together."""
        with self._cursor() as cur:
            rows = cur.execute("SELECT name, value FROM counters").fetchall()
        out = {str(k): int(v) for k, v in rows}
        return out, out.pop(_BATCH_SEQ, 0)

    def collectors(self) -> list[dict[str, Any]]:
        """One row per collector that wrote: its newest ``as_of`` and its counters."""
        with self._cursor() as cur:
            return W.read_collectors(cur)

    def peer_liveness(self, collector: str) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """Every other collector's liveness rows, and each one's ``as_of``."""
        with self._cursor() as cur:
            return W.read_peer_liveness(cur, collector)

    # ---- the open spans (TraceJournal) ----------------------------------------------------
    def open_spans(self) -> Resumed:
        """The open spans the last process kept, and whether it stopped cleanly."""
        with self._cursor() as cur:
            return duck_journal.read(cur, clean=not self.unclean)

    # ---- lifecycle ----------------------------------------------------------------------
    def _set_meta(self, key: str, value: str) -> None:
        self._con.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                          "value = excluded.value", [key, value])

    def _check_version(self) -> None:
        row = self._scalar("SELECT value FROM meta WHERE key = 'schema_version'")
        if row is None:
            self._con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            return
        version = int(row) if row.isdigit() else -1
        if not 1 <= version <= SCHEMA_VERSION:
            raise RuntimeError(f"{self.path}: store schema version {row}, this lanewatch reads "
                               f"up to {SCHEMA_VERSION}; use another --data-dir")
        while version < SCHEMA_VERSION:  # each step in one transaction
            with self._transaction() as con:
                for stmt in MIGRATIONS[version]:
                    con.execute(stmt)
                version += 1
                con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(version)])
            log.info("%s: store schema migrated to version %d", self.path, version)

    def close(self) -> None:
        """Close every connection; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with self._pool_lock:
                for cur in self._pool:
                    cur.close()
                self._pool.clear()
            try:
                self._set_meta("running", "0")  # a clean stop
            finally:
                self._con.close()
