"""Alert rule evaluation at fleet size, and the alert sink's cost beside the store's.

    python bench/bench_alerts.py [--services 100] [--lanes 4] [--rounds 30]

Fills the alert engine's window with 60 s of batches shaped like a fleet of
``--services`` services with ``--lanes`` instance lanes each (every lane serving
its own traffic, some leaks, fallbacks and errors, latency histograms, edges between
neighbouring services, traces by entry lane), as the span path hands them over, then:

* ``evaluate``: one evaluation of every rule (what runs every second), median of
  ``--rounds``, with one second of new batches added between rounds;
* ``write``: the alert sink's ``write`` of one second's batch, beside the DuckDB
  store's ``write`` of the same batch (both run on the flush thread).

Target (issue 10): evaluation over 100 services x 4 lanes <= 20 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from lanewatch import config
from lanewatch.alerts.engine import AlertEngine
from lanewatch.store.base import Batch
from lanewatch.store.duck import DuckStore


def second(ts: int, services: int, lanes: list[str], rng: np.random.Generator, leaky: float) -> Batch:
    """One second of a fleet's rollups; a ``leaky`` share of the services leak."""
    hops: dict[str, list[Any]] = {k: [] for k in ("ts", "res", "service", "instance_lane", "request_lane",
                                                  "expected_lane", "verdict", "requests", "errors",
                                                  "latency_sum_ms")}
    lat: dict[str, list[Any]] = {k: [] for k in ("ts", "res", "service", "instance_lane", "request_lane",
                                                 "bucket", "count")}
    edges: dict[str, list[Any]] = {k: [] for k in ("ts", "res", "caller", "callee", "lane", "entry_lane", "calls",
                                                   "errors", "in_lane", "fallback", "leak", "intrusion",
                                                   "tag_lost", "tag_lost_inside")}
    for s in range(services):
        svc = f"svc-{s:03d}"
        for lane in lanes:
            leaks = int(rng.integers(0, 2)) if s < leaky * services else 0
            for verdict, n in (("in_lane", int(rng.integers(5, 40))), ("leak", leaks),
                               ("fallback", int(rng.integers(0, 2)))):
                if n == 0:
                    continue
                for col, v in zip(hops, (ts, 1, svc, lane if verdict == "in_lane" else "base", lane, lane,
                                         verdict, n, int(rng.integers(0, 2)), 5.0 * n)):
                    hops[col].append(v)
            for b in rng.integers(30, 60, size=8).tolist():
                for col, v in zip(lat, (ts, 1, svc, lane, lane, b, int(rng.integers(1, 6)))):
                    lat[col].append(v)
            callee = f"svc-{(s + 1) % services:03d}"
            lost = int(rng.integers(0, 2)) if s < leaky * services else 0
            for col, v in zip(edges, (ts, 1, svc, callee, lane, lane, 20, 0, 20, 0, 0, 0, lost, 0)):
                edges[col].append(v)
    traces = {"ts": [ts] * len(lanes), "res": [1] * len(lanes), "entry_lane": lanes,
              "traces": [int(rng.integers(10, 100)) for _ in lanes], "stayed": [5] * len(lanes)}
    return Batch(rollups={"hops": hops, "latency": lat, "edges": edges, "traces": traces})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--lanes", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--leaky", type=float, default=0.05, help="share of services that leak (1 = all)")
    args = ap.parse_args()
    lanes = ["base"] + [f"gray{i}" if i > 1 else "gray" for i in range(1, args.lanes)]
    rng = np.random.default_rng(1)
    settings = config.load(environ={}, flags={"lanes": {"gray": {"target_share": 0.3, "tolerance": 0.05}}})
    now = 1_800_000_000
    instances = [{"service": f"svc-{s:03d}", "lane": ln, "instance": f"svc-{s:03d}-{ln}", "first_seen": now - 600,
                  "last_seen": now, "state": "up", "hops": 0, "errors": 0, "last_hop": now}
                 for s in range(args.services) for ln in lanes]
    clock = [float(now)]
    engine = AlertEngine(settings, lambda: instances, clock=lambda: clock[0])
    store = DuckStore(":memory:", clock=lambda: clock[0])
    for t in range(now - 60, now):
        engine.write(second(t, args.services, lanes, rng, args.leaky))
    evaluate, write, store_write = [], [], []
    for _ in range(args.rounds):
        now += 1
        clock[0] = float(now)
        batch = second(now, args.services, lanes, rng, args.leaky)
        t0 = time.perf_counter()
        engine.write(batch)
        write.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        store.write(batch)
        store_write.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        engine.evaluate(float(now))
        evaluate.append(time.perf_counter() - t0)
    keys = {n: len(f.keys) for n, f in engine.window.families.items()}
    firing = len(engine.states.firing())
    med = statistics.median
    print(f"{args.services} services x {len(lanes)} lanes, {args.leaky:.0%} leaking, window keys {keys}, {firing} alerts firing")
    print(f"evaluate (every rule, once): median {1000 * med(evaluate):.1f} ms "
          f"(min {1000 * min(evaluate):.1f}, max {1000 * max(evaluate):.1f}) over {args.rounds} rounds")
    print(f"alert sink write of 1 s of batches: median {1000 * med(write):.1f} ms; "
          f"DuckDB store write of the same: {1000 * med(store_write):.1f} ms "
          f"(ratio {med(write) / med(store_write):.2f})")


if __name__ == "__main__":
    main()
