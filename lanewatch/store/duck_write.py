"""The store's writes, as statements on a connection inside the caller's transaction."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd

from lanewatch.store.base import LIVENESS_COLUMNS, Batch
from lanewatch.store.duck_schema import MINUTE, Physical, aggregate_sql, physical_tables


def insert_rollup(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """Append one rollup frame to each of the table's physical tables, summed by key."""
    con.register("_in", frame)
    try:
        for p in physical_tables(table):
            ts, res = (f"ts // {MINUTE} * {MINUTE}", str(MINUTE)) if p.minute else ("ts", "res")
            con.execute(f"INSERT INTO {p.name} BY NAME " + aggregate_sql(p, "_in", "TRUE", ts_expr=ts,
                                                                           res_expr=res))
    finally:
        con.unregister("_in")


def insert_records(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, keep: int,
                   replace_key: str | None = None) -> None:
    """Append violation or kept-trace rows, then drop all but the newest ``keep`` (by ts, arrival).

    With ``replace_key``, rows already stored with the same key value are deleted first.
    """
    con.register("_in", frame)
    try:
        if replace_key:
            con.execute(f"DELETE FROM {table} WHERE {replace_key} IN (SELECT {replace_key} FROM _in)")
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _in")
    finally:
        con.unregister("_in")
    if con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] > keep:
        con.execute(f"DELETE FROM {table} WHERE seq IN (SELECT seq FROM {table} "
                    f"ORDER BY ts DESC, seq DESC OFFSET {int(keep)})")


def upsert_instances(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> None:
    """One row per (service, lane, instance): min first_seen, max last_seen, the latest state,
    hops and errors added (rows carry the counts since the instance's previous row), max last_hop."""
    con.register("_in", frame)
    try:
        con.execute(
            "INSERT INTO instances BY NAME SELECT service, lane, instance, MIN(first_seen) AS first_seen,"
            " MAX(last_seen) AS last_seen, arg_max(state, last_seen) AS state, SUM(hops) AS hops,"
            " SUM(errors) AS errors, MAX(last_hop) AS last_hop FROM _in GROUP BY service, lane, instance "
            "ON CONFLICT (service, lane, instance) DO UPDATE SET"
            " first_seen = LEAST(instances.first_seen, excluded.first_seen),"
            " state = CASE WHEN excluded.last_seen >= instances.last_seen"
            " THEN excluded.state ELSE instances.state END,"
            " last_seen = GREATEST(instances.last_seen, excluded.last_seen),"
            " hops = COALESCE(instances.hops, 0) + excluded.hops,"
            " errors = COALESCE(instances.errors, 0) + excluded.errors,"
            " last_hop = GREATEST(instances.last_hop, excluded.last_hop)")
    finally:
        con.unregister("_in")


def add_counters(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> None:
    """Add the deltas in ``frame`` (name, value) to the cumulative counters."""
    con.register("_in", frame)
    try:
        con.execute("INSERT INTO counters SELECT name, SUM(value) FROM _in GROUP BY name "
                    "ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value")
    finally:
        con.unregister("_in")


def rewrite(con: duckdb.DuckDBPyConnection, p: Physical, cond: str) -> None:
    """Replace the rows of ``p`` matching ``cond`` by their sums per key, sorted by
    :attr:`Physical.order`; rows summing to zero go."""
    con.execute("CREATE OR REPLACE TEMP TABLE _merged AS " + aggregate_sql(p, p.name, cond))
    con.execute(f"DELETE FROM {p.name} WHERE {cond}")
    con.execute(f"INSERT INTO {p.name} BY NAME SELECT * FROM _merged ORDER BY {p.order}")
    con.execute("DROP TABLE _merged")


class LaneIds:
    """Small integer per lane name, assigned on first sight and persisted (table ``lane_ids``)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        rows = con.execute("SELECT name FROM lane_ids ORDER BY id").fetchall()
        self.names: list[str] = [str(n) for (n,) in rows]
        self._ids = {n: i for i, n in enumerate(self.names)}

    def codes(self, con: duckdb.DuckDBPyConnection, lanes: pd.Series) -> npt.NDArray[np.int16]:
        """Codes of ``lanes``; new names are inserted with ``con`` (undo with :meth:`truncate`)."""
        new = [str(x) for x in pd.unique(lanes) if x not in self._ids]
        if new:
            for name in new:
                self._ids[name] = len(self.names)
                self.names.append(name)
            con.register("_ids", pd.DataFrame({"id": [self._ids[n] for n in new], "name": new}))
            try:
                con.execute("INSERT INTO lane_ids SELECT CAST(id AS SMALLINT), name FROM _ids")
            finally:
                con.unregister("_ids")
        return np.asarray(lanes.map(self._ids).to_numpy(), dtype=np.int16)

    def truncate(self, n: int) -> None:
        """Forget names assigned after the first ``n`` (their transaction was rolled back)."""
        for name in self.names[n:]:
            del self._ids[name]
        del self.names[n:]


class ChangeLog:
    """Counts committed rollup changes and remembers the oldest ``ts`` each one touched."""

    def __init__(self, size: int = 4096) -> None:
        self.version = 0
        self._changes: deque[tuple[int, int]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def record(self, ts: int) -> None:
        """Call after the commit, so that a reader that saw the new version sees the rows."""
        with self._lock:
            self.version += 1
            self._changes.append((self.version, ts))

    def since(self, version: int) -> int | None:
        """Oldest ts changed after ``version``: None if nothing, 0 if forgotten (anything may have)."""
        with self._lock:
            if version >= self.version:
                return None
            if not self._changes or self._changes[0][0] > version + 1:
                return 0
            return min(ts for v, ts in self._changes if v > version)


def write_per_collector(con: duckdb.DuckDBPyConnection, batch: Batch) -> None:
    """The batch's counters under its collector, its ``as_of``, its liveness rows (each
    replaces what that collector said of that instance)."""
    who = batch.collector
    if batch.counters:
        frame = pd.DataFrame({"name": list(batch.counters), "value": [int(v) for v in batch.counters.values()]})
        con.register("_cc", frame)
        try:
            con.execute("INSERT INTO collector_counters SELECT ?, name, SUM(value) FROM _cc GROUP BY name "
                        "ON CONFLICT (collector, name) DO UPDATE SET value = collector_counters.value"
                        " + excluded.value", [who])
        finally:
            con.unregister("_cc")
    if batch.as_of:
        con.execute("INSERT INTO collectors VALUES (?, ?) ON CONFLICT (collector) DO UPDATE SET "
                    "as_of = GREATEST(collectors.as_of, excluded.as_of)", [who, float(batch.as_of)])
    if batch.liveness:
        rows = pd.DataFrame({c: [r.get(c) for r in batch.liveness] for c in LIVENESS_COLUMNS})
        rows["collector"] = [str(c or who) for c in rows["collector"]]
        rows["left"] = rows["left"].astype(bool)
        rows = rows.drop_duplicates(["collector", "service", "lane", "instance"], keep="last")
        con.register("_lv", rows)
        try:
            con.execute("INSERT OR REPLACE INTO liveness SELECT collector, service, lane, instance, intervals,"
                        " \"left\", CAST(cadence AS DOUBLE) FROM _lv")
        finally:
            con.unregister("_lv")


def read_collectors(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    per: dict[str, dict[str, int]] = {}
    for c, n, v in con.execute("SELECT collector, name, value FROM collector_counters").fetchall():
        if v:
            per.setdefault(str(c), {})[str(n)] = int(v)
    stamps = {str(c): float(a) for c, a in con.execute("SELECT collector, as_of FROM collectors").fetchall()}
    return [{"collector": c, "as_of": stamps.get(c, 0.0), "counters": per.get(c, {})}
            for c in sorted(set(per) | set(stamps))]


def read_peer_liveness(con: duckdb.DuckDBPyConnection,
                       collector: str) -> tuple[list[dict[str, Any]], dict[str, float]]:
    rows = con.execute("SELECT collector, service, lane, instance, intervals, \"left\", cadence FROM liveness "
                       "WHERE collector <> ?", [collector]).fetchall()
    as_of = con.execute("SELECT collector, as_of FROM collectors WHERE collector <> ?", [collector]).fetchall()
    return ([{**dict(zip(LIVENESS_COLUMNS, r)), "left": bool(r[5]), "cadence": None if r[6] is None else float(r[6])}
             for r in rows],
            {str(c): float(a) for c, a in as_of})
