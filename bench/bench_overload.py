"""API latency while ingest runs flat out, with and without the API's own bounded pool.

    python bench/bench_overload.py [--seconds 15] [--senders 3] [--spans 200000]

Starts ``lanewatch up`` (as a process, ``--serve``) twice: once as shipped (the API and
dashboard behind the bounded pool of ``lanewatch.web.pool``: ``api_workers`` 4,
``api_backlog`` 64, ``api_wait_s`` 5) and once with werkzeug's plain threaded server (a
thread and a query per connection, as before issue 11). Both have the bounded decodes
(``max_concurrent_decodes`` one per core, ``admission_wait_s`` 2). Against each:

* ``--senders`` processes post pre-built OTLP/protobuf bodies (1000 spans/request, fresh
  ids per sender; they replay their bodies, later passes are duplicates) as fast as they
  are answered, 2 connections each;
* a probe asks ``GET /api/v1/summary?window=60`` every 50 ms, one at a time, and records
  its latency (a 503 counts as an answer, and is counted);
* in the "storm" phase, 16 threads also ask ``/api/v1/summary?window=3600`` back to back and
  500 half-open connections (a request sent, then closed) arrive every 2 s.

With ``--json-flood TREE [TREE...]`` it instead repeats finding 5 of issue 11 against
``lanewatch up`` from each source tree (e.g. the commit before and this one): 32 threads post
one ~13 MB OTLP/JSON body back to back for ``--seconds``; it prints the answers (200, 503),
their p50 and slowest time, one ``/api/v1/summary`` asked halfway and the peak RSS.

Prints per server and phase: spans/s accepted, ingest 503s, the slowest ingest answer, the
probe's p50 / p99 / max and its answers other than 200, and how long the server took to stop
after SIGTERM (killed after 60 s).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import socket
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


def serve(mode: str, data_dir: str, ready: str) -> None:
    """``lanewatch up`` in this process; ``mode`` "nopool" swaps in werkzeug's plain server."""
    from lanewatch import server

    if mode == "nopool":
        def plain_web(self: server.Collector) -> Any:
            import flask
            from werkzeug.serving import make_server

            from lanewatch.api import register_api
            from lanewatch.dashboard.app import create_dash
            from lanewatch.metrics import register_metrics
            from lanewatch.web.security import quiet_handler

            app = flask.Flask("lanewatch")
            register_api(app, self.query)
            register_metrics(app, self.metrics)
            create_dash(app, self.query, self.settings)
            return make_server(self.settings.host, self.settings.port, app, threaded=True,
                               request_handler=quiet_handler())

        server.Collector._build_web = plain_web  # type: ignore[method-assign]
    from lanewatch import cli

    sys.argv = ["lanewatch", "up", "--otlp-http-port", "0", "--otlp-grpc-port", "-1", "--port", "0",
                "--data-dir", data_dir, "--ready-file", ready, "--log-level", "WARNING"]
    sys.exit(cli.main())


def _get(port: int, path: str, timeout: float = 60.0) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def run(mode: str, seconds: float, senders: int, spans: int, storm: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp())
    ready = tmp / "ready.json"
    proc = subprocess.Popen([sys.executable, __file__, "--serve", mode, str(tmp / "data"), str(ready)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while not ready.exists() or not ready.read_text():
        if proc.poll() is not None:
            raise RuntimeError(proc.communicate()[0])
        time.sleep(0.05)
    ep = json.loads(ready.read_text())
    otlp, api = int(ep["otlp_http_port"]), int(ep["port"])
    ctx = mp.get_context("spawn")
    q, go = ctx.Queue(), ctx.Queue()
    procs = []
    for _ in range(senders):
        p = ctx.Process(target=_sender, args=(otlp, spans, q, go))
        p.start()
        procs.append(p)
    for _ in range(senders):  # the senders build their bodies first, then start together
        assert q.get(timeout=600) == "built"
    start = time.time() + 1.0
    stop_at = start + seconds
    for _ in range(senders):
        go.put(stop_at)
    time.sleep(max(0.0, start - time.time()) + 1.0)  # ingest under way
    probe: list[float] = []
    probe_503 = 0
    halt = threading.Event()
    storm_threads: list[threading.Thread] = []
    if storm:
        def hammer() -> None:
            while not halt.is_set():
                try:
                    _get(api, "/api/v1/summary?window=3600")
                except OSError:
                    pass

        def half_open() -> None:
            while not halt.is_set():
                for _ in range(500):
                    try:
                        s = socket.create_connection(("127.0.0.1", api), timeout=5)
                        s.sendall(b"GET /api/v1/summary?window=3600 HTTP/1.1\r\nHost: x\r\n\r\n")
                        s.close()
                    except OSError:
                        pass
                halt.wait(2.0)

        storm_threads = [threading.Thread(target=hammer, daemon=True) for _ in range(16)]
        storm_threads.append(threading.Thread(target=half_open, daemon=True))
        for t in storm_threads:
            t.start()
    while time.time() < stop_at - 0.5:
        t0 = time.monotonic()
        try:
            status = _get(api, "/api/v1/summary?window=60")
        except OSError:
            status = 0
        probe.append(time.monotonic() - t0)
        probe_503 += status != 200
        time.sleep(0.05)
    halt.set()
    results = [q.get(timeout=120) for _ in range(senders)]
    for p in procs:
        p.join(30)
    for t in storm_threads:
        t.join(10)
    t0 = time.monotonic()
    proc.terminate()
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=60)
    stop_s = time.monotonic() - t0
    probe.sort()
    return {"spans_per_s": sum(r[0] for r in results) / seconds, "ingest_503": sum(r[1] for r in results),
            "ingest_slowest_s": max(r[2] for r in results), "probe_n": len(probe),
            "p50": statistics.median(probe), "p99": probe[min(len(probe) - 1, int(0.99 * len(probe)))],
            "max": probe[-1], "probe_not_200": probe_503, "stop_s": stop_s}


def _sender(port: int, spans: int, q: Any, go: Any) -> None:
    import payloads

    bodies = payloads.build(spans, 1000)
    q.put("built")
    stop_at = float(go.get(timeout=600))
    ok = refused = 0
    slowest = 0.0
    lock = threading.Lock()

    def conn_loop(part: list[bytes]) -> None:
        nonlocal ok, refused, slowest
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = 0
        while time.time() < stop_at:
            b = part[i % len(part)]
            i += 1
            t0 = time.monotonic()
            c.request("POST", "/v1/traces", b, {"Content-Type": "application/x-protobuf"})
            r = c.getresponse()
            r.read()
            dt = time.monotonic() - t0
            with lock:
                slowest = max(slowest, dt)
                if r.status == 200:
                    ok += 1000
                else:
                    refused += 1
        c.close()

    ts = [threading.Thread(target=conn_loop, args=(bodies[k::2],)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put((ok, refused, slowest))


def json_flood(tree: str, seconds: float, senders: int) -> dict[str, Any]:
    """Finding 5 of issue 11: ``senders`` threads post one ~13 MB OTLP/JSON body back to back
    to ``lanewatch up`` run from source tree ``tree`` (defaults: no ``--config``)."""
    import payloads

    body = max(payloads.build(100_000, 30_000, "json"), key=len)
    tmp = Path(tempfile.mkdtemp())
    ready = tmp / "ready.json"
    env = {**os.environ, "PYTHONPATH": tree}
    proc = subprocess.Popen([sys.executable, "-m", "lanewatch.cli", "up", "--otlp-http-port", "0",
                             "--otlp-grpc-port", "-1", "--port", "0", "--data-dir", str(tmp / "data"),
                             "--ready-file", str(ready), "--log-level", "WARNING"],
                            cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while not ready.exists() or not ready.read_text():
        if proc.poll() is not None:
            raise RuntimeError(proc.communicate()[0])
        time.sleep(0.05)
    ep = json.loads(ready.read_text())
    otlp, api = int(ep["otlp_http_port"]), int(ep["port"])
    answers: list[tuple[int, float]] = []
    lock = threading.Lock()
    stop_at = time.time() + seconds

    def send() -> None:
        while time.time() < stop_at:
            t0 = time.monotonic()
            c = http.client.HTTPConnection("127.0.0.1", otlp, timeout=120)
            try:
                c.request("POST", "/v1/traces", body, {"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                status = r.status
            except OSError:
                status = 0
            finally:
                c.close()
            with lock:
                answers.append((status, time.monotonic() - t0))

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for t in threads:
        t.start()
    time.sleep(seconds / 2)
    t0 = time.monotonic()
    api_status = _get(api, "/api/v1/summary?window=60", timeout=120)
    summary_s = time.monotonic() - t0
    rss_kib = 0
    with open(f"/proc/{proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss_kib = int(line.split()[1])
    for t in threads:
        t.join(300)
    proc.terminate()
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=60)
    times = sorted(a[1] for a in answers)
    return {"body_mb": len(body) / 1e6, "answers": len(answers), "ok": sum(a[0] == 200 for a in answers),
            "503": sum(a[0] == 503 for a in answers), "p50": statistics.median(times), "max": times[-1],
            "summary_s": summary_s, "summary_status": api_status, "peak_rss_mib": rss_kib // 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--senders", type=int, default=3)
    ap.add_argument("--spans", type=int, default=200_000, help="spans built per sender")
    ap.add_argument("--json-flood", nargs="+", metavar="TREE",
                    help="instead: finding 5 (32 senders of a ~13 MB OTLP/JSON body) against each source tree")
    ap.add_argument("--serve", nargs=3, metavar=("MODE", "DATA_DIR", "READY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    if args.json_flood:
        print(f"# finding 5: 32 senders of one OTLP/JSON body  {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}  "
              f"cpus={os.cpu_count()}  load={os.getloadavg()[0]:.1f}  {args.seconds:g} s")
        for tree in args.json_flood:
            r = json_flood(tree, args.seconds, 32)
            print(f"{tree:20}  body {r['body_mb']:.1f} MB  answers {r['answers']:4d} (200: {r['ok']}, 503: "
                  f"{r['503']})  answer p50 {r['p50']:5.1f} s  max {r['max']:5.1f} s  |  /api/v1/summary "
                  f"{r['summary_status']} in {r['summary_s']:5.2f} s  |  peak RSS {r['peak_rss_mib']} MiB", flush=True)
        return
    print(f"# lanewatch overload benchmark  {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}  "
          f"cpus={os.cpu_count()}  load={os.getloadavg()[0]:.1f}  senders={args.senders}x2 conns  "
          f"{args.seconds:g} s per phase")
    for storm in (False, True):
        for mode in ("pool", "nopool"):
            r = run(mode, args.seconds, args.senders, args.spans, storm)
            name = {"pool": "bounded pool", "nopool": "plain threaded"}[mode]
            phase = "ingest + API storm" if storm else "ingest only      "
            print(f"{phase}  {name:15}  ingest {r['spans_per_s'] / 1000:6.0f}k spans/s  "
                  f"503s {r['ingest_503']:5d}  slowest {r['ingest_slowest_s']:5.2f} s  |  probe n={r['probe_n']:4d}  "
                  f"p50 {r['p50'] * 1000:7.1f} ms  p99 {r['p99'] * 1000:7.1f} ms  max {r['max'] * 1000:7.1f} ms  "
                  f"not-200 {r['probe_not_200']}  |  stop {r['stop_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
