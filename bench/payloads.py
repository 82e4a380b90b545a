"""Pre-built OTLP export requests for benchmarks: realistic lane traffic, fresh ids.

Traces walk a chain of services (``svc0 -> svc1 -> ...``); 30% of them are
gray, and gray hops at svc2 fall back to base. Each request holds the spans of
one service instance (as an SDK exports them), so a trace's spans arrive in
several requests; 5-6 attributes per span as in PERFORMANCE.md. Every trace
has fresh ids, so a replay never sends duplicates.
"""

from __future__ import annotations

import os
import random

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from lanewatch import lane as L
from lanewatch.rules.match import in_share
from lanewatch.testing import to_otlp_json

CHAIN = 5  # services per trace


def _kv(k: str, v: str) -> KeyValue:
    return KeyValue(key=k, value=AnyValue(string_value=v))


def _resource(rs: object, svc: int, lane: str, inst: int) -> None:
    rs.resource.attributes.extend(  # type: ignore[attr-defined]
        [_kv(L.SERVICE_NAME_ATTR, f"svc{svc}"), _kv(L.INSTANCE_ID_ATTR, f"svc{svc}-{lane or 'base'}-{inst}"),
         _kv("host.name", "bench"), _kv("telemetry.sdk.language", "python")]
        + ([_kv(L.INSTANCE_LANE_ATTR, lane)] if lane else []))


#: the captured header SERVER spans carry with ``user_header`` (a string array, as the Java agent records it)
USER_HEADER = "http.request.header.x-user-id"


def build_round(traces: int, seed: int, t0_ns: int, trace_state: str = "",
                user_header: bool = False, groups: int = 1,
                step_ns: int = 20_000) -> list[ExportTraceServiceRequest]:
    """``traces`` traces through svc0 -> ... -> svc{CHAIN-1}; one request per (service, lane)
    instance, so the spans of one trace arrive in several requests, as from real services.
    Each hop is a SERVER span plus, except the last, a CLIENT span calling the next; every
    span carries ``trace_state`` (e.g. ``ot=th:c``: sampled spans) when given; with
    ``user_header`` every SERVER span carries :data:`USER_HEADER` (users u0..u999) and a trace
    is gray when its user is u1..u3 or in a 30% split (the routing ``--rules`` checks).
    ``groups`` chains of distinct services (trace ``i`` through chain ``i % groups``: ``groups``
    times the keys); hops start ``step_ns`` apart."""
    rng = random.Random(seed)
    reqs: dict[tuple[int, str], ExportTraceServiceRequest] = {}

    def spans_of(svc: int, lane: str) -> object:
        req = reqs.get((svc, lane))
        if req is None:
            req = reqs[(svc, lane)] = ExportTraceServiceRequest()
            rs = req.resource_spans.add()
            _resource(rs, svc, lane, seed % 3)
            rs.scope_spans.add().scope.name = "bench"
        return req.resource_spans[0].scope_spans[0].spans

    t = t0_ns
    for i in range(traces):
        trace_id, parent = os.urandom(16), b""
        gray = rng.random() < 0.3
        uid = f"u{rng.randrange(1000)}"
        user = KeyValue(key=USER_HEADER, value=AnyValue(array_value=ArrayValue(
            values=[AnyValue(string_value=uid)])))
        if user_header:  # routed as bench_collector.RULES says: the rules agree with the routing
            gray = uid in ("u1", "u2", "u3") or in_share(uid, 30)
        for hop in range(CHAIN):
            svc = (i % groups) * CHAIN + hop
            served = "gray" if gray and hop != 2 else ""  # svc2 has no gray copy: fallback
            attrs = [_kv("http.method", "GET"), _kv("http.route", "/api/items/{id}"),
                     _kv("http.status_code", "200"), _kv("net.peer.name", "10.0.0.7"),
                     _kv("user_agent.original", "bench/1.0")]
            if gray:
                attrs.append(_kv(L.REQUEST_LANE_ATTR, "gray"))
            server_id = os.urandom(8)
            t += step_ns
            err = rng.random() < 0.01
            out = spans_of(svc, served)
            out.append(Span(  # type: ignore[attr-defined]
                trace_id=trace_id, span_id=server_id, parent_span_id=parent, trace_state=trace_state,
                name="GET /api/items/{id}", kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=t,
                end_time_unix_nano=t + rng.randint(200_000, 30_000_000),
                attributes=attrs + [user] if user_header else attrs,
                status=Status(code=Status.STATUS_CODE_ERROR if err else Status.STATUS_CODE_OK)))
            if hop < CHAIN - 1:
                parent = os.urandom(8)
                out.append(Span(  # type: ignore[attr-defined]
                    trace_id=trace_id, span_id=parent, parent_span_id=server_id, name="GET", trace_state=trace_state,
                    kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=t + 10_000,
                    end_time_unix_nano=t + 150_000, attributes=attrs))
    return list(reqs.values())


def build(n_spans: int, spans_per_request: int, fmt: str = "proto",
          t0_ns: int | None = None, trace_state: str = "", user_header: bool = False,
          groups: int = 1, duration_ns: int | None = None) -> list[bytes]:
    """Bodies of exactly ``spans_per_request`` spans each (about ``n_spans`` in all): each
    instance's spans are cut into batches in time order, as a batch exporter does, and
    the batches of all instances interleave. ``groups``: see :func:`build_round`;
    ``duration_ns``: the hops' start times spread evenly over that long (else 20 us apart)."""
    import time

    t0 = t0_ns if t0_ns is not None else time.time_ns()
    traces = max(1, n_spans // (2 * CHAIN - 1))
    step = duration_ns // (traces * CHAIN) if duration_ns else 20_000
    per_instance = build_round(traces, 0, t0, trace_state, user_header, groups, step)
    batches: list[tuple[int, ExportTraceServiceRequest]] = []
    for req in per_instance:
        rs = req.resource_spans[0]
        spans = rs.scope_spans[0].spans
        for k in range(0, len(spans), spans_per_request):
            part = ExportTraceServiceRequest()
            prs = part.resource_spans.add()
            prs.resource.CopyFrom(rs.resource)
            pss = prs.scope_spans.add()
            pss.scope.name = "bench"
            pss.spans.extend(spans[k:k + spans_per_request])
            batches.append((pss.spans[0].start_time_unix_nano, part))
    batches.sort(key=lambda b: b[0])
    return [p.SerializeToString() if fmt == "proto" else to_otlp_json(p) for _, p in batches]


def count_spans(bodies: list[bytes]) -> int:
    n = 0
    for b in bodies:
        m = ExportTraceServiceRequest()
        m.ParseFromString(b)
        n += sum(len(ss.spans) for rs in m.resource_spans for ss in rs.scope_spans)
    return n
