"""The ClickHouse store's per-flush rollup blocks (numpy grouping) agree with a plain pandas
groupby of the same rows: same keys, same sums, same order, NULL keys as the NUL filler,
all-zero rows dropped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lanewatch.rollups import ROLLUPS
from lanewatch.store import duck_frames as F
from lanewatch.store.clickhouse_schema import NULL_KEY, physical_tables
from lanewatch.store.clickhouse_write import rollup_blocks
from lanewatch.store.duck_schema import MINUTE, column_type, metric_type


def reference(table: str, columns: Mapping[str, Sequence[Any]]) -> list[tuple[str, tuple[list[str], list[list[Any]]]]]:
    """The obvious implementation: a pandas groupby per physical table."""
    frame = F.rollup_frame(table, columns)
    out = []
    for p in physical_tables(table):
        f = frame
        if p.minute:
            f = frame.assign(ts=frame["ts"] // MINUTE * MINUTE, res=np.int32(MINUTE))
        keys, metrics = list(p.keys), list(p.metrics)
        f = f[keys + metrics].copy()
        for k in keys:
            if f[k].dtype == object:
                f[k] = pd.Series([NULL_KEY if v is None or pd.isna(v) else v for v in f[k].tolist()],
                                 index=f.index, dtype=object)
        g = f.groupby(keys, sort=False, dropna=False)[metrics].sum().reset_index()
        g = g[(g[metrics] != 0).any(axis=1)]
        if len(g):
            out.append((p.name, (keys + metrics, [g[c].tolist() for c in keys + metrics])))
    return out


def random_columns(table: str, n: int, rng: np.random.Generator) -> dict[str, list[Any]]:
    keys, metrics = ROLLUPS[table]
    cols: dict[str, list[Any]] = {}
    for k in keys:
        if k == "verdict":
            cols[k] = rng.choice(["in_lane", "fallback", "leak"], n).tolist()
        elif column_type(k) != "VARCHAR":
            cols[k] = (1_767_225_600 + rng.integers(0, 130, n)).tolist() if k == "ts" else \
                rng.integers(1, 3, n).tolist() if k == "res" else rng.integers(0, 40, n).tolist()
        else:
            vals = np.array([None, "base", "gray", "svc-a", "svc-b"], dtype=object)
            cols[k] = vals[rng.integers(0, len(vals), n)].tolist()
    for m in metrics:
        v = rng.integers(0, 3, n) * rng.integers(0, 2, n)  # many zeros: whole zero rows happen
        cols[m] = (v * 1.5).tolist() if metric_type(m) == "DOUBLE" else v.tolist()
    return cols


@pytest.mark.parametrize("table", sorted(ROLLUPS))
@pytest.mark.parametrize("n", [1, 7, 500, 5000])
def test_blocks_equal_a_pandas_groupby(table: str, n: int) -> None:
    rng = np.random.default_rng(n * 31 + len(table))
    cols = random_columns(table, n, rng)
    got, want = rollup_blocks(table, cols), reference(table, cols)
    assert [name for name, _ in got] == [name for name, _ in want]
    for (_, (gn, gd)), (_, (wn, wd)) in zip(got, want):
        assert gn == wn
        assert gd == wd
        assert all(type(a) is type(b) for gc, wc in zip(gd, wd) for a, b in zip(gc[:3], wc[:3]))


def test_all_zero_and_null_keys() -> None:
    cols = random_columns("traces", 4, np.random.default_rng(1))
    cols["entry_lane"] = [None, None, "gray", "gray"]
    cols["ts"] = [100, 100, 100, 100]
    cols["res"] = [1, 1, 1, 1]
    cols["traces"], cols["stayed"], cols["weighted"] = [1, 2, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]
    blocks = dict(rollup_blocks("traces", cols))
    names, data = blocks["r_traces_s"]
    assert dict(zip(names, data)) == {"ts": [100], "res": [1], "entry_lane": [NULL_KEY], "traces": [3],
                                      "stayed": [1], "weighted": [0]}
    assert rollup_blocks("traces", {k: v[2:] for k, v in cols.items()}) == []
