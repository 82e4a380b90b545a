"""kill -9 under load: how much of what the collector acknowledged is missing after a restart.

    python bench/bench_kill.py [--spans 1500000] [--kill-after 10] [--conns 4] [--flush 1.0]

Starts ``lanewatch up`` (its own process), replays pre-built OTLP/protobuf bodies of
distinct traces over ``--conns`` keep-alive connections as fast as it takes them, records
when each request was acknowledged (200), sends SIGKILL after ``--kill-after`` seconds,
starts it again on the same data dir and waits until every resumed trace is judged. Prints
the hops acknowledged, the hops stored, the loss expressed as "the acknowledgements of the
last X seconds before the kill", and the traces judged against the traces whose hops were
all stored.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import payloads
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from lanewatch.testing import start_up


def hops_of(body: bytes) -> int:
    m = ExportTraceServiceRequest()
    m.ParseFromString(body)
    return sum(1 for rs in m.resource_spans for ss in rs.scope_spans for s in ss.spans if s.kind in (2, 5))


def sender(port: int, bodies: list[bytes], acks: list[tuple[float, int]], hops: list[int],
           stop: threading.Event, refused: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i, body in enumerate(bodies):
        if stop.is_set():
            return
        try:
            conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
            r = conn.getresponse()
            r.read()
        except OSError:
            return
        if r.status == 200:
            acks.append((time.time(), hops[i]))
        else:  # 503: the store is behind; retry the same body, as an exporter would
            refused.append(r.status)
            time.sleep(0.05)
            bodies.insert(i + 1, body)
            hops.insert(i + 1, hops[i])


def summary(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url + "/api/v1/summary?window=900", timeout=60) as r:
        return dict(json.loads(r.read()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_500_000)
    ap.add_argument("--kill-after", type=float, default=10.0)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--flush", type=float, default=0.5, help="flush_interval_s of the collector")
    a = ap.parse_args()
    bodies = payloads.build(a.spans, 512)
    hops = [hops_of(b) for b in bodies]
    print(f"{len(bodies)} bodies, {sum(hops)} hops built")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cfg = tmp / "c.yaml"
        cfg.write_text(f"trace_wait_s: 5\nflush_interval_s: {a.flush}\nmax_pending_spans: 4000000\n")
        proc, ep = start_up(tmp / "data", "--config", str(cfg))
        acks: list[tuple[float, int]] = []
        stop = threading.Event()
        refused: list[int] = []
        share = [bodies[i::a.conns] for i in range(a.conns)]
        share_hops = [hops[i::a.conns] for i in range(a.conns)]
        threads = [threading.Thread(target=sender, args=(ep["otlp_http_port"], share[i], acks, share_hops[i], stop,
                                                           refused))
                   for i in range(a.conns)]
        started = time.time()
        for t in threads:
            t.start()
        time.sleep(a.kill_after)
        killed = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join()
        acked = sum(h for _, h in acks)
        rate = acked / (killed - started)
        print(f"acknowledged {acked} hops in {killed - started:.1f} s ({rate:.0f} hops/s) before the kill; "
              f"{len(refused)} requests refused (503, retried)")
        t0 = time.time()
        proc, ep = start_up(tmp / "data", "--config", str(cfg))
        print(f"restarted in {time.time() - t0:.1f} s")
        last, s = -1, summary(ep["url"])
        while True:  # until the resumed traces are judged and nothing changes
            time.sleep(3)
            s = summary(ep["url"])
            if s["traces"] == last:
                break
            last = int(s["traces"])  # type: ignore[call-overload]
        stored = sum(s["hops"].values())  # type: ignore[attr-defined]
        missing = acked - stored
        window = 0.0
        if missing > 0:
            total = 0
            for t, h in sorted(acks, reverse=True):
                total += h
                if total >= missing:
                    window = killed - t
                    break
        counters = s["counters"]
        print(f"stored {stored} hops: missing {missing} ({100 * missing / max(acked, 1):.2f}%), "
              f"= {missing / rate:.2f} s at the mean acknowledged rate, all acknowledged in the last "
              f"{window:.2f} s before the kill")
        print(f"traces judged after the restart: {s['traces']}; spans resumed "
              f"{counters.get('spans_resumed', 0)}; restarts_unclean {counters.get('restarts_unclean', 0)}")
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


if __name__ == "__main__":
    main()
