"""OTLP (protobuf or JSON) -> columns. Protobuf and JSON stop here.

Protobuf is parsed with the reduced schema (:mod:`.schema`) and once more as
a merged view (:mod:`.columns`) that gives whole columns per scope; fields no
column gives are read with ``attrgetter``/``map`` over each scope's spans, so
the per-span work happens in C. JSON (``orjson``) is walked in Python; it is
the slower path, used by browsers and some SDKs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import methodcaller
from typing import Any

import numpy as np
import orjson
from google.protobuf.message import DecodeError as ProtoDecodeError

from lanewatch import lane as L
from lanewatch.collect import columns, schema, wire
from lanewatch.collect.ingest import DecodeError, Format, TooLarge
from lanewatch.collect.schema import any_value
from lanewatch.collect.spans import (
    STATUS_CODES,
    Keys,
    RawValue,
    Resource,
    SpanColumns,
    any_wanted_key,
    attribute_column,
    first_set,
    resource_pb,
    wanted_keys,
)
from lanewatch.rules.match import AttrValue

#: re-exported: the decoded form lives in :mod:`.spans`, decoders and the pipeline import it
__all__ = ["FAST_MIN_BYTES", "STATUS_CODES", "AttributeStrings", "Heartbeat", "Keys", "RawSpans",
           "Resource", "SpanColumns", "any_wanted_key", "attribute_column", "decode_metrics",
           "decode_traces", "first_set", "resource_pb", "wanted_keys"]

_U64 = np.dtype(">u8")
_INT64_MAX = 2**63 - 1
_INVALID = ("{} spans rejected: trace_id must be 16 bytes and not all zero, span_id 8 bytes, "
            "parent_span_id empty or 8 bytes, start_time_unix_nano set; times below 2^63")


@dataclass
class RawSpans:
    """Spans as read one by one (the exact protobuf path and JSON): plain lists, not yet
    checked; :meth:`columns` checks them and makes the arrays."""

    trace_id: list[bytes] = field(default_factory=list)
    span_id: list[bytes] = field(default_factory=list)
    parent_id: list[bytes] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    start_ns: list[int] = field(default_factory=list)
    end_ns: list[int] = field(default_factory=list)
    status: list[int] = field(default_factory=list)  # status code (2 = error)
    trace_state: list[bytes | str] = field(default_factory=list)  # raw W3C tracestate ('' when none)
    request_lane: list[bytes | str] = field(default_factory=list)
    dyed: list[bool] = field(default_factory=list)
    extra: dict[str, list[RawValue]] = field(default_factory=dict)
    resource: list[int] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.trace_id)

    def columns(self) -> SpanColumns:
        """The valid spans as a :class:`SpanColumns`; the others are counted in ``rejected``."""
        n = self.n
        r = self
        all_ok = (set(map(len, self.trace_id)) <= {16} and bytes(16) not in self.trace_id
                  and set(map(len, self.span_id)) <= {8} and set(map(len, self.parent_id)) <= {0, 8}
                  and (n == 0 or (0 < min(self.start_ns) and max(self.start_ns) <= _INT64_MAX
                                  and 0 <= min(self.end_ns) and max(self.end_ns) <= _INT64_MAX)))
        keep = range(n) if all_ok else [
            i for i in range(n) if len(self.trace_id[i]) == 16 and any(self.trace_id[i])
            and len(self.span_id[i]) == 8 and len(self.parent_id[i]) in (0, 8)
            and 0 < self.start_ns[i] <= _INT64_MAX and 0 <= self.end_ns[i] <= _INT64_MAX]
        if len(keep) < n:
            def pick(col: list[Any]) -> list[Any]:
                return [col[i] for i in keep]
            r = RawSpans(**{f: pick(getattr(self, f)) for f in _RAW_LISTS},
                         extra={k: pick(v) for k, v in self.extra.items()},
                         resource=pick(self.resource), resources=self.resources)
        m = len(keep)
        ids = np.frombuffer(b"".join(r.trace_id), dtype=_U64).astype(np.uint64).reshape(m, 2)
        kinds = r.kind if m == 0 or (min(r.kind) >= 0 and max(r.kind) <= 5) else [
            k if 0 <= k <= 5 else 0 for k in r.kind]  # a junk kind (JSON ints are unbounded) reads as 0
        kind = np.asarray(kinds, dtype=np.int8)
        state_at = np.flatnonzero(np.fromiter(map(bool, r.trace_state), dtype=bool, count=m))
        return SpanColumns(
            trace_hi=ids[:, 0].copy(), trace_lo=ids[:, 1].copy(),
            span_id=np.frombuffer(b"".join(r.span_id), dtype=_U64).astype(np.uint64),
            parent_id=np.frombuffer(b"".join(map(bytes.ljust, r.parent_id, repeat(8), repeat(b"\0"))),
                                    dtype=_U64).astype(np.uint64),
            kind=kind,
            start_ns=np.asarray(r.start_ns, dtype=np.int64), end_ns=np.asarray(r.end_ns, dtype=np.int64),
            err=np.asarray(r.status, dtype=np.int64) == 2, dyed=np.asarray(r.dyed, dtype=bool).reshape(m),
            attr_at=np.arange(m, dtype=np.int64), request_lane=r.request_lane, extra=r.extra,
            resource=np.asarray(r.resource, dtype=np.int64).reshape(m), resources=r.resources,
            rejected=n - m, why=_INVALID.format(n - m) if m < n else "",
            state_at=state_at, trace_state=[r.trace_state[i] for i in state_at.tolist()])


_RAW_LISTS = ("trace_id", "span_id", "parent_id", "kind", "start_ns", "end_ns", "status", "trace_state",
              "request_lane", "dyed")


@dataclass(frozen=True)
class Heartbeat:
    """Liveness evidence from metrics: one per resource (and per up-gauge point)."""

    resource: Resource
    time_ns: int  # 0 when unknown
    up: bool
    explicit: bool = True  # a heartbeat point (False: any other telemetry of the resource)


#: Protobuf requests at least this long go through :mod:`.wire` (its fixed cost per request,
#: ~70 us, is repaid from about a hundred spans on: bench/bench_collector.py, docs/benchmarks.md).
FAST_MIN_BYTES = 16 * 1024


def decode_traces(body: bytes, fmt: Format, keys: Keys, defer_attributes: bool = False,
                  max_spans: int | None = None) -> SpanColumns:
    """Decode an ExportTraceServiceRequest; raise DecodeError when malformed.

    Protobuf goes through :func:`wire.fast_traces` first; a request it does not take
    (see there) is read span by span here. With ``defer_attributes`` the fast path may
    leave the attributes to :func:`wire.read_deferred` (then done for many requests at
    once); the caller must call it before using them. ``max_spans``: a JSON request with
    more spans raises :class:`TooLarge` before their columns are built (protobuf is counted
    before parsing, :mod:`.limits`)."""
    if fmt == "json":
        return _traces_json(body, keys, max_spans).columns()
    if len(body) < FAST_MIN_BYTES:  # a few spans: reading them one by one costs less
        return _traces_pb(body, keys).columns()
    fast = wire.fast_traces(body, keys)
    if fast is not None:
        if not defer_attributes:
            wire.read_deferred(fast, keys)
        return fast
    return _traces_pb(body, keys).columns()


def _traces_pb(body: bytes, keys: Keys) -> RawSpans:
    req = schema.TraceRequest()
    try:
        req.ParseFromString(body)
    except ProtoDecodeError as e:
        raise DecodeError(f"malformed OTLP protobuf: {e}") from None
    merged = columns.parse_merged(body)
    mrs_all = merged.resource_spans if merged is not None else repeat(None)
    # a key absent from the bytes is no span's attribute: then no per-span lookups
    need_attrs = any_wanted_key(body, keys)
    cols = RawSpans()
    for rs, mrs in zip(req.resource_spans, mrs_all):
        cols.resources.append(resource_pb(rs.resource.attributes, keys))
        r = len(cols.resources) - 1
        mss_all = mrs.scope_spans if mrs is not None else repeat(None)
        for ss, mss in zip(rs.scope_spans, mss_all):
            spans = ss.spans
            n = len(spans)
            if not n:
                continue
            (tid, sid, pid, kind, st, en, code, state), attrs = columns.scope_columns(
                mss.spans if mss is not None else None, spans, need_attrs)
            cols.trace_id += tid
            cols.span_id += sid
            cols.parent_id += pid
            cols.kind += kind
            cols.start_ns += st
            cols.end_ns += en
            cols.status += map(STATUS_CODES.__getitem__, code)
            cols.trace_state += state
            cols.resource += [r] * n
            if attrs is None:  # no span has any wanted key
                cols.request_lane += [b""] * n
                cols.dyed += [False] * n
                for k in keys.extra:
                    cols.extra.setdefault(k, []).extend([b""] * n)
                continue
            cols.request_lane += first_set([attribute_column(attrs, k) for k in keys.request_lane])
            cols.dyed += map(methodcaller("__contains__", L.DYED_ATTR), attrs)
            for k in keys.extra:
                cols.extra.setdefault(k, []).extend(attribute_column(attrs, k))
    for k in keys.extra:
        cols.extra.setdefault(k, [])
    return cols


class AttributeStrings(Sequence[AttrValue]):
    """An attribute given for the spans ``at`` (raw values), read per span as a string, or a
    tuple of strings for a string array (a captured HTTP header); '' for the other spans.
    Decoded only where indexed (rules read only the hops of ruled services)."""

    def __init__(self, at: np.ndarray, raw: Sequence[RawValue], n: int) -> None:
        self.at, self.raw, self.n = at, raw, n
        self._where: dict[int, int] | None = None

    def __getitem__(self, i: int) -> AttrValue:  # type: ignore[override]
        if self._where is None:
            self._where = dict(zip(self.at.tolist(), range(len(self.raw))))
        j = self._where.get(i)
        return "" if j is None else any_value(self.raw[j])

    def __len__(self) -> int:
        return self.n

    def take(self, rows: np.ndarray) -> list[AttrValue]:
        """The values of spans ``rows`` (what ``[self[i] for i in rows]`` gives, in bulk)."""
        at = self.at
        if not len(at) or not len(rows):
            return [""] * len(rows)
        if len(at) > 1 and not bool((at[1:] > at[:-1]).all()):
            return [self[i] for i in rows.tolist()]
        pos = np.minimum(np.searchsorted(at, rows), len(at) - 1)
        raw = self.raw
        return [any_value(raw[p]) if h else "" for p, h in zip(pos.tolist(), (at[pos] == rows).tolist())]


# --- OTLP/JSON ------------------------------------------------------------------------------

def _load_json(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise DecodeError(f"malformed OTLP JSON: {e}") from None
    if not isinstance(doc, dict):
        raise DecodeError("malformed OTLP JSON: the top level must be an object")
    return doc


def _json_id(value: Any, size: int, what: str) -> bytes:
    """OTLP/JSON ids are hex; base64 is accepted too (some older SDKs)."""
    if not value:
        return b""
    if not isinstance(value, str):
        raise DecodeError(f"malformed OTLP JSON: {what} must be a string")
    try:
        if len(value) == 2 * size:
            return bytes.fromhex(value)
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise DecodeError(f"malformed OTLP JSON: {what} {value[:40]!r} is neither hex nor base64") from None


def _json_attrs(items: Any) -> dict[str, str]:
    """KeyValue list -> {key: string value}; non-string values read as ''; last key wins."""
    out: dict[str, str] = {}
    if not isinstance(items, list):
        return out
    for kv in items:
        if isinstance(kv, dict):
            v = kv.get("value")
            s = v.get("stringValue", "") if isinstance(v, dict) else ""
            out[str(kv.get("key", ""))] = s if isinstance(s, str) else ""
    return out


def _json_int(value: Any, what: str) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        raise DecodeError(f"malformed OTLP JSON: {what} must be an integer, got {value!r}") from None


_KIND_NAMES = {f"SPAN_KIND_{k.name}": int(k) for k in L.SpanKind}


def _json_kind(k: Any) -> int:
    """A kind given by name, or as an integral float (JSON numbers above 2^64 read as floats);
    anything else is junk and reads as UNSPECIFIED (0), as out-of-range integers do."""
    if type(k) is str:
        return _KIND_NAMES.get(k, 0)
    if type(k) is float and k.is_integer() and 0 <= k <= 5:
        return int(k)
    return 0


def _json_column(objs: Sequence[Any], key: str, default: Any = None) -> list[Any]:
    return list(map(methodcaller("get", key, default), objs))


def _json_ids(values: list[Any], size: int, what: str) -> list[bytes]:
    """Hex ids (empty allowed: no parent) in C; anything else one by one."""
    if set(map(type, values)) <= {str} and set(map(len, values)) <= {0, 2 * size}:  # checked in C
        try:
            return list(map(bytes.fromhex, values))
        except ValueError:
            pass
    return [_json_id(v, size, what) for v in values]


def _json_ints(values: list[Any], what: str) -> list[int]:
    try:
        return list(map(int, values))
    except (TypeError, ValueError):
        return [_json_int(v, what) for v in values]


def _json_span_attrs(spans: Sequence[Any], keys: Keys) -> tuple[list[str], list[bool], dict[str, list[RawValue]]]:
    """Only the attributes lanewatch reads: each span's key list is taken in C, and only
    wanted keys present in it are looked at."""
    lane_keys = tuple(keys.request_lane)
    lanes: list[str] = []
    dyed: list[bool] = []
    extra: dict[str, list[RawValue]] = {k: [] for k in keys.extra}
    get_key = methodcaller("get", "key")
    for sp in spans:
        attrs = sp.get("attributes") or ()
        names = list(map(get_key, attrs))
        lane = ""
        for k in lane_keys:
            if k in names:
                lane = _json_string(attrs, names, k)
                if lane:
                    break
        lanes.append(lane)
        dyed.append(L.DYED_ATTR in names)
        for k, col in extra.items():
            col.append("" if k not in names else _json_string(attrs, names, k, True) if k == keys.weight
                        else _json_value(attrs, names, k))
    return lanes, dyed, extra


def _json_value(attrs: Sequence[Any], names: list[Any], key: str) -> str | tuple[str, ...]:
    """A rule attribute: the string value of the last attribute named ``key``, or its string
    array as a tuple (elements of other types read as ''); other value types read as ''."""
    i = len(names) - 1 - names[::-1].index(key)
    v = attrs[i].get("value")
    if type(v) is not dict:
        return ""
    if "arrayValue" in v:
        arr = v["arrayValue"]
        items = arr.get("values") if type(arr) is dict else None
        return tuple(s if type(s := (e.get("stringValue") if type(e) is dict else None)) is str else ""
                     for e in (items if type(items) is list else ()))
    s = v.get("stringValue", "")
    return s if type(s) is str else ""


def _json_string(attrs: Sequence[Any], names: list[Any], key: str, number: bool = False) -> str:
    """The string value of the last attribute named ``key`` (a string array's first element, as
    :func:`~.schema.any_string` reads it; '' for other value types; with
    ``number``, an int or double value as its text, and any other value as :data:`_NOT_A_NUMBER`)."""
    i = len(names) - 1 - names[::-1].index(key)
    v = attrs[i].get("value")
    s = v.get("stringValue", "") if type(v) is dict else ""
    if not number and type(v) is dict and "arrayValue" in v:
        first = _json_value(attrs, names, key)
        return first[0] if first else ""
    if number and type(v) is dict and "stringValue" not in v:
        n = v.get("intValue", v.get("doubleValue"))
        # intValue is a decimal string in OTLP/JSON (int64), doubleValue a number (or "NaN", ...)
        return str(n) if type(n) in (int, float, str) else _NOT_A_NUMBER
    return s if type(s) is str else ""


#: What a JSON sampling weight of another type than string, int or double reads as (junk).
_NOT_A_NUMBER = "not a number"


def _traces_json(body: bytes, keys: Keys, max_spans: int | None = None) -> RawSpans:
    doc = _load_json(body)
    cols = RawSpans(extra={k: [] for k in keys.extra})
    if max_spans is not None:
        _check_json_spans(doc, max_spans)
    try:
        for rs in doc.get("resourceSpans") or ():
            rattrs = _json_attrs((rs.get("resource") or {}).get("attributes"))
            cols.resources.append(_resource_from(rattrs, keys))
            r = len(cols.resources) - 1
            for ss in rs.get("scopeSpans") or ():
                spans = ss.get("spans") or ()
                if not spans:
                    continue
                cols.trace_id += _json_ids(_json_column(spans, "traceId"), 16, "traceId")
                cols.span_id += _json_ids(_json_column(spans, "spanId"), 8, "spanId")
                cols.parent_id += _json_ids(_json_column(spans, "parentSpanId", ""), 8, "parentSpanId")
                kinds = _json_column(spans, "kind", 0)
                cols.kind += [k if type(k) is int else _json_kind(k) for k in kinds]
                cols.start_ns += _json_ints(_json_column(spans, "startTimeUnixNano", 0), "startTimeUnixNano")
                cols.end_ns += _json_ints(_json_column(spans, "endTimeUnixNano", 0), "endTimeUnixNano")
                codes = [st.get("code", 0) if type(st) is dict else 0 for st in _json_column(spans, "status")]
                cols.trace_state += [v if type(v) is str else "" for v in _json_column(spans, "traceState", "")]
                cols.status += [2 if c in (2, "STATUS_CODE_ERROR") else 0 for c in codes]
                lanes, dyed, extra = _json_span_attrs(spans, keys)
                cols.request_lane += lanes
                cols.dyed += dyed
                for k, col in extra.items():
                    cols.extra[k] += col
                cols.resource += [r] * len(spans)
    except (AttributeError, TypeError) as e:
        raise DecodeError(f"malformed OTLP JSON: unexpected structure ({e})") from None
    return cols


def _check_json_spans(doc: dict[str, Any], limit: int) -> None:
    """Raise :class:`TooLarge` when the document holds more than ``limit`` spans (with their
    resource and scope entries), before anything is built for them."""
    n = 0
    resources = doc.get("resourceSpans")
    for rs in resources if type(resources) is list else ():
        scopes = rs.get("scopeSpans") if type(rs) is dict else None
        scopes = scopes if type(scopes) is list else []
        n += 1 + len(scopes) + sum(len(spans) for ss in scopes if type(ss) is dict
                                   and type(spans := ss.get("spans")) is list)
        if n > limit:
            raise TooLarge(f"request has more than {limit} spans (counting the resource and scope "
                           "entries that hold them; max_spans_per_request); send smaller batches",
                           "too_many_spans")


def _resource_from(attrs: dict[str, str], keys: Keys) -> Resource:
    service = attrs.get(L.SERVICE_NAME_ATTR) or "unknown_service"
    lane = next((attrs[k] for k in keys.instance_lane if attrs.get(k)), "")
    inst = attrs.get(L.INSTANCE_ID_ATTR, "")
    if not inst and (attrs.get("host.name") or attrs.get("process.pid")):
        inst = f"{attrs.get('host.name', '')}:{attrs.get('process.pid', '')}"
    return Resource(service, lane, inst)


# --- metrics: liveness evidence -------------------------------------------------------------

def decode_metrics(body: bytes, fmt: Format, keys: Keys) -> tuple[list[Heartbeat], int]:
    """Heartbeats (one per resource, plus each ``lanewatch.instance.up`` point) and the
    number of data points in the request (for the response)."""
    beats: list[Heartbeat] = []
    points = 0
    if fmt == "json":
        doc = _load_json(body)
        try:
            for rm in doc.get("resourceMetrics") or ():
                res = _resource_from(_json_attrs((rm.get("resource") or {}).get("attributes")), keys)
                for sm in rm.get("scopeMetrics") or ():
                    for m in sm.get("metrics") or ():
                        for kind in ("gauge", "sum", "histogram", "exponentialHistogram", "summary"):
                            dps = (m.get(kind) or {}).get("dataPoints") or ()
                            points += len(dps)
                            if m.get("name") == L.HEARTBEAT_METRIC:
                                beats += [Heartbeat(res, _json_int(p.get("timeUnixNano"), "timeUnixNano"),
                                                    float(p.get("asDouble", p.get("asInt", 1)) or 0) > 0)
                                          for p in dps]
                beats.append(Heartbeat(res, 0, True, explicit=False))
        except (AttributeError, TypeError, ValueError) as e:
            raise DecodeError(f"malformed OTLP JSON: unexpected structure ({e})") from None
        return _order(beats), points
    req = schema.MetricsRequest()
    try:
        req.ParseFromString(body)
    except ProtoDecodeError as e:
        raise DecodeError(f"malformed OTLP protobuf: {e}") from None
    for rm in req.resource_metrics:
        res = resource_pb(rm.resource.attributes, keys)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                dps = list(m.gauge.data_points) + list(m.sum.data_points)
                points += len(dps) or 1
                if m.name == L.HEARTBEAT_METRIC:
                    beats += [Heartbeat(res, p.time_unix_nano, (p.as_double or p.as_int) > 0) for p in dps]
        beats.append(Heartbeat(res, 0, True, explicit=False))
    return _order(beats), points


def _order(beats: list[Heartbeat]) -> list[Heartbeat]:
    """A resource's plain 'seen' mark goes before its explicit up/down points, so a final
    'leaving' (0) point is the last word for that instance."""
    return sorted(beats, key=lambda b: (b.explicit, b.time_ns))

