"""The merged-view column extraction (collect/columns.py) against a plain per-span decode."""

from __future__ import annotations

import random
from operator import attrgetter
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from lanewatch import lane as L
from lanewatch.collect import columns, decode, schema
from lanewatch.collect.decode import Keys

KEYS = Keys(request_lane=(L.REQUEST_LANE_ATTR, "x-lane"), extra=("tenant",))
_ALL = attrgetter("trace_id", "span_id", "parent_span_id", "kind", "start_time_unix_nano",
                  "end_time_unix_nano", "status", "attributes")


def reference(body: bytes, keys: Keys) -> dict[str, Any]:
    """Every field of every span read one by one from the ordinary parse."""
    req = schema.TraceRequest()
    req.ParseFromString(body)
    out: dict[str, list[Any]] = {k: [] for k in ("trace_id", "span_id", "parent_id", "kind", "start_ns",
                                                 "end_ns", "status", "request_lane", "dyed", "resource")}
    extra: dict[str, list[Any]] = {k: [] for k in keys.extra}
    for r, rs in enumerate(req.resource_spans):
        for ss in rs.scope_spans:
            for sp in ss.spans:
                tid, sid, pid, kind, st, en, status, attrs = _ALL(sp)
                for k, v in zip(("trace_id", "span_id", "parent_id", "kind", "start_ns", "end_ns"),
                                (tid, sid, pid, kind, st, en)):
                    out[k].append(v)
                out["status"].append(schema.StatusCodes()[status])
                out["request_lane"].append(next((attrs[k] for k in keys.request_lane if attrs.get(k)), b""))
                out["dyed"].append(L.DYED_ATTR in attrs)
                out["resource"].append(r)
                for k in keys.extra:
                    extra[k].append(attrs.get(k, b""))
    return {**out, "extra": extra}


def decoded(body: bytes, keys: Keys) -> dict[str, Any]:
    c = decode.decode_traces(body, "proto", keys)
    got = {k: getattr(c, k) for k in ("trace_id", "span_id", "parent_id", "kind", "start_ns", "end_ns",
                                      "status", "request_lane", "dyed", "resource")}
    return {**got, "extra": c.extra}


def _kv(k: str, v: str) -> KeyValue:
    return KeyValue(key=k, value=AnyValue(string_value=v))


def random_request(rng: random.Random, p_missing: float) -> bytes:
    """Spans where any field may be absent (so merged columns misalign), several
    resources and scopes (some empty), lane keys on some spans only."""
    req = ExportTraceServiceRequest()
    for _ in range(rng.randint(1, 3)):
        rs = req.resource_spans.add()
        rs.resource.attributes.append(_kv(L.SERVICE_NAME_ATTR, f"svc{rng.randint(0, 3)}"))
        for _ in range(rng.randint(0, 3)):
            ss = rs.scope_spans.add()
            for _ in range(rng.choice((0, 1, 2, 7, 30))):
                sp = ss.spans.add()

                def maybe(p: float = p_missing) -> bool:
                    return rng.random() >= p
                if maybe():
                    sp.trace_id = rng.randbytes(16)
                if maybe():
                    sp.span_id = rng.randbytes(8)
                if maybe(0.5):
                    sp.parent_span_id = rng.randbytes(rng.choice((8, 8, 3)))
                if maybe():
                    sp.kind = rng.randint(1, 5)
                if maybe():
                    sp.start_time_unix_nano = rng.randint(1, 2**63)
                if maybe():
                    sp.end_time_unix_nano = rng.randint(1, 2**63)
                if maybe(0.4):
                    sp.status.CopyFrom(Status(code=rng.choice((0, 1, 2, 2))))
                attrs = [_kv("http.route", "/x")]
                if maybe(0.7):
                    attrs.append(_kv(rng.choice((L.REQUEST_LANE_ATTR, "x-lane")), rng.choice(("gray", "", "b"))))
                if maybe(0.9):
                    attrs.append(_kv(L.DYED_ATTR, "1"))
                if maybe(0.8):
                    attrs.append(_kv("tenant", rng.choice(("t1", "t2"))))
                rng.shuffle(attrs)
                sp.attributes.extend(attrs)
    return req.SerializeToString()


@pytest.mark.parametrize("p_missing", [0.0, 0.01, 0.3, 1.0])
def test_merged_columns_agree_with_per_span_reads(p_missing: float) -> None:
    rng = random.Random(int(p_missing * 100))
    for _ in range(150):
        body = random_request(rng, p_missing)
        assert decoded(body, KEYS) == reference(body, KEYS)
        assert decoded(body, Keys()) == reference(body, Keys())


def test_aligned_misaligned_and_absent_columns() -> None:
    """Full columns come from the merged view; a partly present one is read per span; an
    absent one is the default for every span."""
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    spans.add(trace_id=b"a" * 16, span_id=b"1" * 8, kind=2, start_time_unix_nano=5)
    spans.add(trace_id=b"b" * 16, span_id=b"2" * 8, parent_span_id=b"1" * 8, kind=3, start_time_unix_nano=6)
    body = req.SerializeToString()
    merged = columns.parse_merged(body)
    assert merged is not None
    n_req = schema.TraceRequest()
    n_req.ParseFromString(body)
    plain = n_req.resource_spans[0].scope_spans[0].spans
    cols, attrs = columns.scope_columns(merged.resource_spans[0].scope_spans[0].spans, plain, False)
    assert attrs is None
    assert cols == [[b"a" * 16, b"b" * 16], [b"1" * 8, b"2" * 8], [b"", b"1" * 8], [2, 3], [5, 6], [0, 0],
                    [b"", b""]]
    assert columns.scope_columns(None, plain, True)[0] == cols  # no merged view: all per span


def test_keys_absent_from_the_body_skip_attribute_lookups() -> None:
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"a" * 16, span_id=b"1" * 8, start_time_unix_nano=1, attributes=[_kv("http.route", "/")])
    c = decode.decode_traces(req.SerializeToString(), "proto", KEYS)
    assert (c.request_lane, c.dyed, c.extra) == ([b""], [False], {"tenant": [b""]})
