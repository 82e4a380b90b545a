"""/metrics benchmark: render time at 100 services x 4 lanes, and the sink's write cost per batch.

Builds one-second batches as the engine hands them to its sinks: every service serves in every
lane (in lane), gray traffic falls back to base at every fifth service, a few leaks and
intrusions, each service calls two others in every lane (with fallbacks and lost tags), 9
latency buckets per (service, instance lane, request lane), traces per entry lane. Each batch
is written to a :class:`~lanewatch.metrics.MetricsSink` and to a DuckDB store (a temp file),
timed separately. Then ``GET /metrics`` is timed: the collector's render in the text format
(what Prometheus gets), in OpenMetrics (for a scraper that takes nothing else), and the whole
Flask route with Prometheus' ``Accept``, with 800 instance rows and a few alerts. Target:
render <= 100 ms median.

    python bench/bench_metrics.py [--services 100] [--lanes 4] [--batches 120] [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import numpy as np

from lanewatch.histogram import bucket_of
from lanewatch.metrics import MetricsCollector, MetricsSink, register_metrics
from lanewatch.store.base import Batch
from lanewatch.store.duck import DuckStore

T0 = 1_767_225_600
#: what Prometheus 2.42 sends; lanewatch answers in the text format
PROMETHEUS_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
OPENMETRICS = "application/openmetrics-text;version=1.0.0"


def make_batch(rng: np.random.Generator, ts: int, services: list[str], lanes: list[str],
               med_ms: np.ndarray) -> Batch:
    """One second of traffic (see the module docstring)."""
    hops: dict[str, list[Any]] = {k: [] for k in ("ts", "res", "service", "instance_lane", "request_lane",
                                                  "expected_lane", "verdict", "requests", "errors",
                                                  "latency_sum_ms")}
    lat: dict[str, list[Any]] = {k: [] for k in ("ts", "res", "service", "instance_lane", "request_lane",
                                                 "bucket", "count")}

    def hop(svc: str, inst: str, exp: str, verdict: str, n: int, ms: float) -> None:
        for k, v in zip(hops, (ts, 1, svc, inst, exp, exp, verdict, n, int(rng.binomial(n, 0.01)), n * ms)):
            hops[k].append(v)
        centre = int(bucket_of([ms])[0])
        for b, c in zip(range(centre - 4, centre + 5), rng.poisson([1, 2, 4, 6, 8, 6, 3, 1, 0.5])):
            for k, v in zip(lat, (ts, 1, svc, inst, exp, b, int(c))):
                lat[k].append(v)

    for i, svc in enumerate(services):
        for j, lane in enumerate(lanes):
            ms = float(med_ms[i, j])
            hop(svc, lane, lane, "in_lane", int(rng.poisson(20)) + 1, ms)
            if i % 5 == 0 and lane != "base":
                hop(svc, "base", lane, "fallback", int(rng.poisson(5)) + 1, ms)
        if i % 17 == 0:
            hop(svc, "base", lanes[1], "leak", 1, float(med_ms[i, 0]))
        if i % 31 == 0:
            hop(svc, lanes[1], "base", "intrusion", 1, float(med_ms[i, 1]))
    metrics = ("calls", "errors", "in_lane", "fallback", "leak", "intrusion", "tag_lost", "tag_lost_inside")
    edges: dict[str, list[Any]] = {k: [] for k in ("ts", "res", "caller", "callee", "lane", "entry_lane", *metrics)}
    s = len(services)
    for i, caller in enumerate(services):
        for callee in (services[(i + 1) % s], services[(i + 7) % s]):
            for lane in lanes:
                calls = int(rng.poisson(10)) + 1
                fallback = calls // 3 if lane != "base" and services.index(callee) % 5 == 0 else 0
                row = (ts, 1, caller, callee, lane, lane, calls, int(rng.binomial(calls, 0.01)),
                       calls - fallback, fallback, 0, 0, int(rng.binomial(1, 0.01)), 0)
                for k, v in zip(edges, row):
                    edges[k].append(v)
    traces = {"ts": [ts] * len(lanes), "res": [1] * len(lanes), "entry_lane": list(lanes),
              "traces": [50] * len(lanes), "stayed": [49] * len(lanes)}
    return Batch(rollups={"hops": hops, "latency": lat, "edges": edges, "traces": traces},
                 counters={"spans_received": 9000, "hops": 3000, "unpaired_client_spans": 2})


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    """(median, p90) wall-clock ms of ``fn()`` over ``runs`` calls after a warm-up."""
    fn()
    wall = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t) * 1000)
    wall.sort()
    return statistics.median(wall), wall[max(0, int(len(wall) * 0.9) - 1)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=100)
    p.add_argument("--lanes", type=int, default=4)
    p.add_argument("--batches", type=int, default=120, help="one-second batches written")
    p.add_argument("--runs", type=int, default=30)
    a = p.parse_args()
    rng = np.random.default_rng(7)
    services = [f"svc-{i:03d}" for i in range(a.services)]
    lanes = ["base"] + [f"gray{i}" if i > 1 else "gray" for i in range(1, a.lanes)]
    med = rng.uniform(2, 200, (a.services, a.lanes))
    batches = [make_batch(rng, T0 + i, services, lanes, med) for i in range(a.batches)]
    sink = MetricsSink()
    sink_ms, store_ms = [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckStore(Path(tmp) / "bench.duckdb", clock=lambda: float(T0 + a.batches))
        for b in batches:
            t = time.perf_counter()
            store.write(b)
            store_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            sink.write(b)
            sink_ms.append((time.perf_counter() - t) * 1000)
        store.close()
    rows = len(batches[0].rollups["hops"]["service"]) + len(batches[0].rollups["latency"]["service"]) \
        + len(batches[0].rollups["edges"]["caller"])
    instances = [{"service": s, "lane": ln, "instance": f"{s}-{ln}-{k}", "live": k == 0}
                 for s in services for ln in lanes for k in range(2)]
    alerts = [{"labels": {"alertname": "LaneLeak", "service": s, "lane": lanes[1]}, "state": "firing"}
              for s in services[::17]]
    m = MetricsCollector(sink, instances=lambda: instances, alert_states=lambda: alerts,
                         pending_counters=lambda: {"spans_received": 10})
    app = flask.Flask("bench")
    register_metrics(app, m)
    client = app.test_client()
    text, _ = m.render()
    om, _ = m.render(OPENMETRICS)
    series = sum(1 for line in text.decode().splitlines() if line and not line.startswith("#"))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {a.services} services x "
          f"{a.lanes} lanes; {a.batches} batches of 1 s ({rows} rollup rows each)")
    print(f"/metrics: {series} samples, {len(text) / 1e6:.2f} MB text, {len(om) / 1e6:.2f} MB OpenMetrics")
    print(f"{'call':52s} {'median ms':>9s} {'p90 ms':>7s}")
    sink_ms.sort()
    store_ms.sort()
    print(f"{'MetricsSink.write (one batch)':52s} {statistics.median(sink_ms):9.2f} "
          f"{sink_ms[int(len(sink_ms) * 0.9) - 1]:7.2f}")
    print(f"{'DuckStore.write (the same batch)':52s} {statistics.median(store_ms):9.2f} "
          f"{store_ms[int(len(store_ms) * 0.9) - 1]:7.2f}")
    for name, fn in {"render, text format (what Prometheus gets)": lambda: m.render(PROMETHEUS_ACCEPT),
                     "render, OpenMetrics (a scraper taking only that)": lambda: m.render(OPENMETRICS),
                     "GET /metrics through Flask (Prometheus' Accept)":
                         lambda: client.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT})}.items():
        med_ms, p90 = timed(fn, a.runs)
        print(f"{name:52s} {med_ms:9.1f} {p90:7.1f}")


if __name__ == "__main__":
    main()
