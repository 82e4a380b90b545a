"""SQL for the store's reads (pure: text and parameters, no connection)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from lanewatch.rollups import ROLLUPS
from lanewatch.store.duck_schema import MINUTE, check_columns, plan, sum_expr


def _filters(where: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (where or {}).items() if v is not None}


def rollup_sql(table: str, t0: int, t1: int, keys: Sequence[str], where: Mapping[str, Any] | None,
               bucket_s: int, minutes_before: int = 0) -> tuple[str, list[Any]]:
    """``SELECT`` summing ``table``'s metrics over ``t0 <= ts < t1`` by ``keys``.

    ``res`` is never grouped on; ``ts`` (when a key) is floored to ``bucket_s``.
    The scan is split over the physical tables by :func:`duck_schema.plan`.
    """
    if bucket_s < 1:
        raise ValueError(f"bucket_s={bucket_s}: must be >= 1")
    filters = _filters(where)
    keys = [k for k in dict.fromkeys(keys) if k != "res"]
    check_columns(table, keys)
    check_columns(table, filters)
    metrics = ROLLUPS[table][1]
    by_ts = "ts" in keys
    parts = plan(table, int(t0), int(t1), [k for k in keys if k != "ts"] + list(filters),
                 bucket_s, by_ts, minutes_before)
    cols = ", ".join(list(dict.fromkeys(keys + ["ts"])) + list(metrics))
    cond = "".join(f" AND {k} = ?" for k in filters)
    inner, params = [], []
    for name, a, b in parts:
        inner.append(f"SELECT {cols} FROM {name} WHERE ts >= ? AND ts < ?{cond}")
        params += [a, b, *filters.values()]
    outer_keys = [f"(ts // {int(bucket_s)}) * {int(bucket_s)} AS ts" if k == "ts" and bucket_s > 1
                  else k for k in keys]
    select = ", ".join(outer_keys + [sum_expr(m) for m in metrics])
    sql = f"SELECT {select} FROM ({' UNION ALL '.join(inner)}) AS u"
    if keys:
        sql += f" GROUP BY ALL ORDER BY {', '.join(keys)}"
    return sql, params


def records_sql(table: str, columns: Sequence[str], t0: int, t1: int,
                where: Mapping[str, Any] | None, limit: int) -> tuple[str, list[Any]]:
    """Newest-first ``SELECT`` of violations or kept traces in ``t0 <= ts < t1``."""
    filters = _filters(where)
    bad = [k for k in filters if k not in columns]
    if bad:
        raise ValueError(f"{table}: unknown columns {bad}")
    cond = "".join(f" AND {k} = ?" for k in filters)
    sql = (f"SELECT {', '.join(columns)} FROM {table} WHERE ts >= ? AND ts < ?{cond} "
           f"ORDER BY ts DESC, seq DESC LIMIT ?")
    return sql, [int(t0), int(t1), *filters.values(), max(0, int(limit))]


def cells_sql(t0: int, t1: int, where: Mapping[str, Any] | None, minute_ok: bool,
              step_s: int = 1, minutes_before: int = 0) -> tuple[str, list[Any]]:
    """Latency cells over ``t0 <= ts < t1``: raw ``ts, lane_id, bucket, count`` rows when
    ``step_s`` is 1, else summed per step into one packed key column ``k``
    (:func:`unpack_cells`): grouping on one integer is what DuckDB does fastest."""
    filters = _filters(where)
    check_columns("latency", filters)
    parts = plan("latency", int(t0), int(t1), list(filters), MINUTE if minute_ok else 1, True,
                 minutes_before)
    cond = "".join(f" AND {k} = ?" for k in filters)
    inner, params = [], []
    for name, a, b in parts:
        inner.append(f"SELECT ts, lane_id, bucket, count FROM {name} WHERE ts >= ? AND ts < ?{cond}")
        params += [a, b, *filters.values()]
    sql = " UNION ALL ".join(inner)
    if step_s <= 1:
        return sql, params
    key = (f"(((ts - {int(t0)}) // {int(step_s)}) * {_LANES} + lane_id) * {_BUCKETS}"
           f" + LEAST(GREATEST(bucket, 0), {_BUCKETS - 1})")
    return (f"SELECT {key} AS k, CAST(SUM(count) AS BIGINT) AS count FROM ({sql}) AS u "
            f"GROUP BY k HAVING SUM(count) <> 0"), params


#: Packing of cell keys: lane ids below _LANES, buckets below _BUCKETS.
_LANES, _BUCKETS = 1024, 128
MAX_PACKED_LANES = _LANES


def unpack_cells(k: npt.NDArray[np.int64], t0: int, step_s: int) -> dict[str, npt.NDArray[np.int64]]:
    """``ts`` (start of step), ``lane`` and ``bucket`` from packed keys of :func:`cells_sql`."""
    return {"ts": (k // (_LANES * _BUCKETS)) * step_s + t0, "lane": (k // _BUCKETS) % _LANES,
            "bucket": k % _BUCKETS}
