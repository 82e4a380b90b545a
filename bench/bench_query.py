"""Read-side benchmark: a dashboard callback over 100 services x 4 lanes x 1 hour of per-second data.

Fills a DuckStore file (under a temp dir unless --db) through ``DuckStore.write``
in flush-sized batches with a simulated clock, as the collector would, then
times the Query calls the dashboard makes: cold (a new Query per call, nothing
cached) and live (one second of data written before each call, as while the
collector runs; settled series steps stay cached). Target: a callback
(summary + series + edges over the hour) <= 50 ms median.

    python bench/bench_query.py [--services 100] [--lanes 4] [--seconds 3600] [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lanewatch.config import Settings
from lanewatch.histogram import bucket_of
from lanewatch.query import Query
from lanewatch.store.base import Batch
from lanewatch.store.duck import DuckStore

T_END = 1_767_225_600  # 2026-01-01T00:00:00Z


def make_batch(rng: np.random.Generator, t0: int, seconds: int, services: list[str],
               lanes: list[str], med_ms: np.ndarray) -> Batch:
    """``seconds`` seconds of traffic: every service serves in every lane, calls two others."""
    s, nl, ns = len(services), len(lanes), seconds
    ts = np.repeat(np.arange(t0, t0 + ns), s * nl)
    svc = np.tile(np.repeat(np.array(services, dtype=object), nl), ns)
    lane = np.tile(np.array(lanes, dtype=object), s * ns)
    req = rng.poisson(20, len(ts)) + 1
    hops: dict[str, Any] = {"ts": ts, "service": svc, "instance_lane": lane, "request_lane": lane,
            "expected_lane": lane, "verdict": np.full(len(ts), "in_lane", dtype=object),
            "requests": req, "errors": rng.binomial(req, 0.01), "latency_sum_ms": req * 20.0}
    # latency: 9 buckets around each (service, lane)'s median
    spread = np.arange(-4, 5)
    centre = np.tile(bucket_of(med_ms).astype(np.int64), ns)
    lat: dict[str, Any] = {"ts": np.repeat(ts, 9), "service": np.repeat(svc, 9), "instance_lane": np.repeat(lane, 9),
           "request_lane": np.repeat(lane, 9), "bucket": (np.repeat(centre, 9) + np.tile(spread, len(ts))),
           "count": rng.poisson(np.tile([1, 2, 4, 6, 8, 6, 3, 1, 0.5], len(ts)))}
    idx = np.arange(s)
    callee = np.array(services, dtype=object)[np.r_[(idx + 1) % s, (idx + 7) % s]]
    caller = np.array(services, dtype=object)[np.r_[idx, idx]]
    ne = len(caller) * nl * ns
    calls = rng.poisson(10, ne) + 1
    edges: dict[str, Any] = {"ts": np.repeat(np.arange(t0, t0 + ns), len(caller) * nl),
             "caller": np.tile(np.repeat(caller, nl), ns), "callee": np.tile(np.repeat(callee, nl), ns),
             "lane": np.tile(np.array(lanes, dtype=object), len(caller) * ns),
             "entry_lane": np.tile(np.array(lanes, dtype=object), len(caller) * ns), "calls": calls,
             "errors": rng.binomial(calls, 0.01), "in_lane": calls, "fallback": np.zeros(ne, int),
             "leak": np.zeros(ne, int), "intrusion": np.zeros(ne, int),
             "tag_lost": rng.binomial(1, 0.001, ne), "tag_lost_inside": np.zeros(ne, int)}
    tr_ts = np.repeat(np.arange(t0, t0 + ns), nl)
    traces: dict[str, Any] = {"ts": tr_ts, "entry_lane": np.tile(np.array(lanes, dtype=object), ns),
              "traces": np.full(len(tr_ts), 50), "stayed": np.full(len(tr_ts), 49)}
    viol = [{"ts": t0 + i % ns, "kind": "leak", "service": services[i % s], "request_lane": lanes[1],
             "instance_lane": "base", "entry_lane": lanes[1], "trace_id": f"{t0:016x}{i:016x}",
             "span_id": f"{i:016x}", "lane_path": "A[gray] -> B[base, leak]", "late": False}
            for i in range(ns)]
    return Batch(rollups={"hops": hops, "latency": lat, "edges": edges, "traces": traces},
                 violations=viol)


def fill(store_path: Path, n_services: int, n_lanes: int, seconds: int, chunk_s: int) -> tuple[float, dict[str, int]]:
    rng = np.random.default_rng(7)
    services = [f"svc-{i:03d}" for i in range(n_services)]
    lanes = ["base"] + [f"gray{i}" if i > 1 else "gray" for i in range(1, n_lanes)]
    med = np.tile(rng.uniform(2, 200, n_services), n_lanes)
    now = [float(T_END - seconds)]
    store = DuckStore(store_path, clock=lambda: now[0])
    t = time.perf_counter()
    for t0 in range(T_END - seconds, T_END, chunk_s):
        now[0] = t0 + chunk_s + 1.0
        store.write(make_batch(rng, t0, min(chunk_s, T_END - t0), services, lanes, med))
    elapsed = time.perf_counter() - t
    rows = {name: store._scalar(f"SELECT count(*) FROM {name}")
            for name in ("r_hops_s", "r_hops_l", "r_hops_m", "r_latency_s", "r_latency_l",
                         "r_latency_m", "r_edges_s", "r_edges_m", "violations")}
    store.close()
    return elapsed, rows


def timed(fn: Any, runs: int) -> tuple[float, float]:
    """(median, p90) wall-clock milliseconds of ``fn()`` over ``runs`` calls after a warm-up."""
    med, p90, _ = timed_cpu(fn, runs)
    return med, p90


def timed_cpu(fn: Any, runs: int) -> tuple[float, float, float]:
    """(median wall ms, p90 wall ms, median process CPU ms): CPU time counts DuckDB's worker
    threads too and is what the call costs when the machine is not shared."""
    fn()  # warm up
    wall, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    wall.sort()
    return statistics.median(wall), wall[int(len(wall) * 0.9) - 1], statistics.median(cpu)


def cold_cases(store: DuckStore, h: int) -> dict[str, Callable[[], Any]]:
    """Each call on a new Query: nothing cached, every step read from the store."""
    def q() -> Query:
        return Query(store, Settings(), clock=lambda: float(T_END) - 0.5)
    return {
        "summary(1h)": lambda: q().summary(h),
        "series(1h, step 1)": lambda: q().series(h),
        "series(1h, step 5)": lambda: q().series(h, step_s=5),
        "series(1h, step 60)": lambda: q().series(h, step_s=60),
        "edges(1h)": lambda: q().edges(h),
        "violations(1h)": lambda: q().violations(h),
        "callback(1h, step 5) = summary + series + edges": lambda: _callback(q(), h, 5),
        "callback(1h, step 1)": lambda: _callback(q(), h, 1),
        "callback(5 min, step 1)": lambda: _callback(q(), 300, 1),
        "summary(1h, service=svc-042)": lambda: q().summary(h, service="svc-042"),
        "series(1h, step 5, service=svc-042)": lambda: q().series(h, service="svc-042", step_s=5),
        "compare(svc-042, gray, 1h, step 5)": lambda: q().compare("svc-042", "gray", h, step_s=5),
        "compare(svc-042, gray, 1h, step 60)": lambda: q().compare("svc-042", "gray", h, step_s=60),
    }


def _callback(q: Query, h: int, step: int) -> Any:
    return q.summary(h), q.series(h, step_s=step), q.edges(h)


def live(path: Path, n_services: int, n_lanes: int, h: int, runs: int) -> dict[str, tuple[float, float, float]]:
    """A dashboard refreshing every second while the collector writes: before each timed
    call one more second of data is written and the clock moves on (one Query, so
    settled steps stay cached)."""
    rng = np.random.default_rng(11)
    services = [f"svc-{i:03d}" for i in range(n_services)]
    lanes = ["base"] + [f"gray{i}" if i > 1 else "gray" for i in range(1, n_lanes)]
    med = np.tile(rng.uniform(2, 200, n_services), n_lanes)
    now = [float(T_END)]
    store = DuckStore(path, clock=lambda: now[0])
    q = Query(store, Settings(), clock=lambda: now[0] - 0.5)
    cases: dict[str, Callable[[], Any]] = {
             "live callback(1h, step 1)": lambda: _callback(q, h, 1),
             "live callback(1h, step 5)": lambda: _callback(q, h, 5),
             "live series(1h, step 5, service=svc-042)": lambda: q.series(h, service="svc-042", step_s=5),
             "live compare(svc-042, gray, 1h, step 5)": lambda: q.compare("svc-042", "gray", h, step_s=5)}
    out = {}
    for name, fn in cases.items():
        fn()
        wall, cpu = [], []
        for _ in range(runs):
            store.write(make_batch(rng, int(now[0]), 1, services, lanes, med))
            now[0] += 1.0
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall.append((time.perf_counter() - t) * 1000)
            cpu.append((time.process_time() - c) * 1000)
        wall.sort()
        out[name] = (statistics.median(wall), wall[int(len(wall) * 0.9) - 1], statistics.median(cpu))
    store.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=100)
    p.add_argument("--lanes", type=int, default=4)
    p.add_argument("--seconds", type=int, default=3600)
    p.add_argument("--chunk", type=int, default=5, help="seconds of data per store.write (a flush)")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--db", default="", help="existing or new DuckDB file (default: a temp file)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(a.db) if a.db else Path(tmp) / "bench.duckdb"
        if not path.exists():
            elapsed, rows = fill(path, a.services, a.lanes, a.seconds, a.chunk)
            print(f"fill: {elapsed:.1f} s for {a.seconds} s of data ({a.chunk} s per write); rows {rows}")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {a.runs} runs each")
        print(f"{'call':62s} {'median ms':>9s} {'p90 ms':>7s} {'CPU ms':>7s}")
        store = DuckStore(path, clock=lambda: float(T_END))
        for name, fn in cold_cases(store, a.seconds).items():
            med, p90, cpu = timed_cpu(fn, a.runs)
            print(f"{name:62s} {med:9.1f} {p90:7.1f} {cpu:7.1f}")
        store.close()
        scratch = Path(tmp) / "live.duckdb"  # the live phase writes: keep --db as it was
        shutil.copyfile(path, scratch)
        for name, (med, p90, cpu) in live(scratch, a.services, a.lanes, a.seconds, a.runs).items():
            print(f"{name:62s} {med:9.1f} {p90:7.1f} {cpu:7.1f}")


if __name__ == "__main__":
    main()
