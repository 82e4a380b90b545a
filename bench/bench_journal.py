"""What keeping the open spans costs: the span path and the DuckDB store, journal on and off.

    python bench/bench_journal.py [--rate 100000] [--seconds 12] [--rounds 3]

Replays ``--rate`` spans per second of clock (a fake clock advanced one flush interval per
flush, so the machine's speed decides nothing but the time measured) through
``Engine.ingest`` -> ``Engine.flush`` -> ``DuckStore.write`` on a file store, with
``trace_wait_s`` 5 s, once with the journal (every open span written with its flush and
deleted when its trace is judged) and once without, alternating, ``--rounds`` times.
Prints the median time per simulated second (ingest + flush + write) and per flush write,
and the ratio journal / no journal.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import payloads

from lanewatch import config
from lanewatch.collect.engine import Engine
from lanewatch.store.duck import DuckStore


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def run(bodies: list[list[bytes]], journal: bool) -> tuple[float, float, int]:
    """Seconds per simulated second, per store write, and the most spans the journal held."""
    gc.collect()
    clock = Clock(time.time())
    settings = config.load(environ={}, flags={"trace_wait_s": 5.0, "sample_ok_traces": 0.01})
    with tempfile.TemporaryDirectory() as d:
        store = DuckStore(Path(d) / "bench.db", clock=clock)
        engine = Engine(settings, clock)
        if journal:
            engine.resume(store.open_spans())
        per_second, writes, most = [], [], 0
        for second in bodies:
            t = time.perf_counter()
            for b in second:
                engine.ingest("traces", b, "proto")
            batch = engine.flush()
            w = time.perf_counter()
            store.write(batch)
            done = time.perf_counter()
            per_second.append(done - t)
            writes.append(done - w)
            most = max(most, engine.assembly.n_open)
            clock.t += 1.0
        store.close()
    return statistics.median(per_second), statistics.median(writes), most


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=100_000, help="spans per simulated second")
    ap.add_argument("--seconds", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    t0 = time.time_ns()
    bodies = [payloads.build(a.rate, 512, t0_ns=t0 + s * 1_000_000_000) for s in range(a.seconds)]
    n = sum(payloads.count_spans(b) for b in bodies)
    print(f"{n} spans over {a.seconds} simulated seconds ({n // a.seconds}/s), 512 per request")
    res: dict[bool, list[tuple[float, float, int]]] = {True: [], False: []}
    for _ in range(a.rounds):
        for journal in (False, True):
            res[journal].append(run(bodies, journal))
    for journal in (False, True):
        sec = statistics.median(r[0] for r in res[journal])
        wr = statistics.median(r[1] for r in res[journal])
        held = max(r[2] for r in res[journal])
        print(f"journal {'on ' if journal else 'off'}: {sec * 1000:7.1f} ms per second of traffic, "
              f"store write {wr * 1000:6.1f} ms per flush, open spans held up to {held}")
    on, off = (statistics.median(r[0] for r in res[j]) for j in (True, False))
    w_on, w_off = (statistics.median(r[1] for r in res[j]) for j in (True, False))
    print(f"ratio on/off: {on / off:.2f}x per second of traffic, {w_on / w_off:.2f}x per store write")


if __name__ == "__main__":
    main()
