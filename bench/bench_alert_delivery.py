"""From a leak arriving over OTLP/HTTP to its alert at a webhook: the delivery latency.

    python bench/bench_alert_delivery.py [--rounds 15]

Runs an in-process ``lanewatch up`` (defaults: flush every 0.5 s, rules every 1 s)
with ``--alert-webhook`` pointing at a loopback receiver. Each round posts a heartbeat
(service ``S<i>``'s gray instance is live) and 30 gray hops served by ``S<i>``-base (30
leaks) in one OTLP/HTTP request, then waits for the LaneLeak of ``S<i>`` at the
receiver. Prints the median, the quartiles and the worst of the rounds. The bound the
issue sets (and ``tests/integration/test_alert_end_to_end.py`` asserts) is 3 s; the
expected median is about flush/2 + evaluation/2 (~0.75 s) plus the delivery itself.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lanewatch import config
from lanewatch.server import Collector
from lanewatch.testing import TraceBuilder, heartbeat_request

arrived: dict[str, float] = {}
_cv = threading.Condition()


class Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        now = time.monotonic()
        with _cv:
            for a in body["alerts"]:
                if a["status"] == "firing":
                    arrived.setdefault(a["labels"].get("service", ""), now)
            _cv.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def post(url: str, body: bytes) -> None:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/x-protobuf"})
    urllib.request.urlopen(req, timeout=10).read()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    with TemporaryDirectory() as tmp:
        settings = config.load(environ={}, flags={
            "otlp_http_port": 0, "otlp_grpc_port": -1, "port": 0, "data_dir": tmp,
            "alert_webhook": [f"http://127.0.0.1:{hook.server_port}/hook"]})
        with Collector(settings, web=False) as c:
            otlp = f"http://127.0.0.1:{c.http.port}"
            took = []
            for i in range(args.rounds):
                svc = f"S{i}"
                post(otlp + "/v1/metrics", heartbeat_request(svc, "gray", time_ns=time.time_ns()))
                tb = TraceBuilder(t0=time.time())
                for _ in range(30):
                    tb.new_trace().hop(svc, "base", "gray")
                post(otlp + "/v1/traces", tb.body())
                sent = time.monotonic()
                with _cv:
                    _cv.wait_for(lambda s=svc: s in arrived, timeout=15)  # type: ignore[misc]
                if svc not in arrived:
                    raise SystemExit(f"round {i}: no alert within 15 s")
                took.append(arrived[svc] - sent)
                time.sleep(random.uniform(0, 1))  # start anywhere in the flush/evaluation cycle
    q = statistics.quantiles(took, n=4)
    print(f"# leak -> webhook delivery, {args.rounds} rounds  {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"median {statistics.median(took):.2f} s  (quartiles {q[0]:.2f} / {q[2]:.2f} s, "
          f"worst {max(took):.2f} s; bound 3 s)")


if __name__ == "__main__":
    main()
