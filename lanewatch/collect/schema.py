"""A reduced OTLP protobuf schema: only the fields lanewatch reads.

Built once at import with ``descriptor_pb2``. ``attributes`` are declared as
``map<string, AnyValue>``: a map entry has the same wire format as the
repeated ``KeyValue`` list, so OTLP bytes parse unchanged and an attribute
lookup happens in C. On spans the map's values (and the span's ``status``)
are declared ``bytes``: a lookup returns the still-encoded AnyValue, which
callers turn into a string once per distinct value (:func:`any_string`,
cached by the name tables), so no message object is made per span.
``AnyValue`` declares ``string_value`` (and the numbers a sampling weight may
be): any other value type reads as the empty string. Undeclared fields are skipped by the parser; with
duplicate keys the last one wins.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PKG = "lanewatch.reduced"
F = descriptor_pb2.FieldDescriptorProto


def _field(msg: Any, name: str, number: int, ftype: int, type_name: str = "",
           repeated: bool = False) -> None:
    f = msg.field.add(name=name, number=number, type=ftype,
                      label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
    if type_name:
        f.type_name = f".{_PKG}.{type_name}"


def _attributes(msg: Any, number: int, raw: bool = False) -> None:
    """Declare ``map<string, AnyValue> attributes = number`` on ``msg`` (``raw``: the
    values as ``bytes``, the AnyValue still encoded: a lookup then makes no message)."""
    entry = msg.nested_type.add(name="AttributesEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, F.TYPE_STRING)
    if raw:
        _field(entry, "value", 2, F.TYPE_BYTES)
    else:
        _field(entry, "value", 2, F.TYPE_MESSAGE, "AnyValue")
    f = msg.field.add(name="attributes", number=number, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED)
    f.type_name = f".{_PKG}.{msg.name}.AttributesEntry"


def _build() -> dict[str, Any]:
    fd = descriptor_pb2.FileDescriptorProto(name="lanewatch_reduced.proto", package=_PKG, syntax="proto3")
    m = fd.message_type.add(name="AnyValue")
    _field(m, "string_value", 1, F.TYPE_STRING)
    _field(m, "int_value", 3, F.TYPE_INT64)  # read for sampling weights (collect/weights.py)
    _field(m, "double_value", 4, F.TYPE_DOUBLE)
    _field(m, "array_value", 5, F.TYPE_MESSAGE, "ArrayValue")
    m = fd.message_type.add(name="ArrayValue")
    _field(m, "values", 1, F.TYPE_MESSAGE, "AnyValue", repeated=True)
    m = fd.message_type.add(name="Resource")
    _attributes(m, 1)
    m = fd.message_type.add(name="Status")
    _field(m, "code", 3, F.TYPE_INT32)
    m = fd.message_type.add(name="Span")
    _field(m, "trace_id", 1, F.TYPE_BYTES)
    _field(m, "span_id", 2, F.TYPE_BYTES)
    _field(m, "trace_state", 3, F.TYPE_BYTES)  # a string in trace.proto; bytes: junk is counted, not fatal
    _field(m, "parent_span_id", 4, F.TYPE_BYTES)
    _field(m, "kind", 6, F.TYPE_INT32)
    _field(m, "start_time_unix_nano", 7, F.TYPE_FIXED64)
    _field(m, "end_time_unix_nano", 8, F.TYPE_FIXED64)
    _attributes(m, 9, raw=True)
    _field(m, "status", 15, F.TYPE_BYTES)  # the Status message, still encoded
    # the request, and the same request with each span left encoded (for collect/wire.py)
    for prefix, span_type, type_name in (("", F.TYPE_MESSAGE, "Span"), ("Blob", F.TYPE_BYTES, "")):
        m = fd.message_type.add(name=f"{prefix}ScopeSpans")
        _field(m, "spans", 2, span_type, type_name, repeated=True)
        m = fd.message_type.add(name=f"{prefix}ResourceSpans")
        _field(m, "resource", 1, F.TYPE_MESSAGE, "Resource")
        _field(m, "scope_spans", 2, F.TYPE_MESSAGE, f"{prefix}ScopeSpans", repeated=True)
        m = fd.message_type.add(name=f"{prefix}ExportTraceServiceRequest")
        _field(m, "resource_spans", 1, F.TYPE_MESSAGE, f"{prefix}ResourceSpans", repeated=True)

    m = fd.message_type.add(name="NumberDataPoint")
    _field(m, "time_unix_nano", 3, F.TYPE_FIXED64)
    _field(m, "as_double", 4, F.TYPE_DOUBLE)
    _field(m, "as_int", 6, F.TYPE_SFIXED64)
    m = fd.message_type.add(name="Gauge")
    _field(m, "data_points", 1, F.TYPE_MESSAGE, "NumberDataPoint", repeated=True)
    m = fd.message_type.add(name="Metric")
    _field(m, "name", 1, F.TYPE_STRING)
    _field(m, "gauge", 5, F.TYPE_MESSAGE, "Gauge")
    _field(m, "sum", 7, F.TYPE_MESSAGE, "Gauge")  # Sum's data_points share Gauge's field number
    m = fd.message_type.add(name="ScopeMetrics")
    _field(m, "metrics", 2, F.TYPE_MESSAGE, "Metric", repeated=True)
    m = fd.message_type.add(name="ResourceMetrics")
    _field(m, "resource", 1, F.TYPE_MESSAGE, "Resource")
    _field(m, "scope_metrics", 2, F.TYPE_MESSAGE, "ScopeMetrics", repeated=True)
    m = fd.message_type.add(name="ExportMetricsServiceRequest")
    _field(m, "resource_metrics", 1, F.TYPE_MESSAGE, "ResourceMetrics", repeated=True)

    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    names = ("ExportTraceServiceRequest", "ExportMetricsServiceRequest", "Span", "AnyValue", "Status",
             "ScopeSpans", "BlobExportTraceServiceRequest", "BlobScopeSpans")
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PKG}.{n}")) for n in names}


_CLASSES = _build()
TraceRequest: Any = _CLASSES["ExportTraceServiceRequest"]
MetricsRequest: Any = _CLASSES["ExportMetricsServiceRequest"]
#: ``ExportTraceServiceRequest`` with resources parsed and every span kept as its bytes.
BlobTraceRequest: Any = _CLASSES["BlobExportTraceServiceRequest"]
#: Frames span bytes (``spans`` as bytes) the way :data:`ScopeSpans` parses them as spans.
BlobScopeSpans: Any = _CLASSES["BlobScopeSpans"]
ScopeSpans: Any = _CLASSES["ScopeSpans"]
AnyValue: Any = _CLASSES["AnyValue"]


def varint(n: int) -> bytes:
    """``n`` (>= 0) as a protobuf base-128 varint."""
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out) + bytes((n,))


#: What :func:`any_string` gives for an undecodable value (e.g. invalid UTF-8): not a
#: valid lane name, so the name tables count it as junk.
UNDECODABLE = "\ufffd"


def any_string(raw: bytes | str) -> str:
    """The string in an encoded AnyValue ('' for other value types); str passes through.

    A string array gives its first element: that is how the Java agent records a
    captured request header (``http.request.header.x-mse-tag: ["gray"]``)."""
    if isinstance(raw, str) or not raw:
        return raw if isinstance(raw, str) else ""
    m = _CLASSES["AnyValue"]()
    try:
        m.ParseFromString(raw)
    except Exception:  # noqa: BLE001 -- junk: counted by the caller, never raised
        return UNDECODABLE
    if m.HasField("array_value") and m.array_value.values:
        return str(m.array_value.values[0].string_value)
    return str(m.string_value)


def any_value(raw: bytes | str | tuple[str, ...]) -> str | tuple[str, ...]:
    """What routing rules read from an encoded AnyValue: its string, or a string array as a
    tuple (an element of another type reads as ''); other types read as ''. str and tuple
    (the JSON decoder's forms) pass through."""
    if not isinstance(raw, bytes):
        return raw
    if not raw:
        return ""
    got = _VALUES.get(raw)
    if got is None:
        got = _any_value(raw)
        if len(_VALUES) < MAX_CACHED_VALUES and len(raw) <= MAX_CACHED_STATUS_BYTES:
            _VALUES[raw] = got
    return got


#: Distinct encoded values :func:`any_value` keeps decoded (user ids, header values repeat).
MAX_CACHED_VALUES = 10_000
_VALUES: dict[bytes, str | tuple[str, ...]] = {}


def _any_value(raw: bytes) -> str | tuple[str, ...]:
    m = _CLASSES["AnyValue"]()
    try:
        m.ParseFromString(raw)
    except Exception:  # noqa: BLE001 -- junk: counted by the caller, never raised
        return UNDECODABLE
    if m.HasField("array_value"):
        return tuple(str(v.string_value) for v in m.array_value.values)
    return str(m.string_value)


#: Encoded statuses longer than this (a long message) are not cached: the cache lives as long as
#: the process, and its entry count alone would not bound its bytes.
MAX_CACHED_STATUS_BYTES = 256


class StatusCodes(dict[bytes, int]):
    """Encoded ``Status`` -> its code, parsed once per distinct encoding."""

    def __missing__(self, raw: bytes) -> int:
        m = _CLASSES["Status"]()
        try:
            m.ParseFromString(raw)
            code = int(m.code)
        except Exception:  # noqa: BLE001 -- a broken status is no error status
            code = 0
        if len(self) < 10_000 and len(raw) <= MAX_CACHED_STATUS_BYTES:  # long ones: parsed each time
            self[raw] = code
        return code
