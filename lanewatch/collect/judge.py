"""Judge one assembled trace: edges, tag_lost, entry lane, lane path, stayed.

Pure, plain and per trace: the reference for :mod:`.bulk` (which judges many
traces column-wise) and the source of lane paths and violation records for
the traces that need them. A hop's *client* is its parent span when that is a CLIENT/PRODUCER
span; its *hop parent* is the nearest SERVER/CONSUMER ancestor (through
INTERNAL and CLIENT spans). ``tag_lost`` in transit: the lane a client sent
differs from the lane its hop received. ``tag_lost`` inside a service: a
client sent another lane than the hop above it in the same service carried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from lanewatch import lane as L
from lanewatch import rollups as R
from lanewatch.collect.weights import integer_weight


class Row(NamedTuple):
    """One span as the reference judge sees it."""

    span_id: bytes
    parent_id: bytes
    kind: int
    service: str
    instance_lane: str
    request_lane: str  # lane the span carried (sent, for CLIENT/PRODUCER)
    received_lane: str  # lane the hop received (request lane unless dyed)
    expected: str
    verdict: int  # -1 for non-hops
    start_ns: int
    error: bool
    weight: float = 1.0  # sampling weight (collect/weights.py)

_HOP = L.HOP_KINDS
_SEND = L.SEND_KINDS
_MAX_DEPTH = 64
_NS = 1_000_000_000


class Judgement:
    """The verdict on one trace and what it adds to the rollups."""

    __slots__ = ("counters", "edges", "entry_lane", "services", "stayed", "trace_id", "trace_row", "ts",
                 "violations", "weight", "weighted")

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        self.stayed = True
        self.entry_lane = L.BASE
        self.ts = -1  # -1: no hop, no trace counted
        self.edges: list[tuple[tuple[Any, ...], list[float]]] = []
        self.violations: list[dict[str, Any]] = []
        self.trace_row: dict[str, Any] | None = None
        self.counters: dict[str, int] = {}
        self.services: list[str] = []  # services that served a hop of the trace
        self.weight = 1  # what the trace counts (its entry hop's weight, as an integer)
        self.weighted = False  # whether that weight was other than 1

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def report(self, out: Finalised, prev: Judgement | None = None) -> None:
        """Add to ``out`` the violations and kept trace that ``prev`` did not have."""
        seen = {(v["kind"], v["span_id"]) for v in prev.violations} if prev else set()
        for v in self.violations:
            if (v["kind"], v["span_id"]) not in seen:
                out.violations.append({**v, "late": prev is not None})
        if self.trace_row and (prev is None or prev.trace_row != self.trace_row):
            out.traces.append(self.trace_row)

    def contributions(self) -> dict[tuple[Any, ...], list[float]]:
        """What this trace adds to the rollups, ``(table, *key) -> sums``, and its counters
        as ``("counter", name) -> [n]``: the reference the bulk path is tested against."""
        acc: dict[tuple[Any, ...], list[float]] = {}
        w, weighted = float(self.weight), float(self.weighted)
        for key, values in self.edges:
            a = acc.setdefault(key, [0.0] * (len(values) + 1))
            for i, x in enumerate(values):
                a[i] += x * w
            a[-1] += weighted
        if self.ts >= 0:
            acc[("traces", self.ts, self.entry_lane)] = [w, w * self.stayed, weighted]
            for svc in self.services:
                acc[("trace_services", self.ts, svc, self.entry_lane)] = [w, w * self.stayed, weighted]
        for name, n in self.counters.items():
            acc[("counter", name)] = [float(n)]
        return acc


@dataclass
class Finalised:
    """Violations and kept traces found since the last flush."""

    violations: list[dict[str, Any]] = field(default_factory=list)
    traces: list[dict[str, Any]] = field(default_factory=list)


def _hop_parent(spans: dict[bytes, Row], row: Row) -> Row | None:
    p = spans.get(row.parent_id)
    for _ in range(_MAX_DEPTH):
        if p is None or p.kind in _HOP:
            return p
        p = spans.get(p.parent_id)
    return None


def judge(trace_id: bytes, spans: dict[bytes, Row], sampled: bool = False) -> Judgement:
    j = Judgement(trace_id.hex())
    hops, sends = [], []
    for r in spans.values():
        if r.kind in _HOP:
            hops.append(r)
        elif r.kind in _SEND:
            sends.append(r)
    if not hops:
        j._count("traces_without_hops")
        for _ in sends:
            j._count("unpaired_client_spans")
        return j
    parent_of: dict[bytes, Row | None] = {}
    edges: list[tuple[tuple[Any, ...], list[float]]] = []  # keys without the entry lane (not known yet)
    lost: set[bytes] = set()  # hops whose incoming edge lost the tag, or that lost it inside
    callee_of: dict[bytes, Row] = {}  # client span id -> the hop it caused
    issues: list[tuple[str, Row, Row | None, Row | None]] = []  # (kind, row, caller, callee)
    for h in hops:
        client = spans.get(h.parent_id)
        if client is None:
            parent_of[h.span_id] = None
            if h.parent_id:
                j._count("unpaired_server_spans")
        elif client.kind in _SEND:
            parent_of[h.span_id] = _hop_parent(spans, client)
            callee_of[client.span_id] = h
            tag_lost = client.request_lane != h.received_lane
            values = [0.0] * len(R.EDGE_METRICS)
            values[R.EDGE_CALLS], values[R.EDGE_ERRORS] = 1.0, float(h.error)
            values[R.EDGE_VERDICT[h.verdict]] = 1.0
            values[R.EDGE_TAG_LOST] = float(tag_lost)
            edges.append(((client.start_ns // _NS, client.service, h.service, client.request_lane), values))
            if tag_lost:
                lost.add(h.span_id)
                issues.append(("tag_lost", h, client, h))
        else:
            parent_of[h.span_id] = _hop_parent(spans, client) if client.kind not in _HOP else client
        if L.Verdict(h.verdict).is_violation:
            issues.append((_LABELS[h.verdict], h, parent_of[h.span_id], h))
    for c in sends:
        callee = callee_of.get(c.span_id)
        if callee is None:
            j._count("unpaired_client_spans")
        above = _hop_parent(spans, c)
        if above is not None and c.request_lane != above.request_lane and above.service == c.service:
            lost.add(above.span_id)
            issues.append(("tag_lost", above, above, c))
            if callee is not None:  # counted on the edge the call leaves by
                only_lost = [0.0] * len(R.EDGE_METRICS)
                only_lost[R.EDGE_TAG_LOST] = only_lost[R.EDGE_TAG_LOST_INSIDE] = 1.0
                edges.append(((c.start_ns // _NS, c.service, callee.service, c.request_lane), only_lost))
    entry = hops[0]
    for h in hops:
        if (parent_of[h.span_id] is None, -h.start_ns) > (parent_of[entry.span_id] is None, -entry.start_ns):
            entry = h
    j.entry_lane, j.ts = entry.expected, entry.start_ns // _NS
    j.weighted = entry.weight != 1.0
    j.weight = integer_weight(entry.weight, _trace_key(trace_id)) if j.weighted else 1
    j.stayed = not issues
    j.edges = [(("edges", *key, j.entry_lane), values) for key, values in edges]
    j.services = sorted({h.service for h in hops})
    if issues or sampled:
        path = lane_path(hops, parent_of, lost)
        j.trace_row = {"trace_id": j.trace_id, "ts": j.ts, "entry_lane": j.entry_lane,
                       "stayed": j.stayed, "lane_path": path, "hops": len(hops)}
        j.violations = [_violation(j, kind, row, a, b, path) for kind, row, a, b in issues]
    return j


_LABELS = {v.value: v.label for v in L.Verdict}


def _trace_key(trace_id: bytes) -> int:
    """``bulk.trace_key`` of one 16-byte trace id, in plain Python."""
    hi, lo = int.from_bytes(trace_id[:8], "big"), int.from_bytes(trace_id[8:], "big")
    return lo ^ ((hi * 0xC2B2AE3D27D4EB4F) & ((1 << 64) - 1))


def _violation(j: Judgement, kind: str, row: Row, a: Row | None, b: Row | None,
               path: str) -> dict[str, Any]:
    """``a``/``b``: caller and callee rows (for an inside loss: the hop and its client span)."""
    inside = b is not None and b.kind in _SEND
    return {"ts": (b or row).start_ns // _NS, "kind": kind, "service": row.service,
            "caller": a.service if a else "", "callee": "" if inside else row.service,
            "request_lane": (a.request_lane if a and kind == "tag_lost" else row.request_lane),
            "instance_lane": row.instance_lane, "expected_lane": row.expected, "entry_lane": j.entry_lane,
            "trace_id": j.trace_id, "span_id": (b or row).span_id.hex(), "lane_path": path}


def lane_path(hops: list[Row], parent_of: dict[bytes, Row | None], lost: set[bytes]) -> str:
    """``A[gray] -> B[base, fallback] -> C[gray]``; branches as ``A[gray] -> (B[..]; D[..])``."""
    children: dict[bytes | None, list[Row]] = {}
    for h in sorted(hops, key=lambda r: r.start_ns):
        p = parent_of[h.span_id]
        children.setdefault(p.span_id if p else None, []).append(h)

    def label(h: Row) -> str:
        return L.format_hop(h.service, h.instance_lane, L.Verdict(h.verdict), h.span_id in lost)

    def walk(h: Row, depth: int) -> str:
        kids = children.get(h.span_id, [])
        if not kids or depth > _MAX_DEPTH:
            return label(h)
        if len(kids) == 1:
            return f"{label(h)} -> {walk(kids[0], depth + 1)}"
        return f"{label(h)} -> ({'; '.join(walk(k, depth + 1) for k in kids)})"

    return " ; ".join(walk(r, 0) for r in children.get(None, []))
