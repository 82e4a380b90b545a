"""Pure helpers of :mod:`lanewatch.query`: JSON-clean values, vectorised quantiles, series."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from lanewatch import lane as L
from lanewatch.histogram import N_BUCKETS, bucket_mid_ms

HOP_LABELS: tuple[str, ...] = tuple(v.label for v in L.HOP_VERDICTS)  # = rollups.HOP_VERDICT_LABELS
QS: tuple[float, ...] = (0.5, 0.95, 0.99)
Q_COLUMNS = ("p50_ms", "p95_ms", "p99_ms")
_MID_MS = np.array([round(bucket_mid_ms(b), 3) for b in range(N_BUCKETS)])


def clean(value: Any) -> Any:
    """Plain JSON-able value: numpy scalars unwrapped, NaN/NA -> None, containers recursed."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _column(s: pd.Series) -> list[Any]:
    arr = s.to_numpy()
    if arr.dtype.kind in "iub":
        return list(arr.tolist())
    if arr.dtype.kind == "f":
        out = arr.astype(object)
        out[~np.isfinite(arr)] = None
        return list(out.tolist())
    values = arr.tolist()
    if set(map(type, values)) <= {str}:  # names: nothing to clean (checked in C)
        return list(values)
    return [clean(v) if not (isinstance(v, float) and math.isnan(v)) else None for v in values]


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``df`` as JSON-able dicts (column-wise conversion, fast for thousands of rows)."""
    cols = [str(c) for c in df.columns]
    values = [_column(df[c]) for c in df.columns]
    return [dict(zip(cols, row)) for row in zip(*values)]


def lane_order(names: Iterable[Any]) -> list[str]:
    """Lane names, base first, then sorted; missing values dropped."""
    found = {str(n) for n in names if isinstance(n, str)}
    return ([L.BASE] if L.BASE in found else []) + sorted(found - {L.BASE})


def hist_cube(cells: dict[str, npt.NDArray[Any]], t0: int, step_s: int,
              n_steps: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp], int]:
    """Sum latency cells into ``cube[step, lane slot, bucket - bmin]``.

    Returns the cube, the lane codes of its slots and ``bmin``; only the bucket
    range present is kept, so the cube stays small.
    """
    idx = cells["ts"].astype(np.int64) - t0
    if step_s > 1:
        idx //= step_s
    lane, bucket, count = cells["lane"], cells["bucket"], cells["count"]
    ok = (idx >= 0) & (idx < n_steps) & (count != 0)
    if not ok.all():
        idx, lane, bucket, count = idx[ok], lane[ok], bucket[ok], count[ok]
    if not len(idx):
        return np.zeros((n_steps, 0, 0)), np.zeros(0, dtype=np.intp), 0
    bucket = np.clip(bucket, 0, N_BUCKETS - 1)
    present = np.flatnonzero(np.bincount(lane))
    slot = np.full(len(present) and int(present[-1]) + 1, -1, dtype=np.int64)
    slot[present] = np.arange(len(present))
    bmin = int(bucket.min())
    nb = int(bucket.max()) - bmin + 1
    key = idx * (len(present) * nb)
    key += slot[lane] * nb
    key += bucket
    key -= bmin
    cube = np.bincount(key, weights=count, minlength=n_steps * len(present) * nb)
    return cube.reshape(n_steps, len(present), nb).astype(np.float64, copy=False), present, bmin


def cube_quantiles(cube: npt.NDArray[np.float64], bmin: int) -> dict[str, npt.NDArray[np.float64]]:
    """p50/p95/p99 (ms) per ``[step, lane slot]``, NaN where empty.

    Same rule as :func:`lanewatch.histogram.quantiles`: buckets summing to <= 0
    are dropped, the rank is ``ceil(q * total)``, the value is its bucket's middle.
    """
    c = np.maximum(cube, 0.0)
    cum = np.cumsum(c, axis=2)
    total = cum[..., -1] if c.shape[2] else np.zeros(c.shape[:2])
    out = {}
    for q, col in zip(QS, Q_COLUMNS):
        if not c.shape[2]:
            out[col] = np.full(c.shape[:2], np.nan)
            continue
        rank = np.maximum(1.0, np.ceil(q * total))
        first = np.argmax(cum >= rank[..., None], axis=2)
        val = _MID_MS[first + bmin]
        val[total <= 0] = np.nan
        out[col] = val
    return out


def _floats(arr: npt.NDArray[np.float64], digits: int) -> list[float | None]:
    out = np.round(arr, digits).astype(object)
    out[np.isnan(arr)] = None
    return list(out.tolist())


def series_json(ts: npt.NDArray[np.int64], step_s: int,
                arrays: dict[str, npt.NDArray[np.float64]] | None) -> dict[str, list[Any]]:
    """One lane's series as JSON lists: qps 0 on missing steps, error_rate and quantiles None.

    ``arrays`` holds ``req`` and ``err`` per step and ``p50_ms``... (NaN: none), aligned with ``ts``.
    """
    n = len(ts)
    req = arrays["req"] if arrays else np.zeros(n)
    rate = np.full(n, np.nan)
    if arrays:
        np.divide(arrays["err"], req, out=rate, where=req > 0)
    out: dict[str, list[Any]] = {"ts": list(ts.tolist()), "qps": _floats(req / step_s, 3),
                                 "error_rate": _floats(rate, 6)}
    for col in Q_COLUMNS:
        out[col] = _floats(arrays[col] if arrays else np.full(n, np.nan), 3)
    return out
