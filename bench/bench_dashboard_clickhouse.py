"""The dashboard over ClickHouse, side by side with DuckDB: 100 services x 4 lanes x 1 h.

    python bench/bench_dashboard_clickhouse.py [--services 100] [--lanes 4] [--seconds 3600] [--runs 15] [--serves 7]

The same batches (``bench_query.make_batch``, 5 s per ``store.write``, as the collector writes
them) go into a DuckDB file and into a database on a private ClickHouse server
(:mod:`lanewatch.store.clickhouse_local`), the hour ending now. Then, in one run:

* ``in-process``: the Overview refresh callback as a plain function, cold (a new Query and an
  empty dashboard memo before each call: a page opened), as ``bench_dashboard.py`` times it,
  on DuckDB, on ClickHouse and on ClickHouse through one client (as before the pool: the
  page's queries, gathered on threads, waited for each other) in turn, ``--runs`` each; and
  one live tick (1 s later); each with the interpreter's default garbage collection and with
  the collection ``lanewatch up``, ``collect`` and ``serve`` set after start-up
  (:func:`lanewatch.collect.pipeline.tune_gc`: start-up's objects frozen), alternating;
* ``lanewatch serve``: ``--serves`` times a fresh ``lanewatch serve --store clickhouse://...``
  process (warmed by one ``GET /api/v1/collectors``, which reads no rollup), then its first
  Overview callback over HTTP (``POST /_dash-update-component``, the request the browser
  sends; cold: nothing memoised in the process) and the next tick's (1 s later).

Prints medians and p90 (ms) and the ratio ClickHouse / DuckDB.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import flask
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_dashboard import Clock, cases
from bench_query import make_batch

from lanewatch.collect.pipeline import tune_gc
from lanewatch.config import Settings
from lanewatch.config.store_url import parse
from lanewatch.query import Query
from lanewatch.store.base import Store
from lanewatch.store.clickhouse import ClickHouseStore
from lanewatch.store.clickhouse_conn import DriverConnection
from lanewatch.store.clickhouse_local import LocalServer, start
from lanewatch.store.duck import DuckStore

ROOT = Path(__file__).resolve().parents[1]
COLD = "overview.refresh (first render)"
TICK = "overview.refresh (live tick, 1 s apart)"


def fill(stores: dict[str, Store], now: list[float], n_services: int, n_lanes: int, seconds: int,
         chunk_s: int, t_end: int) -> dict[str, float]:
    """The same batches into every store; seconds spent writing, per store."""
    rng = np.random.default_rng(7)
    services = [f"svc-{i:03d}" for i in range(n_services)]
    lanes = ["base"] + [f"gray{i}" if i > 1 else "gray" for i in range(1, n_lanes)]
    med = np.tile(rng.uniform(2, 200, n_services), n_lanes)
    spent = dict.fromkeys(stores, 0.0)
    for t0 in range(t_end - seconds, t_end, chunk_s):
        now[0] = t0 + chunk_s + 1.0
        batch = make_batch(rng, t0, min(chunk_s, t_end - t0), services, lanes, med)
        for name, store in stores.items():
            t = time.perf_counter()
            store.write(batch)
            spent[name] += time.perf_counter() - t
    return spent


#: the interpreter's default collection, and lanewatch's processes' after start-up (tune_gc)
GC_MODES = ("default", "tuned")


def set_gc(mode: str, default: tuple[int, int, int]) -> None:
    if mode == "tuned":
        tune_gc()
    else:
        gc.unfreeze()
        gc.set_threshold(*default)


def stats(ms: list[float]) -> tuple[float, float]:
    s = sorted(ms)
    return statistics.median(s), s[max(0, int(len(s) * 0.9) - 1)]


def post_overview(url: str, dep: dict[str, Any], tick: int, figkey: Any) -> tuple[float, Any]:
    """The browser's request for the Overview callback; (ms, the figure key it returned)."""
    body = {"output": dep["output"],
            "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]}
                        for o in dep["output"].strip(".").split("...")],
            "inputs": [{"id": "shell-tick", "property": "n_intervals", "value": tick},
                       {"id": "shell-state", "property": "data",
                        "value": {"window_s": 3600, "service": None, "lane": None, "kind": None}},
                       {"id": "shell-theme", "property": "data", "value": "light"},
                       {"id": "shell-tz", "property": "data", "value": "UTC"},
                       {"id": "overview-escapes-hold", "property": "data", "value": False}],
            "state": [{"id": "overview-figkey", "property": "data", "value": figkey}],
            "changedPropIds": ["shell-tick.n_intervals"]}
    req = urllib.request.Request(f"{url}/_dash-update-component", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        out = json.loads(r.read())
    ms = (time.perf_counter() - t) * 1000
    return ms, out["response"].get("overview-figkey", {}).get("data")


def via_serve(server: LocalServer, db: str, tmp: Path, k: int) -> tuple[float, float]:
    """A fresh ``lanewatch serve``: (its first Overview callback, the next tick's), ms."""
    ready = tmp / f"serve{k}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", "import sys; from lanewatch.cli import main; sys.exit(main())", "serve",
           "--store", server.url(db), "--port", "0", "--ready-file", str(ready)]
    with open(tmp / f"serve{k}.log", "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"serve did not start: {(tmp / f'serve{k}.log').read_text()[-2000:]}")
            time.sleep(0.05)
        time.sleep(0.05)
        url = json.loads(ready.read_text())["url"]
        with urllib.request.urlopen(f"{url}/api/v1/collectors", timeout=30) as r:
            r.read()
        with urllib.request.urlopen(f"{url}/_dash-dependencies", timeout=30) as r:
            deps = json.loads(r.read())
        dep = next(d for d in deps if "overview-qps.figure" in d["output"])
        cold, key = post_overview(url, dep, 1, None)
        time.sleep(1.0)
        tick, _ = post_overview(url, dep, 2, key)
        return cold, tick
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=100)
    p.add_argument("--lanes", type=int, default=4)
    p.add_argument("--seconds", type=int, default=3600)
    p.add_argument("--chunk", type=int, default=5, help="seconds of data per store.write")
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--serves", type=int, default=7, help="fresh lanewatch serve processes timed")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from lanewatch.dashboard.app import create_dash

    t_end = int(time.time())
    now = [float(t_end - a.seconds)]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        server = start(tmp / "ch")
        try:
            db = "dash"
            stores: dict[str, Store] = {
                "duckdb": DuckStore(tmp / "bench.duckdb", clock=lambda: now[0]),
                "clickhouse": ClickHouseStore(parse(server.url(db)), collector="bench", clock=lambda: now[0])}
            spent = fill(stores, now, a.services, a.lanes, a.seconds, a.chunk, t_end)
            print(f"# dashboard on ClickHouse vs DuckDB  {time.strftime('%Y-%m-%d %H:%M')}  cpus={os.cpu_count()}  "
                  f"load={os.getloadavg()[0]:.1f}  {a.services} services x {a.lanes} lanes x {a.seconds} s")
            print("fill: " + ", ".join(f"{k} {v:.0f} s" for k, v in spent.items())
                  + f" ({a.chunk} s of data per write)")
            for s in stores.values():
                s.close()
            settings = Settings()
            clock = Clock(float(t_end) - 0.5)
            readers: dict[str, Store] = {
                "duckdb": DuckStore(tmp / "bench.duckdb", clock=lambda: float(t_end)),
                "clickhouse": ClickHouseStore(parse(server.url(db)), clock=lambda: float(t_end)),
                # as before the pool of clients: the page's gathered queries wait for one client
                "clickhouse, 1 client": ClickHouseStore(connection=DriverConnection(parse(server.url(db)), pool=1),
                                                        clock=lambda: float(t_end))}
            create_dash(flask.Flask("bench"), Query(readers["duckdb"], settings, clock=clock), settings)
            calls = {name: cases(a.seconds, clock, store, settings) for name, store in readers.items()}
            ms: dict[tuple[str, str, str], list[float]] = {}
            for name in readers:  # warm-up: imports, first connections
                calls[name][COLD]()
            default_gc = gc.get_threshold()
            for _ in range(a.runs):
                for mode in GC_MODES:
                    set_gc(mode, default_gc)
                    for name in readers:
                        for case in (COLD, TICK):
                            t = time.perf_counter()
                            calls[name][case]()
                            ms.setdefault((mode, name, case), []).append((time.perf_counter() - t) * 1000)
            set_gc("default", default_gc)
            for s in readers.values():
                s.close()
            print(f"in-process, {a.runs} runs each, alternating stores and garbage collection:")
            print(f"  {'callback':40s} {'gc':8s} {'store':22s} {'median ms':>9s} {'p90 ms':>7s} {'/ DuckDB':>8s}")
            for case in (COLD, TICK):
                for mode in GC_MODES:
                    base = stats(ms[(mode, "duckdb", case)])[0]
                    for name in readers:
                        med, p90 = stats(ms[(mode, name, case)])
                        print(f"  {case:40s} {mode:8s} {name:22s} {med:9.1f} {p90:7.1f} {med / base:8.2f}")
            # lanewatch serve reads up to its own clock: the hour ends now, so write on until now
            lag = ClickHouseStore(parse(server.url(db)), collector="bench", clock=time.time)
            fill({"clickhouse": lag}, now, a.services, a.lanes, int(time.time()) - t_end + a.chunk, a.chunk,
                 int(time.time()) + a.chunk)
            lag.close()
            served = [via_serve(server, db, tmp, k) for k in range(a.serves)]
            (c_med, c_p90), (t_med, t_p90) = stats([c for c, _ in served]), stats([t for _, t in served])
            print(f"lanewatch serve --store clickhouse://..., {a.serves} fresh processes, over HTTP:")
            print(f"  first Overview callback (cold)   median {c_med:7.1f} ms  p90 {c_p90:7.1f} ms")
            print(f"  next tick (1 s later)            median {t_med:7.1f} ms  p90 {t_p90:7.1f} ms")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
