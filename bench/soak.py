"""Soak: ``lanewatch up`` at a steady span rate for minutes, with the dashboard open.

    python bench/soak.py [--minutes 10] [--rate 50000] [--conns 2] [--no-browser] [--config FILE]

Starts ``lanewatch up`` (its own process) and a headless Chromium on its Overview page (the
page refreshes itself, as a user's would), then replays OTLP/protobuf bodies of 512 spans
at ``--rate`` spans/s: bodies built once, and for every round their trace ids and times
rewritten in place (fixed offsets in the bytes), so every span is new and in the present.
Every second it times ``GET /api/v1/summary?window=300`` and reads the collector's RSS.
Prints one line per minute (RSS, API p50/p99, spans sent and acknowledged, refusals) and
a verdict: RSS growth over the last half, drops, API p99 per minute.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import struct
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

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Template:
    """A body and where its trace ids and span times sit in its bytes."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        m = ExportTraceServiceRequest()
        m.ParseFromString(body)
        self.ids: list[int] = []
        self.times: list[int] = []
        self.n = 0
        pos = 0
        for rs in m.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    self.n += 1
                    at = body.index(b"\x0a\x10" + s.trace_id, pos) + 2
                    self.ids.append(at)
                    for tag, v in ((b"\x39", s.start_time_unix_nano), (b"\x41", s.end_time_unix_nano)):
                        self.times.append(body.index(tag + struct.pack("<Q", v), at) + 1)
                    pos = at
        self.t0 = min(struct.unpack_from("<Q", body, t)[0] for t in self.times)

    def render(self, round_no: int, shift_ns: int) -> bytes:
        b = bytearray(self.body)
        for at in self.ids:  # the first 4 bytes of every trace id: the round
            struct.pack_into("<I", b, at, struct.unpack_from("<I", b, at)[0] ^ (round_no * 2654435761 & 0xFFFFFFFF))
        for at in self.times:
            struct.pack_into("<Q", b, at, struct.unpack_from("<Q", b, at)[0] + shift_ns)
        return bytes(b)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=50_000, help="spans per second")
    ap.add_argument("--conns", type=int, default=2)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--config", help="a lanewatch YAML config for the collector")
    a = ap.parse_args()
    templates = [Template(b) for b in payloads.build(a.rate, 512)]  # one second of traffic
    per_round = sum(t.n for t in templates)
    print(f"{len(templates)} bodies, {per_round} spans per round (one round per second)", flush=True)
    with tempfile.TemporaryDirectory() as d:
        proc, ep = start_up(Path(d) / "data", *(["--config", a.config] if a.config else []))
        pid = proc.pid
        stop = threading.Event()
        stats = {"sent": 0, "acked": 0, "refused": 0, "errors": 0}
        lock = threading.Lock()
        queue: list[bytes] = []
        cv = threading.Condition()

        def producer() -> None:
            start = time.time()
            r = 0
            while not stop.is_set():
                due = start + r
                if (wait := due - time.time()) > 0:
                    time.sleep(wait)
                shift = int((time.time() - templates[0].t0 / 1e9) * 1e9)
                bodies = [t.render(r + 1, shift) for t in templates]
                with cv:
                    if len(queue) > 4 * len(templates):  # the collector is behind: count, do not pile up
                        with lock:
                            stats["errors"] += len(bodies)
                    else:
                        queue.extend(bodies)
                    cv.notify_all()
                r += 1

        def sender() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", ep["otlp_http_port"], timeout=30)
            while not stop.is_set():
                with cv:
                    while not queue and not stop.is_set():
                        cv.wait(0.5)
                    if stop.is_set():
                        return
                    body = queue.pop(0)
                n = per_round // len(templates)
                while True:
                    try:
                        conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
                        resp = conn.getresponse()
                        resp.read()
                    except OSError:
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", ep["otlp_http_port"], timeout=30)
                        continue
                    with lock:
                        stats["sent"] += n
                        if resp.status == 200:
                            stats["acked"] += n
                        else:
                            stats["refused"] += 1
                    if resp.status == 200 or stop.is_set():
                        break
                    time.sleep(float(resp.getheader("Retry-After") or 1))

        browser = None
        if not a.no_browser and os.path.exists(CHROMIUM):
            from playwright.sync_api import sync_playwright

            pw = sync_playwright().start()
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(ep["url"] + "/?window=300")
        threads = [threading.Thread(target=producer, daemon=True)]
        threads += [threading.Thread(target=sender, daemon=True) for _ in range(a.conns)]
        for t in threads:
            t.start()
        minute: list[float] = []
        rss: list[float] = []
        per_minute: list[tuple[float, float, float]] = []
        began = time.time()
        end = began + a.minutes * 60
        while time.time() < end:
            t = time.perf_counter()
            try:
                with urllib.request.urlopen(ep["url"] + "/api/v1/summary?window=300", timeout=60) as r:
                    r.read()
                minute.append(time.perf_counter() - t)
            except OSError:
                minute.append(60.0)
            rss.append(rss_mib(pid))
            time.sleep(max(0.0, 1.0 - (time.perf_counter() - t)))
            if len(minute) >= 60:
                q = statistics.quantiles(minute, n=100)
                per_minute.append((rss[-1], statistics.median(minute), q[98]))
                with lock:
                    s = dict(stats)
                print(f"minute {len(per_minute):2d}: RSS {rss[-1]:6.0f} MiB, summary p50 {1000 * per_minute[-1][1]:6.0f} ms "
                      f"p99 {1000 * per_minute[-1][2]:6.0f} ms; spans sent {s['sent']}, acked {s['acked']}, "
                      f"requests refused {s['refused']}, not sent (sender behind) {s['errors']}", flush=True)
                minute = []
        stop.set()
        for t in threads:
            t.join(timeout=40)
        time.sleep(8)  # the last traces are judged
        with urllib.request.urlopen(ep["url"] + "/api/v1/summary?window=900", timeout=60) as r:
            summary = json.loads(r.read())
        counters = summary["counters"]
        drops = {k: v for k, v in counters.items()
                 if k.startswith("requests_refused") or k in ("duplicate_spans", "spans_rejected_invalid",
                                                              "spans_lost_internal_error", "spans_finalised_early")}
        elapsed = time.time() - began
        half = rss[len(rss) // 2:]
        print(f"ran {elapsed / 60:.1f} min at {stats['acked'] / elapsed:.0f} spans/s acknowledged "
              f"(target {a.rate}); collector received {counters.get('spans_received', 0)}")
        print(f"RSS: max {max(rss):.0f} MiB, second half from {half[0]:.0f} to {half[-1]:.0f} MiB "
              f"(median {statistics.median(half):.0f})")
        if per_minute:
            print("summary p99 per minute (ms): " + ", ".join(f"{1000 * p:.0f}" for _, _, p in per_minute))
        print(f"drops and refusals: {drops or 'none'}")
        if browser is not None:
            browser.close()
            pw.stop()
        proc.terminate()
        proc.communicate(timeout=60)


if __name__ == "__main__":
    main()
