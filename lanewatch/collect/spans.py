"""The decoded form of spans, shared by every decoder (:mod:`.decode`: JSON and the per-span
protobuf path; :mod:`.wire`: the fast protobuf path) and read by the pipeline.

Which attribute keys to read (:class:`Keys`), who sent the spans (:class:`Resource`),
the spans as columns (:class:`SpanColumns`, with the attribute walk :mod:`.wire` may
leave for later as :class:`Deferred`), and the attribute helpers both protobuf paths
use. Depends on nothing in ``collect`` but the protobuf schema, so the decoders import
it and not each other's internals.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import methodcaller
from typing import Any

import numpy as np

from lanewatch import lane as L
from lanewatch.collect import schema

_EMPTY = schema._CLASSES["AnyValue"]()
#: A raw attribute value as decoders keep it: encoded AnyValue bytes (protobuf), a str or a
#: tuple of str for a string array (JSON); '' / b'' when unset.
RawValue = bytes | str | tuple[str, ...]
STATUS_CODES = schema.StatusCodes()


@dataclass(frozen=True)
class Resource:
    """Who sent a group of spans: the instance, as its resource says."""

    service: str
    lane: str  # raw instance lane value ('' when unset)
    instance: str


@dataclass(frozen=True)
class Keys:
    """Which attribute keys to read (from Settings)."""

    request_lane: Sequence[str] = (L.REQUEST_LANE_ATTR,)
    instance_lane: Sequence[str] = (L.INSTANCE_LANE_ATTR,)
    extra: Sequence[str] = ()
    #: the sampling weight attribute ('' = none); it is one of ``extra`` too (read raw there),
    #: and the JSON decoder keeps its numbers as well as its strings
    weight: str = ""


@lru_cache(maxsize=16)
def wanted_keys(keys: Keys) -> tuple[bytes, ...]:
    """The attribute keys read from spans (request lane keys, ``lane.dyed``, rule keys), as
    bytes, shortest first."""
    return tuple(sorted({k.encode() for k in (*keys.request_lane, L.DYED_ATTR, *keys.extra)},
                        key=lambda k: (len(k), k)))


@lru_cache(maxsize=16)
def _key_searches(keys: Keys) -> tuple[tuple[bytes, re.Pattern[bytes]], ...]:
    return tuple((k, re.compile(re.escape(k))) for k in wanted_keys(keys))


def any_wanted_key(data: bytes, keys: Keys) -> bool:
    """Whether any wanted key's bytes occur in ``data``: where none does, no span has an
    attribute to read. A key containing an absent key's bytes is not searched for."""
    absent: list[bytes] = []
    for key, search in _key_searches(keys):
        if any(a in key for a in absent):
            continue
        if search.search(data) is not None:
            return True
        absent.append(key)
    return False


def first_set(values: list[list[Any]]) -> list[Any]:
    """Per position, the first non-empty value across several key columns."""
    out = values[0]
    for more in values[1:]:
        out = [a or b for a, b in zip(out, more)]
    return out


def resource_pb(attrs: Any, keys: Keys) -> Resource:
    get = attrs.get
    service = get(L.SERVICE_NAME_ATTR, _EMPTY).string_value or "unknown_service"
    lane = next((v for v in (get(k, _EMPTY).string_value for k in keys.instance_lane) if v), "")
    inst = get(L.INSTANCE_ID_ATTR, _EMPTY).string_value
    if not inst:
        host, pid = get("host.name", _EMPTY).string_value, get("process.pid", _EMPTY).string_value
        inst = f"{host}:{pid}" if host or pid else ""
    return Resource(service, lane, inst)


def attribute_column(attrs: Sequence[Any], key: str) -> list[bytes]:
    """One attribute's encoded value across spans, in C (b'' when missing)."""
    return list(map(methodcaller("get", key, b""), attrs))


@dataclass
class SpanColumns:
    """Valid spans of one or more export requests, as columns of length ``n``.

    Ids are unsigned 64-bit integers read big-endian (a parent of 0 is no parent).
    Attributes are given for the spans ``attr_at`` only (any other span has none of the
    wanted keys): ``request_lane`` and each ``extra`` list hold one raw value per entry of
    ``attr_at`` (encoded AnyValue bytes from protobuf, str from JSON, empty when unset),
    which the name tables turn into lanes."""

    trace_hi: np.ndarray
    trace_lo: np.ndarray
    span_id: np.ndarray
    parent_id: np.ndarray
    kind: np.ndarray  # int8, SpanKind (anything outside 0..5 reads as 0)
    start_ns: np.ndarray  # int64
    end_ns: np.ndarray  # int64
    err: np.ndarray  # bool: status code ERROR
    dyed: np.ndarray  # bool: lane.dyed set, the hop received no lane
    attr_at: np.ndarray  # int64: the spans whose attributes follow
    request_lane: list[bytes | str]
    extra: dict[str, list[RawValue]]  # attributes rules read, raw
    resource: np.ndarray  # int64 index into resources
    resources: list[Resource]
    rejected: int = 0  # spans of the request(s) dropped as invalid
    why: str = ""  # the message for the rejected ones
    #: spans that carry a ``trace_state`` (indices), and each one's raw tracestate
    state_at: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    trace_state: list[bytes | str] = field(default_factory=list)
    #: attributes not read yet (``decode_traces(defer_attributes=True)``): per request, the
    #: index of its first span and what :func:`.wire.read_deferred` needs
    deferred: list[tuple[int, Deferred]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.span_id)

    @classmethod
    def concat(cls, parts: Sequence[SpanColumns]) -> SpanColumns:
        """Several requests' columns as one (resource indices renumbered)."""
        offsets = np.cumsum([0] + [len(c.resources) for c in parts[:-1]])
        starts = np.cumsum([0] + [c.n for c in parts[:-1]])
        arrays = {name: np.concatenate([getattr(c, name) for c in parts]) for name in _ARRAYS}
        return cls(**arrays,  # type: ignore[arg-type]
                   attr_at=np.concatenate([c.attr_at + s for c, s in zip(parts, starts)]),
                   request_lane=[v for c in parts for v in c.request_lane],
                   extra={k: [v for c in parts for v in c.extra[k]] for k in parts[0].extra},
                   resource=np.concatenate([c.resource + o for c, o in zip(parts, offsets)]),
                   resources=[r for c in parts for r in c.resources],
                   rejected=sum(c.rejected for c in parts),
                   state_at=np.concatenate([c.state_at + s for c, s in zip(parts, starts)]),
                   trace_state=[v for c in parts for v in c.trace_state],
                   deferred=[(i + s, d) for c, s in zip(parts, starts) for i, d in c.deferred])


_ARRAYS = ("trace_hi", "trace_lo", "span_id", "parent_id", "kind", "start_ns", "end_ns", "err", "dyed")


@dataclass
class Deferred:
    """A request's attributes still to read: its spans' bytes (padded) and, per span, where
    it starts, where its fields after the parent start and where it ends; and how many
    KeyValues the merged view counted."""

    data: bytes
    start: np.ndarray
    pos: np.ndarray
    stop: np.ndarray
    expected: int
