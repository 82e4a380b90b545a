"""Nothing acknowledged is lost across a collector restart (issue 11, findings 1 and 2).

A real ``lanewatch up`` process is stopped with SIGTERM or killed with SIGKILL while traces
are open (inside ``trace_wait_s``), then started again on the same OTLP port and data dir:
the verdicts of those traces must be in the store afterwards. Spans come as raw OTLP
requests (so that every acknowledgement is known) and from the real Python SDK through its
OTLP/HTTP exporter, which retries what the stopped collector did not take.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from lanewatch import lane as L
from lanewatch.store.clickhouse_local import LocalServer
from lanewatch.testing import TraceBuilder, start_up, wait_until
from tests.clickhouse_support import fresh_database

FLUSH_S = 0.5
CONFIG = f"trace_wait_s: 4\nflush_interval_s: {FLUSH_S}\nliveness_ttl_s: 60\n"


def _up(tmp: Path, *args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    cfg = tmp / "lanewatch.yaml"
    cfg.write_text(CONFIG)
    return start_up(tmp / "data", "--config", str(cfg), *args)


def _get(ep: dict[str, Any], path: str) -> Any:
    with urllib.request.urlopen(ep["url"] + path, timeout=20) as r:
        return json.loads(r.read())


def _post(ep: dict[str, Any], body: bytes) -> None:
    req = urllib.request.Request(ep["otlp_http"] + "/v1/traces", body,
                                 {"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(req, timeout=20) as r:
        assert r.status == 200


def _stop(proc: subprocess.Popen[str], sig: int) -> str:
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert proc.returncode == 0, out
    return out


def _tag_lost_trace(t0: float) -> bytes:
    """A[gray] calls B without the lane: B's base instance serves it, the edge lost the tag."""
    tb = TraceBuilder(t0=t0)
    a = tb.hop("A", "gray", "gray")
    tb.hop("B", "", "", caller=tb.call(a, lane=""))
    return tb.body()


@pytest.fixture(params=["duckdb", "clickhouse"])
def store_args(request: pytest.FixtureRequest) -> list[str]:
    """``lanewatch up`` on its DuckDB file (the default), or on a fresh ClickHouse database of
    the real server (whose journal is its own code: rows per chunk, per collector epoch)."""
    if request.param == "duckdb":
        return []
    server: LocalServer = request.getfixturevalue("clickhouse_server")
    return ["--store", server.url(fresh_database("durable"))]


def test_sigterm_loses_no_open_trace_and_check_still_fails(tmp_path: Path, store_args: list[str]) -> None:
    """The finding: 100 traces with a tag_lost edge, accepted, SIGTERM 1.5 s later. Before,
    hops survived but edges, traces and violations did not, and the gate passed."""
    proc, ep = _up(tmp_path, *store_args)
    now = time.time()
    for i in range(100):
        _post(ep, _tag_lost_trace(now + i * 0.001))
    time.sleep(1.5)  # inside trace_wait_s: every trace is still open
    _stop(proc, signal.SIGTERM)
    proc, ep = _up(tmp_path, "--otlp-http-port", str(ep["otlp_http_port"]), *store_args)
    try:
        def judged() -> dict[str, Any] | None:
            s: dict[str, Any] = _get(ep, "/api/v1/summary?window=600")
            return s if s["traces"] >= 100 else None

        s = wait_until(judged, 30, "the resumed traces are judged")
        assert s["traces"] == 100 and s["traces_violated"] == 100
        assert s["edges"]["tag_lost"] == 100 and s["edges"]["calls"] == 100
        assert s["hops"] == {"in_lane": 200, "fallback": 0, "leak": 0, "intrusion": 0, "uncertain": 0}
        assert s["counters"]["spans_resumed"] == 300
        assert "restarts_unclean" not in s["counters"]
        violations = _get(ep, "/api/v1/violations?window=600&limit=500")
        assert len(violations) == 100 and {v["kind"] for v in violations} == {"tag_lost"}
        check = subprocess.run([sys.executable, "-m", "lanewatch.cli", "check", "--url", ep["url"],
                                "--window", "600", "--lane", "gray"], capture_output=True, text=True,
                               timeout=60, check=False)
        assert check.returncode == 1, check.stdout + check.stderr
        assert "100 tag_lost" in check.stdout, check.stdout
    finally:
        _stop(proc, signal.SIGTERM)


class SdkTraffic:
    """A[gray] -> B through the real SDK (BatchSpanProcessor, OTLP/HTTP exporter) at a steady
    rate; every 10th trace loses its lane on the way to B (B's base instance serves it)."""

    def __init__(self, endpoint: str, rate: float) -> None:
        def tp(service: str, lane: str) -> TracerProvider:
            attrs = {"service.name": service, L.INSTANCE_ID_ATTR: f"{service}-{lane}-durable"}
            if lane != "base":
                attrs[L.INSTANCE_LANE_ATTR] = lane
            p = TracerProvider(resource=Resource.create(attrs))
            p.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=40),
                                                    schedule_delay_millis=100, max_queue_size=100_000))
            return p

        self.a, self.b_gray, self.b_base = tp("A", "gray"), tp("B", "gray"), tp("B", "base")
        self.rate, self.sent, self.lost = rate, 0, 0
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _trace(self, lose: bool) -> None:
        sent = {} if lose else {L.REQUEST_LANE_ATTR: "gray"}
        tracer = self.a.get_tracer("t")
        callee = (self.b_base if lose else self.b_gray).get_tracer("t")
        with tracer.start_as_current_span("serve", kind=trace.SpanKind.SERVER,
                                          attributes={L.REQUEST_LANE_ATTR: "gray"}), \
                tracer.start_as_current_span("call", kind=trace.SpanKind.CLIENT, attributes=sent), \
                callee.start_as_current_span("serve", context=context.get_current(),
                                             kind=trace.SpanKind.SERVER, attributes=sent):
            pass

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            due = start + self.sent / self.rate
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            lose = self.sent % 10 == 9
            self._trace(lose)
            self.times.append(time.time())
            self.sent += 1
            self.lost += lose

    def start(self) -> None:
        self._thread.start()

    def finish(self) -> None:
        self._stop.set()
        self._thread.join()
        for p in (self.a, self.b_gray, self.b_base):
            p.force_flush(60_000)
            p.shutdown()


def _sdk_restart(tmp: Path, sig: int, *store_args: str
                 ) -> tuple[SdkTraffic, dict[str, Any], float, subprocess.Popen[str]]:
    proc, ep = _up(tmp, *store_args)
    traffic = SdkTraffic(ep["otlp_http"] + "/v1/traces", rate=150.0)
    traffic.start()
    time.sleep(3.0)
    killed_at = time.time()
    _stop(proc, sig)
    proc, ep = _up(tmp, "--otlp-http-port", str(ep["otlp_http_port"]), *store_args)
    time.sleep(2.0)
    traffic.finish()
    return traffic, ep, killed_at, proc


def _settled(ep: dict[str, Any], traces: int) -> dict[str, Any]:
    """The summary once its trace count stops changing (and reaches ``traces``, when given)."""
    seen: list[int] = []

    def done() -> dict[str, Any] | None:
        s: dict[str, Any] = _get(ep, "/api/v1/summary?window=600")
        seen.append(s["traces"])
        steady = len(seen) > 24 and seen[-1] == seen[-25]  # 6 s without change: all judged
        return s if s["traces"] >= traces or steady else None

    return dict(wait_until(done, 90, "the traces are judged", every_s=0.25))


def test_sdk_exporters_through_a_sigterm_restart_lose_nothing(tmp_path: Path, store_args: list[str]) -> None:
    traffic, ep, _, proc = _sdk_restart(tmp_path, signal.SIGTERM, *store_args)
    try:
        n, lost = traffic.sent, traffic.lost
        s = _settled(ep, n)
        assert n > 500 and lost > 50
        assert s["traces"] == n and s["traces_violated"] == lost
        assert s["hops"] == {"in_lane": 2 * n, "fallback": 0, "leak": 0, "intrusion": 0, "uncertain": 0}
        assert s["edges"]["calls"] == n and s["edges"]["tag_lost"] == lost
        assert s["violations"] == lost
        assert s["counters"]["spans_resumed"] > 0  # the stop did come while traces were open
    finally:
        _stop(proc, signal.SIGTERM)


def test_sdk_exporters_through_a_sigkill_lose_at_most_the_last_flush(tmp_path: Path) -> None:
    """kill -9 loses the spans acknowledged since the last committed flush (at most one flush
    interval and the flush's own time); every trace that was open at the last flush is still
    judged after the restart."""
    traffic, ep, killed_at, proc = _sdk_restart(tmp_path, signal.SIGKILL)
    try:
        n, lost = traffic.sent, traffic.lost
        s = _settled(ep, n)
        # traces begun in the window before the kill may have lost spans (the exporter sends
        # within its 100 ms schedule; the window is one flush interval and one flush's time)
        window = FLUSH_S + 0.5 + 0.1
        at_risk = sum(1 for t in traffic.times if killed_at - window <= t <= killed_at)
        assert at_risk < n / 5
        assert s["counters"]["restarts_unclean"] == 1
        hops = sum(s["hops"].values())
        assert 2 * (n - at_risk) <= hops <= 2 * n
        assert n - at_risk <= s["traces"] <= n
        assert lost - at_risk // 10 - 1 <= s["edges"]["tag_lost"] <= lost
        assert s["hops"]["leak"] == s["hops"]["intrusion"] == 0
        assert s["counters"]["spans_resumed"] > 0
    finally:
        _stop(proc, signal.SIGTERM)
