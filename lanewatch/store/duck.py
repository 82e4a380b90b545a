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

from lanewatch.store import duck_frames as F
from lanewatch.store.base import INSTANCE_COLUMNS, TRACE_COLUMNS, VIOLATION_COLUMNS, Batch
from lanewatch.store.duck_read import cells_sql, records_sql, rollup_sql
from lanewatch.store.duck_schema import (MINUTE, SCHEMA_VERSION, Physical, aggregate_sql,
                                         all_physical, ddl, physical_tables)

log = logging.getLogger(__name__)

#: Late rows older than this (behind the clock's minute) are not compacted; readers sum anyway.
COMPACT_LOOKBACK_S = 600
_BOUNDED = ("violations", "kept_traces")


class DuckStore:
    """:class:`~lanewatch.store.base.Store` on an embedded DuckDB file (``":memory:"`` for tests).

    ``clock`` decides when a minute has closed (its rows are then compacted);
    ``maintain(now)`` applies ``retention_s`` and ``downsample_after_s``;
    violations and kept traces keep the newest ``max_violations`` rows each.
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time,
                 retention_s: int = 7 * 86400, downsample_after_s: int = 3600,
                 max_violations: int = 100_000) -> None:
        if retention_s <= 0 or downsample_after_s <= 0 or max_violations <= 0:
            raise ValueError("retention_s, downsample_after_s and max_violations must be > 0")
        self.path = str(path)
        self.retention_s = int(retention_s)
        self.downsample_after_s = int(downsample_after_s)
        self.max_violations = int(max_violations)
        self._clock = clock
        self._con = duckdb.connect(self.path)
        self._lock = threading.Lock()
        self._pool: list[duckdb.DuckDBPyConnection] = []
        self._pool_lock = threading.Lock()
        self._closed = False
        for stmt in ddl():
            self._con.execute(stmt)
        self._check_version()
        names = self._con.execute("SELECT name FROM lane_ids ORDER BY id").fetchall()
        self._lane_names: list[str] = [str(n) for (n,) in names]
        self._lane_ids: dict[str, int] = {n: i for i, n in enumerate(self._lane_names)}
        self._seq = 1 + max(self._scalar(f"SELECT COALESCE(MAX(seq), 0) FROM {t}") for t in _BOUNDED)
        self._compacted_minute = int(clock()) // MINUTE * MINUTE
        self._dirty_from: int | None = None

    # ---- writes -------------------------------------------------------------------------
    def write(self, batch: Batch) -> None:
        """Add a batch in one transaction: rollups appended, records bounded, instances upserted."""
        rollups = {t: F.rollup_frame(t, cols) for t, cols in batch.rollups.items()
                   if len(next(iter(cols.values()), ()))}
        with self._lock, self._transaction() as con:
            for table, frame in rollups.items():
                if "lane_id" in physical_tables(table)[0].keys:
                    frame["lane_id"] = self._lane_codes(con, frame["instance_lane"])
                self._insert_rollup(con, table, frame)
            if batch.violations:
                self._insert_records(con, "violations", F.violation_frame(batch.violations, self._seq))
            if batch.traces:
                frame = F.trace_frame(batch.traces, self._seq)
                con.register("_in", frame)
                con.execute("DELETE FROM kept_traces WHERE trace_id IN (SELECT trace_id FROM _in)")
                con.unregister("_in")
                self._insert_records(con, "kept_traces", frame)
            if batch.instances:
                self._upsert_instances(con, F.instance_frame(batch.instances))
            if batch.counters:
                con.register("_in", F.counter_frame(batch.counters))
                con.execute("INSERT INTO counters SELECT name, SUM(value) FROM _in GROUP BY name "
                            "ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value")
                con.unregister("_in")
            self._maybe_compact(con)

    def _insert_rollup(self, con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
        con.register("_in", frame)
        try:
            for p in physical_tables(table):
                ts, res = ("ts // 60 * 60", "60") if p.minute else ("ts", "res")
                con.execute(f"INSERT INTO {p.name} " + aggregate_sql(p, "_in", "TRUE", ts_expr=ts,
                                                                     res_expr=res))
        finally:
            con.unregister("_in")
        low = int(frame["ts"].min())
        self._dirty_from = low if self._dirty_from is None else min(self._dirty_from, low)

    def _lane_codes(self, con: duckdb.DuckDBPyConnection, lanes: pd.Series) -> npt.NDArray[np.int16]:
        """Small integer per lane name, assigned on first sight and persisted (table ``lane_ids``)."""
        new = [str(x) for x in pd.unique(lanes) if x not in self._lane_ids]
        for name in new:
            self._lane_ids[name] = len(self._lane_names)
            self._lane_names.append(name)
        if new:
            con.register("_ids", pd.DataFrame({"id": [self._lane_ids[n] for n in new], "name": new}))
            con.execute("INSERT INTO lane_ids SELECT CAST(id AS SMALLINT), name FROM _ids")
            con.unregister("_ids")
        return np.asarray(lanes.map(self._lane_ids).to_numpy(), dtype=np.int16)

    def _insert_records(self, con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
        self._seq += len(frame)
        con.register("_in", frame)
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _in")
        con.unregister("_in")
        if con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] > self.max_violations:
            con.execute(f"DELETE FROM {table} WHERE seq IN (SELECT seq FROM {table} "
                        f"ORDER BY ts DESC, seq DESC OFFSET {self.max_violations})")

    def _upsert_instances(self, con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> None:
        con.register("_in", frame)
        con.execute(
            "INSERT INTO instances SELECT service, lane, instance, MIN(first_seen), MAX(last_seen),"
            " arg_max(state, last_seen) FROM _in GROUP BY service, lane, instance "
            "ON CONFLICT (service, lane, instance) DO UPDATE SET"
            " first_seen = LEAST(instances.first_seen, excluded.first_seen),"
            " state = CASE WHEN excluded.last_seen >= instances.last_seen"
            " THEN excluded.state ELSE instances.state END,"
            " last_seen = GREATEST(instances.last_seen, excluded.last_seen)")
        con.unregister("_in")

    def _maybe_compact(self, con: duckdb.DuckDBPyConnection) -> None:
        """Once the clock passes a minute, merge the rows written in small batches since."""
        minute = int(self._clock()) // MINUTE * MINUTE
        if minute <= self._compacted_minute or self._dirty_from is None:
            return
        lo = max(self._dirty_from // MINUTE * MINUTE, minute - COMPACT_LOOKBACK_S)
        if lo < minute:
            for p in all_physical():
                self._rewrite(con, p, f"ts >= {lo} AND ts < {minute}")
        self._compacted_minute = minute
        self._dirty_from = minute

    @staticmethod
    def _rewrite(con: duckdb.DuckDBPyConnection, p: Physical, cond: str, *,
                 to_minutes: bool = False) -> None:
        ts, res = ("ts // 60 * 60", "60") if to_minutes else ("ts", "res")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _merged AS "
                    + aggregate_sql(p, p.name, cond, ts_expr=ts, res_expr=res))
        con.execute(f"DELETE FROM {p.name} WHERE {cond}")
        con.execute(f"INSERT INTO {p.name} SELECT * FROM _merged ORDER BY {p.order}")
        con.execute("DROP TABLE _merged")

    def maintain(self, now: float) -> None:
        """Delete rows older than ``retention_s``; merge per-second rows older than
        ``downsample_after_s`` into per-minute rows (whole minutes only); one transaction."""
        keep_from = int(now) - self.retention_s
        minute_cut = (int(now) - self.downsample_after_s) // MINUTE * MINUTE
        with self._lock, self._transaction() as con:
            for p in all_physical():
                con.execute(f"DELETE FROM {p.name} WHERE ts < ?", [keep_from])
                if not p.minute:
                    self._rewrite(con, p, f"res = 1 AND ts < {minute_cut}", to_minutes=True)
            for table in _BOUNDED:
                con.execute(f"DELETE FROM {table} WHERE ts < ?", [keep_from])
            con.execute("DELETE FROM instances WHERE last_seen < ?", [keep_from])

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
        return self._df(*rollup_sql(table, t0, t1, keys, where, bucket_s))

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
                      minute_ok: bool = False) -> tuple[list[str], dict[str, npt.NDArray[Any]]]:
        """Raw latency histogram cells ``ts, lane, bucket, count`` in ``t0 <= ts < t1`` as numpy
        arrays, not summed (a cell may repeat); ``lane`` indexes the returned lane names.

        A faster path than ``rollup("latency", ...)`` for quantile series: no SQL
        aggregation, no strings. ``minute_ok`` lets whole minutes come from the
        per-minute table (``ts`` then floored to the minute).
        """
        sql, params = cells_sql(t0, t1, where, minute_ok)
        with self._cursor() as cur:
            cols = cur.execute(sql, params).fetchnumpy()
        out = {k: np.asarray(cols[c]) for k, c in
               (("ts", "ts"), ("lane", "lane_id"), ("bucket", "bucket"), ("count", "count"))}
        return list(self._lane_names), out

    def instances(self) -> pd.DataFrame:
        return self._df(f"SELECT {', '.join(INSTANCE_COLUMNS)} FROM instances "
                        "ORDER BY service, lane, instance")

    def counters(self) -> dict[str, int]:
        with self._cursor() as cur:
            return {str(k): int(v) for k, v in cur.execute("SELECT name, value FROM counters").fetchall()}

    # ---- lifecycle ----------------------------------------------------------------------
    def _check_version(self) -> None:
        row = self._scalar("SELECT value FROM meta WHERE key = 'schema_version'")
        if row is None:
            self._con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        elif row != str(SCHEMA_VERSION):
            raise RuntimeError(f"{self.path}: store schema version {row}, this lanewatch reads "
                               f"{SCHEMA_VERSION}; use another --data-dir")

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
            self._con.close()
