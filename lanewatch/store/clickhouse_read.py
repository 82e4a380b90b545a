"""SQL for the ClickHouse store's reads (pure: finished text, no connection).

Reads are planned over the physical tables exactly as DuckDB's (:func:`duck_schema.plan`), sum
by key in SQL (merges are eventual, so a key may still be in several rows), and never see what
retention or the bounds on kept records removed logically (``keep_from``, the cuts in
``meta``), whether or not its partition was dropped yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lanewatch.rollups import ROLLUPS
from lanewatch.store.clickhouse_conn import lit
from lanewatch.store.duck_schema import MINUTE, check_columns, plan


def filters(where: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (where or {}).items() if v is not None}


def _cond(where: Mapping[str, Any]) -> str:
    return "".join(f" AND {k} = {lit(v)}" for k, v in where.items())


def _sum(metric: str) -> str:
    return f"sum({metric})" if metric == "latency_sum_ms" else f"toInt64(sum({metric}))"


def rollup_sql(table: str, t0: int, t1: int, keys: Sequence[str], where: Mapping[str, Any] | None,
               bucket_s: int, minutes_before: int, keep_from: int) -> tuple[str, list[str]]:
    """``SELECT`` summing ``table``'s metrics over ``t0 <= ts < t1`` by ``keys``, and the names of
    its result columns (the keys, then the metrics)."""
    if bucket_s < 1:
        raise ValueError(f"bucket_s={bucket_s}: must be >= 1")
    found = filters(where)
    keys = [k for k in dict.fromkeys(keys) if k != "res"]
    check_columns(table, keys)
    check_columns(table, found)
    metrics = ROLLUPS[table][1]
    t0 = max(int(t0), int(keep_from))
    parts = plan(table, t0, max(int(t1), t0), [k for k in keys if k != "ts"] + list(found),
                 bucket_s, "ts" in keys, minutes_before)
    cols = ", ".join(list(dict.fromkeys([*keys, "ts"])) + list(metrics))
    inner = " UNION ALL ".join(f"SELECT {cols} FROM {name} WHERE ts >= {a} AND ts < {b}{_cond(found)}"
                               for name, a, b in parts)
    exprs = [f"intDiv(ts, {int(bucket_s)}) * {int(bucket_s)}" if k == "ts" and bucket_s > 1 else k
             for k in keys]
    select = ", ".join(exprs + [_sum(m) for m in metrics])
    sql = f"SELECT {select} FROM ({inner})"
    if keys:
        sql += f" GROUP BY {', '.join(exprs)} ORDER BY {', '.join(exprs)}"
    return sql, [*keys, *metrics]


def cut_cond(cut: tuple[int, int] | None) -> str:
    """Rows at or after the bound's cut ``(ts, seq)`` (the newest ``max_violations`` rows)."""
    if cut is None:
        return ""
    ts, seq = cut
    return f" AND (ts > {int(ts)} OR (ts = {int(ts)} AND seq >= {int(seq)}))"


def records_sql(table: str, columns: Sequence[str], t0: int, t1: int, where: Mapping[str, Any] | None,
                limit: int, keep_from: int, cut: tuple[int, int] | None) -> str:
    """Newest-first violations or kept traces in ``t0 <= ts < t1`` (kept traces: the newest row
    of each trace, as DuckDB replaces them)."""
    found = filters(where)
    bad = [k for k in found if k not in columns]
    if bad:
        raise ValueError(f"{table}: unknown columns {bad}")
    cols = ", ".join(columns)
    window = f"ts >= {max(int(t0), int(keep_from))} AND ts < {int(t1)}{cut_cond(cut)}"
    n = max(0, int(limit))
    if table == "kept_traces":
        return (f"SELECT {cols} FROM (SELECT {cols}, seq FROM kept_traces WHERE {window} "
                f"ORDER BY seq DESC LIMIT 1 BY trace_id) WHERE 1{_cond(found)} "
                f"ORDER BY ts DESC, seq DESC LIMIT {n}")
    return f"SELECT {cols} FROM {table} WHERE {window}{_cond(found)} ORDER BY ts DESC, seq DESC LIMIT {n}"


def cut_sql(table: str, keep: int) -> str:
    """``(ts, seq)`` of the ``keep``-th newest kept row (no row: fewer are kept)."""
    source = table
    if table == "kept_traces":
        source = "(SELECT ts, seq FROM kept_traces ORDER BY seq DESC LIMIT 1 BY trace_id)"
    return f"SELECT ts, seq FROM {source} ORDER BY ts DESC, seq DESC LIMIT 1 OFFSET {max(0, int(keep) - 1)}"


def cells_sql(t0: int, t1: int, where: Mapping[str, Any] | None, minute_ok: bool, step_s: int,
              minutes_before: int, keep_from: int) -> str:
    """Latency cells ``ts, instance_lane, bucket, count`` over ``t0 <= ts < t1``, summed per cell
    (per step of ``step_s`` seconds from ``t0`` when above 1; buckets clamped to 0..127 then, as
    DuckDB's packed cells)."""
    found = filters(where)
    check_columns("latency", found)
    t0 = int(t0)
    lo = max(t0, int(keep_from))
    parts = plan("latency", lo, max(int(t1), lo), list(found), MINUTE if minute_ok else 1, True,
                 minutes_before)
    inner = " UNION ALL ".join(f"SELECT ts, instance_lane, bucket, count FROM {name} "
                               f"WHERE ts >= {a} AND ts < {b}{_cond(found)}" for name, a, b in parts)
    if step_s > 1:
        ts = f"intDiv(ts - {t0}, {int(step_s)}) * {int(step_s)} + {t0}"
        bucket = "least(greatest(bucket, 0), 127)"
    else:
        ts, bucket = "ts", "bucket"
    return (f"SELECT {ts}, instance_lane, {bucket}, toInt64(sum(count)) FROM ({inner}) "
            f"GROUP BY {ts}, instance_lane, {bucket} HAVING sum(count) <> 0")


def instances_sql(keep_from: int) -> str:
    """One row per instance: each collector's newest row, merged over collectors."""
    per = ("SELECT service, lane, instance, collector, argMax(first_seen, ver) AS f, argMax(last_seen, ver) AS l,"
           " argMax(state, ver) AS st, argMax(hops, ver) AS h, argMax(errors, ver) AS e,"
           " argMax(last_hop, ver) AS lh FROM instances GROUP BY service, lane, instance, collector")
    return ("SELECT service, lane, instance, min(f), max(l), argMax(st, l), toInt64(sum(h)), toInt64(sum(e)),"
            f" max(lh) FROM ({per}) GROUP BY service, lane, instance HAVING max(l) >= {int(keep_from)}"
            " ORDER BY service, lane, instance")


def newest_sql(table: str, keys: Sequence[str], values: Sequence[str], where: str = "") -> str:
    """The newest row (by ``ver``) of each key of a ReplacingMergeTree table."""
    cols = ", ".join([*keys, *(f"argMax({v}, ver)" for v in values)])
    return f"SELECT {cols} FROM {table}{' WHERE ' + where if where else ''} GROUP BY {', '.join(keys)}"
