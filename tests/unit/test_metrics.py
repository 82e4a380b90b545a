"""/metrics from batches: totals, drawn edge lanes, monotone counters, the series cap, sources."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from lanewatch.histogram import bucket_of
from lanewatch.metrics import MetricsCollector, MetricsSink
from lanewatch.metrics.buckets import LE_LABELS, LE_OF_BUCKET, LE_SECONDS
from lanewatch.store.base import Batch

T = 1_767_225_600
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(m: MetricsCollector, accept: str | None = None) -> Samples:
    body, _ = m.render(accept)
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}


def value(got: Samples, name: str, **labels: str) -> float | None:
    return got.get((name, frozenset(labels.items())))


def hops(rows: Sequence[tuple[str, str, str, str, int, int, float]]) -> dict[str, list[Any]]:
    """(service, instance lane, expected lane, verdict, requests, errors, latency sum ms) rows."""
    cols: dict[str, list[Any]] = {k: [] for k in ("ts", "res", "service", "instance_lane", "request_lane",
                                                  "expected_lane", "verdict", "requests", "errors",
                                                  "latency_sum_ms")}
    for svc, inst, exp, verdict, req, err, ms in rows:
        for k, v in zip(cols, (T, 1, svc, inst, exp, exp, verdict, req, err, ms)):
            cols[k].append(v)
    return cols


def edges(rows: Sequence[tuple[str, str, str, str, dict[str, int]]]) -> dict[str, list[Any]]:
    """(caller, callee, lane sent, entry lane, {metric: count}) rows."""
    metrics = ("calls", "errors", "in_lane", "fallback", "leak", "intrusion", "tag_lost", "tag_lost_inside")
    cols: dict[str, list[Any]] = {k: [] for k in ("ts", "res", "caller", "callee", "lane", "entry_lane",
                                                  *metrics)}
    for caller, callee, sent, entry, counts in rows:
        for k, v in zip(("ts", "res", "caller", "callee", "lane", "entry_lane"), (T, 1, caller, callee, sent, entry)):
            cols[k].append(v)
        for k in metrics:
            cols[k].append(counts.get(k, 0))
    return cols


def traces(rows: Sequence[tuple[str, int, int]]) -> dict[str, list[Any]]:
    return {"ts": [T] * len(rows), "res": [1] * len(rows), "entry_lane": [r[0] for r in rows],
            "traces": [r[1] for r in rows], "stayed": [r[2] for r in rows]}


def test_hops_errors_and_the_latency_histogram() -> None:
    sink = MetricsSink()
    b4 = int(bucket_of([4.0])[0])  # a 4 ms hop
    latency = {"ts": [T, T], "res": [1, 1], "service": ["C", "C"], "instance_lane": ["gray", "gray"],
               "request_lane": ["gray", "base"], "bucket": [b4, b4], "count": [3, 2]}
    sink.write(Batch(rollups={"hops": hops([("C", "gray", "gray", "in_lane", 3, 1, 12.0),
                                            ("C", "base", "gray", "leak", 1, 0, 5.0)]),
                              "latency": latency}))
    sink.write(Batch(rollups={"hops": hops([("C", "gray", "gray", "in_lane", 2, 0, 8.0)])}))
    got = samples(MetricsCollector(sink))
    key = {"service": "C", "instance_lane": "gray", "expected_lane": "gray", "verdict": "in_lane"}
    assert value(got, "lanewatch_hops_total", **key) == 5
    assert value(got, "lanewatch_hop_errors_total", **key) == 1
    assert value(got, "lanewatch_hops_total", **{**key, "instance_lane": "base", "verdict": "leak"}) == 1
    assert value(got, "lanewatch_hop_errors_total", **{**key, "instance_lane": "base", "verdict": "leak"}) == 0
    h = {"service": "C", "instance_lane": "gray"}
    assert value(got, "lanewatch_hop_duration_seconds_bucket", **h, le="0.0025") == 0
    assert value(got, "lanewatch_hop_duration_seconds_bucket", **h, le="0.005") == 5
    assert value(got, "lanewatch_hop_duration_seconds_bucket", **h, le="+Inf") == 5
    assert value(got, "lanewatch_hop_duration_seconds_count", **h) == 5
    assert value(got, "lanewatch_hop_duration_seconds_sum", **h) == pytest.approx(0.020)


def test_a_log_bucket_counts_under_the_first_bound_at_or_above_its_upper_edge() -> None:
    from lanewatch.histogram import N_BUCKETS, bucket_upper_ms
    for b in range(N_BUCKETS - 1):
        slot = LE_OF_BUCKET[b]
        upper_s = bucket_upper_ms(b) / 1000
        if slot < len(LE_SECONDS):
            assert LE_SECONDS[slot] >= upper_s * (1 - 1e-9)
        if slot > 0:
            assert LE_SECONDS[slot - 1] < upper_s
    assert LE_LABELS[LE_OF_BUCKET[N_BUCKETS - 1]] == "+Inf"


def test_edges_are_labelled_with_the_lane_drawn_and_tag_lost() -> None:
    sink = MetricsSink()
    sink.write(Batch(rollups={"edges": edges([
        ("A", "B", "gray", "gray", {"calls": 4, "in_lane": 3, "leak": 1, "tag_lost": 1}),
        ("B", "C", "base", "gray", {"calls": 2, "in_lane": 2, "tag_lost": 2, "tag_lost_inside": 2}),
        ("A", "B", "base", "base", {"calls": 5, "in_lane": 5}),
    ])}))
    got = samples(MetricsCollector(sink))
    assert value(got, "lanewatch_edges_total", caller="A", callee="B", lane="gray", verdict="in_lane") == 3
    assert value(got, "lanewatch_edges_total", caller="A", callee="B", lane="gray", verdict="leak") == 1
    assert value(got, "lanewatch_edges_total", caller="A", callee="B", lane="gray", verdict="tag_lost") == 1
    # nothing sent on a gray trace (a rule routed it, or the tag was lost inside B): drawn gray
    assert value(got, "lanewatch_edges_total", caller="B", callee="C", lane="gray", verdict="tag_lost") == 2
    assert value(got, "lanewatch_edges_total", caller="B", callee="C", lane="base", verdict="in_lane") is None
    assert value(got, "lanewatch_edges_total", caller="A", callee="B", lane="base", verdict="in_lane") == 5
    assert value(got, "lanewatch_edges_total", caller="A", callee="B", lane="base", verdict="fallback") is None


def test_traces_stay_monotone_when_a_late_span_flips_a_trace() -> None:
    sink = MetricsSink()
    m = MetricsCollector(sink)
    sink.write(Batch(rollups={"traces": traces([("gray", 10, 10)])}))
    assert value(samples(m), "lanewatch_traces_total", entry_lane="gray", stayed="true") == 10
    # a late span: one of them did not stay after all (the store gets stayed -1)
    sink.write(Batch(rollups={"traces": traces([("gray", 0, -1)])}))
    got = samples(m)
    assert value(got, "lanewatch_traces_total", entry_lane="gray", stayed="true") == 10  # never down
    assert value(got, "lanewatch_traces_total", entry_lane="gray", stayed="false") == 1
    assert value(got, "lanewatch_metric_corrections_total", metric="lanewatch_traces_total") == 1
    sink.write(Batch(rollups={"traces": traces([("gray", 1, 1)])}))  # makes up for the correction
    assert value(samples(m), "lanewatch_traces_total", entry_lane="gray", stayed="true") == 10
    sink.write(Batch(rollups={"traces": traces([("gray", 1, 1)])}))  # agrees with the store again
    assert value(samples(m), "lanewatch_traces_total", entry_lane="gray", stayed="true") == 11


def test_the_series_cap_folds_new_label_sets_into_one_visible_overflow_series() -> None:
    sink = MetricsSink(max_series=2)
    m = MetricsCollector(sink, instances=lambda: [{"service": s, "lane": "base", "live": True} for s in "ABC"])
    rows = [(s, "base", "base", "in_lane", 1, 0, 1.0) for s in "ABCD"]
    sink.write(Batch(rollups={"hops": hops(rows)}))
    sink.write(Batch(rollups={"hops": hops(rows)}))
    got = samples(m)
    key = {"instance_lane": "base", "expected_lane": "base", "verdict": "in_lane"}
    assert value(got, "lanewatch_hops_total", service="A", **key) == 2
    assert value(got, "lanewatch_hops_total", service="B", **key) == 2
    other = {k: "_other" for k in ("service", *key)}
    assert value(got, "lanewatch_hops_total", **other) == 4  # C and D, twice
    assert value(got, "lanewatch_hop_errors_total", **other) == 0
    assert value(got, "lanewatch_hops_total", service="C", **key) is None
    assert value(got, "lanewatch_metric_series_folded_total", metric="lanewatch_hops_total") == 2
    assert value(got, "lanewatch_metric_series_folded_total", metric="lanewatch_hop_errors_total") == 2
    assert value(got, "lanewatch_metric_series", metric="lanewatch_hops_total") == 3
    assert value(got, "lanewatch_instances_live", service="_other", lane="_other") == 1
    assert value(got, "lanewatch_metric_series_folded_total", metric="lanewatch_instances_live") == 1
    assert sum(1 for (name, _) in got if name == "lanewatch_hop_duration_seconds_count") == 3


def test_collector_counters_pending_included_never_decreasing_unknown_names_kept() -> None:
    sink = MetricsSink()
    pending = {"spans_received": 5, "requests_refused_oversize": 1}
    m = MetricsCollector(sink, pending_counters=lambda after=None: pending)
    sink.write(Batch(counters={"spans_received": 10, "duplicate_spans": 2, "unpaired_client_spans": 3,
                               "hops": 7, "some_new_counter": 4, "lanes_over_limit": 1}))
    got = samples(m)
    assert value(got, "lanewatch_spans_received_total") == 15
    assert value(got, "lanewatch_spans_dropped_total", reason="duplicate") == 2
    assert value(got, "lanewatch_spans_dropped_total", reason="invalid") == 0  # always there
    assert value(got, "lanewatch_requests_refused_total", reason="oversize") == 1
    assert value(got, "lanewatch_spans_unpaired_total", kind="client") == 3
    assert value(got, "lanewatch_names_replaced_total", what="lane", reason="over_limit") == 1
    assert value(got, "lanewatch_collector_events_total", event="some_new_counter") == 4
    assert not any(name.endswith("_hops_received_total") or dict(lb).get("event") == "hops" for name, lb in got)
    # a flush took the pending counts and the sink has not got them yet; a late span paired a span
    pending = {}
    sink.write(Batch(counters={"unpaired_client_spans": -1}))
    got = samples(m)
    assert value(got, "lanewatch_spans_received_total") == 15
    assert value(got, "lanewatch_spans_unpaired_total", kind="client") == 3


def test_live_instances_and_alert_states() -> None:
    rows = [{"service": "C", "lane": "gray", "live": True}, {"service": "C", "lane": "gray", "live": True},
            {"service": "C", "lane": "base", "live": False}]
    alerts = [{"labels": {"alertname": "LaneLeak", "service": "C", "lane": "gray"}, "state": "firing"},
              {"labels": {"alertname": "LaneLeak", "service": "B", "lane": "gray"}, "state": "pending"},
              {"labels": {"alertname": "LaneLeak", "service": "A", "lane": "gray"}, "state": "resolved"}]
    m = MetricsCollector(MetricsSink(), instances=lambda: rows, alert_states=lambda: alerts)
    got = samples(m)
    assert value(got, "lanewatch_instances_live", service="C", lane="gray") == 2
    assert value(got, "lanewatch_instances_live", service="C", lane="base") == 0
    assert value(got, "lanewatch_alerts", alertname="LaneLeak", state="firing") == 1
    assert value(got, "lanewatch_alerts", alertname="LaneLeak", state="pending") == 1
    assert not any(dict(lb).get("state") == "resolved" for _, lb in got)
    assert value(samples(MetricsCollector(MetricsSink())), "lanewatch_alerts", alertname="LaneLeak",
                 state="firing") is None  # the default: no alerts


def test_a_failing_source_is_counted_and_the_rest_is_served(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> list[dict[str, Any]]:
        raise RuntimeError("store closed")
    sink = MetricsSink()
    sink.write(Batch(rollups={"traces": traces([("base", 3, 3)])}))
    m = MetricsCollector(sink, instances=broken)
    got = samples(m)
    assert value(got, "lanewatch_traces_total", entry_lane="base", stayed="true") == 3
    assert value(got, "lanewatch_metrics_source_errors_total", source="instances") == 1
    assert not any(name == "lanewatch_instances_live" for name, _ in got)
    assert "instances() failed" in caplog.text


def test_own_registry_per_instance_text_format_and_openmetrics_when_only_that_is_accepted() -> None:
    before = {m.name for m in REGISTRY.collect()}
    a, b = MetricsCollector(MetricsSink()), MetricsCollector(MetricsSink())
    assert a.registry is not b.registry and {m.name for m in REGISTRY.collect()} == before
    prometheus = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    for accept in (None, prometheus, "text/plain"):
        body, ctype = a.render(accept)
        assert ctype == "text/plain; version=0.0.4; charset=utf-8" and b"lanewatch_spans_received_total 0.0" in body
    body, ctype = a.render("application/openmetrics-text;version=1.0.0")
    assert ctype.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    names = {f.name for f in parse_openmetrics(body.decode())}
    assert {"lanewatch_spans_received", "lanewatch_hops", "lanewatch_alerts"} <= names


def test_counters_read_between_the_engine_flush_and_the_sink_write_are_there_once() -> None:
    """CI caught /metrics reading 79,000 of 99,000 counted: the batch had left the engine and
    not reached the sink yet. The engine now adds the batches after the sink's newest."""
    from lanewatch import config
    from lanewatch.collect.engine import Engine
    from lanewatch.testing import FakeClock, TraceBuilder

    engine = Engine(config.load(environ={}, flags={}), FakeClock())
    sink = MetricsSink()
    m = MetricsCollector(sink, pending_counters=engine.pending_counters)
    tb = TraceBuilder()
    tb.hop("A", "gray", "gray")
    engine.ingest("traces", tb.body(), "proto")
    batch = engine.flush()  # out of the engine, not in the sink
    assert batch.seq == 1 and value(samples(m), "lanewatch_spans_received_total") == 1
    sink.write(batch)
    assert value(samples(m), "lanewatch_spans_received_total") == 1
    engine.ingest("traces", tb.body(), "proto")  # the same span again: received, a duplicate
    assert value(samples(m), "lanewatch_spans_received_total") == 2
