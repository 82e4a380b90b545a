"""The span path: decode -> dedupe -> hop verdicts -> per-second rollups -> traces.

:class:`Engine` is the receivers' :class:`~lanewatch.collect.ingest.Sink`; its
:meth:`Engine.flush` turns what arrived since the last flush into one
:class:`~lanewatch.store.base.Batch`. Hop counts are rolled up as spans arrive (in the
next batch); edges, ``tag_lost`` and trace verdicts follow when a trace is final
(``trace_wait_s`` after its last span). Everything the collector drops or cannot place
is counted and goes out in the batch. With :attr:`Engine.journaling` on, each batch also
carries the change to the open spans (:class:`~lanewatch.store.base.OpenSpans`) for a store
that keeps them, and :meth:`Engine.resume` takes them back after a restart; without it,
the final flush judges every open trace. It owns no thread and no store: the
:class:`~lanewatch.collect.pipeline.Pipeline` flushes it on a timer and hands each batch
to its sinks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from lanewatch import lane as L
from lanewatch.collect import bulk, classify, limits, wire
from lanewatch.collect.admission import Admission
from lanewatch.collect.aggregate import NOTHING, Rollup
from lanewatch.collect.assembly import Assembly
from lanewatch.collect.decode import (
    AttributeStrings,
    Keys,
    Resource,
    SpanColumns,
    decode_metrics,
    decode_traces,
)
from lanewatch.collect.details import describe
from lanewatch.collect.ingest import DecodeError, Format, IngestResult, Overloaded, Signal, TooLarge
from lanewatch.collect.judge import Finalised
from lanewatch.collect.liveness import Liveness
from lanewatch.collect.logs import decode_logs
from lanewatch.collect.memlimit import MemoryLimit
from lanewatch.collect.names import Names, Strings
from lanewatch.collect.weights import SpanWeights, integer_weights
from lanewatch.config import Rule, Settings
from lanewatch.histogram import N_BUCKETS, bucket_of
from lanewatch.rollups import ROLLUPS
from lanewatch.rules.versions import RuleBook, RuleVersion
from lanewatch.store.base import Batch, OpenSpans, Resumed

log = logging.getLogger(__name__)
_NS = 1_000_000_000
#: Violating traces per flush whose lane paths and violation records are built; the
#: rest are still counted in every rollup, and the excess is counted too.
MAX_DETAILED_TRACES = 2000
#: Decoded requests wait until this many spans are pending (or the next flush) and then
#: go through the span path together: its fixed cost per call (a few dozen numpy calls,
#: set and dict operations) is then paid once per batch instead of once per request.
BATCH_SPANS = 8192
#: A collector whose newest batch is older than this is not waited for (stopped or cut off).
PEER_GONE_S = 10.0
#: Batches whose counters the engine remembers until a store has them (older ones it has, or
#: it failed to write them: their counts are then lost from both, consistently).
_HANDED_KEPT = 64


class Engine:
    """Thread-safe: receivers call :meth:`ingest` from many threads; :meth:`flush`
    (called by the pipeline's thread, or by tests) returns everything since the last flush."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings, self.clock = settings, clock
        #: routing rules and topology in time: each hop is judged by the version in force at its
        #: span's start (lanewatch/rules/reload.py applies new ones)
        self.rulebook = RuleBook(settings.routing_rules, settings.topology, clock)
        self.keys = self._keys()
        #: sampling weights of spans (collect/weights.py)
        self.weights = SpanWeights(settings.sampling_weight_attribute)
        self.counters: Counter[str] = Counter()
        #: this collector's name in a shared store (``Batch.collector``)
        self.collector = settings.collector_name
        self.limits = limits.Limits(settings.max_spans_per_request, settings.max_points_per_request,
                                    settings.max_json_values_per_request,
                                    settings.max_attributes_per_request)
        self.lanes = Names(settings.max_lanes, L.normalize_lane, L.OVERFLOW_LANE, "lane", self.counters)
        self.services = Names(settings.max_services, _service_namer(settings.max_name_chars), "_other",
                              "service", self.counters)
        self.liveness = Liveness(settings.liveness_ttl_s, None, clock,  # topology: by version, _is_live
                                 max_per_lane=settings.max_instances_per_lane,
                                 max_total=settings.max_instances, max_id_chars=settings.max_name_chars,
                                 counters=self.counters)
        self.assembly = Assembly(settings.trace_wait_s, settings.closed_trace_keep_s,
                                 settings.max_pending_spans, clock)
        self.strings = Strings()
        #: each version's rules by service code, with the lane code (see :meth:`_compiled`)
        self._compiled_rules: dict[int, dict[int, list[tuple[Rule, int]]]] = {}
        self.rulebook.listeners.append(self._on_rules)
        self._sample_cut = np.uint64(min(int(settings.sample_ok_traces * 2.0**64), 2**64 - 1))
        self.rollups = {t: Rollup(t) for t in ROLLUPS}
        self._pending: list[tuple[SpanColumns, float]] = []  # decoded, not yet through the span path, with arrival
        self._pending_n = 0
        #: several collectors share liveness through the store (``merge_peer_liveness``): spans
        #: wait until every other collector's liveness covers their arrival (at most
        #: ``liveness_wait_s``) before they are judged
        self.sharing = False
        self._peer_as_of: dict[str, float] = {}
        self._lock = threading.Lock()
        #: hand out the change to the open spans with each batch (the store keeps them)
        self.journaling = False
        self._journaled = 0  # number of the newest open chunk handed out
        self._names_out = 0  # names handed out
        self._live_from = 0
        self._had_carry = False
        self._rejournal = True
        #: clock time by which every accepted span is in the store (None: nobody tells; the
        #: pipeline does, after its store wrote a batch)
        self.durable_at: float | None = None
        self._seq = 0  # of the newest batch
        #: counters of recent batches by number, until a store says it has them
        self._handed: dict[int, dict[str, int]] = {}
        #: overload shedding (docs/design.md, "Overload"): decode slots and the memory ceiling
        self.admission = Admission(settings.max_concurrent_decodes, settings.admission_wait_s)
        self.memory = MemoryLimit(settings.memory_limit_mib, settings.memory_spike_mib)

    # --- Sink ------------------------------------------------------------------------------
    def ingest(self, signal: Signal, body: bytes, fmt: Format) -> IngestResult:
        try:
            self.memory.check()
        except Overloaded:
            self.count_drop("memory_limit")
            raise
        try:
            limits.check_request(signal, body, fmt, self.limits)
            with self.admission.slot():
                return self._ingest(signal, body, fmt)
        except TooLarge as e:
            self.count_drop(e.reason)
            raise
        except DecodeError:  # not an OTLP export request: 400 / INVALID_ARGUMENT, counted
            self.count_drop("malformed")
            raise
        except Overloaded as e:
            if e.reason:
                self.count_drop(e.reason)
            raise

    def _ingest(self, signal: Signal, body: bytes, fmt: Format) -> IngestResult:
        if signal == "metrics":
            beats, points = decode_metrics(body, fmt, self.keys)
            with self._lock:
                named: dict[Resource, tuple[str, str]] = {}  # each resource named (and counted) once
                for b in beats:
                    r = b.resource
                    first = r not in named
                    if first:
                        named[r] = self.services.map([r.service])[0], self.lanes.map([r.lane])[0]
                    service, lane = named[r]
                    self.liveness.observe(service, lane, r.instance, b.time_ns / _NS, b.up,
                                          revive=b.explicit, count=first, beat=b.explicit and b.up)
                self.counters["metric_points_received"] += points
            return IngestResult(accepted=points)
        if signal == "logs":  # liveness evidence, otherwise dropped (collect/logs.py)
            logs = decode_logs(body, fmt, self.keys)
            with self._lock:
                for s in logs.seen:  # one per resource: named (and counted) as heartbeats are
                    r = s.resource
                    self.liveness.observe(self.services.map([r.service])[0], self.lanes.map([r.lane])[0],
                                          r.instance, s.time_ns / _NS, revive=False)
                self.counters["log_records_received"] += logs.accepted
                if logs.rejected:
                    self.counters["log_records_rejected_invalid"] += logs.rejected
            return IngestResult(accepted=logs.accepted, rejected=logs.rejected, message=logs.why)
        durable = self.durable_at
        bound = self.settings.max_unflushed_s + (self.settings.liveness_wait_s if self.sharing else 0.0)
        if durable is not None and (lag := self.clock() - durable) > bound:
            # acknowledging more would widen what a crash loses
            raise Overloaded(f"the store is {lag:.1f}s behind the spans already accepted "
                             f"(max_unflushed_s {self.settings.max_unflushed_s:g}); retry later",
                             retry_after_s=1.0, reason="store_behind")
        held = self.assembly.n_open + self._pending_n
        if held > 2 * self.settings.max_pending_spans:  # flushes are not keeping up: push back
            raise Overloaded(f"collector holds {held} spans waiting for their traces to finish; "
                             "retry later", retry_after_s=max(1.0, self.settings.flush_interval_s),
                             reason="overloaded")
        cols = decode_traces(body, fmt, self.keys, defer_attributes=True, max_spans=self.limits.spans)
        rejected, why = cols.rejected, cols.why
        with self._lock:
            if cols.n:
                if self.sharing:  # its liveness evidence counts for the other collectors now
                    self._observe_resources(cols)
                self._pending.append((cols, self.clock()))
                self._pending_n += cols.n
                if self._pending_n >= BATCH_SPANS:
                    self._ingest_pending()
            self.counters["spans_received"] += cols.n
            if rejected:
                self.counters["spans_rejected_invalid"] += rejected
        return IngestResult(accepted=cols.n, rejected=rejected, message=why)

    def count_drop(self, reason: str, n: int = 1) -> None:
        self.count(f"requests_refused_{reason}", n)

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` (it goes out with the next batch)."""
        with self._lock:
            self.counters[name] += n

    def count_event(self, name: str) -> None:
        """Count one event by its full counter name (the API pool's refusals)."""
        with self._lock:
            self.counters[name] += 1

    # --- the span path -----------------------------------------------------------------------
    def _ingest_pending(self, force: bool = False) -> None:
        """Send the pending requests' spans through the span path, as one batch (sharing
        liveness: those whose arrival every other collector's liveness covers, or that waited
        ``liveness_wait_s``). The requests were answered already: a failure here (a bug) is
        logged and its spans counted as lost, and never reaches the request that happened to
        fill the batch."""
        if not self._pending:
            return
        parts = self._pending
        if self.sharing and not force:
            now = self.clock()
            known = self._peers_known_until(now)
            forced_before = now - self.settings.liveness_wait_s
            ready = [(c, t) for c, t in parts if t <= known or t <= forced_before]
            if len(ready) < len(parts):
                self._pending = [(c, t) for c, t in parts if not (t <= known or t <= forced_before)]
            else:
                self._pending = []
            forced = sum(c.n for c, t in ready if t > known)
            if forced:
                self.counters["spans_judged_before_peer_liveness"] += forced
            parts = ready
        else:
            self._pending = []
        n = sum(c.n for c, _ in parts)
        self._pending_n -= n
        if not parts:
            return
        arrived = max(t for _, t in parts)
        cols = [c for c, _ in parts]
        try:
            self._ingest_spans(cols[0] if len(cols) == 1 else SpanColumns.concat(cols), arrived)
        except Exception:  # counted and logged: the collector goes on
            log.exception("span path failed on a batch of %d spans", n)
            self.counters["spans_lost_internal_error"] += n

    def _observe_resources(self, c: SpanColumns) -> None:
        """Each resource's spans as a sign of life of its instance (:func:`_span_evidence`)."""
        first_start, last_end = _span_evidence(c)
        for i, r in enumerate(c.resources):
            self.liveness.observe(self.services[r.service], self.lanes[r.lane], r.instance,
                                  float(last_end[i]) / _NS, revive=False, count=False,
                                  since=float(first_start[i]) / _NS)

    # --- several collectors ------------------------------------------------------------------
    def _peers_known_until(self, now: float) -> float:
        """The time up to which every other live collector's liveness is merged here (peers
        silent for :data:`PEER_GONE_S` are left out: stopped or cut off)."""
        live = [t for t in self._peer_as_of.values() if now - t <= PEER_GONE_S]
        return min(live) if live else float("inf")

    def merge_peer_liveness(self, rows: Sequence[Mapping[str, Any]], as_of: Mapping[str, float]) -> None:
        """Take the other collectors' liveness (``SharedLiveness.peer_liveness``): rows and,
        per collector, the time its rows are complete to."""
        with self._lock:
            self.liveness.merge_peers(rows)
            for who, t in as_of.items():
                if who != self.collector:
                    self._peer_as_of[who] = max(float(t), self._peer_as_of.get(who, 0.0))

    def adopt_names(self, services: Iterable[str], lanes: Iterable[str]) -> None:
        """Admit the service and lane names other collectors admitted (``max_services``,
        ``max_lanes``: every collector maps a name to itself or to ``_other`` alike)."""
        with self._lock:
            self.services.adopt(services)
            self.lanes.adopt(lanes)

    def peers(self) -> dict[str, float]:
        """Other collectors heard of through the store, and their ``as_of``."""
        with self._lock:
            return dict(self._peer_as_of)

    def stored(self, taken: float) -> None:
        """A store committed the batch cut at ``taken``: every span accepted before then is in
        it, except those still waiting for peers' liveness."""
        with self._lock:
            held = min((t for _, t in self._pending), default=taken)
            self.durable_at = min(taken, held)

    def _ingest_spans(self, c: SpanColumns, arrived: float) -> None:
        n = c.n
        if n == 0:
            return
        S = self.strings
        unreadable = wire.read_deferred(c, self.keys)
        if unreadable:
            self.counters["spans_with_unreadable_attributes"] += unreadable
        res = c.resource
        res_service = self.services.map([r.service for r in c.resources])
        res_lane = self.lanes.map([r.lane for r in c.resources])
        start, end = c.start_ns, c.end_ns
        first_start, last_end = _span_evidence(c)
        for i, r in enumerate(c.resources):
            self.liveness.observe(res_service[i], res_lane[i], r.instance, float(last_end[i]) / _NS,
                                  revive=False, since=float(first_start[i]) / _NS)

        svc = S.codes(res_service)[res]
        inst = S.codes(res_lane)[res]
        req = np.zeros(n, dtype=np.int32)  # base: code 0
        if len(c.attr_at):
            req[c.attr_at] = S.codes(self.lanes.map(c.request_lane))
        kind = c.kind
        is_hop = (kind == L.SpanKind.SERVER) | (kind == L.SpanKind.CONSUMER)
        extra = {k: AttributeStrings(c.attr_at, v, n) for k, v in c.extra.items()}
        weight, bad_th, bad_attr = self.weights.of(n, c.state_at, c.trace_state, c.attr_at,
                                                   c.extra.get(self.keys.weight) if self.keys.weight else None)
        if bad_th:
            self.counters["spans_with_invalid_sampling_threshold"] += bad_th
        if bad_attr:
            self.counters["spans_with_invalid_sampling_weight"] += bad_attr
        exp = self._expected(svc, req, is_hop, extra, start / _NS)
        verdict = classify.hop_verdicts(svc, inst, exp, is_hop, start / _NS, self._is_live, base=0)
        recv = req
        if c.dyed.any():  # dyed hops received no lane
            recv = np.where(c.dyed, 0, req).astype(np.int32)
        chunk = {
            "thi": c.trace_hi, "tlo": c.trace_lo, "tkey": bulk.trace_key(c.trace_hi, c.trace_lo),
            "sid": c.span_id, "pid": c.parent_id, "kind": kind, "svc": svc, "inst": inst, "req": req,
            "recv": recv, "exp": exp, "verdict": verdict, "start": start, "err": c.err,
            "w": np.ones(n) if weight is None else weight,
        }
        fresh = self.assembly.add(chunk, arrived)
        sel = np.flatnonzero(fresh & is_hop)
        m = len(sel)
        if m == 0:
            return
        # sampled spans count their weight, as integers (the same for every span of a trace)
        counts = None if weight is None else integer_weights(weight[sel], chunk["tkey"][sel]).astype(np.float64)
        self._count_served(c, res_service, res_lane, sel, counts)
        seconds = start[sel] // _NS
        keys = [seconds, svc[sel], inst[sel], req[sel]]
        code = (0, len(S) - 1)
        kb: list[tuple[int, int] | None] = [(int(seconds.min()), int(seconds.max())), code, code, code]
        latency_ms = np.maximum(end[sel] - start[sel], 0) / 1e6
        errors = chunk["err"][sel].astype(np.float64)
        if counts is None:
            metrics: list[np.ndarray | None] = [None, errors, latency_ms, NOTHING]
        else:
            assert weight is not None
            metrics = [counts, errors * counts, latency_ms * counts, (weight[sel] != 1.0).astype(np.float64)]
        self.rollups["hops"].add_columns(
            [*keys, exp[sel], verdict[sel]], [None, S.names, S.names, S.names, S.names, _verdict_names],
            metrics, [*kb, code, (0, max(L.Verdict))])
        self.rollups["latency"].add_columns([*keys, bucket_of(latency_ms)],
                                            [None, S.names, S.names, S.names, None], [counts],
                                            [*kb, (0, N_BUCKETS - 1)])
        self.counters["hops"] += m

    def _count_served(self, c: SpanColumns, services: list[str], lanes: list[str], sel: np.ndarray,
                      counts: np.ndarray | None) -> None:
        """Hops, errors and the newest hop per instance (resource) among the hop rows ``sel``
        (``counts``: what each hop counts, when sampled)."""
        res, k = c.resource[sel], len(c.resources)
        hops = np.bincount(res, weights=counts, minlength=k).astype(np.int64)
        errors = np.bincount(res, weights=c.err[sel] if counts is None else c.err[sel] * counts, minlength=k)
        newest = np.full(k, np.iinfo(np.int64).min)
        np.maximum.at(newest, res, c.start_ns[sel])
        for i in np.flatnonzero(hops).tolist():
            self.liveness.served(services[i], lanes[i], c.resources[i].instance, int(hops[i]),
                                 int(errors[i]), float(newest[i]) / _NS)

    def _is_live(self, svc: int, lane: int, t: float) -> L.Live:
        service, name = self.strings.name(svc), self.strings.name(lane)
        if (service, name) in self.rulebook.at(t).declared:
            return L.Live.YES
        return self.liveness.state(service, name, t)

    # --- routing rules in time ---------------------------------------------------------------
    def _keys(self) -> Keys:
        """The attribute keys decoders read: lanes, every kept rule version's keys, the weight."""
        s = self.settings
        weight = s.sampling_weight_attribute
        extra = tuple(self.rulebook.attribute_keys())
        return Keys(tuple(s.request_lane_attributes), tuple(s.instance_lane_attributes),
                    extra + ((weight,) if weight and weight not in extra else ()), weight=weight)

    def _on_rules(self, version: RuleVersion) -> None:
        """A new rule version: decoders read its attribute keys from now on."""
        self.keys = self._keys()

    def _compiled(self, version: RuleVersion) -> dict[int, list[tuple[Rule, int]]]:
        got = self._compiled_rules.get(version.version)
        if got is None:
            got = {}
            for r in version.rules:
                got.setdefault(self.strings[r.service], []).append((r, self.strings[r.lane]))
            self._compiled_rules = {v: c for v, c in self._compiled_rules.items()
                                    if v > version.version - 64} | {version.version: got}
        return got

    def _expected(self, svc: np.ndarray, req: np.ndarray, is_hop: np.ndarray,
                  extra: Mapping[str, Any], start_s: np.ndarray) -> np.ndarray:
        """Expected lane per span, each by the rules in force at its start."""
        groups = self.rulebook.split(start_s)
        if len(groups) == 1:
            return classify.expected_lanes(svc, req, is_hop, extra, self._compiled(groups[0][0]))
        exp = np.array(req, copy=True)
        for version, rows in groups:
            assert rows is not None
            mask = np.zeros(len(is_hop), dtype=bool)
            mask[rows] = True
            got = classify.expected_lanes(svc, req, is_hop & mask, extra, self._compiled(version))
            exp[rows] = got[rows]
        return exp

    def _judge(self, rows: bulk.Chunk, sign: float,
               groups: tuple[np.ndarray, np.ndarray] | None = None) -> bulk.Judged:
        """Roll up edges and traces of complete traces (``sign`` -1 takes back a prior report)."""
        S = self.strings
        j = bulk.judge_bulk(rows, groups)
        v = j.edge_values * sign
        weighted = [j.edge_weighted * sign] if j.weighted and j.edge_weighted is not None else [NOTHING]
        self.rollups["edges"].add_columns(j.edge_keys, [None, S.names, S.names, S.names, S.names],
                                          [*(v[:, i] for i in range(v.shape[1])), *weighted])
        for table, keys, stayed, w, heavy in (
                ("traces", j.trace_keys, j.trace_stayed, j.trace_weight, j.trace_weighted),
                ("trace_services", j.trace_service_keys, j.trace_service_stayed, j.trace_service_weight,
                 j.trace_service_weighted)):
            n = w * sign if j.weighted and w is not None else np.full(len(stayed), sign)
            self.rollups[table].add_columns(
                list(keys), [None, *([S.names] * (len(keys) - 1))],
                [n, stayed * n, heavy * sign if j.weighted and heavy is not None else NOTHING])
        for name, k in j.counters.items():
            self.counters[name] += int(sign) * k
        return j

    # --- the journal of open spans ---------------------------------------------------------
    def resume(self, kept: Resumed) -> int:
        """Take back the open spans a store kept (they were rolled up already; their traces are
        judged ``trace_wait_s`` from now, whole if the rest of them arrives), and journal
        from now on. Returns how many spans came back."""
        self.journaling = True
        rows = kept.rows
        n = 0 if rows is None else len(rows["sid"])
        with self._lock:
            if not kept.clean:
                self.counters["restarts_unclean"] += 1
            if rows is None or n == 0:
                return 0
            S = self.strings
            recode = np.fromiter((S[name] for name in kept.names), dtype=np.int32, count=len(kept.names))
            chunk: bulk.Chunk = {k: np.asarray(rows[k], dtype=t) for k, t in bulk.COLUMNS.items()
                                 if k != "tkey" and k in rows}
            chunk.setdefault("w", np.ones(n))  # kept by a store from before sampling weights
            for k in bulk.NAME_COLUMNS:
                chunk[k] = recode[chunk[k]]
            chunk["tkey"] = bulk.trace_key(chunk["thi"], chunk["tlo"])
            fresh = self.assembly.add(chunk, self.clock())
            self.counters["spans_resumed"] += int(fresh.sum())
            self.counters.update(self.assembly.counters)
            self.assembly.counters.clear()
        return n

    def rejournal(self) -> None:
        """The last change did not reach the store: hand out every open span again."""
        with self._lock:
            self._rejournal = True

    def _journal(self) -> OpenSpans | None:
        """The change to the open spans since the last batch (None when there is none)."""
        a, reset = self.assembly, self._rejournal
        if reset:
            self._journaled = self._names_out = 0
        added = a.open_chunks(self._journaled)
        carry = a.carry()
        live_from = a.oldest_open()
        names = self.strings.names_from(self._names_out)
        if not (reset or added or names or carry is not None or self._had_carry
                or live_from != self._live_from):
            return None
        out = OpenSpans(added=added, carry=carry, live_from=live_from, names=names,
                        names_from=self._names_out, reset=reset)
        if added:
            self._journaled = added[-1][0]
        self._names_out += len(names)
        self._live_from, self._had_carry, self._rejournal = live_from, carry is not None, False
        return out

    # --- flushing ------------------------------------------------------------------------
    def flush(self, final: bool = False) -> Batch:
        """Finalise idle traces and return everything accumulated since the last flush.

        ``final`` (the last flush before a stop): without a journal, judge every open trace now."""
        with self._lock:
            self._ingest_pending(force=final)
            expired = self.assembly.expire(everything=final and not self.journaling)
            details = Finalised()
            if expired.rows is not None:
                rows = expired.rows
                if expired.prev is not None:
                    self._judge(expired.prev, -1.0)
                    rows = bulk.concat([rows, expired.prev])
                j = self._judge(rows, 1.0, expired.groups if expired.prev is None else None)
                violating = j.trace_tkey[~j.trace_stayed]
                sampled = j.trace_tkey[j.trace_stayed & (j.trace_tkey < self._sample_cut)]
                details, skipped = describe(rows, expired.prev, violating, sampled, self.strings,
                                            MAX_DETAILED_TRACES, (j.traces, j.row_trace))
                if skipped:
                    self.counters["violating_traces_not_detailed"] += skipped
            self.counters.update(self.assembly.counters)
            self.assembly.counters.clear()
            self._seq += 1
            counters = {k: v for k, v in self.counters.items() if v}
            batch = Batch(rollups={t: r.drain() for t, r in self.rollups.items()},
                          violations=details.violations, traces=details.traces,
                          instances=self.liveness.take_changes(), counters=counters,
                          liveness=self.liveness.take_shared(self.collector) if self.sharing else [],
                          open_spans=self._journal() if self.journaling else None, seq=self._seq,
                          collector=self.collector, as_of=self.clock())
            self.counters.clear()
            if counters:
                self._handed[self._seq] = counters
            for old in [s for s in self._handed if s <= self._seq - _HANDED_KEPT]:
                del self._handed[old]
        return batch

    def forget_instances(self, now: float) -> None:
        """Forget instances silent for an hour (or 10 liveness TTLs): bounded memory."""
        with self._lock:
            self.liveness.forget_before(now - max(3600.0, 10 * self.settings.liveness_ttl_s))

    # --- what the running engine knows before its next batch reaches a store ---------------
    def instances(self) -> list[dict[str, Any]]:
        """Every instance the engine tracks, as rows of the store's ``instances`` table."""
        with self._lock:
            return self.liveness.rows() + self.liveness.peer_rows()

    def overload_state(self) -> dict[str, Any]:
        """Decode slots in use and the memory ceiling (``/api/v1/health``'s ``ingest``)."""
        return {**self.admission.state(), "memory": self.memory.state()}

    def pending_counters(self, after: int | None = None) -> dict[str, int]:
        """Counters not yet handed out in a batch; with ``after`` (the newest batch a store
        has), also those of the batches handed out since (being written now)."""
        with self._lock:
            out = dict(self.counters)
            if after is not None:
                for seq, counts in self._handed.items():
                    if seq > after:
                        for k, v in counts.items():
                            out[k] = out.get(k, 0) + v
            return out


def _span_evidence(c: SpanColumns) -> tuple[np.ndarray, np.ndarray]:
    """Per resource: its spans' earliest start and newest end (ns). A span is evidence that
    its instance was live from its start, not only at its end."""
    k = len(c.resources)
    first_start = np.full(k, np.iinfo(np.int64).max, dtype=np.int64)
    last_end = np.zeros(k, dtype=np.int64)
    np.minimum.at(first_start, c.resource, c.start_ns)
    np.maximum.at(last_end, c.resource, c.end_ns)
    # a span's start is never after its end; a resource with none keeps its end
    return np.minimum(first_start, last_end), last_end


def _verdict_names(codes: np.ndarray) -> list[str]:
    return [L.VERDICT_NAMES[v] for v in codes.tolist()]


def _service_namer(max_chars: int) -> Callable[[object], str]:
    """Service names: stripped, at most ``max_chars`` characters (the name tables count cut ones)."""
    def name(raw: object) -> str:
        s = str(raw).strip()[:max_chars]
        return s if s else "unknown_service"
    return name
