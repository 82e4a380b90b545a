"""Whole span columns from a second, "merged" parse of the same protobuf bytes.

In protobuf, occurrences of a *singular* message field on the wire are merged
into one message, and *repeated* fields inside it concatenate. :data:`MergedRequest`
declares ``ScopeSpans.spans`` as such a singular message whose span fields are
repeated, so one ``ParseFromString`` gives, per scope, each field's values for all
spans in wire order, built in C with no per-span Python object.

A column lines up with the spans only when every span carries the field exactly
once. proto3 omits defaults (no parent, kind 0, a zero time, no status), so a column
is used when its length equals the number of spans, or when it is empty (the default
for every span); any other field is read per span from the ordinary parse
(:mod:`.schema`), and so are the attribute maps when the caller needs them.

Only canonically encoded spans are guaranteed to read as the per-span parse reads
them (every OTLP encoder writes them so): a scope where one span repeats a singular
field (the per-span parse keeps the last) while another lacks it, or where kind or a
time is written packed (the per-span parse skips it, the merged one reads it), can
give a column of the right length with other values.

:mod:`.wire` uses the same view for how often each field occurs per scope (each
attribute KeyValue is kept encoded, so it can be counted) and, serialized again,
for kind and times as packed columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PKG = "lanewatch.merged"
F = descriptor_pb2.FieldDescriptorProto

#: (name in SpanColumns order, field number, type): the span fields read as columns.
FIELDS = (("trace_id", 1, F.TYPE_BYTES), ("span_id", 2, F.TYPE_BYTES), ("parent_span_id", 4, F.TYPE_BYTES),
          ("kind", 6, F.TYPE_INT32), ("start_time_unix_nano", 7, F.TYPE_FIXED64),
          ("end_time_unix_nano", 8, F.TYPE_FIXED64), ("status", 15, F.TYPE_BYTES),
          ("trace_state", 3, F.TYPE_BYTES))


def _field(msg: Any, name: str, number: int, ftype: int, type_name: str = "", repeated: bool = False) -> None:
    f = msg.field.add(name=name, number=number, type=ftype,
                      label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
    if type_name:
        f.type_name = f".{_PKG}.{type_name}"


def _build() -> Any:
    fd = descriptor_pb2.FileDescriptorProto(name="lanewatch_merged.proto", package=_PKG, syntax="proto3")
    m = fd.message_type.add(name="Spans")
    for name, number, ftype in FIELDS:
        _field(m, name, number, ftype, repeated=True)
    _field(m, "attributes", 9, F.TYPE_BYTES, repeated=True)  # every KeyValue, still encoded
    m = fd.message_type.add(name="ScopeSpans")
    _field(m, "spans", 2, F.TYPE_MESSAGE, "Spans")  # singular: every span merges into one
    m = fd.message_type.add(name="ResourceSpans")
    _field(m, "scope_spans", 2, F.TYPE_MESSAGE, "ScopeSpans", repeated=True)
    m = fd.message_type.add(name="ExportTraceServiceRequest")
    _field(m, "resource_spans", 1, F.TYPE_MESSAGE, "ResourceSpans", repeated=True)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PKG}.ExportTraceServiceRequest"))


MergedRequest: Any = _build()


def parse_merged(body: bytes) -> Any | None:
    """The merged view of a request, or None when it does not parse (read per span then)."""
    m = MergedRequest()
    try:
        m.ParseFromString(body)
    except Exception:  # noqa: BLE001 -- the ordinary parse decides what is malformed
        return None
    return m


def scope_columns(merged: Any | None, spans: Sequence[Any], need_attrs: bool
                  ) -> tuple[list[list[Any]], Sequence[Any] | None]:
    """The :data:`FIELDS` columns of one scope's ``spans`` (status still encoded) and, when
    ``need_attrs``, the spans' attribute maps.

    ``merged`` is the same scope's merged ``Spans`` message (None: read all per span)."""
    n = len(spans)
    cols: dict[str, list[Any]] = {}
    if merged is not None:
        for name, _, ftype in FIELDS:
            col = getattr(merged, name)
            if len(col) == n:
                cols[name] = list(col)
            elif not col:  # no span has it: the default for all
                cols[name] = [0 if ftype != F.TYPE_BYTES else b""] * n
    rest = [name for name, _, _ in FIELDS if name not in cols] + (["attributes"] if need_attrs else [])
    if len(rest) == 1:
        cols[rest[0]] = list(map(attrgetter(rest[0]), spans))
    elif rest:
        got = list(zip(*map(attrgetter(*rest), spans))) or [()] * len(rest)
        cols.update(zip(rest, map(list, got)))
    attrs = cols.pop("attributes", None) if need_attrs else None
    return [cols[name] for name, _, _ in FIELDS], attrs
