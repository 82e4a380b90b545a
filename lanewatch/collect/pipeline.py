"""The span path: decode -> dedupe -> hop verdicts -> per-second rollups -> traces.

:class:`Pipeline` is the receivers' :class:`~lanewatch.collect.ingest.Sink`.
Hop counts are rolled up as spans arrive (visible on the next flush, every
``flush_interval_s``); edges, ``tag_lost`` and trace verdicts follow when a
trace is final (``trace_wait_s`` after its last span). Everything the
collector drops or cannot place is counted and handed to the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from itertools import repeat

import numpy as np

from lanewatch import lane as L
from lanewatch.collect import classify
from lanewatch.collect.aggregate import Rollup
from lanewatch.collect.decode import Keys, SpanColumns, decode_metrics, decode_traces
from lanewatch.collect.ingest import Format, IngestResult, Signal
from lanewatch.collect.liveness import Liveness
from lanewatch.collect.names import Names
from lanewatch.collect.traces import Row, TraceAssembler
from lanewatch.config import Settings
from lanewatch.histogram import bucket_of
from lanewatch.store.base import ROLLUPS, Batch, Store

log = logging.getLogger(__name__)
_NS = 1_000_000_000


class Pipeline:
    """Thread-safe: receivers call :meth:`ingest` from many threads; :meth:`flush`
    (called by :meth:`start`'s thread, or by tests) hands a Batch to the store."""

    def __init__(self, settings: Settings, store: Store | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        self.keys = Keys(tuple(settings.request_lane_attributes), tuple(settings.instance_lane_attributes),
                         tuple(settings.rule_attributes))
        self.counters: Counter[str] = Counter()
        self.lanes = Names(settings.max_lanes, L.normalize_lane, L.OVERFLOW_LANE, "lane", self.counters)
        self.services = Names(settings.max_services, _service_name, "_other", "service", self.counters)
        self.liveness = Liveness(settings.liveness_ttl_s, settings.topology, clock)
        self.assembler = TraceAssembler(settings.trace_wait_s, settings.closed_trace_keep_s,
                                        settings.max_pending_spans, settings.sample_ok_traces, clock)
        self.rollups = {t: Rollup(t) for t in ROLLUPS}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- Sink ------------------------------------------------------------------------------
    def ingest(self, signal: Signal, body: bytes, fmt: Format) -> IngestResult:
        if signal == "metrics":
            beats, points = decode_metrics(body, fmt, self.keys)
            with self._lock:
                for b in beats:
                    r = b.resource
                    self.liveness.observe(self.services[r.service], self.lanes[r.lane], r.instance,
                                          b.time_ns / _NS, b.up)
                self.counters["metric_points_received"] += points
            return IngestResult(accepted=points)
        cols = decode_traces(body, fmt, self.keys)
        rejected, why = _drop_invalid(cols)
        with self._lock:
            self._ingest_spans(cols)
            self.counters["spans_received"] += cols.n
            if rejected:
                self.counters["spans_rejected_invalid"] += rejected
        return IngestResult(accepted=cols.n, rejected=rejected, message=why)

    def count_drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.counters[f"requests_refused_{reason}"] += n

    # --- the span path -----------------------------------------------------------------------
    def _ingest_spans(self, c: SpanColumns) -> None:
        n = c.n
        if n == 0:
            return
        res = np.asarray(c.resource, dtype=np.int64)
        res_service = np.asarray(self.services.map([r.service for r in c.resources]), dtype=object)
        res_lane = np.asarray(self.lanes.map([r.lane for r in c.resources]), dtype=object)
        start = np.asarray(c.start_ns, dtype=np.int64)
        end = np.asarray(c.end_ns, dtype=np.int64)
        last_end = np.zeros(len(c.resources), dtype=np.int64)
        np.maximum.at(last_end, res, end)
        for i, r in enumerate(c.resources):
            self.liveness.observe(res_service[i], res_lane[i], r.instance, float(last_end[i]) / _NS)

        service, inst = res_service[res], res_lane[res]
        req = self.lanes.map(c.request_lane)
        kind = np.asarray(c.kind, dtype=np.int8)
        is_hop = (kind == L.SpanKind.SERVER) | (kind == L.SpanKind.CONSUMER)
        expected = classify.expected_lanes(service, req, is_hop, c.extra, self.settings.rules)
        verdict = classify.hop_verdicts(service, inst, expected, is_hop, start / _NS, self.liveness.is_live)
        error = np.asarray(c.status, dtype=np.int8) == 2
        received = [L.BASE if d == "true" else r for d, r in zip(c.dyed, req)]
        rows = list(map(tuple.__new__, repeat(Row), zip(
            c.span_id, c.parent_id, c.kind, service.tolist(), inst.tolist(), req, received,
            expected.tolist(), verdict.tolist(), c.start_ns, error.tolist())))
        fresh = np.asarray(self.assembler.add(c.trace_id, rows), dtype=np.int64)
        sel = fresh[is_hop[fresh]]
        m = len(sel)
        if m == 0:
            return
        seconds = (start[sel] // _NS).tolist()
        svc, lane_i = service[sel].tolist(), inst[sel].tolist()
        lane_r = [req[i] for i in sel.tolist()]
        latency_ms = np.maximum(end[sel] - start[sel], 0) / 1e6
        self.rollups["hops"].add(
            zip(seconds, svc, lane_i, lane_r, expected[sel].tolist(),
                map(L.VERDICT_NAMES.__getitem__, verdict[sel].tolist())),
            m, [None, error[sel].astype(np.float64), latency_ms])
        self.rollups["latency"].add(zip(seconds, svc, lane_i, lane_r, bucket_of(latency_ms).tolist()),
                                    m, [None])
        self.counters["hops"] += m

    # --- flushing ------------------------------------------------------------------------
    def flush(self) -> Batch:
        """Finalise idle traces and hand everything accumulated to the store."""
        with self._lock:
            fin = self.assembler.expire()
            for (table, *key), values in fin.rollups.items():
                self.rollups[table].add_one(tuple(key), values)
            self.counters.update(fin.counters)
            batch = Batch(rollups={t: r.drain() for t, r in self.rollups.items()},
                          violations=fin.violations, traces=fin.traces,
                          instances=self.liveness.take_changes(),
                          counters={k: v for k, v in self.counters.items() if v})
            self.counters.clear()
        if self.store is not None and batch:
            self.store.write(batch)
        return batch

    def start(self) -> None:
        """Flush every ``flush_interval_s`` and maintain the store every minute, in a thread."""
        def loop() -> None:
            last_maintain = self.clock()
            while not self._stop.wait(self.settings.flush_interval_s):
                try:
                    self.flush()
                    now = self.clock()
                    if self.store is not None and now - last_maintain > 60:
                        last_maintain = now
                        self.store.maintain(now)
                        with self._lock:
                            self.liveness.forget_before(now - max(3600.0, 10 * self.settings.liveness_ttl_s))
                except Exception:  # keep flushing whatever one flush hit
                    log.exception("flush failed")

        self._thread = threading.Thread(target=loop, name="lanewatch-flush", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()


def _service_name(raw: object) -> str:
    s = str(raw).strip()[:200]
    return s if s else "unknown_service"


def _drop_invalid(c: SpanColumns) -> tuple[int, str]:
    """Remove spans with malformed ids or no start time; return (count, message)."""
    ok_ids = (set(map(len, c.trace_id)) <= {16} and set(map(len, c.span_id)) <= {8}
              and set(map(len, c.parent_id)) <= {0, 8} and 0 not in c.start_ns
              and bytes(16) not in c.trace_id)
    if ok_ids:
        return 0, ""
    keep = [i for i in range(c.n) if len(c.trace_id[i]) == 16 and len(c.span_id[i]) == 8
            and len(c.parent_id[i]) in (0, 8) and c.start_ns[i] > 0 and any(c.trace_id[i])]
    dropped = c.n - len(keep)
    for name in ("trace_id", "span_id", "parent_id", "kind", "start_ns", "end_ns", "status",
                 "request_lane", "dyed", "resource"):
        col = getattr(c, name)
        setattr(c, name, [col[i] for i in keep])
    c.extra = {k: [v[i] for i in keep] for k, v in c.extra.items()}
    return dropped, (f"{dropped} spans rejected: trace_id must be 16 bytes, span_id 8 bytes, "
                     "parent_span_id empty or 8 bytes, start_time_unix_nano set")
