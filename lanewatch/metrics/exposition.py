""":class:`MetricsCollector`: a ``prometheus_client`` custom collector over a :class:`MetricsSink`.

Every instance has its own :class:`~prometheus_client.CollectorRegistry` (never the
global one, so several collectors in one process, as in tests, never clash), and
:meth:`MetricsCollector.render` writes it with ``prometheus_client``'s own encoders: the
text format, or OpenMetrics for a scraper that accepts nothing else.

Besides the sink's totals it reads, at each scrape, three callables:

* ``instances()``: instance rows with ``service``, ``lane`` and ``live`` (what
  :meth:`lanewatch.query.Query.instances` returns) -> ``lanewatch_instances_live``;
* ``alert_states()``: dicts with ``labels`` (holding ``alertname``) and ``state``; those
  ``pending`` or ``firing`` are counted -> ``lanewatch_alerts``;
* ``pending_counters(after)``: the engine's counters not in the sink's totals yet: not in a
  batch, or in batches after ``after``, the newest the sink has
  (:meth:`lanewatch.collect.engine.Engine.pending_counters`), added to the sink's.

A callable that raises is logged and counted (``lanewatch_metrics_source_errors_total``);
the rest of the page is still served. The collector's own counters hold their highest
value (a batch may take a count back, and a count may sit between the engine and the
sink during a flush), so they never go down either.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest
from prometheus_client.registry import CollectorRegistry

from lanewatch.metrics import counters as C
from lanewatch.metrics.buckets import LE_LABELS, N_LE
from lanewatch.metrics.families import OTHER, Folds, Key
from lanewatch.metrics.totals import Snapshot

log = logging.getLogger(__name__)

Rows = Callable[[], list[dict[str, Any]]]
ALERT_STATES = ("pending", "firing")


def no_rows() -> list[dict[str, Any]]:
    """The default ``instances`` / ``alert_states``: nothing."""
    return []


def no_counters(after: int | None = None) -> dict[str, int]:
    return {}


class Totals(Protocol):
    """Where the totals come from: a :class:`MetricsSink` fed by batches, or the store
    (:class:`lanewatch.metrics.from_store.StoreTotals`, ``lanewatch serve``)."""

    max_series: int

    def snapshot(self) -> Snapshot: ...


class MetricsCollector:
    """The families of ``docs/metrics.md`` from ``sink`` and the three callables."""

    def __init__(self, sink: Totals, *, instances: Rows = no_rows, alert_states: Rows = no_rows,
                 pending_counters: Callable[[int | None], Mapping[str, int]] = no_counters,
                 alert_health: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self.sink, self.instances, self.alert_states = sink, instances, alert_states
        self.alert_health = alert_health
        self.pending_counters = pending_counters
        self._folds = {"lanewatch_instances_live": Folds(10 * sink.max_series),
                       "lanewatch_alerts": Folds(10 * sink.max_series)}
        self._gauge_series = dict.fromkeys(self._folds, 0)
        self._shown: dict[str, float] = {}  # engine counter -> highest value shown
        self._source_errors = dict.fromkeys(("instances", "alert_states", "pending_counters",
                                             "alert_health"), 0)
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition for a scraper sending ``accept``: (body, Content-Type).

        The text format (0.0.4) whenever the scraper accepts it (Prometheus does, after
        OpenMetrics): ``prometheus_client`` writes it about twice as fast, and nothing here
        needs OpenMetrics (no exemplars). OpenMetrics only for a scraper that takes nothing else."""
        accept = accept or ""
        if not accept or "text/plain" in accept or "*/*" in accept:
            return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    def collect(self) -> Iterator[Metric]:
        snap = self.sink.snapshot()
        yield from _rollup_families(snap)
        yield self._instances()
        yield self._alerts()
        if self.alert_health is not None:
            yield from _alert_health(self._read("alert_health", self.alert_health) or {})
        yield from self._counters(snap)
        yield from self._own(snap)

    def _read(self, source: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception:  # a failing source must not take the page down: logged, counted
            log.exception("/metrics: %s() failed", source)
            with self._lock:
                self._source_errors[source] += 1
            return None

    def _capped(self, name: str, counts: dict[Key, float], width: int) -> dict[Key, float]:
        """At most ``max_series`` label sets (in sorted order); the rest summed under ``_other``."""
        limit = self.sink.max_series
        if len(counts) > limit:
            keys = sorted(counts)
            kept = {k: counts[k] for k in keys[:limit]}
            with self._lock:
                for k in keys[limit:]:
                    self._folds[name].note(k)
            kept[(OTHER,) * width] = sum(counts[k] for k in keys[limit:])
            counts = kept
        self._gauge_series[name] = len(counts)
        return counts

    def _instances(self) -> Metric:
        g = GaugeMetricFamily("lanewatch_instances_live", "Live instances per service and instance "
                              "lane (0: instances known, none live).", labels=["service", "lane"])
        counts: dict[Key, float] = {}
        for r in self._read("instances", self.instances) or ():
            key: Key = (str(r["service"]), str(r["lane"]))
            counts[key] = counts.get(key, 0.0) + (1.0 if r.get("live") else 0.0)
        for key, n in sorted(self._capped(g.name, counts, 2).items()):
            g.add_metric(key, n)
        return g

    def _alerts(self) -> Metric:
        g = GaugeMetricFamily("lanewatch_alerts", "lanewatch's own alerts that are pending or firing, "
                              "per alert name and state.", labels=["alertname", "state"])
        counts: dict[Key, float] = {}
        for a in self._read("alert_states", self.alert_states) or ():
            state = a.get("state")
            if state in ALERT_STATES:
                key: Key = (str(a["labels"]["alertname"]), str(state))
                counts[key] = counts.get(key, 0.0) + 1.0
        for key, n in sorted(self._capped(g.name, counts, 2).items()):
            g.add_metric(key, n)
        return g

    def _counters(self, snap: Snapshot) -> Iterator[Metric]:
        values = dict.fromkeys(C.ALWAYS, 0.0)
        values.update(snap.counters)
        pending = self._read("pending_counters", lambda: self.pending_counters(snap.seq))
        for name, v in (pending or {}).items():
            values[name] = values.get(name, 0.0) + v
        families: dict[str, CounterMetricFamily] = {}
        with self._lock:
            for name in sorted(values):
                target = C.metric_of(name)
                if target is None:
                    continue
                shown = self._shown[name] = max(self._shown.get(name, 0.0), values[name])
                fam, labels = target
                if fam not in families:
                    doc, label_names = C.FAMILIES[fam]
                    families[fam] = CounterMetricFamily(fam, doc, labels=list(label_names))
                families[fam].add_metric(list(labels), shown)
        yield from families.values()

    def _own(self, snap: Snapshot) -> Iterator[Metric]:
        with self._lock:
            series = {**snap.series, **self._gauge_series}
            folded = {**snap.folded, **{k: f.count for k, f in self._folds.items()}}
            errors = dict(self._source_errors)
        series["lanewatch_hop_errors_total"] = series["lanewatch_hops_total"]  # one key space
        folded["lanewatch_hop_errors_total"] = folded["lanewatch_hops_total"]
        g = GaugeMetricFamily("lanewatch_metric_series", "Series of each lanewatch metric family, "
                              "the overflow series included.", labels=["metric"])
        f = CounterMetricFamily("lanewatch_metric_series_folded", "Label sets folded into a family's "
                                "overflow series (label values '_other'), over metrics.max_series.",
                                labels=["metric"])
        for name in sorted(series):
            g.add_metric([name], series[name])
            f.add_metric([name], folded[name])
        t = CounterMetricFamily("lanewatch_metric_corrections", "Counts taken back by corrections (a "
                                "late span changed a finished trace); the counters hold their "
                                "highest value instead of going down.", labels=["metric"])
        for name, v in sorted(snap.taken_back.items()):
            t.add_metric([name], v)
        e = CounterMetricFamily("lanewatch_metrics_source_errors", "Scrapes where a source of "
                                "/metrics failed (logged); its family was left out.", labels=["source"])
        for name, n in sorted(errors.items()):
            e.add_metric([name], n)
        yield from (g, f, t, e)


def _rollup_families(snap: Snapshot) -> Iterator[Metric]:
    labels = ["service", "instance_lane", "expected_lane", "verdict"]
    hops = CounterMetricFamily("lanewatch_hops", "Hops (SERVER/CONSUMER spans) by service, the lane "
                               "of the instance that served, the lane expected, and verdict.",
                               labels=labels)
    errors = CounterMetricFamily("lanewatch_hop_errors", "Hops that failed (span status error), "
                                 "labelled as lanewatch_hops_total.", labels=labels)
    for key, (req, err) in snap.hops:
        hops.add_metric(key, req)
        errors.add_metric(key, err)
    dur = HistogramMetricFamily("lanewatch_hop_duration_seconds", "Hop latency; each of lanewatch's "
                                "log buckets counts under the first bound >= its upper edge.",
                                labels=["service", "instance_lane"])
    for key, v in snap.durations:
        cum, buckets = 0.0, []
        for le, n in zip(LE_LABELS, v[:N_LE]):
            cum += n
            buckets.append((le, cum))
        dur.add_metric(key, buckets, sum_value=v[N_LE])
    edges = CounterMetricFamily("lanewatch_edges", "Calls caller -> callee by the lane drawn (sent, "
                                "or the trace's entry lane when none was sent): one series per hop "
                                "verdict of the callee (they sum to the calls), and tag_lost.",
                                labels=["caller", "callee", "lane", "verdict"])
    for key, (n,) in snap.edges:
        edges.add_metric(key, n)
    traces = CounterMetricFamily("lanewatch_traces", "Finished traces by entry lane and whether they "
                                 "stayed in lane.", labels=["entry_lane", "stayed"])
    for key, (n,) in snap.traces:
        traces.add_metric(key, n)
    yield from (hops, errors, dur, edges, traces)


def _alert_health(h: Mapping[str, Any]) -> Iterator[Metric]:
    """The alert engine's own health: evaluations, failures, and each notifier's deliveries."""
    ev = CounterMetricFamily("lanewatch_alert_evaluations", "Evaluations of the alert rules.")
    ev.add_metric([], float(h.get("evaluations", 0)))
    fail = CounterMetricFamily("lanewatch_alert_failures", "Failures of alert rules (rule:NAME), "
                               "notifiers (notifier:CLASS), the history and evaluations (logged).",
                               labels=["what"])
    for what, n in sorted((h.get("failures") or {}).items()):
        fail.add_metric([str(what)], float(n))
    sent = CounterMetricFamily("lanewatch_alert_notifications", "Alert notifications per receiver "
                               "(target: the URL, redacted) and result: sent, failed (given up), "
                               "retried (attempts), dropped (queue full).",
                               labels=["kind", "target", "result"])
    queued = GaugeMetricFamily("lanewatch_alert_notifications_queued", "Notifications waiting to be "
                               "delivered, per receiver.", labels=["kind", "target"])
    for n in h.get("notifiers") or ():
        kind, target = str(n.get("kind")), str(n.get("target"))
        for result in ("sent", "failed", "retried", "dropped"):
            if result in n:
                sent.add_metric([kind, target, result], float(n[result]))
        if "queued" in n:
            queued.add_metric([kind, target], float(n["queued"]))
    yield from (ev, fail, sent, queued)
