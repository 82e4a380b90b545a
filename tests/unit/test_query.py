"""Query over a real DuckStore filled with Batches, with an injected clock."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lanewatch.config import Settings
from lanewatch.histogram import bucket_of, quantiles
from lanewatch.query import Query
from lanewatch.store.base import Batch
from lanewatch.store.duck import DuckStore

NOW = 1_767_225_600.25  # clock(); the window's last (partial) second is NOW's second
T = 1_767_225_600


def hop_rows(rows: list[tuple[int, str, str, str, str, int, int]]) -> dict[str, Sequence[Any]]:
    """(ts, service, instance lane, expected lane, verdict, requests, errors)"""
    cols = ("ts", "service", "instance_lane", "expected_lane", "verdict", "requests", "errors")
    out: dict[str, Sequence[Any]] = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    out["request_lane"] = out["expected_lane"]
    out["latency_sum_ms"] = [float(r[5]) for r in rows]
    return out


def latency_rows(rows: list[tuple[int, str, str, float, int]]) -> dict[str, Sequence[Any]]:
    """(ts, service, instance lane, latency ms, count)"""
    return {"ts": [r[0] for r in rows], "service": [r[1] for r in rows], "instance_lane": [r[2] for r in rows],
            "request_lane": [r[2] for r in rows], "bucket": bucket_of([r[3] for r in rows]).tolist(),
            "count": [r[4] for r in rows]}


def edge_rows(rows: list[tuple[int, str, str, str, int, int]]) -> dict[str, Sequence[Any]]:
    """(ts, caller, callee, lane, calls, tag_lost)"""
    z = [0] * len(rows)
    return {"ts": [r[0] for r in rows], "caller": [r[1] for r in rows], "callee": [r[2] for r in rows],
            "lane": [r[3] for r in rows], "entry_lane": [r[3] for r in rows], "calls": [r[4] for r in rows],
            "errors": z,
            "in_lane": [r[4] - r[5] for r in rows], "fallback": z, "leak": z, "intrusion": z,
            "tag_lost": [r[5] for r in rows], "tag_lost_inside": z}


@pytest.fixture
def store() -> Iterator[DuckStore]:
    s = DuckStore(":memory:", clock=lambda: NOW)
    s.write(Batch(
        rollups={
            "hops": hop_rows([(T - 10, "A", "gray", "gray", "in_lane", 10, 1), (T - 10, "B", "base", "gray", "fallback", 4, 0),
                              (T - 5, "C", "base", "gray", "leak", 2, 0), (T - 5, "C", "gray", "base", "intrusion", 1, 1),
                              (T, "A", "base", "base", "in_lane", 20, 0), (T - 400, "A", "gray", "gray", "in_lane", 99, 0)]),
            "latency": latency_rows([(T - 10, "A", "gray", 5.0, 9), (T - 10, "A", "gray", 50.0, 1),
                                     (T, "A", "base", 2.0, 20)]),
            "edges": edge_rows([(T - 10, "A", "B", "gray", 4, 0), (T - 5, "B", "C", "gray", 3, 1),
                                (T - 5, "X", "Y", "base", 7, 0)]),
            "traces": {"ts": [T - 10, T - 10, T], "entry_lane": ["gray", "gray", "base"], "traces": [5, 2, 20],
                       "stayed": [4, 2, 20]},
        },
        violations=[{"ts": T - 5, "kind": "leak", "service": "C", "request_lane": "gray", "instance_lane": "base",
                     "entry_lane": "gray", "trace_id": "0a" * 16, "span_id": "01" * 8, "lane_path": "A[gray] -> C[base, leak]",
                     "late": False},
                    {"ts": T - 4, "kind": "intrusion", "service": "C", "request_lane": "base", "instance_lane": "gray",
                     "entry_lane": "base", "trace_id": "0b" * 16, "span_id": "02" * 8, "lane_path": "A[base] -> C[gray, intrusion]",
                     "late": True},
                    {"ts": T - 3, "kind": "tag_lost", "caller": "B", "callee": "C", "request_lane": "base",
                     "instance_lane": "base", "entry_lane": "gray", "trace_id": "0c" * 16, "span_id": "03" * 8,
                     "lane_path": "A[gray] -> B[base, fallback] -> C[base]", "late": False}],
        traces=[{"trace_id": "0a" * 16, "ts": T - 5, "entry_lane": "gray", "stayed": False,
                 "lane_path": "A[gray] -> C[base, leak]", "hops": [{"service": "A"}, {"service": "C"}]}],
        instances=[{"service": "C", "lane": "gray", "instance": "c1", "first_seen": T - 100, "last_seen": T - 2, "state": "up"},
                   {"service": "C", "lane": "base", "instance": "c0", "first_seen": T - 100, "last_seen": T - 60, "state": "up"},
                   {"service": "B", "lane": "gray", "instance": "b1", "first_seen": T - 100, "last_seen": T - 1, "state": "left"}],
        counters={"dropped_spans": 3}))
    yield s
    s.close()


@pytest.fixture
def q(store: DuckStore) -> Query:
    return Query(store, Settings(), clock=lambda: NOW)


def plain(value: Any) -> Any:
    """Fails unless ``value`` is strict JSON (no NaN, no numpy types)."""
    return json.loads(json.dumps(value, allow_nan=False))


def test_summary_counts_hops_edges_lanes_and_violations(q: Query) -> None:
    s = plain(q.summary(300))
    assert (s["window_s"], s["from"], s["to"]) == (300, T - 299, T + 1)
    assert s["hops"] == {"in_lane": 30, "fallback": 4, "leak": 2, "intrusion": 1, "uncertain": 0}
    assert s["edges"] == {"tag_lost": 1, "calls": 14, "tag_lost_inside": 0}
    assert s["violations"] == 4 and s["counters"] == {"dropped_spans": 3} and s["estimated"] is False
    assert list(s["lanes"]) == ["base", "gray"]
    # rates over the seconds the data covers: hops from T - 10 to the window's end (11 s),
    # traces (final trace_wait_s = 6 s later) from T - 10 to T - 5
    assert s["covered_s"] == 11 and s["traces"] == 27 and s["traces_violated"] == 1
    assert s["lanes"]["gray"] == {"traces": 7, "stayed": 6, "violated": 1, "stayed_share": round(6 / 7, 6),
                                  "requests": 11, "errors": 2, "error_rate": round(2 / 11, 6),
                                  "entry_rate": round(7 / 5, 3), "hop_rate": 1.0, "qps": 1.0, "covered_s": 11,
                                  "estimated": False}
    assert s["lanes"]["base"]["requests"] == 26 and s["lanes"]["base"]["stayed_share"] == 1.0


def test_summary_lane_filter_keeps_hops_involving_the_lane(q: Query) -> None:
    s = q.summary(300, lane="gray")
    assert s["hops"] == {"in_lane": 10, "fallback": 4, "leak": 2, "intrusion": 1, "uncertain": 0}
    assert list(s["lanes"]) == ["gray"] and s["edges"]["calls"] == 7
    assert q.summary(300, lane="base")["hops"] == {"in_lane": 20, "fallback": 4, "leak": 2, "intrusion": 1, "uncertain": 0}
    empty = q.summary(300, lane="nope")
    assert empty["lanes"] == {"nope": {"traces": 0, "stayed": 0, "violated": 0, "stayed_share": None,
                                       "requests": 0, "errors": 0, "error_rate": None, "entry_rate": 0.0,
                                       "hop_rate": 0.0, "qps": 0.0, "covered_s": 11, "estimated": False}}
    assert "nope" not in empty["seen"]["lanes"] and empty["seen"]["lanes"] == ["base", "gray"]
    assert empty["violations"] == 0


def test_summary_service_filter(q: Query) -> None:
    s = q.summary(300, service="C")
    assert s["hops"] == {"in_lane": 0, "fallback": 0, "leak": 2, "intrusion": 1, "uncertain": 0}
    assert s["edges"] == {"tag_lost": 1, "calls": 3, "tag_lost_inside": 0}
    assert q.summary(300, service="nobody")["hops"] == {"in_lane": 0, "fallback": 0, "leak": 0, "intrusion": 0, "uncertain": 0}


def test_window_excludes_older_rows(q: Query) -> None:
    assert q.summary(3)["hops"]["in_lane"] == 20
    assert q.summary(600)["hops"]["in_lane"] == 129


def test_series_has_one_point_per_step_with_gaps(q: Query) -> None:
    s = plain(q.series(20, step_s=5))
    assert (s["step_s"], s["from"], s["to"]) == (5, T - 20, T + 1)
    gray = s["lanes"]["gray"]
    assert gray["ts"] == [T - 20, T - 15, T - 10, T - 5, T]
    assert gray["qps"] == [0.0, 0.0, 2.0, 0.2, 0.0]
    assert gray["error_rate"] == [None, None, 0.1, 1.0, None]
    want = quantiles(bucket_of([5.0, 50.0]).tolist(), [9, 1], [0.5, 0.95, 0.99])
    assert [gray[c][2] for c in ("p50_ms", "p95_ms", "p99_ms")] == want
    assert gray["p50_ms"][0] is None and s["lanes"]["base"]["p50_ms"][-1] is not None
    assert list(s["lanes"]) == ["base", "gray"]
    only = q.series(20, lane="blue", step_s=10)["lanes"]
    assert list(only) == ["blue"] and only["blue"]["qps"] == [0.0, 0.0, 0.0]


class ProtocolOnly:
    """The store seen only through the Store protocol (no DuckDB fast paths)."""

    def __init__(self, inner: DuckStore) -> None:
        self._inner = inner

    def rollup(self, table: str, t0: int, t1: int, keys: Sequence[str],
               where: Mapping[str, str | None] | None = None, bucket_s: int = 1) -> pd.DataFrame:
        return self._inner.rollup(table, t0, t1, keys, where, bucket_s)

    def __getattr__(self, name: str) -> Any:
        if name in ("latency_cells", "version", "changed_since"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_series_quantiles_match_histogram_quantiles_on_random_data() -> None:
    rng = np.random.default_rng(11)
    store = DuckStore(":memory:", clock=lambda: NOW)
    n = 3000
    rows = pd.DataFrame({"ts": rng.integers(T - 300, T + 1, n), "service": rng.choice(["A", "B"], n),
                         "lane": rng.choice(["base", "gray"], n), "ms": rng.lognormal(3, 1, n),
                         "count": rng.integers(1, 5, n)})
    store.write(Batch(rollups={"latency": latency_rows(list(rows.itertuples(index=False, name=None)))}))
    rows["bucket"] = bucket_of(rows.ms)
    for step in (1, 7, 60):
        fast = Query(store, Settings(), clock=lambda: NOW).series(300, service="A", step_s=step)
        slow = Query(ProtocolOnly(store), Settings(), clock=lambda: NOW).series(300, service="A", step_s=step)
        assert fast == slow
        gray = fast["lanes"]["gray"]
        for i in rng.integers(0, len(gray["ts"]), 5):
            t0 = gray["ts"][i]
            sel = rows[(rows.ts >= t0) & (rows.ts < t0 + step) & (rows.service == "A") & (rows.lane == "gray")]
            want = quantiles(sel.bucket, sel["count"], [0.5, 0.95, 0.99])
            assert [gray["p50_ms"][i], gray["p95_ms"][i], gray["p99_ms"][i]] == want
    store.close()


def test_violations_filters_newest_first(q: Query) -> None:
    v = plain(q.violations(300))
    assert [x["kind"] for x in v] == ["tag_lost", "intrusion", "leak"]
    assert v[0] == {"ts": T - 3, "kind": "tag_lost", "service": None, "caller": "B", "callee": "C",
                    "request_lane": "base", "instance_lane": "base", "entry_lane": "gray", "trace_id": "0c" * 16,
                    "span_id": "03" * 8, "lane_path": "A[gray] -> B[base, fallback] -> C[base]", "late": False,
                    "expected_lane": None}
    assert [x["kind"] for x in q.violations(300, kind="leak")] == ["leak"]
    assert [x["kind"] for x in q.violations(300, service="B")] == ["tag_lost"]
    assert [x["kind"] for x in q.violations(300, lane="gray")] == ["tag_lost", "intrusion", "leak"]
    assert [x["kind"] for x in q.violations(300, lane="base", kind="intrusion")] == ["intrusion"]
    assert len(q.violations(300, limit=1)) == 1 and q.violations(300, lane="nope") == []


def test_edges_and_flows(q: Query) -> None:
    e = plain(q.edges(300))
    assert [(x["caller"], x["callee"], x["lane"]) for x in e] == [("A", "B", "gray"), ("B", "C", "gray"), ("X", "Y", "base")]
    # calls/s over the 11 s the edge data covers (from T - 10)
    assert e[1] == {"caller": "B", "callee": "C", "lane": "gray", "sent_lane": "gray", "entry_lane": "gray",
                    "calls": 3, "rate": round(3 / 11, 3), "errors": 0, "in_lane": 2, "fallback": 0, "leak": 0,
                    "intrusion": 0, "uncertain": 0, "tag_lost": 1, "tag_lost_inside": 0, "weighted": 0}
    assert len(q.edges(300, lane="base")) == 1
    f = plain(q.flows(300, service="C"))
    assert f == [{"service": "C", "expected_lane": "base", "instance_lane": "gray", "verdict": "intrusion", "requests": 1},
                 {"service": "C", "expected_lane": "gray", "instance_lane": "base", "verdict": "leak", "requests": 2}]


def test_instances_liveness_and_live_view(q: Query, store: DuckStore) -> None:
    live = {(i["service"], i["lane"]): i["live"] for i in plain(q.instances())}
    assert live == {("B", "gray"): False, ("C", "base"): False, ("C", "gray"): True}

    class Live:
        def instances(self) -> list[dict[str, Any]]:
            return [{"service": "C", "lane": "base", "instance": "c0", "first_seen": T - 5, "last_seen": T, "state": "up",
                     "hops": 3, "errors": 1, "last_hop": T - 1.0}]

        def counters(self, after: int | None = None) -> dict[str, int]:
            return {"dropped_spans": 1, "pending": 7}

    q2 = Query(store, Settings(), clock=lambda: NOW, live=Live())
    c0 = next(i for i in q2.instances() if i["instance"] == "c0")
    assert c0 == {"service": "C", "lane": "base", "instance": "c0", "first_seen": T - 100, "last_seen": T,
                  "state": "up", "hops": 3, "errors": 1, "last_hop": T - 1.0, "live": True}
    assert q2.summary(60)["counters"] == {"dropped_spans": 4, "pending": 7}


def test_compare_gives_a_verdict_with_enough_data() -> None:
    rng = np.random.default_rng(5)
    store = DuckStore(":memory:", clock=lambda: NOW)
    rows, lat = [], []
    for t in range(T - 299, T + 1):
        rows += [(t, "B", "base", "base", "in_lane", 100, int(rng.binomial(100, 0.01))),
                 (t, "B", "gray", "gray", "in_lane", 100, int(rng.binomial(100, 0.08)))]
        lat += [(t, "B", "base", 10.0, 90), (t, "B", "base", 20.0, 10), (t, "B", "gray", 15.0, 50), (t, "B", "gray", 40.0, 50)]
    store.write(Batch(rollups={"hops": hop_rows(rows), "latency": latency_rows(lat)}))
    q = Query(store, Settings(), clock=lambda: NOW)
    c = plain(q.compare("B", "gray", 300, step_s=10))
    assert c["totals"]["gray"]["requests"] == 30000 and c["totals"]["base"]["p50_ms"] < c["totals"]["gray"]["p50_ms"]
    assert len(c["series"]["gray"]["ts"]) == 31  # steps aligned to 10 s: the last one is the current second
    v = c["verdict"]
    assert v["worse"] is True and v["confidence"] > 0.99 and v["latency"]["prob_slower"] > 0.8
    assert v["errors"]["lane_rate"] > v["errors"]["base_rate"] and "gray is worse than base" in v["text"]
    same = q.compare("B", "base", 300, base="base")["verdict"]
    assert same is not None and same["worse"] is False
    assert q.compare("nobody", "gray", 300)["verdict"] is None
    store.close()


def test_trace_services_lanes(q: Query) -> None:
    t = plain(q.trace("0A" * 16))
    assert t["lane_path"] == "A[gray] -> C[base, leak]" and t["hops"] == [{"service": "A"}, {"service": "C"}]
    assert [v["kind"] for v in t["violations"]] == ["leak"]
    assert q.trace("ff" * 16) is None
    assert q.services(300) == ["A", "B", "C", "X", "Y"]
    assert q.lanes(300) == ["base", "gray"]
    assert q.lanes(1) == ["base"]


def test_empty_store_gives_empty_plain_answers() -> None:
    store = DuckStore(":memory:", clock=lambda: NOW)
    q = Query(store, Settings(), clock=lambda: NOW)
    s = plain(q.summary(300))
    assert s["lanes"] == {} and s["violations"] == 0 and s["hops"]["in_lane"] == 0
    assert plain(q.series(60))["lanes"] == {}
    assert q.violations(60) == [] and q.edges(60) == [] and q.flows(60) == [] and q.instances() == []
    assert q.services(60) == [] and q.lanes(60) == []
    with pytest.raises(ValueError):
        q.summary(0)
    store.close()


def test_incremental_series_equal_full_reads_as_data_arrives() -> None:
    """The live-dashboard pattern: the same windows every few seconds while rows (late ones,
    corrections) arrive and maintain() downsamples; the cached reader must equal a full read."""
    rng = np.random.default_rng(23)
    now = [float(T - 300)]
    store = DuckStore(":memory:", clock=lambda: now[0], downsample_after_s=120)
    cached = Query(store, Settings(), clock=lambda: now[0])
    full = Query(ProtocolOnly(store), Settings(), clock=lambda: now[0])
    for i in range(60):
        now[0] += float(rng.integers(1, 8)) + 0.25
        t = int(now[0])
        ts = [t - int(d) for d in rng.integers(0, 4, 6)] + ([t - 70] if i % 7 == 3 else [])
        n = len(ts)
        lanes = list(rng.choice(["base", "gray"], n))
        store.write(Batch(rollups={
            "hops": hop_rows([(x, "A", ln, ln, "in_lane", int(rng.integers(-1, 9)), int(rng.integers(0, 2)))
                              for x, ln in zip(ts, lanes)]),
            "latency": latency_rows([(x, str(rng.choice(["A", "B"])), ln, float(rng.lognormal(2, 1)),
                                      int(rng.integers(1, 4))) for x, ln in zip(ts, lanes)])}))
        if i % 15 == 14:
            store.maintain(now[0])
        for kwargs in ({"window_s": 120, "step_s": 1}, {"window_s": 200, "step_s": 5},
                       {"window_s": 120, "step_s": 1, "lane": "gray"}, {"window_s": 90, "step_s": 3, "service": "B"}):
            assert cached.series(**kwargs) == full.series(**kwargs), (i, kwargs)
    store.close()
