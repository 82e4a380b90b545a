"""Overload sheds in the OTLP specification's terms (issue 11, item 5): a request that
cannot start decoding soon is refused retryably (HTTP 503 + Retry-After, gRPC UNAVAILABLE
+ RetryInfo) within seconds, real SDK exporters retry and lose nothing, the memory ceiling
refuses retryably, and API requests have their own bounded pool.

All against ``lanewatch up`` as a process with tiny limits; raw senders flood it."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import grpc
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from lanewatch.testing import start_up, wait_until

#: What "answered within seconds" means here: well inside an SDK exporter's 10 s timeout.
ANSWER_BOUND_S = 9.0


def flood_body(n: int) -> bytes:
    """One export request of ``n`` INTERNAL spans (no hops: they never count in the summary's
    hops), costly to decode; sent again and again it only adds duplicates."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="flood"))
    spans = rs.scope_spans.add().spans
    now = time.time_ns()
    for i in range(n):
        spans.append(Span(trace_id=os.urandom(16), span_id=os.urandom(8), name="work", kind=Span.SPAN_KIND_INTERNAL,
                          start_time_unix_nano=now, end_time_unix_nano=now + 1000,
                          attributes=[KeyValue(key=f"k{j}", value=AnyValue(string_value=f"v{i}-{j}"))
                                      for j in range(5)]))
    return bytes(req.SerializeToString())


def post(url: str, body: bytes, timeout: float = 30.0) -> tuple[int, dict[str, str], bytes, float]:
    t0 = time.monotonic()
    host, port = url.split("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data, time.monotonic() - t0
    finally:
        conn.close()


class Flood:
    """``threads`` raw senders posting ``body`` back to back until stopped."""

    def __init__(self, url: str, body: bytes, threads: int) -> None:
        self.url, self.body = url, body
        self.answers: list[tuple[int, dict[str, str], bytes, float]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self._lock = threading.Lock()

    def _run(self) -> None:
        while not self._stop.is_set():
            a = post(self.url, self.body)
            with self._lock:
                self.answers.append(a)

    def __enter__(self) -> Self:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def get(ep: dict[str, Any], path: str) -> Any:
    with urllib.request.urlopen(ep["url"] + path, timeout=30) as r:
        return json.loads(r.read())


def metric(ep: dict[str, Any], name: str, labels: str) -> float:
    with urllib.request.urlopen(ep["url"] + "/metrics", timeout=30) as r:
        text = r.read().decode()
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def wait_for(pred: Any, timeout: float = 30.0) -> Any:
    return wait_until(pred, timeout)


def stop(proc: Any) -> None:
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out


@pytest.fixture
def tight(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """One decode at a time, an admission wait shorter than one flood request's decode."""
    cfg = tmp_path / "lanewatch.yaml"
    cfg.write_text("max_concurrent_decodes: 1\nadmission_wait_s: 0.1\ntrace_wait_s: 1.0\n"
                   "flush_interval_s: 0.2\n")
    try:
        proc, ep = start_up(tmp_path / "data", "--otlp-grpc-port", "0", "--config", str(cfg))
    except RuntimeError as e:
        pytest.fail(str(e))
    yield ep
    stop(proc)


def test_a_flood_is_answered_503_with_retry_after_within_seconds_and_counted(tight: dict[str, Any]) -> None:
    ep = tight
    with Flood(ep["otlp_http"], flood_body(20_000), threads=12) as flood:
        wait_for(lambda: sum(a[0] == 503 for a in flood.answers) >= 20, timeout=120)
    answers = flood.answers
    refused = [a for a in answers if a[0] == 503]
    assert {a[0] for a in answers} <= {200, 503}, sorted({a[0] for a in answers})
    reasons: Counter[str] = Counter()
    for status, headers, body, _ in refused:
        assert headers.get("retry-after") == "1", headers
        s = Status.FromString(body)
        # busy decoders, mostly; on a loaded machine the store may fall behind the flood too
        # (max_unflushed_s): both are retryable UNAVAILABLE answers that name their setting
        assert s.code == 14 and ("admission_wait_s" in s.message or "max_unflushed_s" in s.message), s
        reasons["busy" if "admission_wait_s" in s.message else "store_behind"] += 1
    assert reasons["busy"] >= 10, reasons
    slowest = max(a[3] for a in answers)
    assert slowest < ANSWER_BOUND_S, f"an answer took {slowest:.1f} s"
    # every refusal is counted by its reason, on /metrics and in the summary's counters
    for reason, n in reasons.items():
        wait_for(lambda r=reason, n=n: metric(ep, "lanewatch_requests_refused_total", f'reason="{r}"') == n)
        # (the summary may lag a flush behind /metrics: a batch between the engine and the store)
        wait_for(lambda r=reason, n=n: get(ep, "/api/v1/summary?window=300")["counters"]
                 .get(f"requests_refused_{r}") == n)


class _Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def sdk_spans(service: str, n: int) -> list[ReadableSpan]:
    keep = _Keep()
    tp = TracerProvider(resource=Resource.create({"service.name": service,
                                                  "service.instance.id": f"{service}-1"}))
    tp.add_span_processor(SimpleSpanProcessor(keep))
    tracer = tp.get_tracer("overload")
    for _ in range(n):
        with tracer.start_as_current_span("serve", kind=trace.SpanKind.SERVER):
            pass
    return keep.spans


def test_sdk_exporters_retry_and_lose_nothing(tight: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    ep = tight
    exporters = {"http": HttpSpanExporter(endpoint=ep["otlp_http"] + "/v1/traces"),
                 "grpc": GrpcSpanExporter(endpoint=ep["otlp_grpc"], insecure=True)}
    batches = {name: [sdk_spans(f"sdk-{name}", 50) for _ in range(6)] for name in exporters}
    results: dict[str, list[SpanExportResult]] = {name: [] for name in exporters}

    def send(name: str) -> None:
        for batch in batches[name]:
            results[name].append(exporters[name].export(batch))

    caplog.set_level("WARNING", logger="opentelemetry.exporter")
    with Flood(ep["otlp_http"], flood_body(40_000), threads=10) as flood:
        wait_for(lambda: any(a[0] == 503 for a in flood.answers), timeout=120)  # overloaded now
        senders = [threading.Thread(target=send, args=(name,)) for name in exporters]
        for t in senders:
            t.start()
        time.sleep(3.0)  # the flood goes on while the exporters send, then ends
    for t in senders:
        t.join(120)
    sent = sum(len(b) for bs in batches.values() for b in bs)
    assert all(r == SpanExportResult.SUCCESS for rs in results.values() for r in rs), results
    retried = [r for r in caplog.records if "retrying" in r.getMessage().lower()]
    assert retried, "the SDK exporters were never refused: the test did not overload the collector"

    def hops() -> int:
        s = get(ep, "/api/v1/summary?window=300")
        return int(sum(s["hops"].values()))

    wait_for(lambda: hops() == sent, timeout=60)
    time.sleep(1.0)
    assert hops() == sent  # not more either: a retry is not counted twice
    assert get(ep, "/api/v1/summary?window=300")["counters"]["requests_refused_busy"] > 0


def test_the_memory_limit_refuses_retryably_and_says_so(tmp_path: Path) -> None:
    # lanewatch up holds far more than 40 MiB once started: every export is over the ceiling
    try:
        proc, ep = start_up(tmp_path / "data", "--otlp-grpc-port", "0", "--memory-limit-mib", "40")
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        body = flood_body(10)
        status, headers, raw, _ = post(ep["otlp_http"], body)
        assert status == 503 and headers.get("retry-after") == "2", (status, headers)
        s = Status.FromString(raw)
        assert s.code == 14 and "memory_limit_mib 40" in s.message, s

        channel = grpc.insecure_channel(ep["otlp_grpc"])
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as err:
            export(body, timeout=10)
        channel.close()
        e = err.value
        assert e.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        trailers = dict(e.trailing_metadata())  # type: ignore[attr-defined]
        details = Status.FromString(trailers["grpc-status-details-bin"]).details
        info = RetryInfo()
        assert details and details[0].Unpack(info) and info.retry_delay.seconds == 2

        wait_for(lambda: metric(ep, "lanewatch_requests_refused_total", 'reason="memory_limit"') == 2)
        with urllib.request.urlopen(ep["url"] + "/api/v1/health", timeout=30) as r:
            assert r.status == 200  # shedding is not unreadiness: the store answers
            health = json.loads(r.read())
        mem = health["ingest"]["memory"]
        assert mem["limit_mib"] == 40 and mem["soft_limit_mib"] == 32 and mem["refusing"] is True
        assert mem["rss_mib"] > 32
    finally:
        stop(proc)


@pytest.fixture
def small_api(tmp_path: Path) -> Iterator[dict[str, Any]]:
    cfg = tmp_path / "lanewatch.yaml"
    cfg.write_text("api_workers: 1\napi_backlog: 2\napi_wait_s: 1.0\n")
    try:
        proc, ep = start_up(tmp_path / "data", "--config", str(cfg))
    except RuntimeError as e:
        pytest.fail(str(e))
    yield ep
    stop(proc)


def test_api_requests_beyond_the_pool_get_503_at_once_and_half_open_ones_run_no_query(
        small_api: dict[str, Any]) -> None:
    ep = small_api
    port = int(ep["port"])
    # many clients send a request and close at once (half-open): none of them waits for an
    # answer, so none may hold the pool; those beyond the backlog are refused
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /api/v1/summary?window=3600 HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()
    # concurrent clients that do wait: each gets an answer, 200 or 503 with Retry-After
    answers: list[tuple[int, str | None]] = []

    def ask() -> None:
        try:
            with urllib.request.urlopen(ep["url"] + "/api/v1/summary?window=3600", timeout=30) as r:
                answers.append((r.status, r.headers.get("Retry-After")))
        except urllib.error.HTTPError as e:
            answers.append((e.code, e.headers.get("Retry-After")))

    threads = [threading.Thread(target=ask) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 30
    assert {a for a, _ in answers} <= {200, 503}
    assert all(ra == "1" for a, ra in answers if a == 503)
    assert any(a == 200 for a, _ in answers)
    # liveness bypasses the pool, and the pool works again once the storm is over
    assert get(ep, "/api/v1/health/live")["status"] == "ok"
    counters = wait_for(lambda: get(ep, "/api/v1/summary?window=300")["counters"])
    refused = sum(v for k, v in counters.items() if k.startswith("api_requests_"))
    assert refused > 0 and (counters.get("api_requests_abandoned", 0) > 0
                            or counters.get("api_requests_refused_backlog", 0) > 0), counters
