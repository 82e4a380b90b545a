"""Routing rules switched off and on under traffic, on a real ``lanewatch up``: the config file
rewritten, SIGHUP, ``PUT /api/v1/rules``. Spans come from the real SDK's OTLP exporter; each
hop is judged by the rules in force at its span's start, late spans from before a change
included; a malformed reload keeps the rules and says why (issue 13, "Live rules")."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from lanewatch import lane as L
from lanewatch.testing import up_with_config, wait_until

RULE_ON = ("routing_rules:\n  - {service: B, match: {x-user-id: '100'}, lane: gray}\n")
BASE = "trace_wait_s: 0.5\nflush_interval_s: 0.2\ntopology: {B: [base, gray]}\n"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, Any], Path]]:
    tmp = tmp_path_factory.mktemp("rules")
    with up_with_config(tmp, BASE + RULE_ON) as running:
        yield running


def get(ep: dict[str, Any], path: str) -> Any:
    with urllib.request.urlopen(ep["url"] + path, timeout=10) as r:
        return json.loads(r.read())


def put(ep: dict[str, Any], body: bytes, ctype: str = "application/json") -> tuple[int, Any]:
    req = urllib.request.Request(ep["url"] + "/api/v1/rules", body, {"Content-Type": ctype}, method="PUT")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def rewrite(path: Path, text: str) -> None:
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.replace(tmp, path)


class B:
    """Service B's base instance, exporting through the SDK's OTLP/HTTP exporter."""

    def __init__(self, ep: dict[str, Any]) -> None:
        self.tp = TracerProvider(resource=Resource.create({"service.name": "B", L.INSTANCE_ID_ATTR: "B-base-1"}))
        self.tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=ep["otlp_http"] + "/v1/traces")))
        self.tracer = self.tp.get_tracer("live-rules")

    def request(self, n: int = 1) -> None:
        """User 100's requests, no lane sent: the rule decides (scenario 3)."""
        for _ in range(n):
            with self.tracer.start_as_current_span("serve", kind=trace.SpanKind.SERVER,
                                                   attributes={"x-user-id": "100"}):
                pass

    def start_slow(self) -> Any:
        return self.tracer.start_span("slow", kind=trace.SpanKind.SERVER, attributes={"x-user-id": "100"})


def hops(ep: dict[str, Any]) -> dict[str, int]:
    return dict(get(ep, "/api/v1/summary?window=600")["hops"])


def wait_hops(ep: dict[str, Any], want: dict[str, int]) -> None:
    """Until the hop counts reach ``want``, then they must be exactly it (none judged otherwise)."""
    def reached() -> dict[str, int] | None:
        h = hops(ep)
        return h if all(h.get(k, 0) >= v for k, v in want.items()) else None
    got = wait_until(reached, 30, f"hops {want}")
    time.sleep(0.5)  # a flush more: nothing else arrives
    got = hops(ep)
    assert {k: got[k] for k in want} == want, got


def rules_state(ep: dict[str, Any], version: int) -> dict[str, Any] | None:
    s: dict[str, Any] = get(ep, "/api/v1/rules")
    return s if s["version"] == version else None


def test_rules_switched_under_traffic_apply_from_their_moment_only(up: Any) -> None:
    proc, ep, cfg = up
    b = B(ep)
    b.request(5)  # rule on: user 100 expected in gray, served by base while gray is live: leak
    wait_hops(ep, {"leak": 5, "in_lane": 0})
    assert get(ep, "/api/v1/rules")["version"] == 1

    slow = b.start_slow()  # starts under the rule, ends (and is exported) after it is switched off
    time.sleep(0.05)
    t = time.monotonic()
    rewrite(cfg, BASE)  # the rule off
    state = wait_until(lambda: rules_state(ep, 2), 5, "version 2", every_s=0.05)
    took = time.monotonic() - t
    assert took < 2.0, f"the change took {took:.2f} s to apply"
    assert state["routing_rules"] == [] and state["source"] == "file"
    b.request(5)
    slow.end()
    wait_hops(ep, {"leak": 6, "in_lane": 5})  # the slow span kept its verdict
    slow_id = format(slow.get_span_context().trace_id, "032x")
    leaks = {v["trace_id"] for v in get(ep, "/api/v1/violations?window=600&kind=leak")}
    assert slow_id in leaks

    # a malformed file: the rules in force stay, health and /rules say why
    rewrite(cfg, BASE + "routing_rules:\n  - {service: B, lane: gray}\n")
    health = wait_until(lambda: get(ep, "/api/v1/rules")["last_reload_error"] and get(ep, "/api/v1/health"),
                        5, "the refused reload in health")
    assert health["status"] == "ok" and "routing_rules" in health["rules"]["last_reload_error"]["error"]
    assert get(ep, "/api/v1/rules")["version"] == 2
    b.request(3)
    wait_hops(ep, {"leak": 6, "in_lane": 8})

    # SIGHUP reloads (and does not stop the process, as its default action would)
    rewrite(cfg, BASE)
    proc.send_signal(signal.SIGHUP)
    wait_until(lambda: get(ep, "/api/v1/rules")["last_reload_error"] is None, 5, "a good reload")
    assert proc.poll() is None and get(ep, "/api/v1/rules")["version"] == 2  # same rules: no version

    # PUT: the rule back on, from the API
    status, body = put(ep, json.dumps({"routing_rules": [{"service": "B", "match": {"x-user-id": "100"},
                                                          "lane": "gray"}]}).encode())
    assert status == 200 and body["applied"] is True and body["version"] == 3 and body["source"] == "api"
    b.request(4)
    wait_hops(ep, {"leak": 10, "in_lane": 8})
    b.tp.shutdown()

    history = get(ep, "/api/v1/rules/history")["versions"]
    assert [(v["version"], v["source"], len(v["routing_rules"])) for v in history] == [
        (3, "api", 1), (2, "file", 0), (1, "start", 1)]
    assert history[0]["until"] is None and history[1]["until"] == history[0]["since"]


def test_a_bad_put_is_refused_and_keeps_the_rules(up: Any) -> None:
    _, ep, _ = up
    before = get(ep, "/api/v1/rules")["version"]
    status, body = put(ep, b'{"routing_rules": [{"service": "B", "match": {}, "lane": "gray"}]}')
    assert status == 400 and "routing_rules[0]: needs service" in body["error"] and "stay" in body["error"]
    status, body = put(ep, b"routing_rules: [", "application/yaml")
    assert status == 400 and "does not parse" in body["error"]
    status, body = put(ep, b"{}", "text/plain")
    assert status == 415 and "application/json" in body["error"]
    assert get(ep, "/api/v1/rules")["version"] == before
    assert get(ep, "/api/v1/health")["rules"]["last_reload_error"]["source"] == "api"
    status, body = put(ep, b"topology: {B: [base, gray]}\n", "application/yaml")  # YAML, unchanged
    assert status == 200 and body["applied"] is False and body["version"] == before
