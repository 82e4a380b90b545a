"""Lane paths and violation records for the few traces that need them.

The bulk judge (:mod:`.bulk`) counts every trace; the traces that violated their lane,
and a sample of the rest, are turned back into per-span rows here and judged again by
the plain reference (:func:`.judge.judge`), which writes their lane paths and
violation records. Bounded per flush: violating traces first, then sampled ones.
"""

from __future__ import annotations

import numpy as np

from lanewatch.collect import bulk
from lanewatch.collect.judge import Finalised, Row, judge
from lanewatch.collect.names import Strings

Traces = dict[int, tuple[bytes, dict[bytes, Row]]]


def describe(rows: bulk.Chunk, prev: bulk.Chunk | None, violating: np.ndarray, sampled: np.ndarray,
             strings: Strings, limit: int,
             groups: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[Finalised, int]:
    """Violations and kept traces of ``violating`` and ``sampled`` traces (trace keys), at
    most ``limit`` of them; ``prev``: rows already reported for reopened traces (only what
    is new is reported); ``groups``: the distinct trace keys of ``rows`` and each row's
    index into them, when known. Returns the output and how many violating traces were
    skipped."""
    out = Finalised()
    skipped = max(0, len(violating) - limit)
    chosen = np.concatenate([violating[:limit], sampled[:max(0, limit - len(violating))]])
    if not len(chosen):
        return out, skipped
    is_sampled = set(sampled.tolist())
    before = as_rows(prev, chosen, strings) if prev is not None else {}
    mine = np.isin(groups[0], chosen)[groups[1]] if groups is not None else None
    for tkey, (tid, spans) in as_rows(rows, chosen, strings, mine).items():
        kept = tkey in is_sampled
        old = before.get(tkey)
        judge(tid, spans, kept).report(out, judge(tid, old[1], kept) if old else None)
    return out, skipped


def as_rows(rows: bulk.Chunk, traces: np.ndarray, strings: Strings, mine: np.ndarray | None = None) -> Traces:
    """The rows of ``traces`` (``mine``: the mask of those rows, when known) as the
    reference judge takes them: trace id -> spans by id."""
    sub = bulk.take(rows, np.isin(rows["tkey"], traces) if mine is None else mine)
    S = strings
    cols = (sub["tkey"].tolist(), sub["thi"].tolist(), sub["tlo"].tolist(), sub["sid"].tolist(),
            sub["pid"].tolist(), sub["kind"].tolist(), S.names(sub["svc"]), S.names(sub["inst"]),
            S.names(sub["req"]), S.names(sub["recv"]), S.names(sub["exp"]), sub["verdict"].tolist(),
            sub["start"].tolist(), sub["err"].tolist())
    out: Traces = {}
    for tk, hi, lo, sid, pid, kind, svc, inst, req, recv, exp, verdict, start, err in zip(*cols):
        entry = out.get(tk)
        if entry is None:
            entry = out[tk] = (hi.to_bytes(8, "big") + lo.to_bytes(8, "big"), {})
        span = sid.to_bytes(8, "big")
        entry[1][span] = Row(span, pid.to_bytes(8, "big") if pid else b"", kind, svc, inst, req, recv,
                             exp, verdict, start, err)
    return out
