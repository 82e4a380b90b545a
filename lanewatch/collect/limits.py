"""How many objects an OTLP request would build, bounded before it is parsed.

A body's size does not bound what parsing it builds: 16 MiB of empty spans
(``12 00`` repeated, 15 KB gzipped) are 8 million span messages, and 16 MiB of
OTLP/JSON ``{},`` are 5 million dicts. So before a request is parsed:

* **protobuf**: the entries on the path to the items (traces: resource_spans ->
  resource attributes and scope_spans -> spans; metrics: resource_metrics -> resource
  attributes and scope_metrics -> metrics -> gauge/sum/histogram/... -> data_points)
  are counted, every field met on the way included, and the request is refused once
  the count passes the limit. First a bound in C: every such entry starts with its
  tag byte (field 1 or 2, ... length delimited, a non-minimal tag too: ``0x12`` or
  ``0x92`` for field 2), so when those bytes occur at most ``limit`` times, no walk is
  needed. Otherwise the fields are walked (in Python, at most ``limit`` steps, so a
  refusal costs at most that). Span attributes (8 million empty ones fit in 16 MiB)
  are bounded the same way: their tag bytes (``0x4a``/``0xca``) counted in C, and
  only above the limit every field of every span walked.
  Groups (wire types 3 and 4, which OTLP never uses) are refused as malformed here.
* **JSON**: objects and arrays (``{`` and ``[`` outside strings) are counted in C
  (strings cut out with one regular expression only when the raw count is above the
  limit), against :attr:`Limits.json_values`; the spans themselves are counted
  again as the parsed document is read (:func:`lanewatch.collect.decode.decode_traces`).

Over a limit: :class:`~lanewatch.collect.ingest.TooLarge`, which the receivers answer
with HTTP 413 / gRPC ``RESOURCE_EXHAUSTED`` (not retryable), counted as
``requests_refused_<reason>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lanewatch.collect.ingest import DecodeError, Format, Signal, TooLarge

#: Per level, the fields descended into: traces resource_spans(1) -> resource(1) (its
#: attributes are counted) and scope_spans(2) -> spans(2)
TRACE_PATH: tuple[frozenset[int], ...] = (frozenset({1}), frozenset({1, 2}), frozenset())
#: ... and every field of every span (attributes(9) among them)
SPAN_FIELDS_PATH: tuple[frozenset[int], ...] = (*TRACE_PATH[:2], frozenset({2}), frozenset())
#: resource_metrics(1) -> resource(1), scope_metrics(2) -> metrics(2) -> gauge(5), sum(7),
#: histogram(9), exponential_histogram(10), summary(11) -> data_points(1)
METRIC_PATH: tuple[frozenset[int], ...] = (frozenset({1}), frozenset({1, 2}), frozenset({2}),
                                           frozenset({5, 7, 9, 10, 11}), frozenset())
#: span attributes(9), as a tag's first byte (minimal or not)
_ATTRIBUTE_TAGS = b"\x4a\xca"
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


@dataclass(frozen=True)
class Limits:
    """Per request: spans (traces), data points (metrics), JSON objects and arrays."""

    spans: int = 200_000
    points: int = 200_000
    json_values: int = 1_000_000
    attributes: int = 1_000_000


def check_request(signal: Signal, body: bytes, fmt: Format, limits: Limits) -> None:
    """Raise :class:`TooLarge` when ``body`` would build more than the limits allow (JSON:
    more objects and arrays; the spans of a JSON request are counted while it is read). Protobuf
    logs are not counted here: their decoder makes no object per record (``collect/logs.py``)."""
    if fmt == "json":
        if len(body) // 2 <= limits.json_values:  # every object or array takes 2 bytes or more
            return
        n = json_values(body, limits.json_values)
        if n > limits.json_values:
            raise TooLarge(f"OTLP/JSON request has more than {limits.json_values} objects and "
                           f"arrays (max_json_values_per_request); send smaller batches",
                           "too_many_json_values")
        return
    if signal == "traces":
        if pb_entries(body, TRACE_PATH, limits.spans) > limits.spans:
            raise TooLarge(f"request has more than {limits.spans} spans (counting the resource, its "
                           f"attributes and the scope entries that hold them; max_spans_per_request); "
                           f"send smaller batches", "too_many_spans")
        if (len(body) // 2 > limits.attributes and _count(body, _ATTRIBUTE_TAGS) > limits.attributes
                and pb_entries(body, SPAN_FIELDS_PATH, limits.attributes, shortcut=False) > limits.attributes):
            raise TooLarge(f"request has more than {limits.attributes} span attributes (counting every "
                           f"field of its spans; max_attributes_per_request); send smaller batches",
                           "too_many_attributes")
    elif signal == "metrics" and pb_entries(body, METRIC_PATH, limits.points) > limits.points:
        raise TooLarge(f"request has more than {limits.points} data points (counting the resource, "
                       f"scope and metric entries that hold them; max_points_per_request); send "
                       f"smaller batches", "too_many_points")


def json_values(body: bytes, limit: int) -> int:
    """Objects and arrays in a JSON text (exactly, when the raw count of ``{`` and ``[`` is above
    ``limit``; else that raw count, an upper bound)."""
    n = body.count(b"{") + body.count(b"[")
    if n <= limit:
        return n
    bare = _JSON_STRING.sub(b"", body)
    return bare.count(b"{") + bare.count(b"[")


def _count(body: bytes, values: bytes) -> int:
    """How many bytes of ``body`` are one of ``values`` (one pass in C)."""
    return len(body) - len(body.translate(None, values))


def _tag_bytes(path: tuple[frozenset[int], ...]) -> bytes:
    """First bytes a length-delimited tag of any field on the path can start with."""
    numbers = {1, 2} | {f for level in path for f in level}
    first = {(f << 3 | 2) & 0x7F for f in numbers}
    return bytes(sorted(first | {b | 0x80 for b in first}))


def pb_entries(body: bytes, path: tuple[frozenset[int], ...], limit: int, shortcut: bool = True) -> int:
    """Fields on ``path`` (every field at each level walked, descending into the listed
    field numbers; the last level's fields are the items), or (``shortcut``) an upper bound
    of the entries on the path that is at most ``limit``; once the count passes ``limit``
    the walk stops and ``limit + 1`` is returned. Raises :class:`DecodeError` for bytes
    that are not protobuf."""
    if shortcut and len(body) // 2 <= limit:  # every field takes 2 bytes or more
        return len(body) // 2
    bound = _count(body, _tag_bytes(path)) if shortcut else limit + 1
    if bound <= limit:
        return bound
    count = 0
    stack = [(0, len(body), 0)]  # (position, end, level)
    data = body
    last = len(path) - 1
    while stack:
        pos, end, level = stack.pop()
        descend = path[level] if level < last else frozenset()
        while pos < end:
            count += 1
            if count > limit:
                return limit + 1
            tag, pos = _varint(data, pos, end)
            wire = tag & 7
            if wire == 0:
                _, pos = _varint(data, pos, end)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == 2:
                size, pos = _varint(data, pos, end)
                if (tag >> 3) in descend:
                    stack.append((pos + size, end, level))
                    end, level = pos + size, level + 1
                    if end > len(data):
                        raise DecodeError("malformed OTLP protobuf: a length runs past the end")
                    descend = path[level] if level < last else frozenset()
                    continue
                pos += size
            else:
                raise DecodeError(f"malformed OTLP protobuf: wire type {wire} at byte {pos}")
        if pos > end:
            raise DecodeError("malformed OTLP protobuf: a field runs past the end of its message")
    return count


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    b = data[pos] if pos < end else -1
    if 0 <= b < 0x80:  # the common case: one byte
        return b, pos + 1
    value = shift = 0
    for i in range(pos, min(pos + 10, end)):
        b = data[i]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i + 1
        shift += 7
    raise DecodeError("malformed OTLP protobuf: a varint runs past the end")
