"""The shared store: one ClickHouse database written and read by any number of processes.

Each ``lanewatch collect`` writes its batches (``collector`` names it); ``lanewatch serve``
reads everything. Tables and engines: :mod:`lanewatch.store.clickhouse_schema`; reads:
:mod:`lanewatch.store.clickhouse_read`; the change feed across processes:
:mod:`lanewatch.store.clickhouse_feed`; the open spans: :mod:`lanewatch.store.clickhouse_journal`.

A batch is several inserts (ClickHouse has no transactions), in this order: rollups, records,
instances, counters with the batch number, the change-feed row, liveness, the writer's
``as_of``, the journal. A reader may see a batch half written for a moment (sums are right per
table, as rows are added); a process killed mid-batch leaves the tables written so far.

Retention and bounds are applied logically at once (reads skip rows older than ``keep_from``
and below each record table's cut, both in table ``meta``) and physically by dropping whole
partitions: minute tables and records per day once older than ``keep_from``, per-second tables
per hour once an hour older than the downsampling cut (readers use the minute table before the
cut; the hour of slack keeps readers in other processes, whose view of ``meta`` may be a second
old, off dropped rows).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from lanewatch.config.store_url import StoreURL
from lanewatch.rollups import ROLLUPS
from lanewatch.store import clickhouse_journal as J
from lanewatch.store import clickhouse_read as R
from lanewatch.store import clickhouse_write as W
from lanewatch.store.base import (
    INSTANCE_COLUMNS,
    LIVENESS_COLUMNS,
    TRACE_COLUMNS,
    VIOLATION_COLUMNS,
    Batch,
    Resumed,
)
from lanewatch.store.clickhouse_conn import Connection, DriverConnection, lit
from lanewatch.store.clickhouse_feed import Feed
from lanewatch.store.clickhouse_schema import (
    ALERT_TYPES,
    HOUR,
    JOURNAL_PARTITION_S,
    MIGRATIONS,
    NULL_KEY,
    SCHEMA_VERSION,
    all_physical,
    ddl,
)
from lanewatch.store.duck_alerts import ALERT_EVENT_COLUMNS
from lanewatch.store.duck_schema import MINUTE

log = logging.getLogger(__name__)

#: Row of table ``counters`` holding the number of the collector's newest batch (not a counter).
_BATCH_SEQ = "__batch_seq"
#: How long a process trusts its copy of ``meta`` (retention cut, downsampling cut, bounds).
META_TTL_S = 1.0
_ALERT_JSON = ("labels", "details")
_BOUNDED = {"violations": VIOLATION_COLUMNS, "kept_traces": TRACE_COLUMNS}


class ClickHouseStore:
    """:class:`~lanewatch.store.base.Store` on a ClickHouse database (18.16 or current).

    ``url`` names the server and database (created if missing); or pass ``connection`` (any
    :class:`~lanewatch.store.clickhouse_conn.Connection`, e.g. an in-process engine in tests).
    ``collector`` names this process's writes (counters, open spans, liveness are kept per
    collector). ``maintain(now)`` applies ``retention_s`` and ``downsample_after_s``; violations
    and kept traces keep the newest ``max_violations`` each. With a ``url``, calls from several
    threads (a page's gathered queries, alert evaluation, feed polls) run side by side on a
    pool of clients (:class:`~lanewatch.store.clickhouse_conn.DriverConnection`).
    """

    def __init__(self, url: StoreURL | None = None, *, connection: Connection | None = None,
                 collector: str = "", retention_s: int = 7 * 86400, downsample_after_s: int = 3600,
                 max_violations: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        if retention_s <= 0 or downsample_after_s <= 0 or max_violations <= 0:
            raise ValueError("retention_s, downsample_after_s and max_violations must be > 0")
        if (url is None) == (connection is None):
            raise ValueError("ClickHouseStore needs a url or a connection (one of them)")
        self.url = url
        self.name = url.display() if url is not None else "clickhouse (connection)"
        self.collector = collector
        self.retention_s = int(retention_s)
        self.downsample_after_s = int(downsample_after_s)
        self.max_violations = int(max_violations)
        self._clock = clock
        self._con: Connection = connection if connection is not None else DriverConnection(url)  # type: ignore[arg-type]
        self._lock = threading.Lock()
        self._stamp = W.Stamp()
        self._closed = False
        self._migrate()
        self._meta: dict[str, str] = {}
        self._meta_at = -1e18
        self._feed = Feed(self._con)
        state = J.states(self._con, collector).get(collector)
        #: the process that wrote this collector's journal last did not stop cleanly
        self.unclean = bool(state and state.running)
        self._journal = state or J.State()
        self._wrote = False  # this process has written a batch (its counters, its journal)
        #: per collector written by this process: its running instances and counters
        self._instances: dict[str, W.Instances] = {}
        self._totals: dict[str, dict[str, int]] = {}

    # ---- schema ---------------------------------------------------------------------------
    def _migrate(self) -> None:
        self._con.command(ddl()[0])
        rows, top = self._con.query("SELECT count(), max(version) FROM schema_version")
        version = int(top[0]) if int(rows[0]) else 0
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.name}: store schema version {version}, this lanewatch reads up "
                               f"to {SCHEMA_VERSION}; upgrade lanewatch or use another database")
        for stmt in ddl()[1:]:
            self._con.command(stmt)
        if version == 0:
            self._set_version(SCHEMA_VERSION)
            return
        while version < SCHEMA_VERSION:
            for stmt in MIGRATIONS[version]:
                self._con.command(stmt)
            version += 1
            self._set_version(version)
            log.info("%s: store schema migrated to version %d", self.name, version)

    def _set_version(self, version: int) -> None:
        self._con.insert("schema_version", ["version", "at_ns"], [[version], [time.time_ns()]])

    # ---- meta: cuts other processes must see ------------------------------------------------
    def _meta_get(self) -> dict[str, str]:
        now = time.monotonic()
        if now - self._meta_at > META_TTL_S:
            keys, values = self._con.query(R.newest_sql("meta", ["key"], ["value"]))
            self._meta = dict(zip(map(str, keys), map(str, values)))
            self._meta_at = now
        return self._meta

    def _meta_put(self, values: Mapping[str, str]) -> None:
        ver = self._stamp(len(values))
        self._con.insert("meta", ["key", "value", "ver"],
                         [list(values), list(values.values()), list(range(ver, ver + len(values)))])
        self._meta_get().update(values)

    def _int_meta(self, key: str) -> int:
        return int(self._meta_get().get(key, "0") or 0)

    def _cut(self, table: str) -> tuple[int, int] | None:
        text = self._meta_get().get(f"cut_{table}")
        if not text:
            return None
        ts, seq = text.split(",")
        return int(ts), int(seq)

    # ---- writes ---------------------------------------------------------------------------
    def write(self, batch: Batch) -> None:
        """Add a batch: each table in one insert of columns (see the module doc for the order)."""
        if self._closed:
            raise RuntimeError("store is closed")
        with self._lock:
            self._write(batch)
            self._wrote = True

    def _write(self, batch: Batch) -> None:
        con = self._con
        low: int | None = None
        for table, cols in batch.rollups.items():
            if not len(next(iter(cols.values()), ())):
                continue
            for name, (names, data) in W.rollup_blocks(table, cols):
                con.insert(name, names, data)
            t = int(np.min(np.asarray(cols["ts"], dtype=np.int64)))
            low = t if low is None else min(low, t)
        cuts: dict[str, str] = {}
        for table, rows in (("violations", batch.violations), ("kept_traces", batch.traces)):
            if rows:
                con.insert(table, *W.record_block(rows, _BOUNDED[table], self._stamp(len(rows))))
                found = con.query(R.cut_sql(table, self.max_violations))
                if found[0]:
                    cuts[f"cut_{table}"] = f"{int(found[0][0])},{int(found[1][0])}"
        if cuts:
            self._meta_put(cuts)
        who = batch.collector or self.collector
        if batch.instances:
            if who not in self._instances:
                self._instances[who] = W.Instances(self._load_instances(who))
            mine = self._instances[who]
            keys = mine.add(batch.instances, self._int_meta("keep_from"))
            con.insert("instances", *mine.block(keys, who, self._stamp()))
        first = who not in self._totals
        totals = self._totals[who] = self._totals[who] if not first else self._load_counters(who)
        changed = [n for n, v in batch.counters.items() if v]
        for name in changed:
            totals[name] = totals.get(name, 0) + int(batch.counters[name])
        if batch.seq or first:  # a new process numbers its batches anew
            totals[_BATCH_SEQ] = int(batch.seq)
            changed.append(_BATCH_SEQ)
        if changed:
            con.insert("counters", *W.counter_block(totals, changed, who, self._stamp()))
        if low is not None:
            con.insert("writes", ["collector", "seq", "min_ts", "at_ns"],
                       [[who], [int(batch.seq)], [low], [self._stamp()]])
        if batch.liveness:
            self._write_liveness(batch.liveness, who)
        if batch.as_of:
            con.insert("writers", ["collector", "as_of", "ver"], [[who], [float(batch.as_of)], [self._stamp()]])
        if batch.open_spans is not None:
            self._journal = J.write(con, who, self._journal, batch.open_spans, self._stamp(),
                                    int(self._clock()))

    def _write_liveness(self, rows: Sequence[Mapping[str, Any]], who: str) -> None:
        n = len(rows)
        ver = self._stamp(n)
        self._con.insert("liveness", ["collector", "service", "lane", "instance", "intervals", "has_left",
                                      "cadence", "ver"],
                         [[str(r.get("collector") or who) for r in rows],
                          *([str(r[c]) for r in rows] for c in ("service", "lane", "instance", "intervals")),
                          [int(bool(r["left"])) for r in rows],
                          [None if r.get("cadence") is None else float(r["cadence"]) for r in rows],
                          list(range(ver, ver + n))])

    def _load_instances(self, who: str) -> list[list[Any]]:
        cols = self._con.query(R.newest_sql(
            "instances", ["service", "lane", "instance"],
            ["first_seen", "last_seen", "state", "hops", "errors", "last_hop"], f"collector = {lit(who)}"))
        return [list(r) for r in zip(*cols)]

    def _load_counters(self, who: str) -> dict[str, int]:
        names, values = self._con.query(R.newest_sql("counters", ["name"], ["value"], f"collector = {lit(who)}"))
        return {str(n): int(v) for n, v in zip(names, values)}

    def maintain(self, now: float) -> None:
        """Apply retention and downsampling: the cuts at once (in ``meta``), then drop the
        partitions wholly behind them."""
        keep_from = int(now) - self.retention_s
        with self._lock:
            minute_cut = max(self._int_meta("minutes_before"),
                             (int(now) - self.downsample_after_s) // MINUTE * MINUTE)
            self._meta_put({"keep_from": str(keep_from), "minutes_before": str(minute_cut)})
            self._con.insert("writes", ["collector", "seq", "min_ts", "at_ns"],
                             [[self.collector], [0], [0], [self._stamp()]])
            (day,) = self._con.query(f"SELECT toYYYYMMDD(toDateTime({max(0, keep_from)}))")[0]
            hour_cut = max(keep_from, minute_cut - HOUR)
            for p in all_physical():
                if p.minute:
                    self._drop(p.name, lambda part: int(part) < int(day))
                else:
                    self._drop(p.name, lambda part: (int(part) + 1) * HOUR <= hour_cut)
            for table in _BOUNDED:
                self._drop(table, lambda part: int(part) < int(day))
            self._drop("writes", lambda part: (int(part) + 2) * 86400 * 10**9 <= time.time_ns())
            self._drop_dead_journal(int(self._clock()))

    def _partitions(self, table: str) -> list[str]:
        (parts,) = self._con.query("SELECT DISTINCT partition FROM system.parts WHERE active AND "
                                   f"database = currentDatabase() AND table = {lit(table)}")
        return [str(p).strip("'") for p in parts]

    def _drop(self, table: str, dead: Callable[[str], bool]) -> None:
        for part in self._partitions(table):
            if dead(part):
                self._con.command(f"ALTER TABLE {table} DROP PARTITION {part}")

    def _drop_dead_journal(self, now: int) -> None:
        live = J.states(self._con)
        cond = " OR ".join(J.live_cond(c, s) for c, s in live.items()) or "0"
        for table, width in JOURNAL_PARTITION_S.items():
            for part in self._partitions(table):
                if (int(part) + 2) * width <= now:
                    (n,) = self._con.query(f"SELECT count() FROM {table} WHERE intDiv(at, {width}) = {int(part)} "
                                           f"AND ({cond})")[0]
                    if not int(n):
                        self._con.command(f"ALTER TABLE {table} DROP PARTITION {int(part)}")
        epochs = {s.epoch for s in live.values()}
        for part in self._partitions("open_names"):
            if int(part) not in epochs:
                self._con.command(f"ALTER TABLE open_names DROP PARTITION {int(part)}")

    # ---- change feed ----------------------------------------------------------------------
    def version(self) -> int:
        """Grows with every batch any process committed that this process has seen."""
        return self._feed.version()

    def changed_since(self, version: int) -> int | None:
        return self._feed.changed_since(version)

    # ---- reads ----------------------------------------------------------------------------
    def _check(self) -> None:
        if self._closed:
            raise RuntimeError("store is closed")

    def _frame(self, sql: str, names: Sequence[str]) -> pd.DataFrame:
        self._check()
        return W.frame_of(names, self._con.query(sql))

    def rollup(self, table: str, t0: int, t1: int, keys: Sequence[str],
               where: Mapping[str, str | None] | None = None, bucket_s: int = 1) -> pd.DataFrame:
        """Sum ``table``'s metrics over ``t0 <= ts < t1`` by ``keys`` (see the Store protocol)."""
        sql, names = R.rollup_sql(table, t0, t1, keys, where, bucket_s, self._int_meta("minutes_before"),
                                  self._int_meta("keep_from"))
        self._check()
        cols = self._con.query(sql)
        names_of = ROLLUPS[table][0]
        data: dict[str, Any] = {}
        for k, values in zip(names, cols):  # built once, in the types read (no conversion after)
            if k in names_of and k not in ("ts", "res", "bucket"):
                data[k] = pd.Series([None if v == NULL_KEY else v for v in values], dtype=object)
            else:
                data[k] = np.asarray(values, dtype=np.float64 if k == "latency_sum_ms" else np.int64)
        return pd.DataFrame(data, columns=list(names))

    def _records(self, table: str, t0: int, t1: int, where: Mapping[str, str | None] | None,
                 limit: int) -> pd.DataFrame:
        cols = _BOUNDED[table]
        frame = self._frame(R.records_sql(table, cols, t0, t1, where, limit, self._int_meta("keep_from"),
                                          self._cut(table)), cols)
        for c in ("late", "stayed"):
            if c in frame:
                frame[c] = [None if v is None else bool(v) for v in frame[c]]
                if frame[c].notna().all():
                    frame[c] = frame[c].astype(bool)
        return frame

    def violations(self, t0: int, t1: int, where: Mapping[str, str | None] | None = None,
                   limit: int = 500) -> pd.DataFrame:
        return self._records("violations", t0, t1, where, limit)

    def traces(self, t0: int, t1: int, where: Mapping[str, str | None] | None = None,
               limit: int = 500) -> pd.DataFrame:
        return self._records("kept_traces", t0, t1, where, limit)

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The newest kept row of a trace, ``hops`` decoded from JSON; None when not kept."""
        cut = R.cut_cond(self._cut("kept_traces"))
        frame = self._frame(f"SELECT {', '.join(TRACE_COLUMNS)} FROM kept_traces WHERE trace_id = "
                            f"{lit(trace_id.lower())} AND ts >= {self._int_meta('keep_from')}{cut} "
                            "ORDER BY seq DESC LIMIT 1", TRACE_COLUMNS)
        if not len(frame):
            return None
        out = dict(frame.iloc[0])
        out["ts"] = int(out["ts"])
        out["stayed"] = None if out["stayed"] is None else bool(out["stayed"])
        if isinstance(out["hops"], str):
            try:
                out["hops"] = json.loads(out["hops"])
            except ValueError:
                log.debug("trace %s: hops are not JSON", trace_id)
        return out

    def latency_cells(self, t0: int, t1: int, where: Mapping[str, str | None] | None = None,
                      minute_ok: bool = False, step_s: int = 1) -> tuple[list[str], dict[str, npt.NDArray[Any]]]:
        """Latency cells ``ts, lane, bucket, count`` as numpy arrays (``lane`` indexes the names),
        summed per cell; with ``step_s > 1`` ``ts`` is the start of its step from ``t0``."""
        self._check()
        ts, lanes, buckets, counts = self._con.query(R.cells_sql(
            t0, t1, where, minute_ok, step_s, self._int_meta("minutes_before"), self._int_meta("keep_from")))
        names = sorted({str(v) for v in lanes})
        code_of = {n: i for i, n in enumerate(names)}
        codes = np.fromiter((code_of[str(v)] for v in lanes), dtype=np.int64, count=len(lanes))
        return names, {"ts": np.asarray(ts, dtype=np.int64),
                                         "lane": np.asarray(codes, dtype=np.int64).reshape(-1),
                                         "bucket": np.asarray(buckets, dtype=np.int64),
                                         "count": np.asarray(counts, dtype=np.int64)}

    def instances(self) -> pd.DataFrame:
        frame = self._frame(R.instances_sql(self._int_meta("keep_from")), INSTANCE_COLUMNS)
        for k in ("service", "lane", "instance"):
            frame[k] = pd.Series([None if v == NULL_KEY else v for v in frame[k].tolist()], dtype=object)
        for c in ("first_seen", "last_seen", "last_hop"):
            frame[c] = frame[c].astype(np.float64)
        for c in ("hops", "errors"):
            frame[c] = frame[c].astype(np.int64)
        return frame

    def _all_counters(self) -> dict[str, dict[str, int]]:
        self._check()
        who, names, values = self._con.query(R.newest_sql("counters", ["collector", "name"], ["value"]))
        out: dict[str, dict[str, int]] = {}
        for c, n, v in zip(who, names, values):
            out.setdefault(str(c), {})[str(n)] = int(v)
        return out

    def counters(self) -> dict[str, int]:
        return self.counters_at()[0]

    def counters_at(self) -> tuple[dict[str, int], int]:
        """Counters summed over every collector, and the number of this process's newest batch
        they include (0 before it wrote one), read together."""
        per = self._all_counters()
        total: dict[str, int] = {}
        for values in per.values():
            for n, v in values.items():
                if n != _BATCH_SEQ:
                    total[n] = total.get(n, 0) + v
        total = {n: v for n, v in total.items() if v}
        return total, per.get(self.collector, {}).get(_BATCH_SEQ, 0) if self._wrote else 0

    def collectors(self) -> list[dict[str, Any]]:
        """One row per collector that wrote: its newest ``as_of`` and its counters."""
        per = self._all_counters()
        who, as_of = self._con.query(R.newest_sql("writers", ["collector"], ["as_of"]))
        stamps = {str(c): float(a) for c, a in zip(who, as_of)}
        return [{"collector": c, "as_of": stamps.get(c, 0.0),
                 "counters": {n: v for n, v in per.get(c, {}).items() if n != _BATCH_SEQ and v}}
                for c in sorted(set(per) | set(stamps))]

    def peer_liveness(self, collector: str) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """Every other collector's newest liveness row per instance, and each one's ``as_of``."""
        self._check()
        other = f"collector != {lit(collector)}"
        cols = self._con.query(R.newest_sql("liveness", ["collector", "service", "lane", "instance"],
                                            ["intervals", "has_left", "cadence"], other))
        rows = [dict(zip(LIVENESS_COLUMNS, (str(c), s, ln, i, iv, bool(left), None if cd is None else float(cd))))
                for c, s, ln, i, iv, left, cd in zip(*cols)]
        who, as_of = self._con.query(R.newest_sql("writers", ["collector"], ["as_of"], other))
        return rows, {str(c): float(a) for c, a in zip(who, as_of)}

    # ---- alert history --------------------------------------------------------------------
    def write_alert_events(self, rows: Sequence[dict[str, Any]], keep: int) -> None:
        """Append alert state changes; the newest ``keep`` are kept."""
        if not rows:
            return
        self._check()
        with self._lock:
            seq = self._stamp(len(rows))
            data: list[list[Any]] = [list(range(seq, seq + len(rows)))]
            for c in ALERT_EVENT_COLUMNS:
                if c in _ALERT_JSON:
                    data.append([json.dumps(r.get(c), default=str) for r in rows])
                elif ALERT_TYPES[c].endswith("Float64)") or ALERT_TYPES[c] == "Float64":
                    data.append([None if r.get(c) is None else float(r[c]) for r in rows])
                else:
                    data.append([None if r.get(c) is None else str(r[c]) for r in rows])
            self._con.insert("alert_events", ["seq", *ALERT_EVENT_COLUMNS], data)
            (found,) = self._con.query(f"SELECT seq FROM alert_events ORDER BY seq DESC LIMIT 1 "
                                       f"OFFSET {max(0, int(keep) - 1)}")
            if found:
                self._meta_put({"cut_alert_events": str(int(found[0]))})

    def alert_events(self, limit: int = 200, fingerprint: str | None = None,
                     name: str | None = None) -> list[dict[str, Any]]:
        """The newest alert state changes (of one alert, or one alert name), newest first."""
        cond = f"seq >= {int(self._meta_get().get('cut_alert_events', '0'))}"
        cond += "".join(f" AND {c} = {lit(v)}" for c, v in (("fingerprint", fingerprint), ("alertname", name)) if v)
        frame = self._frame(f"SELECT {', '.join(ALERT_EVENT_COLUMNS)} FROM alert_events WHERE {cond} "
                            f"ORDER BY seq DESC LIMIT {max(0, int(limit))}", ALERT_EVENT_COLUMNS)
        out = []
        for r in frame.to_dict("records"):
            for c in _ALERT_JSON:
                r[c] = json.loads(r[c]) if isinstance(r[c], str) else {}
            out.append({str(k): v for k, v in r.items()})
        return out

    # ---- the alert lease (AlertLease) -------------------------------------------------------
    def alert_lease(self, holder: str, ttl_s: float, now: float) -> str:
        """One row in ``meta`` (``alert_lease``: ``holder|until``), the newest by ``ver`` wins:
        take it when free, expired or held, then read who has it (two processes taking it at
        once both write; the newer row wins, the other reads it and stands by)."""
        self._check()

        def newest() -> tuple[str, float]:
            (values,) = self._con.query("SELECT argMax(value, ver) FROM meta WHERE key = 'alert_lease'")
            who, _, until = str(values[0] if values else "").rpartition("|")
            try:
                return who, float(until)
            except ValueError:  # no lease yet
                return "", 0.0

        who, until = newest()
        if who == holder or not who or until < now:
            self._meta_put({"alert_lease": f"{holder}|{now + ttl_s!r}"})
            who, _ = newest()
        return who

    # ---- the open spans (TraceJournal) ----------------------------------------------------
    def open_spans(self) -> Resumed:
        """The open spans this collector's last process kept, and whether it stopped cleanly."""
        self._check()
        return J.read(self._con, self.collector, self._journal, clean=not self.unclean)

    # ---- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Mark this collector's journal cleanly stopped (if this process wrote) and disconnect;
        idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._wrote and self._journal.epoch:
                    self._journal.running = False
                    J.mark(self._con, self.collector, self._journal, self._stamp())
            finally:
                self._con.close()
