"""How long from a span accepted (HTTP 200) to visible in /api/v1/summary and /api/v1/series.

    python bench/bench_visibility.py [--samples 20]

Starts ``lanewatch up`` in-process on free ports with default settings, posts
one SERVER span of a fresh service per sample over OTLP/HTTP, then polls both
endpoints every 20 ms until the span shows. Prints the median and maximum.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lanewatch import config
from lanewatch.server import Collector
from lanewatch.testing import TraceBuilder


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = config.load(environ={}, flags={"otlp_http_port": 0, "otlp_grpc_port": -1, "port": 0,
                                                  "data_dir": tmp})
        with Collector(settings) as c:
            ep = c.endpoints()
            summary_s, series_s = [], []
            for i in range(args.samples):
                svc = f"probe{i}"
                tb = TraceBuilder(t0=time.time())
                tb.hop(svc, "gray", "gray")
                req = urllib.request.Request(ep["otlp_http"] + "/v1/traces", tb.body(),
                                             {"Content-Type": "application/x-protobuf"})
                urllib.request.urlopen(req, timeout=5).read()
                t0 = time.perf_counter()
                seen_summary = seen_series = None
                while seen_summary is None or seen_series is None:
                    if seen_summary is None:
                        s = get(f"{ep['url']}/api/v1/summary?window=60&service={svc}")
                        if s["lanes"].get("gray", {}).get("requests", 0) >= 1:
                            seen_summary = time.perf_counter() - t0
                    if seen_series is None:
                        s = get(f"{ep['url']}/api/v1/series?window=60&service={svc}")
                        if any(q > 0 for q in s["lanes"].get("gray", {}).get("qps", [])):
                            seen_series = time.perf_counter() - t0
                    time.sleep(0.02)
                summary_s.append(seen_summary)
                series_s.append(seen_series)
    print(f"# accepted -> visible  {time.strftime('%Y-%m-%d %H:%M')}  flush_interval_s="
          f"{settings.flush_interval_s}  samples={args.samples}")
    for name, xs in (("/api/v1/summary", summary_s), ("/api/v1/series", series_s)):
        print(f"{name:18} median {statistics.median(xs) * 1000:6.0f} ms   max {max(xs) * 1000:6.0f} ms")


if __name__ == "__main__":
    main()
