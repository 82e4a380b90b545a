""":class:`MetricsSink`: the span path's batches summed into totals since start, for ``/metrics``.

A :class:`~lanewatch.collect.sink.BatchSink` beside the store. Each batch's rollup rows
(:data:`lanewatch.rollups.ROLLUPS`) are grouped by the labels Prometheus shows, over
every second in the batch, and added to one :class:`~.families.Family` per metric:

* ``hops`` rows -> ``lanewatch_hops_total`` / ``lanewatch_hop_errors_total``
  (``service``, ``instance_lane``, ``expected_lane``, ``verdict``; the request lane is summed
  away), and the ``_sum`` of ``lanewatch_hop_duration_seconds`` from ``latency_sum_ms``;
* ``latency`` rows -> the buckets of ``lanewatch_hop_duration_seconds`` (``service``,
  ``instance_lane``), each log bucket under its ``le`` slot (:mod:`.buckets`);
* ``edges`` rows -> ``lanewatch_edges_total`` (``caller``, ``callee``, ``lane``, ``verdict``):
  one series per hop verdict of the callee (these sum to the calls) plus ``tag_lost`` (calls
  whose lane was lost, in transit or inside the caller). ``lane`` is the lane the edge is
  *drawn* in, as ``/api/v1/edges`` draws it: the lane the caller sent, or the trace's entry
  lane when it sent none (rule-routed gray traffic is gray; a tag lost inside a gray service
  is gray's);
* ``traces`` rows -> ``lanewatch_traces_total`` (``entry_lane``, ``stayed`` = "true"/"false");
* ``Batch.counters`` -> the collector's own counters (:mod:`.counters`), kept as net sums.

``write`` groups outside the lock and adds under it; :meth:`MetricsSink.snapshot` copies
under it, so a scrape never sees half a batch.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lanewatch import lane as L
from lanewatch.histogram import N_BUCKETS
from lanewatch.metrics.buckets import LE_OF_BUCKET, N_LE
from lanewatch.metrics.families import Family, Key
from lanewatch.rollups import HOP_VERDICT_LABELS
from lanewatch.store.base import Batch

Columns = Mapping[str, Sequence[Any]]
#: The edge verdict series: each hop verdict of the callee, then ``tag_lost``.
EDGE_VERDICTS = (*HOP_VERDICT_LABELS, L.Verdict.TAG_LOST.label)
DEFAULT_MAX_SERIES = 10_000


@dataclass
class Snapshot:
    """A consistent copy of the totals: (label values, values) per series."""

    hops: list[tuple[Key, list[float]]]  # [requests, errors]
    durations: list[tuple[Key, list[float]]]  # N_LE counts per le slot (not cumulative), then sum (s)
    edges: list[tuple[Key, list[float]]]
    traces: list[tuple[Key, list[float]]]
    counters: dict[str, float]
    #: per exposed family name: series kept (overflow included), label sets folded, units taken back
    series: dict[str, int]
    folded: dict[str, int]
    taken_back: dict[str, float]
    #: the newest batch (``Batch.seq``) in these totals
    seq: int = 0


def _col(cols: Columns, name: str) -> list[Any]:
    c = cols[name]
    return c.tolist() if hasattr(c, "tolist") else list(c)  # numpy arrays or lists


def _bump(acc: dict[Key, list[float]], key: Key, width: int, i: int, v: float) -> None:
    row = acc.get(key)
    if row is None:
        row = acc[key] = [0.0] * width
    row[i] += v


def hop_deltas(cols: Columns | None) -> tuple[dict[Key, list[float]], dict[Key, list[float]]]:
    """(hops by (service, instance, expected, verdict): [requests, errors];
    latency sums by (service, instance lane) at the sum slot of the duration family)."""
    hops: dict[Key, list[float]] = {}
    sums: dict[Key, list[float]] = {}
    if not cols or not len(cols["service"]):
        return hops, sums
    svc, inst = _col(cols, "service"), _col(cols, "instance_lane")
    for key, req, err, ms in zip(zip(svc, inst, _col(cols, "expected_lane"), _col(cols, "verdict")),
                                 _col(cols, "requests"), _col(cols, "errors"), _col(cols, "latency_sum_ms")):
        row = hops.get(key)
        if row is None:
            hops[key] = [float(req), float(err)]
        else:
            row[0] += req
            row[1] += err
        if ms:
            _bump(sums, key[:2], N_LE + 1, N_LE, ms / 1000.0)
    return hops, sums


def duration_deltas(cols: Columns | None, acc: dict[Key, list[float]]) -> dict[Key, list[float]]:
    """Add the latency rows' counts to ``acc`` by (service, instance lane), per ``le`` slot."""
    if not cols or not len(cols["service"]):
        return acc
    top = N_BUCKETS - 1
    for key, b, n in zip(zip(_col(cols, "service"), _col(cols, "instance_lane")),
                         _col(cols, "bucket"), _col(cols, "count")):
        if n:
            _bump(acc, key, N_LE + 1, LE_OF_BUCKET[min(max(int(b), 0), top)], float(n))
    return acc


def edge_deltas(cols: Columns | None) -> dict[Key, list[float]]:
    """Edges by (caller, callee, lane drawn, verdict)."""
    out: dict[Key, list[float]] = {}
    if not cols or not len(cols["caller"]):
        return out
    n = len(cols["caller"])
    values = [_col(cols, v) if v in cols else [0] * n for v in EDGE_VERDICTS]  # 0: a writer before it
    rows = zip(_col(cols, "caller"), _col(cols, "callee"), _col(cols, "lane"), _col(cols, "entry_lane"))
    for r, (caller, callee, sent, entry) in enumerate(rows):
        drawn = entry if sent == L.BASE and isinstance(entry, str) else sent
        for verdict, col in zip(EDGE_VERDICTS, values):
            if col[r]:
                _bump(out, (caller, callee, drawn, verdict), 1, 0, float(col[r]))
    return out


def trace_deltas(cols: Columns | None) -> dict[Key, list[float]]:
    """Traces by (entry lane, stayed "true"/"false")."""
    out: dict[Key, list[float]] = {}
    if not cols or not len(cols["entry_lane"]):
        return out
    for entry, n, stayed in zip(_col(cols, "entry_lane"), _col(cols, "traces"), _col(cols, "stayed")):
        if stayed:
            _bump(out, (entry, "true"), 1, 0, float(stayed))
        if n - stayed:
            _bump(out, (entry, "false"), 1, 0, float(n - stayed))
    return out


class MetricsSink:
    """Totals since start of every batch written (a ``BatchSink``); thread-safe.

    ``max_series``: label sets kept per metric family (``metrics.max_series``)."""

    def __init__(self, max_series: int = DEFAULT_MAX_SERIES) -> None:
        self.max_series = max_series
        self.hops = Family("lanewatch_hops_total", ("service", "instance_lane", "expected_lane", "verdict"),
                           2, max_series)
        self.durations = Family("lanewatch_hop_duration_seconds", ("service", "instance_lane"), N_LE + 1,
                                max_series)
        self.edges = Family("lanewatch_edges_total", ("caller", "callee", "lane", "verdict"), 1, max_series)
        self.traces = Family("lanewatch_traces_total", ("entry_lane", "stayed"), 1, max_series)
        self._counters: dict[str, float] = {}
        self._seq = 0
        self._lock = threading.Lock()

    def write(self, batch: Batch) -> None:
        """Add one batch (the rows are read, never kept)."""
        r = batch.rollups
        hops, durations = hop_deltas(r.get("hops"))
        durations = duration_deltas(r.get("latency"), durations)
        edges, traces = edge_deltas(r.get("edges")), trace_deltas(r.get("traces"))
        with self._lock:
            self.hops.add(hops)
            self.durations.add(durations)
            self.edges.add(edges)
            self.traces.add(traces)
            for name, v in batch.counters.items():
                self._counters[name] = self._counters.get(name, 0.0) + v
            self._seq = max(self._seq, batch.seq)

    def snapshot(self) -> Snapshot:
        """A copy of every total, taken between two batches."""
        with self._lock:
            fams = (self.hops, self.durations, self.edges, self.traces)
            return Snapshot(self.hops.items(), self.durations.items(), self.edges.items(),
                            self.traces.items(), dict(self._counters),
                            {f.name: len(f) for f in fams}, {f.name: f.folds.count for f in fams},
                            {f.name: f.taken_back for f in fams}, self._seq)
