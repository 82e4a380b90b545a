"""ClickHouse tables behind :class:`~lanewatch.store.clickhouse.ClickHouseStore`.

Valid on ClickHouse 18.16 (Debian's) and current releases alike: no ``DateTime64``, ``Map``,
``TTL`` or nullable sorting keys; time is ``Int64`` seconds (``at_ns``/``ver``: ``UInt64``
nanoseconds).

* Rollups, three physical tables each as in :mod:`lanewatch.store.duck_schema` (``r_T_s`` per
  second, ``r_T_l`` lane-level per second, ``r_T_m`` per minute), ``SummingMergeTree`` ordered
  by ``ts`` then every key column: merges add rows with equal keys (eventually; readers always
  ``SUM``). Per-second tables are partitioned by hour (``intDiv(ts, 3600)``) so downsampling
  drops whole hours; the minute tables by day (``toYYYYMMDD(toDateTime(ts))``), dropped by
  retention. Sorting keys cannot be NULL on 18.16: a NULL string key (e.g. ``entry_lane`` of
  rows without one) is stored as :data:`NULL_KEY` and read back as NULL.
* ``violations``, ``kept_traces``: ``MergeTree`` by day, ordered by ``(ts, seq)``.
* ``instances``, ``counters``, ``liveness``, ``writers``, ``journal``, ``meta``:
  ``ReplacingMergeTree(ver)``, one row per key and writing collector: each collector writes
  its cumulative values, readers take the newest per collector (``argMax(..., ver)``, so
  unmerged duplicates never count twice) and merge over collectors.
* ``writes``: one row per committed batch with rollups (the change feed other processes poll).
* ``open_chunks``/``open_names``: the trace journal, per collector and epoch, one row per chunk
  of open spans (see :mod:`lanewatch.store.clickhouse_journal`); ``open_spans`` the journal of
  schema 2 (a row per span), still read. ``alert_events``: the alert history.
"""

from __future__ import annotations

from lanewatch.rollups import ROLLUPS
from lanewatch.store.duck_schema import Physical
from lanewatch.store.duck_schema import physical_tables as duck_physical

#: Version of the tables this code creates and reads; a database at a newer version is refused.
SCHEMA_VERSION = 3
#: A NULL string key, as stored (sorting keys cannot be Nullable on 18.16; no name holds NUL).
NULL_KEY = "\x00"
HOUR = 3600
_INT_KEYS = {"ts": "Int64", "res": "Int32", "bucket": "Int16"}
_FLOAT_METRICS = frozenset(("latency_sum_ms",))
#: Span columns of the schema-2 journal (``open_spans``, one row per span) -> ClickHouse type;
#: read at a resume, no longer written (it had no sampling weight: read as 1).
JOURNAL_TYPES: dict[str, str] = {
    "thi": "UInt64", "tlo": "UInt64", "sid": "UInt64", "pid": "UInt64", "kind": "Int8",
    "svc": "Int32", "inst": "Int32", "req": "Int32", "recv": "Int32", "exp": "Int32",
    "verdict": "Int8", "start": "Int64", "err": "UInt8",
}
#: Seconds of ``at`` per partition of the journal tables: a partition is dropped once it is two
#: partitions old and holds no live row (the chunks live seconds; their merges and disk are
#: spent on data that is dead long before a 10-minute partition could go).
JOURNAL_PARTITION_S: dict[str, int] = {"open_chunks": 60, "open_spans": 600}
_S = "Nullable(String)"
_F = "Nullable(Float64)"
ALERT_TYPES: dict[str, str] = {
    "ts": "Float64", "fingerprint": _S, "alertname": _S, "state": _S, "labels": _S,
    "active_at": _F, "fired_at": _F, "resolved_at": _F, "value": _F, "threshold": _F,
    "confidence": _F, "text": _S, "link": _S, "details": _S,
}


def physical_tables(table: str) -> list[Physical]:
    """The physical tables of rollup ``table`` (the DuckDB layout without its ``lane_id``)."""
    return [Physical(p.name, tuple(k for k in p.keys if k in ROLLUPS[table][0]), p.metrics, p.minute)
            for p in duck_physical(table)]


def all_physical() -> list[Physical]:
    return [p for t in ROLLUPS for p in physical_tables(t)]


def key_type(col: str) -> str:
    return _INT_KEYS.get(col, "String")


def metric_type(col: str) -> str:
    return "Float64" if col in _FLOAT_METRICS else "Int64"


def partition_of(p: Physical) -> str:
    return "toYYYYMMDD(toDateTime(ts))" if p.minute else f"intDiv(ts, {HOUR})"


def _rollup_ddl(p: Physical) -> str:
    cols = [f"{k} {key_type(k)}" for k in p.keys] + [f"{m} {metric_type(m)}" for m in p.metrics]
    order = ["ts"] + [k for k in p.keys if k != "ts"]
    return (f"CREATE TABLE IF NOT EXISTS {p.name} ({', '.join(cols)}) "
            f"ENGINE = SummingMergeTree(({', '.join(p.metrics)})) "
            f"PARTITION BY {partition_of(p)} ORDER BY ({', '.join(order)})")


def _replacing(name: str, cols: str, order: str) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {name} ({cols}, ver UInt64) "
            f"ENGINE = ReplacingMergeTree(ver) ORDER BY ({order})")


_DAY = "PARTITION BY toYYYYMMDD(toDateTime(ts))"


def ddl() -> list[str]:
    """CREATE statements for every table (idempotent)."""
    out = [("CREATE TABLE IF NOT EXISTS schema_version (version UInt32, at_ns UInt64) "
           "ENGINE = MergeTree ORDER BY version")]
    out += [_rollup_ddl(p) for p in all_physical()]
    out += [
        (f"CREATE TABLE IF NOT EXISTS violations (seq UInt64, ts Int64, kind {_S}, service {_S},"
         f" caller {_S}, callee {_S}, request_lane {_S}, instance_lane {_S}, entry_lane {_S},"
         f" trace_id {_S}, span_id {_S}, lane_path {_S}, late Nullable(UInt8), expected_lane {_S})"
         f" ENGINE = MergeTree {_DAY} ORDER BY (ts, seq)"),
        (f"CREATE TABLE IF NOT EXISTS kept_traces (seq UInt64, trace_id {_S}, ts Int64,"
         f" entry_lane {_S}, stayed Nullable(UInt8), lane_path {_S}, hops {_S})"
         f" ENGINE = MergeTree {_DAY} ORDER BY (ts, seq)"),
        _replacing("instances", "service String, lane String, instance String, collector String,"
                   f" first_seen Float64, last_seen Float64, state {_S}, hops Int64, errors Int64,"
                   f" last_hop {_F}", "service, lane, instance, collector"),
        _replacing("counters", "collector String, name String, value Int64", "collector, name"),
        _replacing("writers", "collector String, as_of Float64", "collector"),
        _replacing("liveness", "collector String, service String, lane String, instance String,"
                   " intervals String, has_left UInt8, cadence Nullable(Float64)",
                   "collector, service, lane, instance"),
        _replacing("meta", "key String, value String", "key"),
        _replacing("journal", "collector String, epoch UInt64, live_from Int64, carry_gen UInt64,"
                   " running UInt8", "collector"),
        ("CREATE TABLE IF NOT EXISTS writes (collector String, seq UInt64, min_ts Int64, at_ns UInt64)"
         " ENGINE = MergeTree PARTITION BY intDiv(at_ns, 86400000000000) ORDER BY at_ns"),
        ("CREATE TABLE IF NOT EXISTS open_spans (collector String, epoch UInt64, seq Int64, gen UInt64,"
         " at Int64, " + ", ".join(f"{c} {t}" for c, t in JOURNAL_TYPES.items()) + ")"
         " ENGINE = MergeTree PARTITION BY intDiv(at, 600) ORDER BY (collector, epoch, seq)"),
        ("CREATE TABLE IF NOT EXISTS open_chunks (collector String, epoch UInt64, seq Int64, gen UInt64,"
         " at Int64, n UInt32, data String)"
         f" ENGINE = MergeTree PARTITION BY intDiv(at, {JOURNAL_PARTITION_S['open_chunks']})"
         " ORDER BY (collector, epoch, seq)"),
        ("CREATE TABLE IF NOT EXISTS open_names (collector String, epoch UInt64, code Int32, name String)"
         " ENGINE = MergeTree PARTITION BY epoch ORDER BY (collector, epoch, code)"),
        ("CREATE TABLE IF NOT EXISTS alert_events (seq UInt64, "
         + ", ".join(f"{c} {t}" for c, t in ALERT_TYPES.items()) + ") ENGINE = MergeTree ORDER BY seq"),
    ]
    return out


def _rebuild(p: Physical, added: frozenset[str]) -> list[str]:
    """Rebuild rollup table ``p`` with its current columns (``SummingMergeTree`` sums only the
    columns named at creation, so a new metric needs a new table): copy every row of the old
    one (``added`` columns read 0), swap the names, drop the old. Safe to run again after a
    failure part way."""
    old_cols = ", ".join(c for c in (*p.keys, *p.metrics) if c not in added)
    new = Physical(f"{p.name}_v2", p.keys, p.metrics, p.minute)
    return [f"DROP TABLE IF EXISTS {p.name}_v1", f"DROP TABLE IF EXISTS {new.name}", _rollup_ddl(new),
            f"INSERT INTO {new.name} ({old_cols}) SELECT {old_cols} FROM {p.name}",
            f"RENAME TABLE {p.name} TO {p.name}_v1, {new.name} TO {p.name}",
            f"DROP TABLE {p.name}_v1"]


#: Statements that bring a database of version ``v`` to ``v + 1`` (one made by ddl() is current).
MIGRATIONS: dict[int, list[str]] = {
    # 1 -> 2: the hop verdict ``uncertain`` (an edge metric: edge tables rebuilt, rows before it
    # count 0); shared liveness carries each instance's learned cadence (NULL: not learned)
    1: [stmt for p in physical_tables("edges") for stmt in _rebuild(p, frozenset(("uncertain",)))]
       + ["ALTER TABLE liveness ADD COLUMN cadence Nullable(Float64)"],
    # 2 -> 3: the journal as one row per chunk (open_chunks, created by ddl()); the rows of
    # open_spans stay readable until their traces are judged
    2: [],
}
