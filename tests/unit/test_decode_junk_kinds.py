"""A junk span kind in OTLP/JSON reads as UNSPECIFIED (0); it never rejects the request."""

from __future__ import annotations

import orjson
import pytest

from lanewatch.collect.decode import decode_traces
from lanewatch.collect.spans import Keys


def body(kind: object) -> bytes:
    span = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
            "startTimeUnixNano": "1800000000000000000", "endTimeUnixNano": "1800000000001000000"}
    good = {**span, "spanId": "b7ad6b7169203332", "kind": 2}
    big = type(kind) is int and not -(2**63) <= kind < 2**64  # orjson writes no such integer
    doc = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "kind": "K" if big else kind},
                                                                     good]}]}]})
    return doc.replace(b'"K"', str(kind).encode()) if big else doc


@pytest.mark.parametrize("kind", [2**64, -(2**64), 2**63, 6, -1, 1.5, 1e300, True, None, [], {}, "SPAN_KIND_NOPE",
                                  "2"], ids=repr)
def test_junk_kind_reads_as_unspecified(kind: object) -> None:
    raw = body(kind)
    if kind == 2**64:
        assert b"18446744073709551616" in raw  # orjson reads it back as a float
    cols = decode_traces(raw, "json", Keys())
    assert cols.n == 2 and cols.rejected == 0
    assert cols.kind.tolist() == [0, 2]


@pytest.mark.parametrize(("kind", "want"), [(3, 3), ("SPAN_KIND_CLIENT", 3), (3.0, 3), (5, 5)])
def test_valid_kinds_still_read(kind: object, want: int) -> None:
    assert decode_traces(body(kind), "json", Keys()).kind.tolist() == [want, 2]


def test_the_status_cache_keeps_only_short_statuses() -> None:
    """Encoded statuses are cached process-wide by their bytes: a sender's long, distinct
    status messages must not stay in memory (100 of 100 KB each here)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Status

    from lanewatch.collect.spans import STATUS_CODES
    from lanewatch.testing import TraceBuilder

    tb = TraceBuilder()
    for _ in range(100):
        tb.hop("A", error=True)
    req = ExportTraceServiceRequest.FromString(tb.body())
    for i, sp in enumerate(req.resource_spans[0].scope_spans[0].spans):
        sp.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=f"{i}" + "x" * 100_000))
    cols = decode_traces(req.SerializeToString(), "proto", Keys())
    assert cols.err.tolist() == [True] * 100  # still read right
    assert sum(map(len, STATUS_CODES)) < 1_000_000
