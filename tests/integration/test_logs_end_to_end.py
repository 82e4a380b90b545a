"""Real OpenTelemetry SDK log exporters (OTLP/HTTP and OTLP/gRPC) -> a real `lanewatch up`:
the records are accepted (never 404 / UNIMPLEMENTED), counted on /metrics and in the
summary's counters, and show their instance alive in /api/v1/instances."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource

from lanewatch.testing import up_with_config


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("logs")
    with up_with_config(tmp, "flush_interval_s: 0.2\nliveness_ttl_s: 30\n", "--otlp-grpc-port", "0") as (_, ep, _):
        yield ep


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return bytes(r.read())


def counter(ep: dict[str, Any], family: str) -> float:
    for line in get(ep["url"] + "/metrics").decode().splitlines():
        if line.startswith(family + " "):
            return float(line.split()[1])
    return 0.0


def emit(exporter: Any, service: str, lane: str, n: int) -> list[Any]:
    """``n`` records through the SDK's logger, exported one by one; the export results."""
    results: list[Any] = []

    class Recording(LogRecordExporter):
        def export(self, batch: Any) -> LogRecordExportResult:
            results.append(exporter.export(batch))
            return results[-1]  # type: ignore[no-any-return]

        def shutdown(self) -> None:
            exporter.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    provider = LoggerProvider(resource=Resource.create(
        {"service.name": service, "service.lane": lane, "service.instance.id": f"{service}-{lane}-1"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(Recording()))
    log = provider.get_logger("lanewatch.test")
    try:
        for i in range(n):
            log.emit(body=f"record {i}", severity_text="WARN", attributes={"lane": lane})
    finally:
        provider.shutdown()
    return results


def wait_for(pred: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_sdk_log_exporters_over_http_and_grpc_count_and_show_liveness(collector: dict[str, Any]) -> None:
    ep = collector
    before = counter(ep, "lanewatch_log_records_received_total")
    http_results = emit(HttpLogExporter(endpoint=ep["otlp_http"] + "/v1/logs", timeout=5), "L", "gray", 5)
    grpc_results = emit(GrpcLogExporter(endpoint=f"127.0.0.1:{ep['otlp_grpc_port']}", insecure=True,
                                        timeout=5), "M", "canary", 3)
    assert http_results == [LogRecordExportResult.SUCCESS] * 5
    assert grpc_results == [LogRecordExportResult.SUCCESS] * 3
    assert wait_for(lambda: counter(ep, "lanewatch_log_records_received_total") - before == 8) is True

    def live() -> set[tuple[str, str, str]]:
        rows = json.loads(get(ep["url"] + "/api/v1/instances"))
        return {(r["service"], r["lane"], r["instance"]) for r in rows if r["live"]}

    assert {("L", "gray", "L-gray-1"), ("M", "canary", "M-canary-1")} <= wait_for(live)
    summary = wait_for(lambda: json.loads(get(ep["url"] + "/api/v1/summary?window=60"))["counters"]
                       .get("log_records_received"))
    assert summary == 8
    # logs are not spans: nothing was judged
    assert counter(ep, "lanewatch_spans_received_total") == 0.0
