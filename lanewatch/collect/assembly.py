"""Trace assembly over column chunks: dedupe, finality, late spans. The pairing store.

Spans of one trace arrive in any order, in separate requests, and twice.
Each accepted batch is a *chunk* of columns (see :data:`bulk.COLUMNS`),
stamped with its arrival time. A trace is final once no span of it arrived
for ``wait_s``: :meth:`Assembly.expire` takes the chunks older than that,
keeps back the rows of traces that are still receiving spans (the carry), and
returns the rest, grouped, for :func:`bulk.judge_bulk`.

* Duplicates: the (trace, span) keys seen in the last ``wait_s + keep_s``
  (bounded by ``max_spans``; :class:`~lanewatch.collect.seen.SeenKeys`); a repeat
  is dropped and counted.
* Late spans: a finalised trace's rows are kept ``keep_s``; a span that
  arrives for it reopens the trace, and the next expiry returns the old rows
  too (``prev``) so the caller can report only the difference.
* Journal: each chunk gets a number (:meth:`open_chunks`); the open rows are the chunks
  numbered from :meth:`oldest_open` on plus :meth:`carry`, so a store can keep them and a
  restart resume them (``add`` them again).
* Bounds: past ``max_spans`` open rows, the oldest chunks are finalised early;
  kept rows are bounded by ``max_spans / 2``, oldest forgotten first; counted.

The clock is injected; nothing here reads the time itself.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from lanewatch.collect.bulk import Chunk, concat, span_key, take
from lanewatch.collect.seen import SeenKeys


@dataclass
class Expired:
    """Rows of traces that became final; ``prev``: earlier rows of reopened traces."""

    rows: Chunk | None
    prev: Chunk | None
    #: the distinct trace keys of ``rows`` (sorted) and each row's index into them
    groups: tuple[np.ndarray, np.ndarray] | None = None


class Assembly:
    def __init__(self, wait_s: float, keep_s: float, max_spans: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.wait_s, self.keep_s, self.max_spans, self.clock = wait_s, keep_s, max_spans, clock
        self._open: deque[tuple[float, Chunk, int]] = deque()  # arrival time, rows, number
        self._carry: list[Chunk] = []  # old rows of traces still open
        self._last: dict[int, float] = {}  # open trace -> last arrival
        self._kept: deque[tuple[float, Chunk]] = deque()  # finalised rows, for late spans
        self._final_at: dict[int, float] = {}  # finalised trace -> when
        self._reopened: set[int] = set()
        self._seen = SeenKeys(wait_s + keep_s, max_spans)
        self.n_open = self.n_kept = 0
        self.counters: Counter[str] = Counter()
        self._number = 0  # of the newest chunk

    def add(self, rows: Chunk, arrived: float | None = None) -> np.ndarray:
        """Take a batch that ``arrived`` (default: now); return the mask of rows not seen
        before (those are kept)."""
        now = self.clock() if arrived is None else arrived
        keys = span_key(rows["tkey"], rows["sid"])
        klist = keys.tolist()
        n = len(klist)
        seen = self._seen.recent
        before = len(seen)
        in_old = self._seen.in_old(keys)
        if in_old is None and seen.isdisjoint(klist):
            seen.update(klist)
            if len(seen) - before == n:  # the common case, decided in C: all new, all distinct
                fresh = np.ones(n, dtype=bool)
            else:
                fresh = self._first_occurrences(keys)
        else:
            fresh = np.fromiter((k not in seen for k in klist), dtype=bool, count=n)
            fresh &= self._first_occurrences(keys)
            if in_old is not None:
                fresh &= ~in_old
            seen.update(keys[fresh].tolist())
        n_dup = n - int(fresh.sum())
        if n_dup:
            self.counters["duplicate_spans"] += n_dup
            rows = take(rows, fresh)
            klist = keys[fresh].tolist()
        if not klist:
            return fresh
        self._seen.add(klist, now)
        traces = dict.fromkeys(rows["tkey"].tolist(), now)
        late = self._final_at.keys() & traces.keys()
        if late:
            self.counters["late_spans"] += sum(1 for t in rows["tkey"].tolist() if t in late)
            for t in late:
                del self._final_at[t]
            self._reopened.update(late)
        self._last.update(traces)
        self._number += 1
        self._open.append((now, rows, self._number))
        self.n_open += len(klist)
        self._relieve_pressure()
        return fresh

    @staticmethod
    def _first_occurrences(keys: np.ndarray) -> np.ndarray:
        """Mask of the first row of each key (repeats inside one batch are duplicates)."""
        _, first = np.unique(keys, return_index=True)
        once = np.zeros(len(keys), dtype=bool)
        once[first] = True
        return once

    def open_chunks(self, after: int) -> list[tuple[int, Chunk]]:
        """The open chunks numbered above ``after``, with their numbers, oldest first."""
        out = []
        for _, rows, number in reversed(self._open):
            if number <= after:
                break
            out.append((number, rows))
        return out[::-1]

    def oldest_open(self) -> int:
        """The number of the oldest open chunk (every chunk numbered below it is judged, but
        for the rows in :meth:`carry`)."""
        return self._open[0][2] if self._open else self._number + 1

    def carry(self) -> Chunk | None:
        """Rows of judged-out chunks whose traces are still open."""
        return concat(self._carry) if self._carry else None

    def expire(self, everything: bool = False) -> Expired:
        """Rows of every trace idle for ``wait_s`` (with earlier rows of reopened ones);
        ``everything``: of every open trace (at a stop that cannot keep them).

        Over the ``max_spans`` bound, the oldest chunks are finalised early (counted)."""
        now = self.clock()
        cutoff = float("inf") if everything else now - self.wait_s
        old: list[Chunk] = []
        held = self.n_open
        while self._open and (self._open[0][0] < cutoff or held > self.max_spans):
            t, rows, _ = self._open.popleft()
            if t >= cutoff:
                cutoff = float(np.nextafter(t, np.inf))  # t + 1e-9 would round back to t
                self.counters["spans_finalised_early"] += len(rows["sid"])
            held -= len(rows["sid"])
            old.append(rows)
        out = self._finalise(old + self._carry, cutoff, now)
        self._forget_old(now)
        return out

    def _finalise(self, chunks: list[Chunk], cutoff: float, now: float) -> Expired:
        self._carry = []
        if not chunks:
            return Expired(None, None)
        rows = concat(chunks)
        last = self._last
        uniq, inverse = np.unique(rows["tkey"], return_inverse=True)
        ul = uniq.tolist()
        is_final = np.fromiter(map(last.get, ul, repeat(0.0)), dtype=np.float64, count=len(ul)) < cutoff
        final = is_final[inverse]
        groups = (uniq, inverse)
        if not final.all():
            self._carry = [take(rows, ~final)]
            rows = take(rows, final)
            renumber = np.cumsum(is_final) - 1
            groups = (uniq[is_final], renumber[inverse[final]])
        self.n_open -= len(rows["sid"])
        tl = uniq[is_final].tolist()
        deque(map(last.pop, tl, repeat(None)), maxlen=0)  # forget them, in C
        self._final_at.update(zip(tl, [now] * len(tl)))
        prev = None
        if self._reopened:
            back = self._reopened.intersection(tl)
            if back:
                self._reopened -= back
                prev = self._kept_rows(np.fromiter(back, dtype=np.uint64, count=len(back)))
        self._kept.append((now, rows))
        self.n_kept += len(rows["sid"])
        self._relieve_pressure()
        return Expired(rows, prev, groups)

    def _kept_rows(self, traces: np.ndarray) -> Chunk | None:
        """Kept rows of ``traces`` (each span once)."""
        parts = [take(c, np.isin(c["tkey"], traces)) for _, c in self._kept]
        parts = [p for p in parts if len(p["sid"])]
        if not parts:
            return None
        rows = concat(parts)
        _, first = np.unique(span_key(rows["tkey"], rows["sid"]), return_index=True)
        return take(rows, np.sort(first))

    def _forget_old(self, now: float) -> None:
        while self._kept and self._kept[0][0] < now - self.keep_s:
            self._drop_kept()
        self._seen.roll(now)

    def _drop_kept(self) -> None:
        """Forget the oldest kept rows; their traces can no longer be reopened."""
        when, rows = self._kept.popleft()
        self.n_kept -= len(rows["sid"])
        final_at = self._final_at
        for t in np.unique(rows["tkey"]).tolist():
            if final_at.get(t) == when:
                del final_at[t]

    def _relieve_pressure(self) -> None:
        while self._kept and self.n_kept > self.max_spans // 2:
            self._drop_kept()
            self.counters["kept_chunks_forgotten"] += 1
