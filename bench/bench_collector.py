"""Collector throughput, side by side with the raw protobuf parse of the same payloads.

    python bench/bench_collector.py [--spans 300000] [--rounds 3] [--default-gc] [--shapes proto:1000,json:1000] [--rules]

For each payload shape it measures, in one run and on one core (the server
side pinned to CPU 0, the replay client to CPU 1):

* ``raw parse``: ``ExportTraceServiceRequest.ParseFromString`` (full OTLP schema);
* ``in-process``: ``Engine.ingest`` for every request, then the flush that
  finalises every trace (decode + verdicts + pairing + rollups);
* ``over HTTP``: the same pipeline behind the OTLP/HTTP receiver, fed by a
  replay client (keep-alive, pre-built bodies) in another process, until the
  last trace is final (most traces are judged in the last flush);
* ``over HTTP, judged as it goes``: the same with traces final 0.25 s after their
  last span and a flush every 0.1 s, so verdicts, edges and lane paths are
  computed during the load, in many small flushes, as in a long run.

Prints medians of ``--rounds`` and the ratios to the raw parse. With ``--rules`` every SERVER
span carries a captured header (``http.request.header.x-user-id``, a string array) and the
collector has routing rules for one of the services (:data:`RULES`: a header list and a
percentage split), so the rules' cost on the span path shows.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import payloads
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from lanewatch import config
from lanewatch.alerts.engine import AlertEngine
from lanewatch.collect.engine import Engine
from lanewatch.collect.pipeline import Pipeline, tune_gc
from lanewatch.collect.receivers.http import OtlpHttpReceiver
from lanewatch.metrics import MetricsSink


class JumpClock:
    """Wall clock that can be pushed forward to finalise every trace at once."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > cpu:  # type: ignore[operator]
        os.sched_setaffinity(0, {cpu})


#: the routing rules of ``--rules``: svc1's hops are judged by them (svc1 is a fifth of the hops)
RULES = [{"service": "svc1", "lane": "gray", "when": {"header": "x-user-id", "in": ["u1", "u2", "u3"]}},
         {"service": "svc1", "lane": "gray", "when": {"percent": 30, "by": {"header": "x-user-id"}}}]
WITH_RULES = False


def make_pipeline(trace_wait_s: float = 2.0) -> tuple[Engine, JumpClock]:
    clock = JumpClock()
    settings = config.load(environ={}, flags={"trace_wait_s": trace_wait_s, "sample_ok_traces": 0.01})
    if WITH_RULES:
        settings = config.with_overrides(settings, routing_rules=config.parse_rules(RULES))
    return Engine(settings, clock=clock), clock


def finish(p: Engine, clock: JumpClock) -> None:
    clock.offset += 3600
    p.flush()


def raw_parse(bodies: list[bytes]) -> float:
    gc.collect()  # every measurement starts from a clean heap (earlier pipelines collected)
    t = time.perf_counter()
    n = 0
    for b in bodies:
        m = ExportTraceServiceRequest()
        m.ParseFromString(b)
        n += sum(len(ss.spans) for rs in m.resource_spans for ss in rs.scope_spans)
    return n / (time.perf_counter() - t)


def in_process(bodies: list[bytes], fmt: str, n_spans: int) -> float:
    gc.collect()
    p, clock = make_pipeline()
    t = time.perf_counter()
    for i, b in enumerate(bodies):
        p.ingest("traces", b, fmt)  # type: ignore[arg-type]
        if i % 50 == 49:
            p.flush()
    finish(p, clock)
    return n_spans / (time.perf_counter() - t)


def _replay(port: int, bodies: list[bytes], content_type: str, conns: int, q: mp.Queue) -> None:
    pin(1)
    import threading

    def worker(part: list[bytes]) -> None:
        c = http.client.HTTPConnection("127.0.0.1", port)
        for b in part:
            c.request("POST", "/v1/traces", b, {"Content-Type": content_type})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit(f"HTTP {r.status}")
        c.close()

    ts = [threading.Thread(target=worker, args=(bodies[i::conns],)) for i in range(conns)]
    t = time.perf_counter()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    q.put(time.perf_counter() - t)


def over_http(bodies: list[bytes], fmt: str, n_spans: int, steady: bool = False,
              alert_sinks: bool = False) -> float:
    """``steady``: traces are final 0.25 s after their last span and flushes run every
    0.1 s, so traces are judged while the load runs, in many small flushes (otherwise most
    are judged in the flush at the end). ``alert_sinks``: the flush also feeds the alert
    engine (evaluating every second on its thread) and the Prometheus totals, as in
    ``lanewatch up``."""
    gc.collect()
    p, clock = make_pipeline(0.25 if steady else 2.0)
    sinks: list[Any] = []
    alerts = None
    if alert_sinks:
        alerts = AlertEngine(p.settings, p.instances, clock=clock)
        sinks = [alerts, MetricsSink(p.settings.metrics.max_series)]
        alerts.start()
    flusher = Pipeline(p, sinks, interval_s=0.1 if steady else 0.5, clock=clock)
    rx = OtlpHttpReceiver(p, port=0, max_body_bytes=64 << 20)
    rx.start()
    flusher.start()
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()
    ctype = "application/x-protobuf" if fmt == "proto" else "application/json"
    t = time.perf_counter()
    proc = ctx.Process(target=_replay, args=(rx.port, bodies, ctype, 2, q))
    proc.start()
    q.get()
    proc.join()
    flusher.stop()  # joins the flush thread (and flushes what is pending)
    finish(p, clock)
    elapsed = time.perf_counter() - t
    rx.stop()
    if alerts is not None:
        alerts.stop()
    return n_spans / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--default-gc", action="store_true",
                    help="keep Python's default garbage collection (lanewatch up tunes it: tune_gc)")
    ap.add_argument("--shapes", default="proto:1000,proto:512,json:1000")
    ap.add_argument("--trace-state", default="",
                    help="every span carries this tracestate (e.g. ot=th:c: sampled, each span weighs 4)")
    ap.add_argument("--alert-sinks", action="store_true",
                    help="also measure 'judged as it goes' with the alert engine and metrics sinks")
    ap.add_argument("--rules", action="store_true",
                    help="spans carry a captured header and svc1 has routing rules (RULES)")
    args = ap.parse_args()
    global WITH_RULES
    WITH_RULES = args.rules
    pin(0)
    gc_mode = "python default" if args.default_gc else "tuned as lanewatch up (tune_gc)"
    print(f"# lanewatch collector benchmark  {time.strftime('%Y-%m-%d %H:%M')}  cpus={os.cpu_count()}  "
          f"gc: {gc_mode}" + (f"  tracestate: {args.trace_state}" if args.trace_state else "")
          + ("  rules: svc1 (header list, 30% split)" if args.rules else ""))
    shapes = [(f, int(n)) for f, n in (s.split(":") for s in args.shapes.split(","))]
    for fmt, per in shapes:
        target = args.spans if fmt == "proto" else args.spans // 3
        bodies_pb = payloads.build(target, per, "proto", t0_ns=0, trace_state=args.trace_state,
                                   user_header=args.rules)
        bodies = bodies_pb if fmt == "proto" else payloads.build(target, per, "json", t0_ns=0,
                                                                 trace_state=args.trace_state,
                                                                 user_header=args.rules)
        n_spans = payloads.count_spans(bodies_pb)
        if not args.default_gc:
            tune_gc()  # after building the payloads, as lanewatch up does after start-up
        raws, inp, http_, steady, fed = [], [], [], [], []
        for _ in range(args.rounds):
            raws.append(raw_parse(bodies_pb))
            inp.append(in_process(bodies, fmt, n_spans))
            http_.append(over_http(bodies, fmt, n_spans))
            steady.append(over_http(bodies, fmt, n_spans, steady=True))
            if args.alert_sinks:
                fed.append(over_http(bodies, fmt, n_spans, steady=True, alert_sinks=True))
        r, i, h, st = (statistics.median(x) for x in (raws, inp, http_, steady))
        print(f"{fmt:5} {per:5} spans/request  raw parse {r/1e3:8.0f}k/s  in-process {i/1e3:6.0f}k/s "
              f"({i/r:.3f}x raw)  over HTTP {h/1e3:6.0f}k/s ({h/r:.3f}x raw)  "
              f"over HTTP, judged as it goes {st/1e3:6.0f}k/s ({st/r:.3f}x raw)   "
              f"[{n_spans} spans in {len(bodies)} requests, x{args.rounds}]")
        if fed:
            f = statistics.median(fed)
            print(f"      judged as it goes + alert engine and /metrics sinks {f/1e3:6.0f}k/s "
                  f"({f/st:.3f}x without them)")


if __name__ == "__main__":
    main()
