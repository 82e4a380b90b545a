"""`lanewatch up --tls-cert --tls-key --auth-token` end to end: real SDK exporters over TLS
(certificate_file, OTEL_EXPORTER_OTLP_CERTIFICATE), the API over https, plain text refused."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from access_support import TOKEN, counters, lanewatch_up, self_signed, settled_counters, spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from lanewatch.instrument.options import resolve
from lanewatch.instrument.setup import otlp_span_exporter

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(tmp)
    with lanewatch_up(tmp / "data", "--auth-token", TOKEN, "--tls-cert", str(cert), "--tls-key", str(key)) as ep:
        yield ep, cert


@pytest.fixture(autouse=True)
def no_requests_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a Session's verify, so the
    SDK's certificate_file would be ignored where they are set (psf/requests#4726;
    docs/security.md says so)."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def wait_spans(ep: dict[str, Any], cert: Path, at_least: int) -> int:
    deadline = time.monotonic() + 30
    while counters(ep, verify=str(cert)).get("spans_received", 0) < at_least and time.monotonic() < deadline:
        time.sleep(0.2)
    return settled_counters(ep, verify=str(cert)).get("spans_received", 0)


def test_every_endpoint_is_https(tls: tuple[dict[str, Any], Path]) -> None:
    ep, _ = tls
    assert ep["otlp_http"].startswith("https://") and ep["url"].startswith("https://")


def test_sdk_http_exporter_with_certificate_file(tls: tuple[dict[str, Any], Path]) -> None:
    ep, cert = tls
    before = settled_counters(ep, verify=str(cert)).get("spans_received", 0)
    untrusted = OTLPSpanExporter(endpoint=ep["otlp_http"] + "/v1/traces", timeout=5, headers=AUTH)
    assert untrusted.export(spans()) == SpanExportResult.FAILURE  # the self-signed cert is not trusted
    ok = OTLPSpanExporter(endpoint=ep["otlp_http"] + "/v1/traces", timeout=10, headers=AUTH,
                          certificate_file=str(cert))
    assert ok.export(spans(n=2)) == SpanExportResult.SUCCESS
    no_token = OTLPSpanExporter(endpoint=ep["otlp_http"] + "/v1/traces", timeout=10, certificate_file=str(cert))
    assert no_token.export(spans()) == SpanExportResult.FAILURE
    assert wait_spans(ep, cert, before + 2) == before + 2


def test_sdk_grpc_exporter_over_tls(tls: tuple[dict[str, Any], Path]) -> None:
    ep, cert = tls
    before = settled_counters(ep, verify=str(cert)).get("spans_received", 0)
    creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    ok = GrpcSpanExporter(endpoint=ep["otlp_grpc"], credentials=creds, timeout=10,
                          headers=(("authorization", f"Bearer {TOKEN}"),))
    assert ok.export(spans(n=3)) == SpanExportResult.SUCCESS
    plain = GrpcSpanExporter(endpoint=ep["otlp_grpc"], insecure=True, timeout=3,
                             headers=(("authorization", f"Bearer {TOKEN}"),))
    assert plain.export(spans()) == SpanExportResult.FAILURE
    assert wait_spans(ep, cert, before + 3) == before + 3


def test_instrument_exporters_read_the_standard_certificate_and_headers_env(
        tls: tuple[dict[str, Any], Path], monkeypatch: pytest.MonkeyPatch) -> None:
    ep, cert = tls
    before = settled_counters(ep, verify=str(cert)).get("spans_received", 0)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(cert))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{TOKEN}")
    http = otlp_span_exporter(resolve({}, service_name="inst", endpoint=ep["otlp_http"]))
    assert http.export(spans(n=1)) == SpanExportResult.SUCCESS
    grpc_opts = resolve({}, service_name="inst", endpoint="https://" + ep["otlp_grpc"], protocol="grpc")
    assert otlp_span_exporter(grpc_opts).export(spans(n=1)) == SpanExportResult.SUCCESS
    assert wait_spans(ep, cert, before + 2) == before + 2


def test_api_and_dashboard_over_https(tls: tuple[dict[str, Any], Path]) -> None:
    ep, cert = tls
    assert requests.get(ep["url"] + "/api/v1/health", timeout=30, verify=str(cert), headers=AUTH).status_code == 200
    assert requests.get(ep["url"] + "/api/v1/health", timeout=30, verify=str(cert)).status_code == 401
    s = requests.Session()
    r = s.post(ep["url"] + "/login", data={"token": TOKEN}, timeout=30, verify=str(cert), allow_redirects=False)
    assert "Secure" in r.headers["Set-Cookie"]  # over TLS the cookie never goes out in clear text
    assert s.get(ep["url"] + "/", timeout=30, verify=str(cert)).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(ep["url"] + "/api/v1/health/live", timeout=30)  # not trusted without the cert


def test_plain_http_to_a_tls_port_is_refused_and_counted(tls: tuple[dict[str, Any], Path]) -> None:
    ep, cert = tls
    before = settled_counters(ep, verify=str(cert)).get("requests_refused_tls_handshake", 0)
    with socket.create_connection(("127.0.0.1", ep["otlp_http_port"]), timeout=10) as s:
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert b"HTTP/1.1 200" not in s.recv(1000)
    deadline = time.monotonic() + 30
    while counters(ep, verify=str(cert)).get("requests_refused_tls_handshake", 0) <= before \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert settled_counters(ep, verify=str(cert))["requests_refused_tls_handshake"] == before + 1


def test_a_slow_handshake_does_not_hold_up_other_clients(tls: tuple[dict[str, Any], Path]) -> None:
    """Each handshake happens in its connection's thread, never in the accepting one."""
    ep, cert = tls
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10)
            for port in (ep["otlp_http_port"], ep["port"]) for _ in range(3)]
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        assert requests.get(ep["url"] + "/api/v1/health/live", timeout=10, verify=str(cert)).status_code == 200
        with socket.create_connection(("127.0.0.1", ep["otlp_http_port"]), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        for s in idle:
            s.close()


def test_lanewatch_check_over_https(tls: tuple[dict[str, Any], Path]) -> None:
    ep, cert = tls
    out = subprocess.run([sys.executable, "-m", "lanewatch.cli", "check", "--url", ep["url"], "--allow-empty",
                          "--auth-token", TOKEN, "--ca-cert", str(cert)], check=False, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr


def test_a_key_that_does_not_match_is_refused_at_start(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, key = self_signed(other)
    out = subprocess.run([sys.executable, "-m", "lanewatch.cli", "up", "--data-dir", str(tmp_path / "d"),
                          "--port", "0", "--otlp-http-port", "0", "--otlp-grpc-port", "-1",
                          "--tls-cert", str(cert), "--tls-key", str(key)], check=False, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert "cannot start: tls_cert=" in out.stderr and "do not load" in out.stderr
