"""OTLP logs -> liveness evidence. lanewatch judges no log; it counts them and drops them.

A log record says its process was running when it was written, as a span or a metric
point does: each resource with at least one record is observed alive at its newest
record's time (``time_unix_nano``, else ``observed_time_unix_nano``, else now). Like
span evidence it does not *revive* an instance that said goodbye (heartbeat 0): a
process logs its own shutdown after the goodbye; only a heartbeat brings it back.

A record is rejected (counted, partial success) when its ``trace_id`` is neither empty
nor 16 bytes, or its ``span_id`` neither empty nor 8 bytes (OTLP/JSON: not hex or
base64 of that size), or a time is not an integer below 2^63. A malformed request
(bytes that do not parse, JSON of the wrong shape) is a :class:`DecodeError`.

Protobuf is parsed with a reduced schema that declares only the fields read here.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError as ProtoDecodeError

from lanewatch.collect.decode import (  # the OTLP/JSON readers
    _json_attrs,
    _load_json,
    _resource_from,
)
from lanewatch.collect.ingest import DecodeError, Format
from lanewatch.collect.spans import Keys, Resource, resource_pb

_PKG = "lanewatch.logs"
F = descriptor_pb2.FieldDescriptorProto
_INT64_MAX = 2**63 - 1
INVALID = ("{} log records rejected: trace_id must be empty or 16 bytes, span_id empty or 8 bytes, "
           "times integers below 2^63")


def _build() -> tuple[Any, Any]:
    fd = descriptor_pb2.FileDescriptorProto(name="lanewatch_logs.proto", package=_PKG, syntax="proto3")

    def message(name: str, *fields: tuple[str, int, int, str, bool]) -> None:
        m = fd.message_type.add(name=name)
        for fname, number, ftype, type_name, repeated in fields:
            f = m.field.add(name=fname, number=number, type=ftype,
                            label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if type_name:
                f.type_name = f".{_PKG}.{type_name}"

    msg = F.TYPE_MESSAGE
    message("AnyValue", ("string_value", 1, F.TYPE_STRING, "", False))
    message("Resource", ("attributes", 1, msg, "Resource.AttributesEntry", True))
    entry = fd.message_type[-1].nested_type.add(name="AttributesEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=msg, label=F.LABEL_OPTIONAL, type_name=f".{_PKG}.AnyValue")
    # the records of a scope merged into one message: each field's values for all records
    message("Merged", ("time_unix_nano", 1, F.TYPE_FIXED64, "", True), ("trace_id", 9, F.TYPE_BYTES, "", True),
            ("span_id", 10, F.TYPE_BYTES, "", True), ("observed_time_unix_nano", 11, F.TYPE_FIXED64, "", True))
    message("Record")  # no field: only counted
    for view, records in (("", ("log_records", 2, msg, "Record", True)),
                          ("Merged", ("log_records", 2, msg, "Merged", False))):
        message(f"{view}ScopeLogs", records)
        message(f"{view}ResourceLogs", ("resource", 1, msg, "Resource", False),
                ("scope_logs", 2, msg, f"{view}ScopeLogs", True))
        message(f"{view}Request", ("resource_logs", 1, msg, f"{view}ResourceLogs", True))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return tuple(message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PKG}.{n}"))
                 for n in ("Request", "MergedRequest"))


#: ``ExportLogsServiceRequest`` with resources, each record an empty message (to count them),
#: and the same with each scope's records merged into one (their fields as columns): neither
#: makes an object per field of a record, so a request of 8M empty records stays cheap.
LogsRequest, MergedLogsRequest = _build()


@dataclass(frozen=True)
class Seen:
    """A resource that sent log records, and when its newest one was written (0: unknown)."""

    resource: Resource
    time_ns: int


@dataclass(frozen=True)
class DecodedLogs:
    seen: list[Seen]
    accepted: int
    rejected: int

    @property
    def why(self) -> str:
        return INVALID.format(self.rejected) if self.rejected else ""


def decode_logs(body: bytes, fmt: Format, keys: Keys) -> DecodedLogs:
    """Decode an ExportLogsServiceRequest; raise DecodeError when malformed."""
    if fmt == "json":
        return _logs_json(body, keys)
    req, merged = LogsRequest(), MergedLogsRequest()
    try:
        req.ParseFromString(body)
        merged.ParseFromString(body)
    except ProtoDecodeError as e:
        raise DecodeError(f"malformed OTLP protobuf: {e}") from None
    seen: list[Seen] = []
    accepted = rejected = 0
    for rl, mrl in zip(req.resource_logs, merged.resource_logs):
        newest = good = 0
        for sl, msl in zip(rl.scope_logs, mrl.scope_logs):
            n = len(sl.log_records)
            if not n:
                continue
            m = msl.log_records
            # a record with an invalid field: each is counted once (exact unless a record has
            # several invalid fields: then at most the records with one)
            bad = sum(len(t) not in (0, 16) for t in m.trace_id) + sum(len(s) not in (0, 8) for s in m.span_id)
            t = max(max(m.time_unix_nano, default=0), max(m.observed_time_unix_nano, default=0))
            if t > _INT64_MAX:  # fixed64 times of 2^63 and above: invalid
                cols = (m.time_unix_nano, m.observed_time_unix_nano)
                bad += sum(x > _INT64_MAX for col in cols for x in col)
                t = max((x for col in cols for x in col if x <= _INT64_MAX), default=0)
            bad = min(bad, n)
            newest = max(newest, t)
            good += n - bad
            rejected += bad
        if good:
            seen.append(Seen(resource_pb(rl.resource.attributes, keys), newest))
            accepted += good
    return DecodedLogs(seen, accepted, rejected)


def _logs_json(body: bytes, keys: Keys) -> DecodedLogs:
    doc = _load_json(body)
    seen: list[Seen] = []
    accepted = rejected = 0
    try:
        for rl in doc.get("resourceLogs") or ():
            newest = good = 0
            for sl in rl.get("scopeLogs") or ():
                for rec in sl.get("logRecords") or ():
                    t = _record_time(rec)
                    if t is None:
                        rejected += 1
                        continue
                    newest = max(newest, t)
                    good += 1
            if good:
                seen.append(Seen(_resource_from(_json_attrs((rl.get("resource") or {}).get("attributes")), keys),
                                 newest))
                accepted += good
    except (AttributeError, TypeError) as e:
        raise DecodeError(f"malformed OTLP JSON: unexpected structure ({e})") from None
    return DecodedLogs(seen, accepted, rejected)


def _record_time(rec: dict[str, Any]) -> int | None:
    """The record's newest time (0 when none), or None when the record is invalid."""
    if not (_json_id_ok(rec.get("traceId"), 16) and _json_id_ok(rec.get("spanId"), 8)):
        return None
    newest = 0
    for key in ("timeUnixNano", "observedTimeUnixNano"):
        v = rec.get(key) or 0
        if type(v) is str and v.isdigit():  # int64 as a string, per the JSON mapping
            v = int(v)
        if type(v) is not int or not 0 <= v <= _INT64_MAX:
            return None
        newest = max(newest, v)
    return newest


def _json_id_ok(value: Any, size: int) -> bool:
    if not value:
        return True
    if type(value) is not str:
        return False
    if len(value) == 2 * size:
        try:
            bytes.fromhex(value)
            return True
        except ValueError:
            pass
    try:
        return len(base64.b64decode(value, validate=True)) == size
    except (ValueError, binascii.Error):
        return False
