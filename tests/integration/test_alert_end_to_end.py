"""A leak sent by real OpenTelemetry SDK exporters reaches a webhook as an Alertmanager-format
alert within 3 s, through a real `lanewatch up` process on loopback."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alert_receivers import Receiver, receiver, wait_for
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from lanewatch import lane as L
from lanewatch.testing import heartbeat_request, start_up

#: The issue's bound: a leak injected by real OTLP traffic is delivered within this.
DELIVERY_BOUND_S = 3.0


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as rec:
        yield rec


def _up(tmp: Path, *extra: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    try:
        return start_up(tmp / "data", *extra)
    except RuntimeError as e:
        pytest.fail(str(e))


def _post(url: str, body: bytes, path: str) -> None:
    req = urllib.request.Request(url + path, data=body, headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def _leaks(endpoint: str, n: int) -> None:
    """``n`` gray requests served by B-base (B-gray is live): one leak each, via the SDK."""
    provider = TracerProvider(resource=Resource.create({L.SERVICE_NAME_ATTR: "B", L.INSTANCE_LANE_ATTR: "base",
                                                        L.INSTANCE_ID_ATTR: "B-base-1"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces")))
    tracer = provider.get_tracer("test")
    for _ in range(n):
        with tracer.start_as_current_span("GET /b", kind=trace.SpanKind.SERVER) as span:
            span.set_attribute(L.REQUEST_LANE_ATTR, "gray")
    provider.shutdown()


def _firing(rec: Receiver, name: str) -> dict[str, Any] | None:
    for body in rec.bodies:
        for a in body["alerts"]:
            if a["labels"]["alertname"] == name and a["status"] == "firing":
                return dict(body)
    return None


def _health_sent(ep: dict[str, Any]) -> dict[str, Any] | None:
    with urllib.request.urlopen(ep["url"] + "/api/v1/health", timeout=10) as r:
        notifiers = json.loads(r.read())["alerts"]["notifiers"]
    return notifiers[0] if notifiers and notifiers[0].get("sent", 0) >= 1 else None


def test_a_leak_from_sdk_exporters_is_delivered_to_a_webhook_within_3_s(tmp_path: Path, hook: Receiver) -> None:
    proc, ep = _up(tmp_path, "--alert-webhook", hook.url)
    try:
        _post(ep["otlp_http"], heartbeat_request("B", "gray", time_ns=time.time_ns()), "/v1/metrics")
        _post(ep["otlp_http"], heartbeat_request("B", "base", time_ns=time.time_ns()), "/v1/metrics")
        _leaks(ep["otlp_http"], 30)
        sent = time.monotonic()
        body = wait_for(lambda: _firing(hook, "LaneLeak"), 15, "the LaneLeak webhook")
        took = hook.requests[-1].at - sent
        assert took <= DELIVERY_BOUND_S, f"delivered after {took:.2f} s"
        assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "lanewatch"
        alert = body["alerts"][0]
        assert alert["labels"] == {"alertname": "LaneLeak", "service": "B", "lane": "gray", "severity": "warning"}
        assert alert["generatorURL"].startswith(ep["url"] + "/violations?")
        assert "30 of 30" in alert["annotations"]["summary"]
        with urllib.request.urlopen(ep["url"] + "/api/v1/alerts", timeout=10) as r:
            api = json.loads(r.read())
        assert [a["name"] for a in api["alerts"]] == ["LaneLeak"]
        assert api["alerts"][0]["fingerprint"] == alert["fingerprint"]
        # the delivery is counted where an operator looks: health and /metrics
        health = wait_for(lambda: _health_sent(ep), 10, "the delivery to be counted")
        assert health["kind"] == "webhook" and "/hook" in health["target"]
        with urllib.request.urlopen(ep["url"] + "/metrics", timeout=10) as r:
            metrics = r.read().decode()
        assert 'lanewatch_alert_notifications_total{kind="webhook"' in metrics
        assert 'lanewatch_alerts{alertname="LaneLeak",state="firing"} 1.0' in metrics
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out


def test_the_history_survives_a_restart_and_a_firing_alert_is_not_sent_twice(tmp_path: Path,
                                                                             hook: Receiver) -> None:
    proc, ep = _up(tmp_path, "--alert-webhook", hook.url)
    try:
        _post(ep["otlp_http"], heartbeat_request("B", "gray", time_ns=time.time_ns()), "/v1/metrics")
        _leaks(ep["otlp_http"], 30)
        wait_for(lambda: _firing(hook, "LaneLeak"), 15, "the LaneLeak webhook")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    sent_before = len(hook.requests)
    proc, ep = _up(tmp_path, "--alert-webhook", hook.url)
    try:
        with urllib.request.urlopen(ep["url"] + "/api/v1/alerts", timeout=10) as r:
            api = json.loads(r.read())
        assert [e["state"] for e in api["history"]][:1] == ["firing"]
        assert [a["name"] for a in api["alerts"]] == ["LaneLeak"], "still firing: its leaks are in the window"
        time.sleep(2.5)  # two evaluations after the restart
        assert len(hook.requests) == sent_before, "the restart sent the firing alert again"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
