"""Dashboard benchmark: page callbacks over 100 services x 4 lanes x 1 hour of per-second data.

Fills a DuckStore file with ``bench_query.fill`` (flush-sized ``store.write``
batches, as the collector writes them), mounts the dashboard with
``create_dash`` over a Query on it, and times each page's refresh callback as
a plain function, window = the whole hour. Target: the Overview refresh
(summary + series + violations + figures) <= 50 ms median.

    python bench/bench_dashboard.py [--services 100] [--lanes 4] [--seconds 3600] [--runs 30]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import flask

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_query import T_END, fill, timed

from lanewatch.config import Settings
from lanewatch.query import Query
from lanewatch.store.duck import DuckStore

log = logging.getLogger("bench_dashboard")


class Clock:
    """The Query's clock: the bench moves it one second per live tick."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def cases(window_s: int, clock: Clock, store: DuckStore, settings: Settings) -> dict[str, Any]:
    """Callback name -> a no-argument call of it, as Dash would make it every second."""
    from lanewatch.dashboard import cache
    from lanewatch.dashboard.app import set_context
    from lanewatch.dashboard.pages import compare, flow, lanes, overview, violations

    state = {"window_s": window_s, "service": None, "lane": None, "kind": None}
    one = {**state, "service": "svc-042", "lane": "gray"}
    key = [overview.refresh(0, state, "light", "Europe/Berlin", None)[-1]]

    def cold(fn: Any) -> Any:
        """A first render: nothing memoised, neither by the dashboard nor by a fresh Query."""
        def run() -> Any:
            set_context(Query(store, settings, clock=clock), settings)
            cache.clear()
            return fn()
        return run

    def tick() -> Any:
        clock.t += 1.0  # one second later, as the dcc.Interval fires
        out = overview.refresh(1, state, "light", "Europe/Berlin", key[0])
        key[0] = out[-1]
        return out

    return {
        "overview.refresh (first render)":
            cold(lambda: overview.refresh(1, state, "light", "Europe/Berlin", None)),
        "overview.refresh (live tick, 1 s apart)": tick,
        "overview.refresh (first render, service=svc-042)":
            cold(lambda: overview.refresh(1, {**state, "service": "svc-042"}, "light", "UTC", None)),
        "violations.refresh": lambda: violations.refresh(1, state, "light", "UTC"),
        "flow.refresh (graph + sankey)": lambda: flow.refresh(1, state, "light", "UTC", None),
        "compare.refresh (first render, svc-042 gray vs base)":
            cold(lambda: compare.refresh(1, one, "light", "UTC")),
        "compare.refresh (live tick, 1 s apart)": lambda: (
            setattr(clock, "t", clock.t + 1.0), compare.refresh(1, one, "light", "UTC")),
        "lanes.refresh": lambda: lanes.refresh(1, state, "light", "UTC"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=100)
    p.add_argument("--lanes", type=int, default=4)
    p.add_argument("--seconds", type=int, default=3600)
    p.add_argument("--chunk", type=int, default=5, help="seconds of data per store.write")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--db", default="", help="existing or new DuckDB file (default: a temp file)")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from lanewatch.dashboard.app import create_dash

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(a.db) if a.db else Path(tmp) / "bench.duckdb"
        if not path.exists():
            elapsed, rows = fill(path, a.services, a.lanes, a.seconds, a.chunk)
            print(f"fill: {elapsed:.1f} s for {a.seconds} s of data; rows {rows}")
        store = DuckStore(path, clock=lambda: float(T_END))
        settings = Settings()
        clock = Clock(float(T_END) - 0.5)
        query = Query(store, settings, clock=clock)
        create_dash(flask.Flask("bench"), query, settings)
        print(f"{a.services} services x {a.lanes} lanes, window {a.seconds} s, {a.runs} runs")
        print(f"{'callback':55s} {'median ms':>10s} {'p90 ms':>8s}")
        for name, fn in cases(a.seconds, clock, store, settings).items():
            med, p90 = timed(fn, a.runs)
            print(f"{name:55s} {med:10.1f} {p90:8.1f}")
        store.close()


if __name__ == "__main__":
    main()
