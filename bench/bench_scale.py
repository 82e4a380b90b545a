"""Scale-out: 2 ``lanewatch collect`` processes against 1, on ClickHouse, side by side in one run.

    python bench/bench_scale.py [--spans 4000000] [--rounds 3] [--conns 2] [--profile DIR [--profile-s 6]]

One private ClickHouse server (:mod:`lanewatch.store.clickhouse_local`, as the tests start it)
for the whole run. Each round measures both set-ups, in alternating order, each on a fresh
database with fresh collectors (``lanewatch collect --store clickhouse://...``, their own
processes, default settings, nothing pinned: the collectors, ClickHouse and the replay client
share the machine's cores):

* ``1 collector``: every body goes to it;
* ``2 collectors``: the bodies are split by trace (as the gateway's ``routing_key: traceID``
  does), half of the traces to each.

The replay client (another process, ``--conns`` keep-alive connections per collector,
pre-built OTLP/protobuf bodies of 1000 spans, every span with fresh trace ids and times in
the present, 503 retried) sends the same spans in both set-ups. The hops in ClickHouse are
polled every 50 ms: ``steady`` is the rate while 20% to 80% of them were stored (what the
set-up sustains, without start-up and tail); ``stored`` is from the first request until every
hop is in ClickHouse (includes the tail: the last flush, and with 2 collectors the wait for the
peer's liveness); ``acked`` from the first request to the last acknowledgement. CPU seconds of every process (collectors, clickhouse-server, client) over the
same interval show where the cores went. Prints medians of the rounds and the ratios 2 / 1.
``--profile DIR``: one more 2-collector run with ``py-spy record`` on the first collector.

A run must last well past ``trace_wait_s`` (6 s): traces are judged (edges, trace rollups,
lane paths, journal) 6 s after their last span, so in a run of 3-4 s that work falls after the
measurement (1.5M spans measured ~350k spans/s for one collector, 4M ~195k/s).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import payloads
from soak import Template

from lanewatch.store.clickhouse_local import LocalServer, start

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def start_collectors(server: LocalServer, db: str, n: int, tmp: Path) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    procs, ports = [], []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for i in range(n):
        ready = tmp / f"{db}-c{i}.json"
        cmd = [sys.executable, "-c", "import sys; from lanewatch.cli import main; sys.exit(main())",
               "collect", "--store", server.url(db), "--collector-id", f"c{i}", "--otlp-http-port", "0",
               "--otlp-grpc-port", "-1", "--data-dir", str(tmp / f"{db}-d{i}"), "--ready-file", str(ready)]
        with open(tmp / f"{db}-c{i}.log", "wb") as log:  # the child keeps its own copy
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log))
        deadline = time.monotonic() + 60
        while not ready.exists():
            if procs[-1].poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"collector {i} did not start: {(tmp / f'{db}-c{i}.log').read_text()[-2000:]}")
            time.sleep(0.05)
        time.sleep(0.05)
        ports.append(int(json.loads(ready.read_text())["otlp_http_port"]))
    return procs, ports


def _replay(parts: list[tuple[int, list[bytes]]], conns: int, q: Any) -> None:
    """Send every body of each (port, bodies) over ``conns`` connections; 503 is retried."""
    refused = [0]

    def worker(port: int, part: list[bytes]) -> None:
        c = http.client.HTTPConnection("127.0.0.1", port)
        for b in part:
            while True:
                c.request("POST", "/v1/traces", b, {"Content-Type": "application/x-protobuf"})
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    break
                if r.status != 503:
                    raise SystemExit(f"HTTP {r.status}")
                refused[0] += 1
                time.sleep(0.05)
        c.close()

    ts = [threading.Thread(target=worker, args=(port, bodies[i::conns]))
          for port, bodies in parts for i in range(conns)]
    t0 = time.perf_counter()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    t1 = time.perf_counter()
    q.put((t0, t1, refused[0], sum(os.times()[:2])))


def stored_hops(server: LocalServer, db: str) -> int:
    from clickhouse_driver import Client

    c = Client(server.host, port=server.tcp_port, database=db)
    try:
        return int(c.execute("SELECT sum(requests) FROM r_hops_s")[0][0] or 0)
    finally:
        c.disconnect()


def measure(server: LocalServer, db: str, n: int, halves: list[list[bytes]], hops: int, conns: int,
            tmp: Path, profile: Path | None = None, duration: int = 6) -> dict[str, float]:
    procs, ports = start_collectors(server, db, n, tmp)
    spy = None
    if profile is not None:
        spy = subprocess.Popen(["py-spy", "record", "--pid", str(procs[0].pid), "--rate", "200", "--format", "raw",
                                "--output", str(profile), "--nonblocking", "--duration", str(duration)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    parts = ([(ports[0], [b for pair in zip(*halves) for b in pair])] if n == 1
             else [(ports[0], halves[0]), (ports[1], halves[1])])
    pids = [p.pid for p in procs] + [server.process.pid]  # type: ignore[union-attr]
    cpu0 = [cpu_s(p) for p in pids]
    ctx = mp.get_context("fork")
    q: Any = ctx.Queue()
    client = ctx.Process(target=_replay, args=(parts, conns, q))
    w0 = time.perf_counter()
    client.start()
    seen: list[tuple[float, int]] = []  # (time, hops stored), polled while the load runs
    while True:
        got = stored_hops(server, db)
        seen.append((time.perf_counter(), got))
        if got >= hops:
            break
        if time.perf_counter() - w0 > 120:
            raise SystemExit(f"{db}: {got} of {hops} hops stored after 120 s")
        time.sleep(0.05)
    t2 = time.perf_counter()
    t0, t1, refused, client_cpu = q.get()
    client.join()
    cpu1 = [cpu_s(p) for p in pids]
    if spy is not None:
        spy.wait()
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)
    spans = sum(len(h) for h in halves) * 1000  # 1000 spans per body
    return {"acked": spans / (t1 - t0), "stored": spans / (t2 - w0), "steady": steady_rate(seen, hops) * spans / hops,
            "refused": refused,
            "cpu_collectors": sum(b - a for a, b in zip(cpu0[:-1], cpu1[:-1])),
            "cpu_clickhouse": cpu1[-1] - cpu0[-1], "cpu_client": client_cpu, "wall": t2 - w0}


def steady_rate(seen: list[tuple[float, int]], hops: int) -> float:
    """Hops stored per second between 20% and 80% of them stored (no start-up, no tail)."""
    lo = next(p for p in seen if p[1] >= 0.2 * hops)
    hi = next(p for p in seen if p[1] >= 0.8 * hops)
    return (hi[1] - lo[1]) / (hi[0] - lo[0]) if hi[0] > lo[0] else float("nan")


def render(templates: list[Template], passes: int, round_no: int) -> list[bytes]:
    """``passes`` copies of the bodies, each with its own trace ids, times from now on."""
    shift = time.time_ns() - min(t.t0 for t in templates)
    return [t.render(round_no * 100 + k + 1, shift + k * 2_000_000_000) for k in range(passes) for t in templates]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=4_000_000, help="spans per measurement")
    ap.add_argument("--build", type=int, default=500_000, help="distinct spans built (re-rendered per pass)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=2, help="keep-alive connections per collector")
    ap.add_argument("--profile", default="", help="directory for a py-spy profile of one collector of 2")
    ap.add_argument("--profile-s", type=int, default=6, help="seconds profiled (from 1 s before the load)")
    a = ap.parse_args()
    t_build = time.perf_counter()
    tmpl = [[Template(b) for b in payloads.build(a.build // 2, 1000)] for _ in range(2)]
    per_half = sum(t.n for t in tmpl[0]), sum(t.n for t in tmpl[1])
    if min(t.n for h in tmpl for t in h) != 1000 or max(t.n for h in tmpl for t in h) != 1000:
        tmpl = [[t for t in h if t.n == 1000] for h in tmpl]  # keep whole bodies only: spans = bodies x 1000
    passes = max(1, round(a.spans / (len(tmpl[0]) + len(tmpl[1])) / 1000))
    hops = server_spans([t.body for h in tmpl for t in h])
    print(f"# lanewatch scale-out benchmark  {time.strftime('%Y-%m-%d %H:%M')}  cpus={os.cpu_count()}  "
          f"load={os.getloadavg()[0]:.1f}  built {sum(per_half)} spans in {time.perf_counter() - t_build:.0f} s")
    res: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        server = start(tmp / "ch")
        try:
            for r in range(a.rounds):
                order = (1, 2) if r % 2 == 0 else (2, 1)
                for n in order:
                    halves = [render(h, passes, r * 2 + n) for h in tmpl]
                    bodies = sum(len(h) for h in halves)
                    m = measure(server, f"scale_r{r}_n{n}", n, halves, hops * passes, a.conns, tmp)
                    res[n].append(m)
                    print(f"round {r + 1} {n} collector{'s' if n > 1 else ' '}: steady {m['steady'] / 1e3:6.0f}k/s  acked {m['acked'] / 1e3:6.0f}k/s  "
                          f"stored {m['stored'] / 1e3:6.0f}k/s  refused(503) {int(m['refused']):4d}  "
                          f"cpu s per 1M spans: collectors {m['cpu_collectors'] / bodies * 1000:.2f} "
                          f"clickhouse {m['cpu_clickhouse'] / bodies * 1000:.2f} client {m['cpu_client'] / bodies * 1000:.2f}"
                          f"  load={os.getloadavg()[0]:.1f}", flush=True)
            if a.profile:
                out = Path(a.profile)
                out.mkdir(parents=True, exist_ok=True)
                halves = [render(h, passes, 99) for h in tmpl]
                measure(server, "scale_profile", 2, halves, hops * passes, a.conns, tmp,
                        profile=out / "collector0.txt", duration=a.profile_s)
                print(f"profile: {out / 'collector0.txt'} (py-spy raw, one of 2 collectors)")
        finally:
            server.stop()
    if not a.rounds:
        return
    spans = (len(tmpl[0]) + len(tmpl[1])) * passes * 1000
    print(f"{spans} spans per measurement (1000 per request, {a.conns} connections per collector), "
          f"medians of {a.rounds} rounds:")
    for key in ("steady", "stored", "acked"):
        one, two = (statistics.median(m[key] for m in res[n]) for n in (1, 2))
        per_round = [b[key] / o[key] for o, b in zip(res[1], res[2])]
        print(f"  {key:6s}  1 collector {one / 1e3:6.0f}k/s  2 collectors {two / 1e3:6.0f}k/s  ratio {two / one:.2f}x"
              f"  (per round {', '.join(f'{x:.2f}' for x in per_round)})")
    for n in (1, 2):
        c = {k: statistics.median(m[k] / m["wall"] for m in res[n]) for k in ("cpu_collectors", "cpu_clickhouse", "cpu_client")}
        print(f"  cores busy, {n} collector{'s' if n > 1 else ' '}: collectors {c['cpu_collectors']:.2f}  "
              f"clickhouse {c['cpu_clickhouse']:.2f}  client {c['cpu_client']:.2f}  "
              f"total {sum(c.values()):.2f} of {os.cpu_count()}")


def server_spans(bodies: list[bytes]) -> int:
    """SERVER spans in the bodies: one hop each."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    n = 0
    for b in bodies:
        m = ExportTraceServiceRequest()
        m.ParseFromString(b)
        n += sum(s.kind == Span.SPAN_KIND_SERVER for rs in m.resource_spans for ss in rs.scope_spans
                 for s in ss.spans)
    return n


if __name__ == "__main__":
    main()
