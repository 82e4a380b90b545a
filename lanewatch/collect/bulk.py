"""Judge many complete traces at once, column-wise with numpy. Pure.

The same rules as :func:`lanewatch.collect.judge.judge` (the plain, per-trace
reference, which tests compare this against on random traces), computed for
a whole set of rows: parents are found by a sorted join on (trace, span id),
the nearest hop ancestor by pointer jumping, entry hops by a grouped sort.
Only the traces that violated their lane (or were sampled) go on to the
per-trace reference for their lane paths and violation records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lanewatch import lane as L
from lanewatch import rollups as R
from lanewatch.collect.weights import integer_weights

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

#: Column names and dtypes of a row set (a "chunk").
COLUMNS: dict[str, type] = {
    "thi": np.uint64, "tlo": np.uint64, "tkey": np.uint64, "sid": np.uint64, "pid": np.uint64,
    "kind": np.int8, "svc": np.int32, "inst": np.int32, "req": np.int32, "recv": np.int32,
    "exp": np.int32, "verdict": np.int8, "start": np.int64, "err": np.bool_,
    "w": np.float64,  # sampling weight (collect/weights.py; 1: the span stands for itself)
}
Chunk = dict[str, np.ndarray]
#: The columns that hold name codes (:class:`lanewatch.collect.names.Strings`).
NAME_COLUMNS: tuple[str, ...] = ("svc", "inst", "req", "recv", "exp")

_MIX = np.uint64(0x9E3779B97F4A7C15)
_N_EDGE = len(R.EDGE_METRICS)
#: edge value column of each verdict code (hop verdicts only)
_VERDICT_COLUMN = np.array(R.EDGE_VERDICT, dtype=np.int64)
#: verdict code -> violates its lane (codes up to the largest Verdict)
_VIOLATES = np.array([L.Verdict(c).is_violation for c in range(max(L.Verdict) + 1)], dtype=bool)
_NS = 1_000_000_000
_MAX_DEPTH = 64


def trace_key(thi: U64, tlo: U64) -> U64:
    """One 64-bit key per 128-bit trace id."""
    with np.errstate(over="ignore"):
        return tlo ^ (thi * _MIX2)


_MIX2 = np.uint64(0xC2B2AE3D27D4EB4F)


def span_key(tkey: U64, sid: U64) -> U64:
    """One 64-bit key per (trace, span id)."""
    with np.errstate(over="ignore"):
        return tkey ^ (sid * _MIX)


def concat(chunks: list[Chunk]) -> Chunk:
    if len(chunks) == 1:
        return chunks[0]
    return {k: np.concatenate([c[k] for c in chunks]) for k in COLUMNS}


def take(chunk: Chunk, idx: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> Chunk:
    return {k: v[idx] for k, v in chunk.items()}


def _entry_hops(hops: I64, start: I64, below: npt.NDArray[np.bool_], group: I64, n_groups: int) -> I64:
    """Per trace that has hops, in trace order: its entry hop, the first of ``hops`` by
    (``below`` a hop, start, position). Minimums per trace by ``np.minimum.at`` when the
    starts span less than 2^40 ns (18 minutes); a stable sort otherwise."""
    if not len(hops):
        return hops
    lo = int(start.min())
    if int(start.max()) - lo >= 1 << 40:
        o = np.lexsort((start, below, group))
        first = np.ones(len(o), dtype=bool)
        first[1:] = group[o][1:] != group[o][:-1]
        return hops[o[first]]
    key = (below.astype(np.int64) << 40) | (start - lo)
    best = np.full(n_groups, np.iinfo(np.int64).max)
    np.minimum.at(best, group, key)
    tied = np.flatnonzero(key == best[group])
    first = np.full(n_groups, len(hops), dtype=np.int64)
    np.minimum.at(first, group[tied], tied)
    return hops[first[first < len(hops)]]


@dataclass
class Judged:
    """Everything the rollups need from a set of complete traces."""

    edge_keys: tuple[I64, I64, I64, I64, I64]  # second, caller svc, callee svc, lane sent, entry lane
    edge_values: npt.NDArray[np.float64]  # (n_edges, len(rollups.EDGE_METRICS)), named there
    trace_keys: tuple[I64, I64]  # entry second, entry lane (one per trace with hops)
    trace_stayed: npt.NDArray[np.bool_]
    trace_tkey: U64  # trace key of each judged trace (same order)
    #: once per (trace, service with a hop in it): entry second, service, entry lane
    trace_service_keys: tuple[I64, I64, I64]
    trace_service_stayed: npt.NDArray[np.bool_]
    counters: dict[str, int]
    traces: U64  # the distinct trace keys of the rows (sorted)
    row_trace: I64  # each row's index into ``traces``
    #: sampling: a trace counts its entry hop's weight, as an integer (``weights.integer_weights``,
    #: already in ``edge_values``); whether any judged trace weighs other than 1; per edge row,
    #: trace and trace-service row: the integer weight and whether it was weighted
    weighted: bool = False
    edge_weighted: npt.NDArray[np.bool_] | None = None
    trace_weight: I64 | None = None
    trace_weighted: npt.NDArray[np.bool_] | None = None
    trace_service_weight: I64 | None = None
    trace_service_weighted: npt.NDArray[np.bool_] | None = None


def judge_bulk(r: Chunk, groups: tuple[U64, I64] | None = None) -> Judged:
    """Judge the complete traces in ``r``; ``groups``, when known: the distinct trace keys
    (sorted) and each row's index into them, as ``np.unique(r["tkey"], return_inverse=True)``."""
    n = len(r["sid"])
    idx = np.arange(n)
    kind, tkey = r["kind"], r["tkey"]
    is_hop = (kind == L.SpanKind.SERVER) | (kind == L.SpanKind.CONSUMER)
    is_send = (kind == L.SpanKind.CLIENT) | (kind == L.SpanKind.PRODUCER)
    # parent row of every row (-1: none in the trace)
    # (a sorted join: both sides sorted first, so the search walks memory in order)
    own = span_key(tkey, r["sid"])
    order = np.argsort(own)
    sorted_keys = own[order]
    want = span_key(tkey, r["pid"])
    w_order = np.argsort(want)
    w_sorted = want[w_order]
    pos = np.minimum(np.searchsorted(sorted_keys, w_sorted), max(n - 1, 0))
    hit = (sorted_keys[pos] == w_sorted) if n else np.zeros(0, bool)
    parent = np.empty(n, dtype=np.int64)
    parent[w_order] = np.where(hit, order[pos], -1)
    parent[r["pid"] == 0] = -1
    # nearest hop ancestor (excluding the row itself) by pointer jumping
    anc = parent.copy()
    for _ in range(_MAX_DEPTH):
        climb = (anc >= 0) & ~is_hop[np.maximum(anc, 0)]
        if not climb.any():
            break
        anc[climb] = parent[anc[climb]]
    anc[(anc >= 0) & ~is_hop[np.maximum(anc, 0)]] = -1
    # traces as groups
    uniq, group = groups if groups is not None else np.unique(tkey, return_inverse=True)
    bad = np.zeros(len(uniq), dtype=bool)
    counters: dict[str, int] = {}

    # entry hop per trace: roots first, then earliest start (then the first row)
    hops = idx[is_hop]
    entry = _entry_hops(hops, r["start"][hops], anc[hops] >= 0, group[hops], len(uniq))
    entry_lane = np.zeros(len(uniq), dtype=np.int64)  # per trace (traces without hops: unused)
    entry_lane[group[entry]] = r["exp"][entry]

    # edges: a hop whose parent is a CLIENT/PRODUCER span
    par = np.maximum(parent, 0)
    edge = is_hop & (parent >= 0) & is_send[par]
    hop_i, cli_i = idx[edge], parent[edge]
    lost = r["req"][cli_i] != r["recv"][hop_i]
    vals = np.zeros((len(hop_i), _N_EDGE))
    vals[:, R.EDGE_CALLS] = 1.0
    vals[:, R.EDGE_ERRORS] = r["err"][hop_i]
    vals[np.arange(len(hop_i)), _VERDICT_COLUMN[r["verdict"][hop_i].astype(np.int64)]] = 1.0
    vals[:, R.EDGE_TAG_LOST] = lost
    bad[group[hop_i[lost]]] = True
    callee = np.full(n, -1, dtype=np.int64)
    callee[cli_i] = hop_i
    keys = [r["start"][cli_i] // _NS, r["svc"][cli_i], r["svc"][hop_i], r["req"][cli_i],
            entry_lane[group[hop_i]]]
    # tag lost inside a service: a send under a hop of its own service carrying another lane
    send_i = idx[is_send]
    above = anc[send_i]
    ok = above >= 0
    ab = np.maximum(above, 0)
    inside = ok & (r["svc"][ab] == r["svc"][send_i]) & (r["req"][send_i] != r["req"][ab])
    bad[group[send_i[inside]]] = True
    leaving = send_i[inside & (callee[send_i] >= 0)]
    if len(leaving):
        extra = np.zeros((len(leaving), _N_EDGE))
        extra[:, R.EDGE_TAG_LOST] = extra[:, R.EDGE_TAG_LOST_INSIDE] = 1.0
        vals = np.vstack([vals, extra])
        more = [r["start"][leaving] // _NS, r["svc"][leaving], r["svc"][callee[leaving]], r["req"][leaving],
                entry_lane[group[leaving]]]
        keys = [np.concatenate([a, b]) for a, b in zip(keys, more)]
    # hop verdicts that violate
    bad[group[is_hop & _VIOLATES[np.maximum(r["verdict"], 0)]]] = True
    counters["unpaired_server_spans"] = int((is_hop & (r["pid"] != 0) & (parent < 0)).sum())
    counters["unpaired_client_spans"] = int((is_send & (callee < 0)).sum())

    counters["traces_without_hops"] = len(uniq) - len(entry)
    g = group[entry]
    # each trace once per service that served one of its hops
    entry_ts = np.zeros(len(uniq), dtype=np.int64)
    entry_ts[g] = r["start"][entry] // _NS
    n_svc = int(r["svc"].max()) + 1 if n else 1
    pairs = np.unique(group[hops].astype(np.int64) * n_svc + r["svc"][hops])
    pg, ps = pairs // n_svc, pairs % n_svc
    # sampling weights: each trace's is its entry hop's (a trace is sampled whole)
    raw = np.ones(len(uniq))
    raw[g] = r["w"][entry]
    heavy = raw != 1.0
    weighted = bool(heavy.any())
    tw = integer_weights(raw, uniq) if weighted else np.ones(len(uniq), dtype=np.int64)
    edge_trace = np.concatenate([group[hop_i], group[leaving]]) if len(leaving) else group[hop_i]
    if weighted:
        vals *= tw[edge_trace][:, None]
    return Judged(
        weighted=weighted, edge_weighted=heavy[edge_trace], trace_weight=tw[g], trace_weighted=heavy[g],
        trace_service_weight=tw[pg], trace_service_weighted=heavy[pg],
        edge_keys=(keys[0], keys[1], keys[2], keys[3], keys[4]),
        edge_values=vals,
        trace_keys=(r["start"][entry] // _NS, r["exp"][entry]),
        trace_stayed=~bad[g], trace_tkey=uniq[g],
        trace_service_keys=(entry_ts[pg], ps, entry_lane[pg]), trace_service_stayed=~bad[pg],
        counters=counters, traces=uniq, row_trace=group)
