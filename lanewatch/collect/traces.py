"""Trace assembly: pairing, tag_lost, lane paths and trace verdicts.

Spans of one trace arrive in any order, in separate requests, and twice. The
assembler keeps each open trace's spans (by span id: a duplicate is seen,
counted and dropped) until no span of it arrived for ``wait_s``; then it
finalises the trace with :func:`judge`. A finalised trace is kept another
``keep_s`` so that a late span reopens it: judging it again yields the
*difference* to what was reported (rollup deltas, new violations marked
late), so totals never count a trace twice. Bounded by ``max_spans``: under
pressure the oldest finalised traces are forgotten first, then the oldest
open ones are finalised early; both are counted. The clock is injected.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from lanewatch.collect.judge import judge


class Row(NamedTuple):
    """One span as the assembler keeps it."""

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


@dataclass
class Finalised:
    """What finalising (or re-finalising) traces produced since the last call."""

    rollups: dict[tuple[Any, ...], list[float]] = field(default_factory=dict)  # (table, *key) -> sums
    violations: list[dict[str, Any]] = field(default_factory=list)
    traces: list[dict[str, Any]] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)


class TraceAssembler:
    def __init__(self, wait_s: float, keep_s: float, max_spans: int, sample_ok: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.wait_s, self.keep_s, self.max_spans = wait_s, keep_s, max_spans
        self.sample_cut = int(sample_ok * (1 << 64))
        self.clock = clock
        self._open: dict[bytes, dict[bytes, Row]] = {}
        self._last: OrderedDict[bytes, float] = OrderedDict()  # open trace -> last arrival
        self._closed: OrderedDict[bytes, dict[bytes, Row]] = OrderedDict()  # spans, oldest first
        self._reopened: dict[bytes, dict[bytes, Row]] = {}  # spans as judged before a late span
        self._closed_at: dict[bytes, float] = {}
        self._n_spans = 0
        self.out = Finalised()

    @property
    def pending_spans(self) -> int:
        return self._n_spans

    def add(self, trace_ids: Sequence[bytes], rows: Sequence[Row]) -> list[int]:
        """Take a batch; return the positions of spans not seen before."""
        now = self.clock()
        open_, last, closed = self._open, self._last, self._closed
        fresh: list[int] = []
        touched: dict[bytes, None] = {}
        for i, (tid, row) in enumerate(zip(trace_ids, rows)):
            spans = open_.get(tid)
            if spans is None:
                c = closed.get(tid)
                if c is None:
                    spans = open_[tid] = {}
                else:  # a late span: reopen, remembering what was judged
                    if row.span_id in c:
                        self.out.counters["duplicate_spans"] += 1
                        continue
                    self.out.counters["late_spans"] += 1
                    self._reopened[tid] = dict(c)
                    spans = open_[tid] = c
            if row.span_id in spans:
                self.out.counters["duplicate_spans"] += 1
                continue
            spans[row.span_id] = row
            fresh.append(i)
            touched[tid] = None
        for tid in touched:
            last[tid] = now
            last.move_to_end(tid)
        self._n_spans += len(fresh)
        self._relieve_pressure()
        return fresh

    def expire(self) -> Finalised:
        """Finalise traces idle for ``wait_s``, forget old finalised ones; return the output."""
        now = self.clock()
        while self._last:
            tid, t = next(iter(self._last.items()))
            if t > now - self.wait_s:
                break
            self._finalise(tid, now)
        while self._closed:
            tid = next(iter(self._closed))
            if self._closed_at[tid] > now - self.keep_s:
                break
            if tid in self._open:  # reopened by a late span: its spans are still needed
                self._closed.move_to_end(tid)
                self._closed_at[tid] = now
                continue
            self._forget(tid)
        out, self.out = self.out, Finalised()
        return out

    def _finalise(self, tid: bytes, now: float) -> None:
        del self._last[tid]
        spans = self._open.pop(tid)
        self._closed.pop(tid, None)
        sampled = int.from_bytes(tid[-8:], "big") < self.sample_cut
        old = self._reopened.pop(tid, None)
        judge(tid, spans, sampled).report(self.out, judge(tid, old, sampled) if old is not None else None)
        self._closed[tid] = spans
        self._closed_at[tid] = now

    def _forget(self, tid: bytes) -> None:
        spans = self._closed.pop(tid)
        del self._closed_at[tid]
        self._n_spans -= len(spans)

    def _relieve_pressure(self) -> None:
        now = self.clock()
        if self._n_spans > self.max_spans:
            excess, victims = self._n_spans - self.max_spans, []
            for tid, c in self._closed.items():  # oldest first; reopened ones are still needed
                if excess <= 0:
                    break
                if tid not in self._open:
                    victims.append(tid)
                    excess -= len(c)
            for tid in victims:
                self._forget(tid)
            self.out.counters["closed_traces_forgotten"] += len(victims)
        while self._n_spans > self.max_spans and self._last:
            tid = next(iter(self._last))
            self._finalise(tid, now)
            self._forget(tid)
            self.out.counters["traces_finalised_early"] += 1
