"""What the ClickHouse store costs per span in the collector, and what it writes per second.

    python bench/bench_clickhouse_write.py [--rates 20000,80000] [--groups 1,4] [--seconds 14] [--rounds 3] [--row-journal] [--pandas-blocks]

The span path as ``lanewatch collect`` runs it, in one process with a fake clock: every
simulated second's OTLP/protobuf bodies (512 spans per request, span times spread over that
second) go through ``Engine.ingest``, then ``Engine.flush`` every 0.5 s (the default
``flush_interval_s``) and ``ClickHouseStore.write`` of each batch, journal on (the open spans
kept in the store, as a collector does), into a fresh database on a private ClickHouse server
(:mod:`lanewatch.store.clickhouse_local`). Every insert is timed and its rows counted by table.

Cases, run side by side in each round: the same keys (5 services, base and gray) at each of
``--rates``, and ``4`` times the keys (``--groups``: chains of distinct services) at the
highest rate. Rows per second are counted over the steady seconds (after ``trace_wait_s``,
when traces are judged as fast as they open). Prints medians of ``--rounds``: store write
time per flush and per span, its share of the span path, and rows per second by table group
(rollups: per-second and per-minute tables; records: violations and kept traces; journal:
open spans; state: instances, counters, liveness, feed, writers), and the CPU seconds of the
ClickHouse server per simulated second (from ``/proc``, over the steady seconds and 2 s
after, for the merges that follow the inserts).

``--row-journal`` also runs every case with the journal as schema 2 wrote it: a row per open
span in ``open_spans`` (numpy columns), side by side with the shipped row per chunk.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import payloads

from lanewatch import config
from lanewatch.collect.engine import Engine
from lanewatch.config.store_url import parse
from lanewatch.store import clickhouse_journal as J
from lanewatch.store import clickhouse_schema as S
from lanewatch.store import clickhouse_write as W
from lanewatch.store.clickhouse import ClickHouseStore
from lanewatch.store.clickhouse_conn import Connection, DriverConnection
from lanewatch.store.clickhouse_local import LocalServer, start

TRACE_WAIT_S = 5.0
TICK = os.sysconf("SC_CLK_TCK")


def group_of(table: str) -> str:
    if table.startswith("r_"):
        return "rollups"
    if table in ("violations", "kept_traces"):
        return "records"
    if table in ("open_chunks", "open_spans", "open_names", "journal"):
        return "journal"
    return "state"


class Counting:
    """A :class:`Connection` that counts the rows and times every insert, by table."""

    def __init__(self, con: Connection) -> None:
        self.con = con
        self.rows: Counter[str] = Counter()
        self.secs: Counter[str] = Counter()
        self.on = False

    def command(self, sql: str) -> None:
        self.con.command(sql)

    def query(self, sql: str) -> list[list[Any]]:
        return self.con.query(sql)

    def insert(self, table: str, columns: Sequence[str], data: Sequence[Any]) -> None:
        t = time.perf_counter()
        self.con.insert(table, columns, data)
        if self.on:
            self.secs[group_of(table)] += time.perf_counter() - t
            self.rows[table] += len(data[0]) if data else 0

    def close(self) -> None:
        self.con.close()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def row_journal_write(con: Connection, collector: str, state: J.State, change: Any, stamp: int,
                      at: int) -> J.State:
    """The journal as schema 2 wrote it (the reference of ``--row-journal``): the same state
    and names, but every open span a row of ``open_spans``, its columns as numpy arrays."""
    new, parts = J.plan(state, change, stamp)
    if parts:
        lens = [len(rows["sid"]) for _, _, rows in parts]
        n = sum(lens)
        data = [np.full(n, collector, dtype=object), np.full(n, new.epoch, dtype=np.uint64),
                np.repeat(np.array([q for q, _, _ in parts], dtype=np.int64), lens),
                np.repeat(np.array([g for _, g, _ in parts], dtype=np.uint64), lens), np.full(n, at, dtype=np.int64)]
        for c, t in S.JOURNAL_TYPES.items():
            arr = np.concatenate([np.asarray(rows[c]) for _, _, rows in parts])
            data.append(arr.astype(np.uint64 if t == "UInt64" else np.int64))
        con.insert("open_spans", ["collector", "epoch", "seq", "gen", "at", *S.JOURNAL_TYPES], data)
    J.write_names(con, collector, new.epoch, change)
    J.mark(con, collector, new, stamp)
    return new


def server_cpu_s(server: LocalServer) -> float:
    assert server.process is not None
    f = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def run(server: LocalServer, db: str, seconds: list[list[bytes]], per_second: int, t0: float) -> dict[str, Any]:
    """One case on a fresh database: store time per flush and per span, rows per second."""
    gc.collect()
    clock = Clock(t0)
    settings = config.load(environ={}, flags={"trace_wait_s": TRACE_WAIT_S, "sample_ok_traces": 0.01})
    con = Counting(DriverConnection(parse(server.url(db))))
    store = ClickHouseStore(connection=con, collector="c0", clock=clock)
    engine = Engine(settings, clock)
    engine.resume(store.open_spans())
    steady_from = int(TRACE_WAIT_S) + 2
    span_path = write_s = 0.0
    flushes = 0
    cpu0 = 0.0
    for i, bodies in enumerate(seconds):
        con.on = i >= steady_from
        if i == steady_from:
            cpu0 = server_cpu_s(server)
        for half in (bodies[: len(bodies) // 2], bodies[len(bodies) // 2:]):
            t = time.perf_counter()
            for b in half:
                engine.ingest("traces", b, "proto")
            batch = engine.flush()
            w = time.perf_counter()
            store.write(batch)
            done = time.perf_counter()
            clock.t += 0.5
            if con.on:
                span_path += w - t
                write_s += done - w
                flushes += 1
    time.sleep(2.0)  # the merges after the last inserts
    server_cpu = server_cpu_s(server) - cpu0
    store.close()
    steady = len(seconds) - steady_from
    return {"write_ms_per_flush": 1000 * write_s / flushes, "us_per_span": 1e6 * write_s / (per_second * steady),
            "share": write_s / (write_s + span_path), "span_path_us": 1e6 * span_path / (per_second * steady),
            "server_cpu": server_cpu / steady, "prep_ms": 1000 * (write_s - sum(con.secs.values())) / steady,
            "rows": {k: v / steady for k, v in con.rows.items()},
            "secs": {k: v / steady for k, v in con.secs.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="20000,80000", help="spans per simulated second, same keys")
    ap.add_argument("--groups", default="1,4", help="key multipliers: the last is run at the highest rate")
    ap.add_argument("--seconds", type=int, default=14)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pandas-blocks", action="store_true",
                    help="also run every case with the rollup blocks grouped by pandas (as before the numpy "
                         "grouping; the reference in tests/unit/test_clickhouse_rollup_blocks.py)")
    ap.add_argument("--row-journal", action="store_true",
                    help="also run every case with the journal as a row per span (schema 2)")
    a = ap.parse_args()
    shipped = J.write
    variants: dict[str, tuple[Any, Any]] = {"numpy": (W.rollup_blocks, shipped)}
    if a.row_journal:
        variants["numpy, row journal"] = (W.rollup_blocks, row_journal_write)
    if a.pandas_blocks:
        from tests.unit.test_clickhouse_rollup_blocks import reference

        variants["pandas"] = (reference, shipped)
    rates = [int(r) for r in a.rates.split(",")]
    groups = [int(g) for g in a.groups.split(",")]
    cases = [(r, groups[0]) for r in rates] + [(max(rates), g) for g in groups[1:]]
    t0 = float(int(time.time()))
    built = {(r, g): [payloads.build(r, 512, t0_ns=int((t0 + s) * 1e9), groups=g, duration_ns=1_000_000_000)
                      for s in range(a.seconds)] for r, g in cases}
    spans = {c: payloads.count_spans(b[0]) for c, b in built.items()}  # the same every second
    print(f"# ClickHouse store writes in the collector  {time.strftime('%Y-%m-%d %H:%M')}  "
          f"{a.seconds} simulated s per run (rows from second {int(TRACE_WAIT_S) + 2} on), "
          f"2 flushes per second, journal on, {a.rounds} rounds")
    res: dict[tuple[int, int, str], list[dict[str, Any]]] = {(*c, v): [] for c in cases for v in variants}
    server = start()
    try:
        for r in range(a.rounds):
            for c in cases:
                for k, (v, (blocks, journal)) in enumerate(variants.items()):
                    W.rollup_blocks, J.write = blocks, journal
                    res[(*c, v)].append(run(server, f"w_r{r}_{c[0]}_{c[1]}_{k}", built[c], spans[c], t0))
    finally:
        W.rollup_blocks, J.write = variants["numpy"][0], shipped
        server.stop()
    tables = sorted({t for ms in res.values() for m in ms for t in m["rows"]})
    head = f"{'spans/s':>8s} {'keys':>5s} {'variant':>24s} {'write ms/flush':>14s} {'us/span':>8s} {'share':>6s}"
    print(head + "".join(f" {g:>9s}" for g in ("rollups", "records", "journal", "state")) + "   (rows per second)")
    for c, ms in res.items():
        med = {k: statistics.median(m[k] for m in ms)
               for k in ("write_ms_per_flush", "us_per_span", "share", "server_cpu")}
        rows = {t: statistics.median(m["rows"].get(t, 0) for m in ms) for t in tables}
        by: Counter[str] = Counter()
        for t, v in rows.items():
            by[group_of(t)] += v
        print(f"{c[0]:8d} {'x' + str(c[1]):>5s} {c[2]:>24s} {med['write_ms_per_flush']:14.1f} {med['us_per_span']:8.2f} "
              f"{med['share']:6.1%}" + "".join(f" {by[g]:9.0f}" for g in ("rollups", "records", "journal", "state")))
        secs = {g: statistics.median(m["secs"].get(g, 0.0) for m in ms) for g in ("rollups", "records", "journal", "state")}
        prep = statistics.median(m["prep_ms"] for m in ms)
        print(f"{'':39s} ms per simulated second: inserts " + "  ".join(f"{g} {1000 * v:.1f}" for g, v in secs.items())
              + f"; blocks built (write - inserts) {prep:.1f}; ClickHouse CPU {1000 * med['server_cpu']:.0f} ms")
        print(f"{'':39s} rollup rows/s by table: " + "  ".join(f"{t} {v:.0f}" for t, v in rows.items() if t.startswith("r_")))


if __name__ == "__main__":
    main()
