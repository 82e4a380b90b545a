"""Judge one assembled trace: edges, tag_lost, entry lane, lane path, stayed.

Pure. A hop's *client* is its parent span when that is a CLIENT/PRODUCER
span; its *hop parent* is the nearest SERVER/CONSUMER ancestor (through
INTERNAL and CLIENT spans). ``tag_lost`` in transit: the lane a client sent
differs from the lane its hop received. ``tag_lost`` inside a service: a
client sent another lane than the hop above it in the same service carried.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lanewatch import lane as L

if TYPE_CHECKING:
    from lanewatch.collect.traces import Finalised, Row

_HOP = frozenset((L.SpanKind.SERVER, L.SpanKind.CONSUMER))
_SEND = frozenset((L.SpanKind.CLIENT, L.SpanKind.PRODUCER))
_MAX_DEPTH = 64
_NS = 1_000_000_000


@dataclass
class Judgement:
    trace_id: str
    stayed: bool = True
    entry_lane: str = L.BASE
    ts: int = 0
    contrib: dict[tuple[Any, ...], list[float]] = field(default_factory=dict)
    violations: list[dict[str, Any]] = field(default_factory=list)
    trace_row: dict[str, Any] | None = None
    counters: Counter[str] = field(default_factory=Counter)

    def _add(self, key: tuple[Any, ...], values: list[float]) -> None:
        old = self.contrib.get(key)
        self.contrib[key] = values if old is None else [a + b for a, b in zip(old, values)]

    def report(self, out: Finalised, prev: Judgement | None) -> None:
        """Add to ``out`` what this judgement adds to ``prev`` (everything when None)."""
        before = prev.contrib if prev else {}
        for key in self.contrib.keys() | before.keys():
            new, old = self.contrib.get(key), before.get(key)
            delta = new if old is None else [a - b for a, b in zip(new or [0.0] * len(old), old)]
            if any(delta):
                acc = out.rollups.get(key)
                out.rollups[key] = delta if acc is None else [a + b for a, b in zip(acc, delta)]
        seen = {(v["kind"], v["span_id"]) for v in prev.violations} if prev else set()
        for v in self.violations:
            if (v["kind"], v["span_id"]) not in seen:
                out.violations.append({**v, "late": prev is not None})
        if self.trace_row and (prev is None or prev.trace_row != self.trace_row):
            out.traces.append(self.trace_row)
        out.counters.update(self.counters if prev is None else self.counters - prev.counters)


def _hop_parent(spans: dict[bytes, Row], row: Row) -> Row | None:
    p = spans.get(row.parent_id)
    for _ in range(_MAX_DEPTH):
        if p is None or p.kind in _HOP:
            return p
        p = spans.get(p.parent_id)
    return None


def judge(trace_id: bytes, spans: dict[bytes, Row], sampled: bool = False) -> Judgement:
    j = Judgement(trace_id.hex())
    hops = [r for r in spans.values() if r.kind in _HOP]
    if not hops:
        j.counters["traces_without_hops"] += 1
        return j
    parent_of: dict[bytes, Row | None] = {}
    lost_into: set[bytes] = set()  # hops whose incoming edge lost the tag
    lost_inside: dict[bytes, Row] = {}  # client span id -> the hop above it
    callee_of: dict[bytes, Row] = {}  # client span id -> the hop it caused
    issues: list[tuple[str, Row, Row | None, Row | None]] = []  # (kind, row, caller, callee)
    for h in hops:
        parent_of[h.span_id] = hp = _hop_parent(spans, h)
        client = spans.get(h.parent_id)
        if h.parent_id and client is None:
            j.counters["unpaired_server_spans"] += 1
        if client is not None and client.kind in _SEND:
            callee_of[client.span_id] = h
            lost = client.request_lane != h.received_lane
            v = [0.0] * 5
            v[h.verdict] = 1.0
            j._add(("edges", client.start_ns // _NS, client.service, h.service, client.request_lane),
                   [1.0, float(h.error), *v[:4], float(lost)])
            if lost:
                lost_into.add(h.span_id)
                issues.append(("tag_lost", h, client, h))
        if h.verdict in (L.Verdict.LEAK, L.Verdict.INTRUSION):
            issues.append((L.Verdict(h.verdict).label, h, hp, h))
    for c in spans.values():
        if c.kind not in _SEND:
            continue
        callee = callee_of.get(c.span_id)
        if callee is None:
            j.counters["unpaired_client_spans"] += 1
        above = _hop_parent(spans, c)
        if above is not None and above.service == c.service and c.request_lane != above.request_lane:
            lost_inside[c.span_id] = above
            issues.append(("tag_lost", above, above, c))
            if callee is not None:  # counted on the edge the call leaves by
                j._add(("edges", c.start_ns // _NS, c.service, callee.service, c.request_lane),
                       [0.0] * 6 + [1.0])
    roots = sorted((h for h in hops if parent_of[h.span_id] is None), key=lambda r: r.start_ns)
    entry = roots[0] if roots else min(hops, key=lambda r: r.start_ns)
    j.entry_lane, j.ts = entry.expected, entry.start_ns // _NS
    j.stayed = not issues
    j._add(("traces", j.ts, j.entry_lane), [1.0, float(j.stayed)])
    if issues or sampled:
        path = lane_path(hops, parent_of, lost_into | {h.span_id for h in lost_inside.values()})
        j.trace_row = {"trace_id": j.trace_id, "ts": j.ts, "entry_lane": j.entry_lane,
                       "stayed": j.stayed, "lane_path": path, "hops": len(hops)}
        j.violations = [_violation(j, kind, row, a, b, path) for kind, row, a, b in issues]
    return j


def _violation(j: Judgement, kind: str, row: Row, a: Row | None, b: Row | None,
               path: str) -> dict[str, Any]:
    """``a``/``b``: caller and callee rows (for an inside loss: the hop and its client span)."""
    inside = b is not None and b.kind in _SEND
    return {"ts": (b or row).start_ns // _NS, "kind": kind, "service": row.service,
            "caller": a.service if a else "", "callee": "" if inside else row.service,
            "request_lane": (a.request_lane if a and kind == "tag_lost" else row.request_lane),
            "instance_lane": row.instance_lane, "entry_lane": j.entry_lane,
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
