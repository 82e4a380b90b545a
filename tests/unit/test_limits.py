"""The per-request object counts of :mod:`lanewatch.collect.limits` against what the
protobuf parser and orjson build."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanewatch.collect import limits, schema
from lanewatch.collect.ingest import DecodeError, TooLarge
from lanewatch.testing import TraceBuilder, heartbeat_request


def entries(req: object) -> int:
    """What the walk counts on the trace path: resource_spans, each one's resource and
    scope_spans, the resource's attributes, each scope's spans."""
    n = 0
    for rs in req.resource_spans:  # type: ignore[attr-defined]
        n += 1 + 1 + len(rs.scope_spans) + len(rs.resource.attributes)
        n += sum(len(ss.spans) for ss in rs.scope_spans)
    return n


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ABC"), st.sampled_from(["", "gray"]), st.integers(1, 40)),
                min_size=1, max_size=6))
def test_the_walk_counts_exactly_what_the_parser_builds(groups: list[tuple[str, str, int]]) -> None:
    tb = TraceBuilder()
    for service, lane, n in groups:
        for _ in range(n):
            tb.hop(service, lane=lane, request_lane=lane, attributes={"k": "v"})
    req = tb.request()
    body = bytes(req.SerializeToString())
    total = entries(req)
    assert limits.pb_entries(body, limits.TRACE_PATH, 10**9, shortcut=False) == total
    # the limit is exact: at the count the request passes, one below it is refused
    limits.check_request("traces", body, "proto", limits.Limits(spans=total))
    with pytest.raises(TooLarge) as e:
        limits.check_request("traces", body, "proto", limits.Limits(spans=total - 1))
    assert e.value.reason == "too_many_spans"
    # the bound in C never undercounts
    assert limits.pb_entries(body, limits.TRACE_PATH, 10**9) >= total


def test_non_minimal_tags_are_counted() -> None:
    body = b"\x0a\x07\x12\x05\x92\x00\x00\x12\x00"  # a span tagged 92 00 (field 2, not minimal)
    req = schema.BlobTraceRequest()
    req.ParseFromString(body)
    assert len(req.resource_spans[0].scope_spans[0].spans) == 2
    assert limits.pb_entries(body, limits.TRACE_PATH, 1) == 2  # over the limit of 1
    assert limits.pb_entries(body, limits.TRACE_PATH, 100, shortcut=False) == 4


def test_malformed_bytes_are_refused_as_malformed() -> None:
    body = b"\x0a\x7f" + b"\x12\x00" * 10  # a length past the end
    with pytest.raises(DecodeError, match="malformed OTLP protobuf"):
        limits.pb_entries(body, limits.TRACE_PATH, 1, shortcut=False)
    with pytest.raises(DecodeError, match="wire type"):
        limits.pb_entries(b"\x0b" * 20, limits.TRACE_PATH, 1, shortcut=False)  # a group


def test_metric_points_are_counted() -> None:
    body = heartbeat_request("A", "gray", "a-1")
    # resource_metrics; its resource and scope_metrics; the resource's 3 attributes and the
    # metric; the metric's name and gauge; the gauge's one point
    assert limits.pb_entries(body, limits.METRIC_PATH, 100, shortcut=False) == 10
    limits.check_request("metrics", body, "proto", limits.Limits(points=10))
    with pytest.raises(TooLarge, match="max_points_per_request"):
        limits.check_request("metrics", body, "proto", limits.Limits(points=9))


def test_span_attributes_are_bounded() -> None:
    tb = TraceBuilder()
    tb.hop("A", attributes={f"k{i}": "v" for i in range(50)})
    body = tb.body()
    limits.check_request("traces", body, "proto", limits.Limits(attributes=60))
    flood = body + b"\x0a\x00"  # (any bytes: the tag count is what is cheap)
    assert limits.pb_entries(flood, limits.SPAN_FIELDS_PATH, 10**6, shortcut=False) >= 50
    with pytest.raises(TooLarge, match="max_attributes_per_request"):
        limits.check_request("traces", body, "proto", limits.Limits(attributes=49))


@pytest.mark.parametrize(("text", "values"), [
    (b'{"a": [1, {}, []]}', 4),
    (b'{"a": "{{{[[[", "b": "x\\"{"}', 1),  # braces and an escaped quote inside strings
    (b"[]", 1),
])
def test_json_values_are_objects_and_arrays_outside_strings(text: bytes, values: int) -> None:
    orjson.loads(text)
    assert limits.json_values(text, 0) == values


def test_json_spans_are_counted_after_parsing() -> None:
    from lanewatch.collect.decode import Keys, decode_traces
    tb = TraceBuilder()
    for _ in range(10):
        tb.hop("A")
    body = tb.body(fmt="json")
    assert decode_traces(body, "json", Keys(), max_spans=12).n == 10  # 10 spans, 1 resource, 1 scope
    with pytest.raises(TooLarge, match="max_spans_per_request"):
        decode_traces(body, "json", Keys(), max_spans=11)
