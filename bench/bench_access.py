"""What the token and TLS cost the OTLP/HTTP receiver, as ratios to the plain receiver.

    python bench/bench_access.py [--requests 20000] [--rounds 3] [--spans 1]

The receiver (``OtlpHttpReceiver``) in front of a sink that only counts, so that the
receiver's own per-request cost shows; a client process sends ``--requests`` export
requests of ``--spans`` spans each over one keep-alive connection (the connection set up
once, as SDK exporters do). Three setups: plain, ``--auth-token``, ``--auth-token`` with
TLS (a self-signed P-256 certificate made here). Prints requests/s (medians of
``--rounds``) and each setup's ratio to plain.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from lanewatch.access import server_ssl_context
from lanewatch.collect.ingest import IngestResult
from lanewatch.collect.receivers.http import OtlpHttpReceiver
from lanewatch.testing import TraceBuilder

TOKEN = "bench-token-0123456789abcdef"


class CountingSink:
    def __init__(self) -> None:
        self.n = 0

    def ingest(self, signal: Any, body: bytes, fmt: Any) -> IngestResult:
        self.n += 1
        return IngestResult(accepted=1)

    def count_drop(self, reason: str, n: int = 1) -> None:
        pass


def client(port: int, body: bytes, n: int, token: str, cafile: str, out: Any) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cafile:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, context=ssl.create_default_context(cafile=cafile))
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.connect()
    t0 = time.perf_counter()
    for _ in range(n):
        conn.request("POST", "/v1/traces", body, headers)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit(f"HTTP {r.status}")
    out.put(n / (time.perf_counter() - t0))
    conn.close()


def run(body: bytes, n: int, token: str, tls: ssl.SSLContext | None, cafile: str) -> float:
    sink = CountingSink()
    rx = OtlpHttpReceiver(sink, "127.0.0.1", 0, token=token, tls=tls)  # type: ignore[arg-type]
    rx.start()
    try:
        q: Any = mp.get_context("spawn").Queue()
        p = mp.get_context("spawn").Process(target=client, args=(rx.port, body, n, token, cafile, q))
        p.start()
        rate = float(q.get(timeout=600))
        p.join()
        assert sink.n == n
        return rate
    finally:
        rx.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--spans", type=int, default=1)
    a = ap.parse_args()
    tb = TraceBuilder(t0=time.time())
    for _ in range(a.spans):
        tb.hop("A", lane="gray", request_lane="gray")
    body = tb.body()
    from access_support import self_signed

    with tempfile.TemporaryDirectory() as d:
        cert, key = self_signed(Path(d))
        ctx = server_ssl_context(str(cert), str(key))
        setups = {"plain": ("", None, ""), "token": (TOKEN, None, ""), "token + TLS": (TOKEN, ctx, str(cert))}
        rates: dict[str, list[float]] = {k: [] for k in setups}
        for _ in range(a.rounds):  # alternating, so that a busy moment hits all setups alike
            for name, (token, tls, cafile) in setups.items():
                rates[name].append(run(body, a.requests, token, tls, cafile))
    print(f"# OTLP/HTTP receiver, {a.requests} requests of {a.spans} span(s) ({len(body)} bytes), "
          f"medians of {a.rounds}, {time.strftime('%Y-%m-%d %H:%M')}")
    plain = statistics.median(rates["plain"])
    for name, rs in rates.items():
        m = statistics.median(rs)
        print(f"{name:12} {m:9.0f} requests/s  x{m / plain:.3f} of plain   (rounds: "
              + ", ".join(f"{r:.0f}" for r in rs) + ")")


if __name__ == "__main__":
    main()
