"""A real `lanewatch up --auth-token`: every listener asks for the token, refusals are counted,
the Host header is checked (DNS rebinding), and lanewatch's own clients pass the token."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from access_support import TOKEN, counters, lanewatch_up, settled_counters, spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from lanewatch.instrument.options import resolve
from lanewatch.instrument.setup import otlp_span_exporter

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def ep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("auth")
    with lanewatch_up(tmp / "data", "--auth-token", TOKEN, "--allowed-host", "lanewatch.example") as e:
        yield e


def wait_for(ep: dict[str, Any], name: str, at_least: int) -> dict[str, int]:
    deadline = time.monotonic() + 30
    while True:
        c = counters(ep)
        if c.get(name, 0) >= at_least or time.monotonic() > deadline:
            return settled_counters(ep)
        time.sleep(0.2)


def test_otlp_http_needs_the_token(ep: dict[str, Any]) -> None:
    before = settled_counters(ep)
    refused = OTLPSpanExporter(endpoint=ep["otlp_http"] + "/v1/traces", timeout=10)
    assert refused.export(spans()) == SpanExportResult.FAILURE
    wrong = OTLPSpanExporter(endpoint=ep["otlp_http"] + "/v1/traces", timeout=10,
                             headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.export(spans()) == SpanExportResult.FAILURE
    ok = OTLPSpanExporter(endpoint=ep["otlp_http"] + "/v1/traces", timeout=10, headers=AUTH)
    assert ok.export(spans(n=3)) == SpanExportResult.SUCCESS
    after = wait_for(ep, "spans_received", before.get("spans_received", 0) + 3)
    assert after["spans_received"] == before.get("spans_received", 0) + 3
    assert after["requests_refused_unauthenticated"] - before.get("requests_refused_unauthenticated", 0) == 2


def test_otlp_http_refusal_says_why(ep: dict[str, Any]) -> None:
    r = requests.post(ep["otlp_http"] + "/v1/traces", data=b"", timeout=10,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["code"] == 16  # google.rpc.Code UNAUTHENTICATED
    assert "bearer token" in r.json()["message"]


def test_otlp_grpc_needs_the_token(ep: dict[str, Any]) -> None:
    before = settled_counters(ep)
    refused = GrpcSpanExporter(endpoint=ep["otlp_grpc"], insecure=True, timeout=10)
    assert refused.export(spans()) == SpanExportResult.FAILURE
    ok = GrpcSpanExporter(endpoint=ep["otlp_grpc"], insecure=True, timeout=10,
                          headers=(("authorization", f"Bearer {TOKEN}"),))
    assert ok.export(spans(n=2)) == SpanExportResult.SUCCESS
    after = wait_for(ep, "spans_received", before.get("spans_received", 0) + 2)
    assert after["spans_received"] == before.get("spans_received", 0) + 2
    assert after["requests_refused_unauthenticated"] - before.get("requests_refused_unauthenticated", 0) == 1


def test_instrument_exporter_reads_otel_exporter_otlp_headers(ep: dict[str, Any],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """lanewatch.instrument builds the SDK's exporter, which takes the token from the standard env."""
    before = settled_counters(ep)
    opts = resolve({}, service_name="inst", endpoint=ep["otlp_http"])
    assert otlp_span_exporter(opts).export(spans()) == SpanExportResult.FAILURE
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{TOKEN}")
    assert otlp_span_exporter(opts).export(spans(n=1)) == SpanExportResult.SUCCESS
    grpc_opts = resolve({}, service_name="inst", endpoint="http://" + ep["otlp_grpc"], protocol="grpc")
    assert otlp_span_exporter(grpc_opts).export(spans(n=1)) == SpanExportResult.SUCCESS
    after = wait_for(ep, "spans_received", before.get("spans_received", 0) + 2)
    assert after["spans_received"] == before.get("spans_received", 0) + 2


@pytest.mark.parametrize("path", ["/api/v1/summary", "/api/v1/health", "/api/v1/gate", "/metrics",
                                  "/_dash-layout"])
def test_api_and_metrics_answer_401_without_the_token(ep: dict[str, Any], path: str) -> None:
    r = requests.get(ep["url"] + path, timeout=30)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "bearer token" in r.json()["error"]
    wrong = requests.get(ep["url"] + path, timeout=30, headers={"Authorization": "Bearer nope-nope-nope-nope"})
    assert wrong.status_code == 401
    assert requests.get(ep["url"] + path, timeout=30, headers=AUTH).status_code in (200, 404)


def test_replacing_the_routing_rules_needs_the_token(ep: dict[str, Any]) -> None:
    body = {"routing_rules": [{"service": "B", "match": {"x-user-id": "100"}, "lane": "gray"}]}
    r = requests.put(ep["url"] + "/api/v1/rules", json=body, timeout=30)
    assert r.status_code == 401 and "bearer token" in r.json()["error"]
    assert requests.get(ep["url"] + "/api/v1/rules", headers=AUTH, timeout=30).json()["version"] == 1
    r = requests.put(ep["url"] + "/api/v1/rules", json=body, headers=AUTH, timeout=30)
    assert r.status_code == 200 and r.json()["version"] == 2


def test_refusals_reach_metrics_and_summary(ep: dict[str, Any]) -> None:
    before = settled_counters(ep)
    for _ in range(3):
        assert requests.get(ep["url"] + "/metrics", timeout=30).status_code == 401
    after = settled_counters(ep)
    assert after["requests_refused_web_unauthenticated"] - before.get("requests_refused_web_unauthenticated", 0) == 3
    text = requests.get(ep["url"] + "/metrics", timeout=30, headers=AUTH).text
    assert 'lanewatch_requests_refused_total{reason="web_unauthenticated"}' in text


def test_liveness_stays_open_for_probes(ep: dict[str, Any]) -> None:
    r = requests.get(ep["url"] + "/api/v1/health/live", timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert "version" not in r.json()  # says nothing but "alive"


def test_dashboard_page_without_token_is_the_login_page(ep: dict[str, Any]) -> None:
    r = requests.get(ep["url"] + "/lanes?window=300", timeout=30)
    assert r.status_code == 401
    assert r.headers["Content-Type"].startswith("text/html")
    assert 'id="lw-login"' in r.text and 'value="/lanes?window=300"' in r.text
    assert "dash-renderer" not in r.text


def test_login_sets_a_strict_httponly_cookie_that_opens_everything(ep: dict[str, Any]) -> None:
    s = requests.Session()
    bad = s.post(ep["url"] + "/login", data={"token": "wrong-wrong-wrong-wrong", "next": "/"}, timeout=30,
                 allow_redirects=False)
    assert bad.status_code == 401 and "Wrong token" in bad.text
    assert "lanewatch_session" not in s.cookies
    r = s.post(ep["url"] + "/login", data={"token": TOKEN, "next": "/alerts"}, timeout=30,
               allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/alerts"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert TOKEN not in cookie  # a value derived from the token, not the token
    assert s.get(ep["url"] + "/alerts", timeout=30).status_code == 200
    assert s.get(ep["url"] + "/_dash-layout", timeout=30).status_code == 200
    assert s.get(ep["url"] + "/api/v1/summary", timeout=30).status_code == 200
    s.get(ep["url"] + "/logout", timeout=30)
    assert s.get(ep["url"] + "/api/v1/summary", timeout=30).status_code == 401


def test_login_never_redirects_to_another_site(ep: dict[str, Any]) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        r = requests.post(ep["url"] + "/login", data={"token": TOKEN, "next": target}, timeout=30,
                          allow_redirects=False)
        assert r.status_code == 303 and r.headers["Location"] == "/"


def test_one_time_link_signs_in_and_drops_the_token_from_the_url(ep: dict[str, Any]) -> None:
    s = requests.Session()
    r = s.get(ep["url"] + f"/flows?window=60&token={TOKEN}", timeout=30, allow_redirects=False)
    assert r.status_code == 200
    assert 'content="0;url=/flows?window=60"' in r.text and TOKEN not in r.text
    assert s.get(ep["url"] + "/flows?window=60", timeout=30).status_code == 200
    bad = requests.get(ep["url"] + "/flows?token=wrong-wrong-wrong-wrong", timeout=30)
    assert bad.status_code == 401 and "The token of that link is wrong" in bad.text
    # never on the API: a token in a URL ends up in logs and histories
    assert requests.get(ep["url"] + f"/api/v1/summary?token={TOKEN}", timeout=30).status_code == 401


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8050", "lanewatch.example.evil.example"])
def test_foreign_host_header_is_refused(ep: dict[str, Any], host: str) -> None:
    before = settled_counters(ep)
    for path in ("/", "/api/v1/health/live", "/metrics"):
        r = requests.get(ep["url"] + path, timeout=30, headers={**AUTH, "Host": host})
        assert r.status_code == 400
        assert "is not a name this lanewatch answers to" in r.text and "allowed_hosts" in r.text
    after = settled_counters(ep)
    assert after["requests_refused_web_bad_host"] - before.get("requests_refused_web_bad_host", 0) == 3


@pytest.mark.parametrize("host", ["localhost", "app.localhost:1", "127.0.0.1", "[::1]:8050", "10.1.2.3",
                                  "lanewatch.example", "LANEWATCH.example:443"])
def test_addresses_loopback_names_and_allowed_hosts_pass(ep: dict[str, Any], host: str) -> None:
    r = requests.get(ep["url"] + "/api/v1/health/live", timeout=30, headers={"Host": host})
    assert r.status_code == 200


def test_otlp_receivers_do_not_check_host(ep: dict[str, Any]) -> None:
    r = requests.post(ep["otlp_http"] + "/v1/traces", data=b"{}", timeout=10,
                      headers={**AUTH, "Content-Type": "application/json", "Host": "evil.example"})
    assert r.status_code == 200


def _check(ep: dict[str, Any], *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith("LANEWATCH_AUTH")}
    return subprocess.run([sys.executable, "-m", "lanewatch.cli", "check", "--url", ep["url"], "--window", "60",
                           "--allow-empty", *args], check=False, capture_output=True, text=True, timeout=60,
                          env={**full, **(env or {})})


def test_lanewatch_check_passes_the_token(ep: dict[str, Any], tmp_path: Path) -> None:
    none = _check(ep)
    assert none.returncode == 2
    assert "HTTP 401" in none.stderr and "--auth-token" in none.stderr
    assert _check(ep, "--auth-token", TOKEN).returncode == 0
    assert _check(ep, env={"LANEWATCH_AUTH_TOKEN": TOKEN}).returncode == 0
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    assert _check(ep, "--auth-token-file", str(f), "--compare").returncode == 0


def test_a_short_token_is_refused_at_start(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "lanewatch.cli", "up", "--data-dir", str(tmp_path / "d"),
                          "--port", "0", "--otlp-http-port", "0", "--otlp-grpc-port", "-1",
                          "--auth-token", "short"], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "auth_token: the token has 5 characters; use at least 16" in out.stderr
    assert "=short" not in out.stderr and "'short'" not in out.stderr
