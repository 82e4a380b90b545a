"""Prometheus exposition: totals since start of what the span path judged (``docs/metrics.md``).

* :class:`MetricsSink` (:mod:`.totals`): a :class:`~lanewatch.collect.sink.BatchSink` beside
  the store, summing each batch into monotone, capped totals (:mod:`.families`).
* :class:`MetricsCollector` (:mod:`.exposition`): a ``prometheus_client`` custom collector
  over the sink, with its own registry, plus live instances, alert states and the
  collector's own counters (:mod:`.counters`); latency buckets on fixed ``le`` bounds
  (:mod:`.buckets`).
* :func:`register_metrics` (:mod:`.endpoint`): ``GET /metrics`` on the Flask app.
"""

from __future__ import annotations

from lanewatch.metrics.endpoint import register_metrics
from lanewatch.metrics.exposition import MetricsCollector
from lanewatch.metrics.totals import MetricsSink

__all__ = ["MetricsCollector", "MetricsSink", "register_metrics"]
