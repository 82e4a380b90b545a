"""Protobuf span columns read from the spans' own bytes, in numpy: the fast decode.

Every OTLP encoder writes a span's fields in a fixed order (by field number, or
in the order ``trace.proto`` declares them; both put ``trace_id``, ``span_id``,
``trace_state``, ``parent_span_id`` first, then name, kind, the times and the
attributes, and ``status`` last but for ``flags``). So once each span is known as
a byte range, what lanewatch needs sits at offsets numpy finds for all spans at once:

* one parse keeps every span as its bytes (:data:`schema.BlobTraceRequest`):
  resources are read, span boundaries come for free;
* the merged view (:mod:`.columns`) counts how often each field occurs in each
  scope, and, serialized again, gives kind and times as packed columns;
* ``trace_id`` and ``span_id`` are the first two fields: their 16 and 8 bytes are
  read directly; ``parent_span_id`` is the next field (after an optional
  ``trace_state``) when present;
* error statuses (needed only when not every span carries a status) are found as
  the encoded status at the end of a span (before a trailing ``flags``);
* attributes are read by walking every span's KeyValues, all spans a step at a
  time, keeping the values of the wanted keys (``lane``, ``lane.dyed``, rule keys);
  only requests whose bytes hold a wanted key are walked, and the walk waits
  (:func:`read_deferred`) until the pipeline takes a batch of requests at once.

Every layout assumption is checked: tags and lengths at the offsets read, every
KeyValue exactly ``key`` then ``value``, and the number of parents, error
statuses and KeyValues found against the merged view's counts (a span cannot hide
an extra occurrence: the merged count would differ). A request that fails a check
on ids, parents, times or statuses, or whose spans carry invalid values, returns
None and is read span by span (:func:`decode._traces_pb`), which also gives the
precise error or rejection message; attributes that fail the walk are read by
parsing the spans that hold a wanted key. As with the merged view, only
canonically encoded spans are guaranteed to read exactly as the per-span parse
reads them: a scope where one span repeats a singular field while another lacks
it can misplace that field's values, and a status-less span whose final bytes
spell an error status, alongside an error status that is not last in its span,
can move that error flag; both only ever affect the sender's own spans.
Attribute values are kept encoded, as the per-span path keeps them.
"""
from __future__ import annotations

import re
from functools import lru_cache
from operator import attrgetter, methodcaller
from typing import Any

import numpy as np

from lanewatch import lane as L
from lanewatch.collect import columns, schema
from lanewatch.collect.spans import (
    STATUS_CODES,
    Deferred,
    Keys,
    Resource,
    SpanColumns,
    any_wanted_key,
    attribute_column,
    first_set,
    resource_pb,
    wanted_keys,
)

_INT64_MAX = 2**63 - 1
_TRACE_ID_HEAD, _SPAN_ID_HEAD = 0x100A, 0x0812  # tag and length: 0a 10 (16 bytes), 12 08 (8)
_TRACE_STATE, _PARENT, _FLAGS = 0x1A, 0x22, (0x85, 0x01)  # tags of fields 3, 4 (LEN), 16 (fixed32)
_MAX_STATUS_BYTES = 64
_get_attributes = attrgetter("attributes")


@lru_cache(maxsize=16)
def _kv_patterns(keys: Keys) -> tuple[tuple[bytes, re.Pattern[bytes]], ...]:
    """Per wanted key: its bytes, and a search for the start of a KeyValue with that key
    (``key`` is field 1)."""
    return tuple((k, re.compile(re.escape(b"\n" + schema.varint(len(k)) + k))) for k in wanted_keys(keys))


def fast_traces(body: bytes, keys: Keys) -> SpanColumns | None:
    """The request's spans as columns, or None when the request is not read here."""
    req = schema.BlobTraceRequest()
    try:
        req.ParseFromString(body)
    except Exception:  # noqa: BLE001 -- the per-span path says what is malformed
        return None
    merged = columns.parse_merged(body)
    if merged is None or len(merged.resource_spans) != len(req.resource_spans):
        return None
    resources: list[Resource] = []
    blobs: list[bytes] = []
    kinds: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    statuses: list[bytes] = []
    scope_resource: list[int] = []
    scope_size: list[int] = []
    n_parents = n_attributes = n_states = 0
    for rs, mrs in zip(req.resource_spans, merged.resource_spans):
        resources.append(resource_pb(rs.resource.attributes, keys))
        if len(rs.scope_spans) != len(mrs.scope_spans):
            return None
        for ss, mss in zip(rs.scope_spans, mrs.scope_spans):
            spans = ss.spans
            n = len(spans)
            if not n:
                continue
            m = mss.spans
            if not len(m.trace_id) == len(m.span_id) == n:
                return None
            n_parents += len(m.parent_span_id)
            n_states += len(m.trace_state)
            n_attributes += len(m.attributes)
            statuses += m.status
            got = _packed_columns(m, n)
            if got is None:
                return None
            blobs += spans
            kinds.append(got[0])
            starts.append(got[1])
            ends.append(got[2])
            scope_resource.append(len(resources) - 1)
            scope_size.append(n)
    if not blobs:
        return None
    return _columns(blobs, np.concatenate(kinds), np.concatenate(starts), np.concatenate(ends),
                    statuses, n_parents, n_attributes, n_states,
                    np.repeat(np.asarray(scope_resource, dtype=np.int64), scope_size), resources, keys)


class _Words:
    """Overlapping views of a byte string at every offset: big-endian 64-bit words (ids)
    and little-endian 16-bit ones (a tag and a one-byte length)."""

    def __init__(self, data: bytes) -> None:
        self._be64 = np.ndarray((len(data) - 7,), dtype=">u8", buffer=data, strides=(1,))
        self.u16 = np.ndarray((len(data) - 1,), dtype="<u2", buffer=data, strides=(1,))

    def u64(self, at: np.ndarray) -> np.ndarray:
        """The 8 bytes at each of ``at`` as an unsigned integer (read big-endian)."""
        return np.asarray(self._be64[at], dtype=np.uint64)


def _packed_columns(m: Any, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A scope's kind, start and end columns from its merged message, which serializes them
    packed: ``kind`` one byte per span (kinds 1..127), the times 8 bytes each, first (the
    spans' undeclared fields follow, kept as unknown). None unless every span has each
    exactly once (a kind of 0 or a zero time is not on the wire)."""
    for name in _NOT_PACKED:
        m.ClearField(name)
    m.DiscardUnknownFields()
    data = m.SerializeToString()
    at = []
    pos = 0
    for tag, size in ((0x32, n), (0x3A, 8 * n), (0x42, 8 * n)):  # fields 6, 7, 8, length-delimited
        head = bytes((tag,)) + schema.varint(size)
        if not data.startswith(head, pos):
            return None
        at.append(pos + len(head))
        pos += len(head) + size
    return (np.frombuffer(data, dtype=np.uint8, count=n, offset=at[0]),
            np.frombuffer(data, dtype="<u8", count=n, offset=at[1]),
            np.frombuffer(data, dtype="<u8", count=n, offset=at[2]))


_PAD = bytes(16)
_NOT_PACKED = ("trace_id", "span_id", "parent_span_id", "status", "attributes", "trace_state")


def _columns(blobs: list[bytes], kind: np.ndarray, start: np.ndarray, end_ns: np.ndarray,
             statuses: list[bytes], n_parents: int, n_attributes: int, n_states: int, resource: np.ndarray,
             resources: list[Resource], keys: Keys) -> SpanColumns | None:
    n = len(blobs)
    if (start.min() == 0 or start.max() > _INT64_MAX or end_ns.max() > _INT64_MAX):
        return None  # invalid times: rejected on the per-span path
    raw = b"".join(blobs)
    padded = raw + _PAD  # reads a little past a span's end stay inside
    buf = np.frombuffer(padded, dtype=np.uint8)
    words = _Words(padded)
    size = np.fromiter(map(len, blobs), dtype=np.int64, count=n)
    stop = np.cumsum(size)
    off = stop - size
    if (size.min() < 30 or not ((words.u16[off] == _TRACE_ID_HEAD) & (words.u16[off + 18] == _SPAN_ID_HEAD)).all()):
        return None
    trace_hi, trace_lo = words.u64(off + 2), words.u64(off + 10)
    if ((trace_hi == 0) & (trace_lo == 0)).any():
        return None  # all-zero trace id: invalid
    got = _parents(buf, words, off, stop, n_parents, n_states)
    err = _errors(buf, off, stop, size, statuses)
    if got is None or err is None:
        return None
    parent, after_parent, (state_at, state_from, state_to) = got
    cols = SpanColumns(
        trace_hi=trace_hi, trace_lo=trace_lo, span_id=words.u64(off + 20),
        parent_id=parent, kind=np.where(kind <= 5, kind, 0).astype(np.int8),
        start_ns=start.astype(np.int64), end_ns=end_ns.astype(np.int64), err=err,
        dyed=np.zeros(n, dtype=bool), attr_at=np.zeros(0, dtype=np.int64), request_lane=[],
        extra={k: [] for k in keys.extra}, resource=resource, resources=resources, state_at=state_at,
        trace_state=list(map(raw.__getitem__, map(slice, state_from.tolist(), state_to.tolist()))))
    if any_wanted_key(raw, keys):  # else no span has attributes to read
        cols.deferred.append((0, Deferred(padded, off, after_parent, stop, n_attributes)))
    return cols


def read_deferred(cols: SpanColumns, keys: Keys) -> int:
    """Read the attributes :func:`fast_traces` left for later, of every request in
    ``cols`` at once (one walk); a request whose attributes are not that regular is read
    on its own, and span by span if need be. Returns how many spans had attributes that
    do not parse: those read as having none (the caller counts them)."""
    parts, cols.deferred = cols.deferred, []
    if not parts:
        return 0
    found = _walk_parts(parts, keys)
    lost = 0
    results = [found] if found is not None else []
    if found is None:
        for part in parts:
            one = _walk_parts([part], keys)
            if one is None:
                one, bad = _parse_part(part, keys)
                lost += bad
            results.append(one)
    at = [cols.attr_at] + [r[0] for r in results]
    cols.attr_at = np.concatenate(at)
    cols.request_lane = cols.request_lane + [v for r in results for v in r[1]]
    for r in results:
        cols.dyed[r[2]] = True
    cols.extra = {k: cols.extra.get(k, []) + [v for r in results for v in r[3][k]] for k in keys.extra}
    return lost


#: what a read gives: spans with attributes (indices into the columns), their request lanes,
#: the dyed spans, and per rule attribute its values
_Read = tuple[np.ndarray, list[bytes | str], np.ndarray, dict[str, list[bytes | str]]]


def _walk_parts(parts: list[tuple[int, Deferred]], keys: Keys) -> _Read | None:
    """One walk over the spans of all ``parts``; None if any of them is irregular."""
    if len(parts) == 1:
        first, d = parts[0]
        data, pos, stop, index = d.data, d.pos, d.stop, None
    else:
        bases = np.cumsum([0] + [len(d.data) for _, d in parts[:-1]])
        data = b"".join(d.data for _, d in parts)
        pos = np.concatenate([d.pos + b for (_, d), b in zip(parts, bases)])
        stop = np.concatenate([d.stop + b for (_, d), b in zip(parts, bases)])
        index = np.concatenate([np.arange(len(d.pos)) + i for i, d in parts])
        first = 0
    got = _walk_attributes(np.frombuffer(data, dtype=np.uint8), data, pos, stop,
                           sum(d.expected for _, d in parts), keys)
    if got is None:
        return None
    at, lanes, dyed, extra = got
    if index is None:
        return at + first, lanes, np.flatnonzero(dyed) + first, extra
    return index[at], lanes, index[np.flatnonzero(dyed)], extra


def _parents(buf: np.ndarray, words: _Words, off: np.ndarray, stop: np.ndarray, expected: int,
             states: int) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """Parent span ids (0: none), found right after the ids and an optional trace_state,
    and where each span's next field starts; and the spans with a trace_state, where it
    starts and ends. None unless exactly ``expected`` parent fields and ``states``
    trace_states are found there."""
    n = len(off)
    pos = off + 28
    tag = buf[pos]  # every span is at least 30 bytes
    with_state = tag == _TRACE_STATE
    state_at = np.flatnonzero(with_state)
    if len(state_at) != states:
        return None  # a trace_state elsewhere in a span: read per span
    state_from = state_to = np.zeros(0, dtype=np.int64)
    if len(state_at):
        got = _varints(buf, pos[with_state] + 1)
        if got is None:
            return None  # a trace_state of 16 KiB or more: read per span
        state_from = pos[with_state] + 1 + got[1]
        state_to = state_from + got[0]
        if (state_to > stop[with_state]).any():
            return None
        pos[with_state] = state_to
        inside = pos + 1 < stop
        tag = np.where(inside, buf[np.minimum(pos, len(buf) - 1)], 0)
    has = (tag == _PARENT) & (pos + 1 < stop)
    if int(has.sum()) != expected:
        return None
    length = buf[pos[has] + 1]
    if not ((length == 0) | (length == 8)).all():
        return None  # a malformed parent id: rejected on the per-span path
    parent = np.zeros(n, dtype=np.uint64)
    full = np.flatnonzero(has)[length == 8]
    if len(full):
        at = pos[full] + 2
        if (at + 8 > stop[full]).any():
            return None
        parent[full] = words.u64(at)
    pos[has] += 2 + length
    return parent, pos, (state_at, state_from, state_to)


def _varints(buf: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Varints of one or two bytes at ``at``: (values, their sizes); None if any is longer."""
    low = buf[at].astype(np.int64)
    two = low > 0x7F
    if not two.any():
        return low, np.ones(len(at), dtype=np.int64)
    high = buf[at[two] + 1].astype(np.int64)
    if (high > 0x7F).any():
        return None
    value = low.copy()
    value[two] = (low[two] & 0x7F) | (high << 7)
    return value, 1 + two


def _walk_attributes(buf: np.ndarray, raw: bytes, pos: np.ndarray, stop: np.ndarray, expected: int,
                     keys: Keys) -> tuple[np.ndarray, list[bytes | str], np.ndarray,
                                          dict[str, list[bytes | str]]] | None:
    """Read the wanted attributes of every span by walking its attribute list, all spans a
    step at a time: past ``flags`` (where ``trace.proto`` declares it), name, kind and the
    two times, every KeyValue must be exactly ``key`` then ``value`` (lengths below 16 KiB,
    keys below 128 bytes), inside its span. Its key is compared
    to the wanted ones and its encoded value kept, the last one of a key winning, as the
    map the per-span path parses does. None unless the walk is that regular and meets
    exactly the ``expected`` KeyValues the merged view counted (so none lies elsewhere)."""
    n = len(pos)
    last = len(buf) - 2
    pos = pos.copy()
    flags = (buf[pos] == _FLAGS[0]) & (buf[pos + 1] == _FLAGS[1]) & (pos < stop)
    pos[flags] += 6
    named = (pos < stop) & (buf[pos] == 0x2A)
    if named.any():
        got = _varints(buf, pos[named] + 1)
        if got is None:
            return None
        pos[named] += 1 + got[1] + got[0]
    for tag, size in ((0x30, 2), (0x39, 9), (0x41, 9)):  # kind (1..127), start, end
        if not ((pos + size <= stop) & (buf[pos] == tag)).all():
            return None
        pos += size
    wanted = _wanted(keys)
    value_at = {k: np.full(n, -1, dtype=np.int64) for k in wanted}
    value_end = {k: np.zeros(n, dtype=np.int64) for k in wanted}
    active = np.flatnonzero((pos < stop) & (buf[pos] == 0x4A))
    walked = 0
    while len(active):
        # one KeyValue per active span: 4a L 0a key_len key [12 value_len value], L and
        # value_len of one or two bytes (below 16 KiB: a captured Cookie header), key_len of
        # one (anything else: read per span), inside its span. buf is padded: no index overflows
        p = pos[active]
        length, l_size, bad = _lengths(buf, p + 1)
        head = p + 1 + l_size  # the KeyValue's key tag
        key_len = buf[head + 1].astype(np.int64)
        end = head + length
        value = head + 2 + key_len
        has_value = value < end
        bad |= (end > stop[active]) | (buf[head] != 0x0A) | (key_len > 0x7F) | (value > end)
        v = np.minimum(value, last)  # a bogus key length must not read past the buffer
        v_len, v_size, v_bad = _lengths(buf, v + 1)
        bad |= has_value & ((buf[v] != 0x12) | v_bad | (value + 1 + v_size + v_len != end))
        if bad.any():
            return None
        start = value + (1 + v_size) * has_value
        key_at = head + 2
        for k, (raw_key, k_len) in wanted.items():
            hit = np.flatnonzero(key_len == k_len)
            for i in range(k_len):
                if not len(hit):
                    break
                hit = hit[buf[key_at[hit] + i] == raw_key[i]]
            if len(hit):
                spans = active[hit]
                value_at[k][spans] = start[hit]
                value_end[k][spans] = end[hit]
        walked += len(active)
        pos[active] = end
        active = active[(end < stop[active]) & (buf[end] == 0x4A)]
    if walked != expected:
        return None
    return _attribute_columns(raw, value_at, value_end, keys)


def _lengths(buf: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray | int, np.ndarray]:
    """The varint lengths at ``at`` of one or two bytes: (lengths, their sizes, which are longer).
    A second byte past the buffer reads as its last."""
    low = buf[at].astype(np.int64)
    two = low > 0x7F
    if not two.any():
        return low, 1, two
    high = buf[np.minimum(at + 1, len(buf) - 1)].astype(np.int64)
    return np.where(two, (low & 0x7F) | (high << 7), low), 1 + two, two & (high > 0x7F)


@lru_cache(maxsize=16)
def _wanted(keys: Keys) -> dict[str, tuple[bytes, int]]:
    """Each wanted key's bytes and their length."""
    return {k: (k.encode(), len(k.encode()))
            for k in dict.fromkeys((*keys.request_lane, L.DYED_ATTR, *keys.extra))}


def _attribute_columns(raw: bytes, value_at: dict[str, np.ndarray], value_end: dict[str, np.ndarray],
                       keys: Keys) -> tuple[np.ndarray, list[bytes | str], np.ndarray,
                                            dict[str, list[bytes | str]]]:
    """(attr_at, request lanes, dyed, extra) of SpanColumns from where values were found."""
    dyed = value_at[L.DYED_ATTR] >= 0
    read = [*keys.request_lane, *keys.extra]
    found = np.zeros(len(dyed), dtype=bool)
    for k in read:
        found |= value_at[k] >= 0
    at = np.flatnonzero(found)

    def values(k: str) -> list[bytes | str]:
        lo, hi = value_at[k][at], value_end[k][at]
        if not len(lo) or lo.max() < 0:  # no span has it (the other spelling of a header)
            return [b""] * len(at)
        hi = np.where(lo >= 0, hi, 0)
        lo = np.maximum(lo, 0)
        return list(map(raw.__getitem__, map(slice, lo.tolist(), hi.tolist())))

    lanes = first_set([values(k) for k in keys.request_lane])
    return at, lanes, dyed, {k: values(k) for k in keys.extra}


def _errors(buf: np.ndarray, off: np.ndarray, stop: np.ndarray, size: np.ndarray,
            statuses: list[bytes]) -> np.ndarray | None:
    """Which spans have an ERROR status. With a status on every span the merged column
    lines up; otherwise each distinct error status is looked for at the end of the spans
    and must be found exactly as often as it occurs. None when it is not."""
    n = len(off)
    if len(statuses) == n:
        codes = np.fromiter(map(STATUS_CODES.__getitem__, statuses), dtype=np.int64, count=n)
        return np.asarray(codes == 2)
    err = np.zeros(n, dtype=bool)
    errors = [s for s in set(statuses) if STATUS_CODES[s] == 2]
    if not errors:
        return err
    tail = stop.copy()
    flags = (size >= 36) & (buf[stop - 6] == _FLAGS[0]) & (buf[stop - 5] == _FLAGS[1])
    tail[flags] -= 6
    for e in errors:
        head = b"\x7a" + schema.varint(len(e))
        k = len(head) + len(e)
        # the field's tag and length where it must start, and its last bytes
        pattern = head + e[-_MAX_STATUS_BYTES:]
        at = np.concatenate([np.arange(len(head)) - k, np.arange(-min(len(e), _MAX_STATUS_BYTES), 0)])
        room = np.flatnonzero(tail - off >= 28 + k)
        found = room[(buf[tail[room][:, None] + at] == np.frombuffer(pattern, dtype=np.uint8)).all(axis=1)]
        if len(found) != statuses.count(e) or err[found].any():
            return None
        err[found] = True
    return err


def _parse_part(part: tuple[int, Deferred], keys: Keys) -> tuple[_Read, int]:
    """A request's attributes read from the spans whose bytes hold a wanted key, each
    parsed as a message; if they do not parse, none (and how many spans that is)."""
    first, d = part
    blobs = list(map(d.data.__getitem__, map(slice, d.start.tolist(), d.stop.tolist())))
    raw = d.data[: int(d.stop[-1])]
    none: _Read = (np.zeros(0, dtype=np.int64), [], np.zeros(0, dtype=np.int64), {k: [] for k in keys.extra})
    found: dict[bytes, np.ndarray] = {}
    for key, pattern in _kv_patterns(keys):
        at = [m.start() for m in pattern.finditer(raw)]
        if at:
            found[key] = np.searchsorted(d.stop, at, side="right")
    if not found:
        return none, 0
    which = np.unique(np.concatenate(list(found.values())))
    framed = schema.BlobScopeSpans(spans=list(map(blobs.__getitem__, which.tolist()))).SerializeToString()
    spans = schema.ScopeSpans()
    try:
        spans.ParseFromString(framed)
    except Exception:  # noqa: BLE001 -- junk inside an attribute: counted by the caller
        return none, len(which)
    attrs = list(map(_get_attributes, spans.spans))
    dyed = np.fromiter(map(methodcaller("__contains__", L.DYED_ATTR), attrs), dtype=bool, count=len(attrs))
    return (which + first, first_set([attribute_column(attrs, k) for k in keys.request_lane]),
            which[dyed] + first, {k: list[bytes | str](attribute_column(attrs, k)) for k in keys.extra}), 0


