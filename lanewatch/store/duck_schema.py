"""DuckDB tables behind :class:`~lanewatch.store.duck.DuckStore`, and which one answers a read.

Each logical rollup table ``T`` of :data:`~lanewatch.store.base.ROLLUPS` is kept
three times, all mergeable (readers ``SUM``), all written in the same
transaction:

* ``r_T_s``: every key, per second (``res`` 1), for the last ``downsample_after_s``.
* ``r_T_l``: without the per-service keys (``service``, ``caller``, ``callee``),
  per second: lane-level charts over many services scan ~100x fewer rows.
* ``r_T_m``: every key, per minute (``res`` 60), for the whole retention: long
  windows scan ~60x fewer rows, and it *is* the downsampled history: once
  per-second rows are older than ``downsample_after_s`` they are deleted from
  the per-second tables and reads before that point go to this table.

A read is planned over them (:func:`plan`): whole minutes from ``r_T_m``, the
fringe seconds from the narrowest per-second table that has the columns. Rows
are appended in time order and small batches are compacted once per minute,
so DuckDB's per-row-group min/max on ``ts`` skips everything out of the window;
compaction also sorts each minute by service, so a one-service read touches
few vectors. The latency tables carry ``lane_id`` (a small integer per instance
lane, from table ``lane_ids``) so that histograms can be read as plain integers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lanewatch.rollups import ROLLUPS
from lanewatch.store.duck_alerts import DDL as ALERT_EVENTS_DDL
from lanewatch.store.duck_journal import DDL as JOURNAL_DDL

SCHEMA_VERSION = 7
#: What each collector wrote (PerCollector) and the liveness it shares (SharedLiveness).
PER_COLLECTOR_DDL = (
    ("CREATE TABLE IF NOT EXISTS collector_counters (collector VARCHAR, name VARCHAR, value BIGINT,"
    " PRIMARY KEY (collector, name))"),
    "CREATE TABLE IF NOT EXISTS collectors (collector VARCHAR PRIMARY KEY, as_of DOUBLE)",
    ("CREATE TABLE IF NOT EXISTS liveness (collector VARCHAR, service VARCHAR, lane VARCHAR,"
    " instance VARCHAR, intervals VARCHAR, \"left\" BOOLEAN, cadence DOUBLE, PRIMARY KEY (collector, service, lane, instance))"),
)
MINUTE = 60
#: Keys dropped by the lane-level projection.
SERVICE_KEYS = frozenset(("service", "caller", "callee"))
_INT_KEYS = {"ts": "BIGINT", "res": "INTEGER", "bucket": "SMALLINT", "lane_id": "SMALLINT"}
#: Extra (derived) key columns per rollup: ``lane_id`` is the code of ``instance_lane``.
EXTRA_KEYS: dict[str, tuple[str, ...]] = {"latency": ("lane_id",)}
_FLOAT_METRICS = frozenset(("latency_sum_ms",))


@dataclass(frozen=True)
class Physical:
    """One physical table of a rollup."""

    name: str
    keys: tuple[str, ...]  # including ts, res and extra keys
    metrics: tuple[str, ...]
    minute: bool

    @property
    def order(self) -> str:
        """Physical order of compacted rows: service keys first, then lanes, then time."""
        rest = [k for k in self.keys if k not in ("ts", "res")]
        return ", ".join(sorted(rest, key=lambda k: k not in SERVICE_KEYS) + ["ts"])


def physical_tables(table: str) -> list[Physical]:
    """The physical tables of rollup ``table``: per second, lane-level (if any), per minute."""
    keys, metrics = ROLLUPS[table]
    keys = keys + EXTRA_KEYS.get(table, ())
    out = [Physical(f"r_{table}_s", keys, metrics, False)]
    lane_keys = tuple(k for k in keys if k not in SERVICE_KEYS)
    if lane_keys != keys:
        out.append(Physical(f"r_{table}_l", lane_keys, metrics, False))
    out.append(Physical(f"r_{table}_m", keys, metrics, True))
    return out


def all_physical() -> list[Physical]:
    return [p for t in ROLLUPS for p in physical_tables(t)]


def column_type(col: str) -> str:
    if col in _INT_KEYS:
        return _INT_KEYS[col]
    if col in _FLOAT_METRICS:
        return "DOUBLE"
    return "VARCHAR"


def metric_type(col: str) -> str:
    return "DOUBLE" if col in _FLOAT_METRICS else "BIGINT"


def ddl() -> list[str]:
    """CREATE statements for every table (idempotent)."""
    out = ["CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)"]
    for p in all_physical():
        cols = [f"{k} {column_type(k)} NOT NULL" if k in _INT_KEYS else f"{k} VARCHAR" for k in p.keys]
        cols += [f"{m} {metric_type(m)} NOT NULL" for m in p.metrics]
        out.append(f"CREATE TABLE IF NOT EXISTS {p.name} ({', '.join(cols)})")
    out += [
        ("CREATE TABLE IF NOT EXISTS violations (seq BIGINT, ts BIGINT, kind VARCHAR, service VARCHAR,"
         " caller VARCHAR, callee VARCHAR, request_lane VARCHAR, instance_lane VARCHAR,"
         " entry_lane VARCHAR, trace_id VARCHAR, span_id VARCHAR, lane_path VARCHAR, late BOOLEAN,"
         " expected_lane VARCHAR)"),
        ("CREATE TABLE IF NOT EXISTS kept_traces (seq BIGINT, trace_id VARCHAR, ts BIGINT,"
         " entry_lane VARCHAR, stayed BOOLEAN, lane_path VARCHAR, hops VARCHAR)"),
        ("CREATE TABLE IF NOT EXISTS instances (service VARCHAR, lane VARCHAR, instance VARCHAR,"
         " first_seen DOUBLE, last_seen DOUBLE, state VARCHAR, hops BIGINT DEFAULT 0,"
         " errors BIGINT DEFAULT 0, last_hop DOUBLE, PRIMARY KEY (service, lane, instance))"),
        "CREATE TABLE IF NOT EXISTS counters (name VARCHAR PRIMARY KEY, value BIGINT)",
        "CREATE TABLE IF NOT EXISTS lane_ids (id SMALLINT PRIMARY KEY, name VARCHAR UNIQUE)",
        ALERT_EVENTS_DDL,
        *JOURNAL_DDL,
        *PER_COLLECTOR_DDL,
    ]
    return out


#: Statements that bring a store of version ``v`` to ``v + 1`` (a file made by ddl() is current).
MIGRATIONS: dict[int, list[str]] = {
    # 1 -> 2: edges keyed by the entry lane of their trace as well (rows before it have NULL);
    # instances count the hops they served; trace_services is created by ddl()
    1: [f"ALTER TABLE {p.name} ADD COLUMN {col}" for p in physical_tables("edges")
        for col in ("entry_lane VARCHAR", "tag_lost_inside BIGINT NOT NULL DEFAULT 0")]
       + ["ALTER TABLE instances ADD COLUMN hops BIGINT DEFAULT 0",
          "ALTER TABLE instances ADD COLUMN errors BIGINT DEFAULT 0",
          "ALTER TABLE instances ADD COLUMN last_hop DOUBLE",
          "ALTER TABLE violations ADD COLUMN expected_lane VARCHAR"],
    # 2 -> 3: the alert history (table alert_events, created by ddl())
    2: [],
    # 3 -> 4: the open spans a restart resumes (open_spans, open_names, created by ddl())
    3: [],
    # 4 -> 5: sampling weights: rollups count how many of a row's spans or traces were weighted
    # (rollups.WEIGHTED), open spans keep their weight
    4: [f"ALTER TABLE {p.name} ADD COLUMN weighted BIGINT NOT NULL DEFAULT 0"
        for t in ("hops", "edges", "traces", "trace_services") for p in physical_tables(t)]
       + ["ALTER TABLE open_spans ADD COLUMN w DOUBLE DEFAULT 1"],
    # 5 -> 6: per collector: counters, as_of, shared liveness (created by ddl())
    5: [],
    # 6 -> 7: the hop verdict ``uncertain``: its edge column (rows before it count 0); shared
    # liveness carries each instance's learned cadence (NULL: not learned)
    6: [f"ALTER TABLE {p.name} ADD COLUMN uncertain BIGINT NOT NULL DEFAULT 0" for p in physical_tables("edges")]
       + ["ALTER TABLE liveness ADD COLUMN cadence DOUBLE"],
}


def sum_expr(metric: str) -> str:
    """``SUM`` that keeps integer metrics integer (DuckDB widens to HUGEINT)."""
    if metric in _FLOAT_METRICS:
        return f"COALESCE(SUM({metric}), 0.0) AS {metric}"
    return f"CAST(COALESCE(SUM({metric}), 0) AS BIGINT) AS {metric}"


def aggregate_sql(p: Physical, source: str, where: str, *, ts_expr: str = "ts",
                  res_expr: str = "res", keep_zero: bool = False) -> str:
    """``SELECT`` of ``p``'s columns from ``source`` summed by key (for inserts and compaction)."""
    keys = [f"{ts_expr} AS ts", f"{res_expr} AS res"] + [k for k in p.keys if k not in ("ts", "res")]
    sql = (f"SELECT {', '.join(keys)}, {', '.join(sum_expr(m) for m in p.metrics)} "
           f"FROM {source} WHERE {where} GROUP BY ALL")
    if not keep_zero:
        sql += " HAVING " + " OR ".join(f"SUM({m}) <> 0" for m in p.metrics)
    return sql


def plan(table: str, t0: int, t1: int, needed: Iterable[str], bucket_s: int, by_ts: bool,
         minutes_before: int = 0) -> list[tuple[str, int, int]]:
    """``(physical table, from, to)`` ranges whose union is ``t0 <= ts < t1`` for a read.

    ``needed`` are the non-time columns the read groups or filters on. The
    per-minute table serves whole minutes when the result does not need
    finer time than a minute, and everything before ``minutes_before`` (the
    per-second rows there were downsampled away: they land in their minute);
    the rest comes from the narrowest per-second table that has the columns.
    """
    if table not in ROLLUPS:
        raise ValueError(f"unknown rollup table {table!r}")
    tables = physical_tables(table)
    minute, fine = tables[-1], tables[0]
    if len(tables) == 3 and not set(needed) & SERVICE_KEYS:
        fine = tables[1]
    out: list[tuple[str, int, int]] = []
    if t0 < minutes_before:
        out.append((minute.name, t0, min(t1, minutes_before)))
        t0 = minutes_before
    if t1 <= t0:
        return out or [(fine.name, t0, t0)]
    m0 = -(-t0 // MINUTE) * MINUTE
    m1 = t1 // MINUTE * MINUTE
    if (by_ts and bucket_s % MINUTE) or m1 - m0 < 2 * MINUTE:
        return out + [(fine.name, t0, t1)]
    out.append((minute.name, m0, m1))
    if t0 < m0:
        out.append((fine.name, t0, m0))
    if m1 < t1:
        out.append((fine.name, m1, t1))
    return out


def check_columns(table: str, cols: Sequence[str] | Mapping[str, object]) -> None:
    """Raise ValueError unless every name is a column of rollup ``table`` (names go into SQL)."""
    if table not in ROLLUPS:
        raise ValueError(f"unknown rollup table {table!r}")
    keys, metrics = ROLLUPS[table]
    bad = [c for c in cols if c not in keys and c not in metrics]
    if bad:
        raise ValueError(f"{table}: unknown columns {bad}")
