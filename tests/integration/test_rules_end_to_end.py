"""Scenario 3 with richer rules, end to end: real OpenTelemetry SDK exporters (OTLP/HTTP and
OTLP/gRPC) -> ``lanewatch up`` -> the query API.

A's rules come from an ingress-nginx canary Ingress (``{import: FILE}``: header ``x-user-id:
100`` and cookie ``canary``); B's rule reads the captured header as the Java agent records it,
a string array (``http.request.header.x-user-id: ["100"]``). No request carries a lane tag:
every expected lane comes from a rule.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from lanewatch import lane as L
from lanewatch.testing import heartbeat_request, settled_summary, up_with_config

INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: a, namespace: shop}
spec:
  rules:
  - host: www.base.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: A-base, port: {number: 20001}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: a-gray
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-by-header: x-user-id
    nginx.ingress.kubernetes.io/canary-by-header-value: "100"
    nginx.ingress.kubernetes.io/canary-by-cookie: canary
    nginx.ingress.kubernetes.io/canary-weight: "0"
spec:
  rules:
  - host: www.base.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: A-gray, port: {number: 20001}}}}
"""
USER = "http.request.header.x-user-id"
COOKIE = "http.request.header.cookie"


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("lw-rules")
    (tmp / "ingress.yaml").write_text(INGRESS)
    config = ("trace_wait_s: 1.0\nflush_interval_s: 0.2\nliveness_ttl_s: 60\nrouting_rules:\n"
              f"  - import: {tmp / 'ingress.yaml'}\n"
              "  - {service: B, when: {header: X-User-Id, equals: '100'}, lane: gray}\n")
    with up_with_config(tmp, config, "--otlp-grpc-port", "0") as (_, ep, _):
        yield ep


def get(ep: dict[str, Any], path: str) -> Any:
    with urllib.request.urlopen(ep["url"] + path, timeout=10) as r:
        return json.loads(r.read())


def provider(service: str, lane: str, exporter: Any) -> TracerProvider:
    attrs = {"service.name": service, L.INSTANCE_ID_ATTR: f"{service}-{lane}-rules"}
    if lane != "base":
        attrs[L.INSTANCE_LANE_ATTR] = lane
    tp = TracerProvider(resource=Resource.create(attrs))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


def chain(tps: Sequence[TracerProvider], user: str, cookie: str = "") -> str:
    """A -> B -> C, no lane tag anywhere; x-user-id passed through (a string array on every
    hop, as captured), the Cookie header only at the entry."""
    parent = context.get_current()
    trace_id = ""
    for i, tp in enumerate(tps):
        attrs: dict[str, Any] = {USER: [user]}
        if cookie and i == 0:
            attrs[COOKIE] = [f"session=s-{user}; {cookie}"]
        tracer = tp.get_tracer("rules-e2e")
        with tracer.start_as_current_span("serve", context=parent, kind=trace.SpanKind.SERVER,
                                          attributes=attrs) as server:
            trace_id = trace_id or format(server.get_span_context().trace_id, "032x")
            with tracer.start_as_current_span("call", kind=trace.SpanKind.CLIENT):
                parent = context.get_current()
    return trace_id


def test_header_array_and_cookie_rules_route_scenario_3(collector: dict[str, Any]) -> None:
    ep = collector
    for svc in "ABC":
        for lane in ("base", "gray"):
            req = urllib.request.Request(ep["otlp_http"] + "/v1/metrics",
                                         heartbeat_request(svc, "" if lane == "base" else lane,
                                                           f"{svc}-{lane}-rules"),
                                         {"Content-Type": "application/x-protobuf"})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 200
    a_gray, b_gray = (provider(s, "gray", HttpSpanExporter(endpoint=ep["otlp_http"] + "/v1/traces"))
                      for s in "AB")
    a, b, c = (provider(s, "base", GrpcSpanExporter(endpoint=ep["otlp_grpc"], insecure=True)) for s in "ABC")

    gray_user = chain([a_gray, b_gray, c], "100")  # Agray -> Bgray -> C, as the write-up prints
    base_user = chain([a, b, c], "101")  # A -> B -> C
    by_cookie = chain([a_gray, b, c], "101", "canary=always")  # the Ingress's cookie: A gray only
    header_first = chain([a_gray, b_gray, c], "100", "canary=never")  # header wins over cookie
    leak_b = chain([a_gray, b, c], "100")  # B's array rule says gray, base B served it
    leak_a = chain([a, b, c], "101", "canary=always")  # the cookie says gray, base A served it
    for tp in (a_gray, b_gray, a, b, c):
        tp.shutdown()

    summary, violations = settled_summary(ep["url"], traces=6, violations=2, quiet_s=1.6)
    assert summary["hops"] == {"in_lane": 16, "fallback": 0, "leak": 2, "intrusion": 0, "uncertain": 0}
    assert {(v["kind"], v["service"], v["trace_id"]) for v in violations} == {
        ("leak", "B", leak_b), ("leak", "A", leak_a)}
    paths = {v["trace_id"]: v["lane_path"] for v in violations}
    assert paths[leak_b] == "A[gray] -> B[base, leak] -> C[base]"
    assert paths[leak_a].startswith("A[base, leak] -> B[base]")
    assert not {gray_user, base_user, by_cookie, header_first} & set(paths)
    assert summary["lanes"]["gray"]["traces"] == 5 and summary["lanes"]["gray"]["stayed"] == 3
    assert summary["lanes"]["base"]["traces"] == 1 and summary["lanes"]["base"]["stayed"] == 1
