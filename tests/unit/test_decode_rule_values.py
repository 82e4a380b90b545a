"""What routing rules see of a span's attributes, from every decoder: the fast protobuf path
(collect/wire.py: one walk, the per-request walk, the parse of the spans holding a key), the
per-span protobuf path and OTLP/JSON (collect/decode.py), against a plain read of the
opentelemetry-proto messages, on random spans: strings, string arrays (the Java agent's
captured headers), arrays with other element types, other value types, duplicate keys,
values long enough to need two-byte lengths."""

from __future__ import annotations

import random
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from lanewatch import lane as L
from lanewatch.collect import decode, wire
from lanewatch.collect.decode import AttributeStrings, Keys
from lanewatch.config.routing import parse_rules, rule_attributes
from lanewatch.testing import to_otlp_json

RULES = parse_rules([
    {"service": "B", "lane": "gray", "when": {"header": "x-user-id", "equals": "100"}},
    {"service": "B", "lane": "gray", "when": {"cookie": "canary", "equals": "always"}},
    {"service": "B", "lane": "gray", "when": {"query": "uid", "in": ["7", "8"]}},
    {"service": "B", "lane": "gray", "match": {"tenant": "t1"}},
])
EXTRA = tuple(rule_attributes(RULES))
KEYS = Keys(request_lane=(L.REQUEST_LANE_ATTR,), extra=EXTRA)


def plain(value: AnyValue) -> str | tuple[str, ...]:
    """The reference: a string, a string array as a tuple ('' for other elements), else ''."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "array_value":
        return tuple(v.string_value if v.WhichOneof("value") == "string_value" else ""
                     for v in value.array_value.values)
    return ""


def random_value(rng: random.Random) -> AnyValue:
    def text() -> str:
        return rng.choice(["100", "101", "always", "canary=always; s=1", "uid=7&x=1", "t1",
                           "é" * rng.randint(1, 4), "x" * rng.choice([1, 60, 130, 300]), ""])
    kind = rng.random()
    if kind < 0.35:
        return AnyValue(string_value=text())
    if kind < 0.8:
        items = []
        for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
            items.append(AnyValue(string_value=text()) if rng.random() < 0.85 else AnyValue(int_value=5))
        return AnyValue(array_value=ArrayValue(values=items))
    return rng.choice([AnyValue(int_value=100), AnyValue(bool_value=True), AnyValue(double_value=1.5)])


def random_request(rng: random.Random, n_spans: int) -> tuple[bytes, list[dict[str, Any]]]:
    req = ExportTraceServiceRequest()
    want: list[dict[str, Any]] = []
    keys = [*EXTRA, "http.request.header.other", L.REQUEST_LANE_ATTR]
    for r in range(rng.randint(1, 3)):
        rs = req.resource_spans.add()
        rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="B")))
        ss = rs.scope_spans.add()
        for _ in range(n_spans):
            sp = Span(trace_id=rng.randbytes(15) + b"\x01", span_id=rng.randbytes(8), name="GET /",
                      kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=1_800_000_000_000_000_000,
                      end_time_unix_nano=1_800_000_000_100_000_000)
            seen: dict[str, str | tuple[str, ...]] = {}
            for _ in range(rng.randint(0, 6)):
                k = rng.choice(keys)
                v = random_value(rng)
                if k == L.REQUEST_LANE_ATTR:
                    v = AnyValue(string_value="gray")
                sp.attributes.append(KeyValue(key=k, value=v))
                seen[k] = plain(v)  # the last of a key wins
            ss.spans.append(sp)
            want.append({k: seen.get(k, "") for k in EXTRA})
    return req.SerializeToString(), want


def seen_by_rules(c: decode.SpanColumns) -> list[dict[str, Any]]:
    cols = {k: AttributeStrings(c.attr_at, v, c.n) for k, v in c.extra.items()}
    return [{k: cols[k][i] for k in EXTRA} for i in range(c.n)]


def lanes(rows: list[dict[str, Any]]) -> list[str]:
    return [next((r.lane for r in RULES if r.matches(a)), "base") for a in rows]


@pytest.mark.parametrize("seed", range(6))
def test_every_decoder_gives_rules_the_plain_values(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    fast_taken = 0
    for _ in range(8):
        body, want = random_request(rng, rng.choice([1, 5, 40]))
        per_span = decode._traces_pb(body, KEYS).columns()
        assert seen_by_rules(per_span) == want
        fast = wire.fast_traces(body, KEYS)
        if fast is not None:
            fast_taken += 1
            wire.read_deferred(fast, KEYS)
            assert seen_by_rules(fast) == want
        monkeypatch.setattr(decode, "FAST_MIN_BYTES", 0)
        assert seen_by_rules(decode.decode_traces(body, "proto", KEYS)) == want
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        assert seen_by_rules(decode.decode_traces(to_otlp_json(req), "json", KEYS)) == want
        assert lanes(seen_by_rules(per_span)) == lanes(want)
    assert fast_taken >= 4


def test_many_requests_read_in_one_walk_agree() -> None:
    """read_deferred over several requests at once (the pipeline's batch) as over each alone."""
    rng = random.Random(99)
    bodies = [random_request(rng, 30) for _ in range(6)]
    parts = [wire.fast_traces(b, KEYS) for b, _ in bodies]
    got = [p for p in parts if p is not None]
    assert len(got) >= 3
    batch = decode.SpanColumns.concat(got)
    wire.read_deferred(batch, KEYS)
    assert seen_by_rules(batch) == [w for (_, want), p in zip(bodies, parts) if p is not None for w in want]


def test_json_arrays_and_request_lanes() -> None:
    body = (b'{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"B"}}]},'
            b'"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708",'
            b'"kind":2,"startTimeUnixNano":"1800000000000000000","endTimeUnixNano":"1800000000100000000",'
            b'"attributes":[{"key":"http.request.header.x-user-id","value":{"arrayValue":{"values":'
            b'[{"stringValue":"100"},{"intValue":"3"}]}}},{"key":"lane","value":{"arrayValue":{"values":'
            b'[{"stringValue":"gray"}]}}}]}]}]}]}')
    c = decode.decode_traces(body, "json", KEYS)
    assert seen_by_rules(c)[0]["http.request.header.x-user-id"] == ("100", "")
    assert c.request_lane == ["gray"]  # an array lane reads as its first element, as in protobuf
    assert lanes(seen_by_rules(c)) == ["gray"]


@pytest.mark.parametrize(("size", "walked"), [(100, True), (300, True), (9000, True), (20_000, False)])
def test_long_values_are_walked_up_to_16_kib(size: int, walked: bool) -> None:
    """A captured Cookie header is often longer than 127 bytes: two-byte lengths are walked in
    bulk; longer ones are read by parsing the spans that hold a wanted key. Same values either way."""
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    want = []
    for i in range(50):
        cookie = f"session={'s' * size}; canary={'always' if i % 3 else 'never'}"
        ss.spans.append(Span(trace_id=bytes(15) + b"\x01", span_id=i.to_bytes(8, "big"), name="GET",
                             kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=1_800_000_000_000_000_000,
                             end_time_unix_nano=1_800_000_000_100_000_000, attributes=[
                                 KeyValue(key="http.url", value=AnyValue(string_value="https://x/" + "p" * size)),
                                 KeyValue(key="http.request.header.cookie",
                                          value=AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=cookie)])))]))
        want.append("gray" if i % 3 else "base")
    body = req.SerializeToString()
    fast = wire.fast_traces(body, KEYS)
    assert fast is not None
    assert (wire._walk_parts(list(fast.deferred), KEYS) is not None) == walked
    wire.read_deferred(fast, KEYS)
    rows = seen_by_rules(fast)
    assert rows == seen_by_rules(decode._traces_pb(body, KEYS).columns())
    assert [r["http.request.header.cookie"][0].endswith("always") for r in rows] == [w == "gray" for w in want]
    assert lanes(rows) == want
