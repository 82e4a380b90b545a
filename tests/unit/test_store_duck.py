"""DuckStore against the real DuckDB: mergeable rollups, read planning, bounds, maintenance, restart."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from lanewatch.config import Settings
from lanewatch.histogram import quantiles
from lanewatch.lane import Verdict
from lanewatch.rollups import ROLLUPS
from lanewatch.store import open_store
from lanewatch.store.base import Batch
from lanewatch.store.duck import DuckStore
from lanewatch.store.duck_schema import physical_tables

T0 = 1_767_225_600  # a whole minute (2026-01-01T00:00:00Z)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def hops(ts: list[int], service: list[str], lane: list[str], requests: list[int], errors: list[int] | None = None,
         verdict: list[Any] | None = None, expected: list[str] | None = None) -> dict[str, Sequence[Any]]:
    n = len(ts)
    return {"ts": ts, "service": service, "instance_lane": lane, "request_lane": expected or lane,
            "expected_lane": expected or lane, "verdict": verdict or ["in_lane"] * n,
            "requests": requests, "errors": errors or [0] * n, "latency_sum_ms": [float(r) for r in requests]}


def random_rollups(rng: np.random.Generator, t0: int, seconds: int) -> dict[str, dict[str, Any]]:
    """Random rows for every rollup table (a few services and lanes, some negative corrections)."""
    n = seconds * 20
    ts = rng.integers(t0, t0 + seconds, n)
    svc = rng.choice(["A", "B", "C"], n)
    lane = rng.choice(["base", "gray", "blue"], n)
    out: dict[str, dict[str, Any]] = {}
    for table, (keys, metrics) in ROLLUPS.items():
        cols: dict[str, Any] = {"ts": ts, "res": np.ones(n, dtype=int)}
        for k in keys[2:]:
            cols[k] = {"service": svc, "caller": svc, "callee": svc[::-1], "bucket": rng.integers(20, 40, n),
                       "verdict": rng.choice(["in_lane", "leak"], n)}.get(k, lane)
        for m in metrics:
            cols[m] = rng.integers(-1, 6, n) if m != "latency_sum_ms" else rng.random(n)
        out[table] = cols
    return out


def reference(rows: list[dict[str, Any]], table: str, t0: int, t1: int, keys: list[str],
              where: dict[str, str] | None = None, bucket_s: int = 1) -> pd.DataFrame:
    df = pd.concat([pd.DataFrame(r) for r in rows], ignore_index=True)
    df = df[(df.ts >= t0) & (df.ts < t1)].copy()
    for k, v in (where or {}).items():
        df = df[df[k] == v]
    df["ts"] = df.ts // bucket_s * bucket_s
    metrics = list(ROLLUPS[table][1])
    got = df.groupby(keys)[metrics].sum().reset_index() if keys else df[metrics].sum().to_frame().T
    return got.sort_values(keys).reset_index(drop=True) if keys else got


def same(got: pd.DataFrame, want: pd.DataFrame, keys: list[str]) -> None:
    metrics = [c for c in want.columns if c not in keys]
    if keys:  # rows whose sums cancel out to zero may be dropped by compaction
        def nz(d: pd.DataFrame) -> pd.DataFrame:
            return d[(d[metrics].abs() > 1e-9).any(axis=1)].sort_values(keys).reset_index(drop=True)
        got, want = nz(got), nz(want)
    assert list(got[keys].astype(str).itertuples(index=False)) == list(want[keys].astype(str).itertuples(index=False))
    for m in metrics:
        np.testing.assert_allclose(got[m].to_numpy(dtype=float), want[m].to_numpy(dtype=float), atol=1e-6)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + 0.5)


@pytest.fixture
def store(clock: Clock) -> Iterator[DuckStore]:
    s = DuckStore(":memory:", clock=clock)
    yield s
    s.close()


def test_rows_written_in_pieces_are_summed_and_corrections_subtract(store: DuckStore) -> None:
    store.write(Batch(rollups={"hops": hops([T0, T0], ["A", "A"], ["gray", "gray"], [2, 3], [1, 0])}))
    store.write(Batch(rollups={"hops": hops([T0], ["A"], ["gray"], [-1])}))
    df = store.rollup("hops", T0, T0 + 1, ["service", "instance_lane"])
    assert df.to_dict("records") == [{"service": "A", "instance_lane": "gray", "requests": 4, "errors": 1,
                                      "latency_sum_ms": 4.0, "weighted": 0}]
    assert df.requests.dtype.kind == "i"


def test_rollup_filters_ignore_none_floor_ts_and_reject_unknown_columns(store: DuckStore) -> None:
    store.write(Batch(rollups={"hops": hops([T0 + 1, T0 + 7, T0 + 12], ["A", "B", "A"], ["base", "gray", "gray"],
                                            [1, 2, 4], verdict=[Verdict.IN_LANE, 2, "in_lane"])}))
    df = store.rollup("hops", T0, T0 + 60, ["ts", "verdict"], where={"service": "A", "instance_lane": None},
                      bucket_s=10)
    assert df[["ts", "verdict", "requests"]].values.tolist() == [[T0, "in_lane", 1], [T0 + 10, "in_lane", 4]]
    assert store.rollup("hops", T0, T0 + 60, ["verdict"]).verdict.tolist() == ["in_lane", "leak"]
    total = store.rollup("hops", T0, T0 + 60, [])
    assert total.requests.tolist() == [7]
    empty = store.rollup("hops", T0 + 100, T0 + 200, ["service"])
    assert empty.empty and list(empty.columns) == ["service", "requests", "errors", "latency_sum_ms", "weighted"]
    with pytest.raises(ValueError):
        store.rollup("hops", T0, T0 + 1, ["service; DROP TABLE x"])
    with pytest.raises(ValueError):
        store.rollup("hops", T0, T0 + 1, ["service"], where={"nope": "x"})
    with pytest.raises(ValueError):
        store.rollup("nope", T0, T0 + 1, [])


@pytest.fixture(scope="module")
def filled() -> Iterator[tuple[DuckStore, dict[str, list[dict[str, Any]]]]]:
    """Ten minutes of random rows written in 30 s flushes; the clock passes minutes, so rows get compacted."""
    clock = Clock(T0)
    store = DuckStore(":memory:", clock=clock)
    rng = np.random.default_rng(42)
    written: dict[str, list[dict[str, Any]]] = {t: [] for t in ROLLUPS}
    for start in range(T0, T0 + 600, 30):
        clock.now = start + 31
        batch = random_rollups(rng, start, 30)
        store.write(Batch(rollups=batch))
        for t, cols in batch.items():
            written[t].append(cols)
    yield store, written
    store.close()


@pytest.mark.parametrize("t0,t1,bucket", [(T0, T0 + 600, 1), (T0 + 17, T0 + 583, 1), (T0 + 17, T0 + 583, 60),
                                          (T0 + 5, T0 + 65, 10), (T0 + 130, T0 + 131, 1)])
def test_reads_over_minute_and_lane_tables_equal_the_raw_sums(
        filled: tuple[DuckStore, dict[str, list[dict[str, Any]]]], t0: int, t1: int, bucket: int) -> None:
    """Whatever physical tables a read is planned over, it sums to the same as the raw rows."""
    store, written = filled
    cases = [("hops", ["instance_lane", "verdict"], None), ("hops", ["service"], {"instance_lane": "gray"}),
             ("hops", ["ts", "instance_lane"], None), ("latency", ["instance_lane", "bucket"], {"service": "B"}),
             ("edges", ["caller", "callee", "lane"], None), ("edges", ["lane"], None),
             ("traces", ["ts", "entry_lane"], None), ("latency", [], None)]
    for table, keys, where in cases:
        got = store.rollup(table, t0, t1, keys, where=where, bucket_s=bucket)
        same(got, reference(written[table], table, t0, t1, keys, where, bucket), keys)


def test_latency_cells_hold_the_same_histograms_as_rollup(store: DuckStore, clock: Clock) -> None:
    rng = np.random.default_rng(3)
    for start in range(T0, T0 + 180, 20):
        clock.now = start + 21
        store.write(Batch(rollups={"latency": random_rollups(rng, start, 20)["latency"]}))
    names, cells = store.latency_cells(T0 + 3, T0 + 170, {"service": "A"}, minute_ok=True)
    df = store.rollup("latency", T0 + 3, T0 + 170, ["instance_lane", "bucket"], where={"service": "A"})
    got = pd.DataFrame({"lane": [names[c] for c in cells["lane"]], "bucket": cells["bucket"],
                        "count": cells["count"]}).groupby(["lane", "bucket"])["count"].sum()
    for lane in ("base", "gray", "blue"):
        want = df[df.instance_lane == lane]
        assert quantiles(got[lane].index, got[lane].values, [0.5, 0.99]) == \
            quantiles(want.bucket, want["count"], [0.5, 0.99])
        assert int(got[lane].sum()) == int(want["count"].sum())


def test_violations_are_bounded_newest_first_and_filtered(clock: Clock) -> None:
    store = DuckStore(":memory:", clock=clock, max_violations=5)
    rows = [{"ts": T0 + i, "kind": "leak" if i % 2 else "intrusion", "service": "B", "trace_id": bytes([i]) * 16,
             "span_id": f"{i:016X}", "lane_path": f"A[gray] -> B[base, leak] #{i}", "late": False} for i in range(8)]
    store.write(Batch(violations=rows[:4]))
    store.write(Batch(violations=rows[4:]))
    got = store.violations(T0, T0 + 100)
    assert got.ts.tolist() == [T0 + 7, T0 + 6, T0 + 5, T0 + 4, T0 + 3]
    assert got.trace_id[0] == "07" * 16 and got.span_id[0] == "0000000000000007"
    assert store.violations(T0, T0 + 100, {"kind": "leak", "service": None}, limit=2).ts.tolist() == [T0 + 7, T0 + 5]
    assert store.violations(T0, T0 + 100, {"trace_id": "05" * 16}).lane_path.tolist() == [rows[5]["lane_path"]]
    store.close()


def test_kept_traces_replace_by_id_and_decode_hops(store: DuckStore) -> None:
    hop = {"service": "A", "instance_lane": "gray", "verdict": "in_lane"}
    store.write(Batch(traces=[{"trace_id": "AB" * 16, "ts": T0, "entry_lane": "gray", "stayed": True,
                               "lane_path": "A[gray]", "hops": [hop]}]))
    store.write(Batch(traces=[{"trace_id": "ab" * 16, "ts": T0, "entry_lane": "gray", "stayed": False,
                               "lane_path": "A[gray] -> B[base, leak]", "hops": [hop, hop]}]))
    assert len(store.traces(T0, T0 + 1)) == 1
    got = store.trace("AB" * 16)
    assert got is not None and got["stayed"] is False and got["hops"] == [hop, hop]
    assert store.trace("cd" * 16) is None


def test_instances_upsert_and_counters_accumulate(store: DuckStore) -> None:
    inst = {"service": "C", "lane": "gray", "instance": "c-1"}
    store.write(Batch(instances=[{**inst, "first_seen": T0 + 5, "last_seen": T0 + 9, "state": "up",
                                  "hops": 4, "errors": 1, "last_hop": T0 + 8.5}],
                      counters={"dropped": 2}))
    store.write(Batch(instances=[{**inst, "first_seen": T0 + 1, "last_seen": T0 + 8, "state": "left"},
                                 {**inst, "first_seen": T0 + 7, "last_seen": T0 + 12, "state": "up",
                                  "hops": 2, "errors": 0, "last_hop": T0 + 11.0}],
                      counters={"dropped": 3, "duplicates": 1}))
    rows = store.instances().to_dict("records")
    # hops and errors in a batch are counts since the previous row: they add up
    assert rows == [{**inst, "first_seen": T0 + 1.0, "last_seen": T0 + 12.0, "state": "up",
                     "hops": 6, "errors": 1, "last_hop": T0 + 11.0}]
    store.write(Batch(instances=[{**inst, "first_seen": T0 + 20, "last_seen": T0 + 20, "state": "left"}]))
    assert store.instances().state.tolist() == ["left"]
    assert store.counters() == {"dropped": 5, "duplicates": 1}


def test_maintain_downsamples_whole_minutes_and_applies_retention(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "m.duckdb"
    store = DuckStore(path, clock=clock, retention_s=3 * 3600, downsample_after_s=3600)
    ts = [T0 + 5, T0 + 65, T0 + 3599, T0 + 7000]
    store.write(Batch(rollups={"hops": hops(ts, ["A"] * 4, ["gray"] * 4, [1, 2, 3, 4])},
                      violations=[{"ts": T0, "kind": "leak"}, {"ts": T0 + 7000, "kind": "leak"}]))
    store.maintain(T0 + 3600 + 90)  # minute [T0, T0+60) is downsampled; [T0+60, ...) stays per second
    assert store._df("SELECT ts FROM r_hops_s ORDER BY ts").ts.tolist() == [T0 + 65, T0 + 3599, T0 + 7000]
    got = store.rollup("hops", T0, T0 + 8000, ["ts"])
    assert got[["ts", "requests"]].values.tolist() == [[T0, 1], [T0 + 65, 2], [T0 + 3599, 3], [T0 + 7000, 4]]
    assert store.rollup("hops", T0 + 3, T0 + 8000, [], where={"service": "A"}).requests.tolist() == [9]
    store.close()
    store = DuckStore(path, clock=clock, retention_s=3 * 3600, downsample_after_s=3600)
    assert store.rollup("hops", T0, T0 + 8000, ["ts"]).ts.tolist() == [T0, T0 + 65, T0 + 3599, T0 + 7000]
    store.maintain(T0 + 3 * 3600 + 60)  # retention drops everything before T0+60, the rest is per minute
    assert store.rollup("hops", 0, T0 + 8000, ["ts"]).ts.tolist() == [T0 + 60, T0 + 3540, T0 + 6960]
    assert store.rollup("hops", 0, T0 + 8000, []).requests.tolist() == [9]
    assert store._df("SELECT count(*) AS n FROM r_hops_s").n.tolist() == [0]
    assert store.violations(0, T0 + 8000).ts.tolist() == [T0 + 7000]
    store.close()


def test_restart_on_the_same_file_keeps_all_history(tmp_path: Path, clock: Clock) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    store = open_store(settings)
    store.write(Batch(rollups={"hops": hops([T0], ["A"], ["gray"], [5]),
                               "latency": {"ts": [T0], "service": ["A"], "instance_lane": ["gray"],
                                           "request_lane": ["gray"], "bucket": [30], "count": [5]}},
                      violations=[{"ts": T0, "kind": "leak", "trace_id": "aa"}], counters={"dropped": 1},
                      instances=[{"service": "A", "lane": "gray", "instance": "a", "first_seen": T0,
                                  "last_seen": T0, "state": "up"}]))
    store.close()
    assert settings.db_path.exists()
    again = DuckStore(settings.db_path, clock=clock)
    again.write(Batch(rollups={"latency": {"ts": [T0], "service": ["A"], "instance_lane": ["blue"],
                                           "request_lane": ["blue"], "bucket": [31], "count": [1]}},
                      violations=[{"ts": T0, "kind": "intrusion", "trace_id": "bb"}], counters={"dropped": 1}))
    assert again.rollup("hops", T0, T0 + 1, ["instance_lane"]).requests.tolist() == [5]
    assert again.counters() == {"dropped": 2}
    assert again.violations(T0, T0 + 1).kind.tolist() == ["intrusion", "leak"]  # arrival order survives
    assert len(again.instances()) == 1
    names, cells = again.latency_cells(T0, T0 + 1)
    assert sorted((names[c], int(n)) for c, n in zip(cells["lane"], cells["count"])) == [("blue", 1), ("gray", 5)]
    again.close()


def test_concurrent_writers_and_readers(store: DuckStore) -> None:
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for j in range(20):
                store.write(Batch(rollups={"hops": hops([T0 + j], [f"S{i}"], ["base"], [1])}, counters={"n": 1}))
        except Exception as e:  # noqa: BLE001 - reported by the assert below
            errors.append(e)

    def reader() -> None:
        try:
            for _ in range(30):
                store.rollup("hops", T0, T0 + 60, ["service"])
                store.counters()
        except Exception as e:  # noqa: BLE001 - reported by the assert below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)] + \
        [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.rollup("hops", T0, T0 + 60, []).requests.tolist() == [60]
    assert store.counters() == {"n": 60}


def test_closed_store_refuses_and_bad_batches_roll_back(store: DuckStore) -> None:
    bad = hops([T0], ["A"], ["gray"], [1])
    del bad["service"]
    with pytest.raises(ValueError, match="service"):
        store.write(Batch(rollups={"hops": bad}, counters={"n": 1}))
    assert store.counters() == {}
    store.close()
    store.close()
    with pytest.raises(RuntimeError):
        store.rollup("hops", T0, T0 + 1, [])


def test_lane_codes_of_a_rolled_back_batch_are_forgotten(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "lanes.duckdb"
    store = DuckStore(path, clock=clock)

    def lat(lane: str) -> dict[str, Sequence[Any]]:
        return {"ts": [T0], "service": ["A"], "instance_lane": [lane], "request_lane": [lane], "bucket": [30],
                "count": [1]}
    with pytest.raises(ValueError):
        store.write(Batch(rollups={"latency": lat("blue")}, violations=[{"ts": "not a time", "kind": "leak"}]))
    store.write(Batch(rollups={"latency": lat("green")}))
    store.close()
    again = DuckStore(path, clock=clock)
    names, cells = again.latency_cells(T0, T0 + 1)
    assert [names[c] for c in cells["lane"]] == ["green"]
    again.close()


def test_closed_minutes_are_compacted_per_table(store: DuckStore, clock: Clock) -> None:
    for _ in range(3):  # three flushes of the same second
        store.write(Batch(rollups={"hops": hops([T0 + 1], ["A"], ["gray"], [1])}))
    store.write(Batch(rollups={"hops": hops([T0 + 1], ["B"], ["gray"], [1])}))
    assert store._df("SELECT count(*) AS n FROM r_hops_s").n.tolist() == [4]
    clock.now = T0 + 61  # the minute closed: the next write compacts it
    store.write(Batch(rollups={"hops": hops([T0 + 60], ["A"], ["gray"], [5])}))
    rows = store._df("SELECT ts, service, requests FROM r_hops_s ORDER BY ts, service").values.tolist()
    assert rows == [[T0 + 1, "A", 3], [T0 + 1, "B", 1], [T0 + 60, "A", 5]]
    assert store._df("SELECT count(*) AS n FROM r_hops_m").n.tolist() == [3]
    assert store.rollup("hops", T0, T0 + 120, ["service"]).requests.tolist() == [8, 1]


def test_version_and_changed_since_say_what_a_reader_must_re_read(store: DuckStore) -> None:
    v0 = store.version()
    assert store.changed_since(v0) is None
    store.write(Batch(rollups={"hops": hops([T0 + 9, T0 + 4], ["A", "A"], ["gray", "gray"], [1, 1])}))
    store.write(Batch(counters={"n": 1}))  # no rollup rows: nothing for series readers
    v1 = store.version()
    assert v1 == v0 + 1 and store.changed_since(v0) == T0 + 4 and store.changed_since(v1) is None
    store.write(Batch(rollups={"traces": {"ts": [T0 + 2], "entry_lane": ["gray"], "traces": [1], "stayed": [1]}}))
    assert store.changed_since(v0) == T0 + 2 and store.changed_since(v1) == T0 + 2
    store.maintain(T0 + 100)
    assert store.changed_since(v1) == 0


def test_a_version_1_store_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    DuckStore(path, clock=lambda: T0 + 30).close()
    con = duckdb.connect(str(path))  # make it a version-1 file: the columns 1 -> 2 added, gone
    for p in physical_tables("edges"):
        con.execute(f"ALTER TABLE {p.name} DROP COLUMN entry_lane")
        con.execute(f"ALTER TABLE {p.name} DROP COLUMN tag_lost_inside")
    for col in ("hops", "errors", "last_hop"):
        con.execute(f"ALTER TABLE instances DROP COLUMN {col}")
    con.execute("ALTER TABLE violations DROP COLUMN expected_lane")
    for t in ("hops", "edges", "traces", "trace_services"):  # and the columns 4 -> 5 added
        for p in physical_tables(t):
            con.execute(f"ALTER TABLE {p.name} DROP COLUMN weighted")
    con.execute("ALTER TABLE open_spans DROP COLUMN w")
    for p in physical_tables("edges"):  # and those 6 -> 7 added (the verdict uncertain, cadence)
        con.execute(f"ALTER TABLE {p.name} DROP COLUMN uncertain")
    con.execute("ALTER TABLE liveness DROP COLUMN cadence")
    con.execute("INSERT INTO liveness VALUES ('c1', 'B', 'gray', 'b-1', '[[1.0, 2.0]]', false)")
    con.execute("INSERT INTO r_edges_s VALUES (?, 1, 'A', 'B', 'gray', 3, 0, 3, 0, 0, 0, 0)", [T0])
    con.execute("INSERT INTO instances VALUES ('B', 'gray', 'b-1', ?, ?, 'up')", [T0, T0 + 1])
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    store = DuckStore(path, clock=lambda: T0 + 30)
    try:
        old = store.rollup("edges", T0, T0 + 1, ["caller", "lane", "entry_lane"])
        assert old.to_dict("records")[0]["calls"] == 3 and old.entry_lane.isna().all()
        assert old.to_dict("records")[0]["uncertain"] == 0
        assert store.peer_liveness("c2")[0][0]["cadence"] is None  # not learned before version 7
        store.write(Batch(rollups={"edges": {"ts": [T0], "caller": ["A"], "callee": ["B"], "lane": ["base"],
                                             "entry_lane": ["gray"], **{m: [1] for m in ROLLUPS["edges"][1]}}},
                          instances=[{"service": "B", "lane": "gray", "instance": "b-1", "first_seen": T0,
                                      "last_seen": T0 + 2, "state": "up", "hops": 5, "errors": 0,
                                      "last_hop": T0 + 2.0}]))
        got = store.rollup("edges", T0, T0 + 1, ["caller", "entry_lane"])  # the per-second table
        assert sorted(got.calls.tolist()) == [1, 3]
        assert store.instances().hops.tolist() == [5]
    finally:
        store.close()
    reopened = DuckStore(path, clock=lambda: T0 + 30)  # current now: opens without another migration
    reopened.close()
