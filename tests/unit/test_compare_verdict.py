"""Compare's verdict says one thing: wording, worse and confidence agree; compare_all's rows."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from verdict_inputs import SAME, hist, tot

from lanewatch.config import Settings
from lanewatch.query import Query
from lanewatch.query.compare import compare_verdict, confidence_text, verdict_rows
from lanewatch.stats import Thresholds
from lanewatch.store.base import Batch
from lanewatch.store.duck import DuckStore

NOW = 1_767_225_600.25
T = 1_767_225_600




def test_worse_on_errors_says_so_with_its_confidence() -> None:
    v = compare_verdict(tot(1000, 312), tot(1000, 4), SAME, SAME, "gray", "base")
    assert v is not None and v["worse"] is True and v["reason"] == "errors"
    assert v["confidence"] > 0.999
    assert v["text"] == "gray is worse than base (errors 31.2% vs 0.40%, confidence >99.9%)"


def test_no_difference_never_shows_a_high_confidence() -> None:
    # the case of the issue: a small, not significant difference
    v = compare_verdict(tot(400, 10), tot(400, 6), SAME, SAME, "gray", "base")
    assert v is not None and v["worse"] is False and v["reason"] is None
    assert v["confidence"] < 0.99 and v["confidence"] == pytest.approx(1 - v["p_value"], abs=1e-6)
    assert v["text"] == f"no significant difference (p={v['p_value']:.2g}; gray not shown worse at 99.0% confidence)"
    assert "confidence 9" not in v["text"]


@pytest.mark.parametrize("seed", range(30))
def test_worse_exactly_when_confidence_exceeds_one_minus_alpha(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n1, n2 = (int(x) for x in rng.integers(30, 3000, 2))
    e1, e2 = int(rng.binomial(n1, rng.uniform(0, 0.1))), int(rng.binomial(n2, 0.03))
    a = hist(b30=int(rng.integers(1, 500)), b31=int(rng.integers(0, 500)), b32=int(rng.integers(0, 80)))
    c = hist(b30=int(rng.integers(1, 500)), b31=int(rng.integers(0, 500)), b32=int(rng.integers(0, 80)))
    th = Thresholds(alpha=float(rng.choice([0.01, 0.05])))
    v = compare_verdict(tot(n1, e1), tot(n2, e2), a, c, "gray", "base", th)
    assert v is not None
    assert v["worse"] == (v["confidence"] > 1 - th.alpha)
    assert ("is worse than" in v["text"]) == v["worse"]
    assert ("no significant difference" in v["text"]) == (not v["worse"])


def test_a_tiny_latency_effect_is_not_worse_however_many_samples() -> None:
    lane, base = hist(b30=480_000, b31=520_000), hist(b30=520_000, b31=480_000)  # slower in 52% of pairs
    v = compare_verdict(tot(1_000_000, 0), tot(1_000_000, 0), lane, base, "gray", "base")
    assert v is not None and v["worse"] is False and v["confidence"] < 0.5
    big = compare_verdict(tot(1000, 0), tot(1000, 0), hist(b40=1000), hist(b30=1000), "gray", "base")
    assert big is not None and big["worse"] and big["reason"] == "latency"
    assert big["text"] == ("gray is worse than base (slower in 100% of pairs, mean 9.4 vs 1.7 ms, "
                           "confidence >99.9%)")


def test_a_significant_but_small_rise_of_the_mean_is_not_worse() -> None:
    """Every gray request one bucket slower: certain, but 0.26 ms (1.65 vs 1.39 ms), below the
    1 ms margin; with the margin at 0.1 ms it is worse, and without the relative 10% it is too."""
    lane, base = hist(b30=5000), hist(b29=5000)
    v = compare_verdict(tot(5000, 0), tot(5000, 0), lane, base, "gray", "base")
    assert v is not None and v["worse"] is False and v["confidence"] < 0.5
    assert v["latency"]["lane_mean_ms"] > v["latency"]["base_mean_ms"]
    small = Thresholds(min_latency_increase_ms=0.1)
    w = compare_verdict(tot(5000, 0), tot(5000, 0), lane, base, "gray", "base", small)
    assert w is not None and w["worse"] and w["reason"] == "latency"
    strict = Thresholds(min_latency_increase_ms=0.1, min_latency_increase=0.5)  # +19% < 50%
    x = compare_verdict(tot(5000, 0), tot(5000, 0), lane, base, "gray", "base", strict)
    assert x is not None and x["worse"] is False


def test_too_few_requests_gives_no_verdict() -> None:
    assert compare_verdict(tot(29, 29), tot(1000, 0), SAME, SAME, "gray", "base") is None
    assert compare_verdict(tot(29, 29), tot(1000, 0), SAME, SAME, "gray", "base", Thresholds(min_requests=10))


def test_confidence_text_never_rounds_up_to_100() -> None:
    assert confidence_text(0.99999) == ">99.9%" == confidence_text(1.0)
    assert confidence_text(0.999) == "99.9%" and confidence_text(0.9999) == ">99.9%"
    assert confidence_text(0.987) == "98.7%"


def test_verdict_rows_worst_first_and_without_verdicts_last() -> None:
    hops = pd.DataFrame([("A", "base", 1000, 5), ("A", "gray", 1000, 300), ("B", "base", 1000, 5),
                         ("B", "gray", 1000, 6), ("C", "base", 1000, 0), ("C", "gray", 10, 0),
                         ("D", "gray", 500, 0), ("A", "blue", 1000, 40)],
                        columns=["service", "instance_lane", "requests", "errors"])
    lat = pd.DataFrame([("A", "base", 30, 1000), ("A", "gray", 30, 1000), ("B", "base", 30, 1000),
                        ("B", "gray", 40, 1000)], columns=["service", "instance_lane", "bucket", "count"])
    rows = verdict_rows(hops, lat, ["gray"], "base")
    assert [(r["service"], r["worse"]) for r in rows] == [("A", True), ("B", True), ("C", None), ("D", None)]
    a, b, c, d = rows
    assert a["reason"] == "errors" and b["reason"] == "latency"
    assert a["lane_requests"] == 1000 and a["base_error_rate"] == 0.005 and a["lane_error_rate"] == 0.3
    assert b["lane_p50_ms"] > b["base_p50_ms"]
    assert c["text"] == "no verdict: gray served fewer than 30 requests on C"
    assert d["text"] == "no verdict: base served fewer than 30 requests on D" and d["base_requests"] == 0
    every = verdict_rows(hops, lat, ["gray", "blue", "base"], "base")
    assert {r["lane"] for r in every} == {"gray", "blue"} and len(every) == 5
    json.dumps(every, allow_nan=False)


def test_query_compare_all_over_a_store() -> None:
    rng = np.random.default_rng(3)
    cols = ("ts", "service", "instance_lane", "expected_lane", "request_lane", "verdict", "requests",
            "errors", "latency_sum_ms")
    hops: dict[str, list[Any]] = {c: [] for c in cols}
    lat: dict[str, list[Any]] = {c: [] for c in ("ts", "service", "instance_lane", "request_lane",
                                                 "bucket", "count")}
    for t in range(T - 119, T + 1):
        for svc, lane, err, bucket in (("A", "base", 0.01, 30), ("A", "gray", 0.01, 30),
                                       ("B", "base", 0.01, 30), ("B", "gray", 0.3, 30),
                                       ("C", "base", 0.01, 30), ("C", "gray", 0.01, 40)):
            for c, v in zip(cols, (t, svc, lane, lane, lane, "in_lane", 20, int(rng.binomial(20, err)), 200.0)):
                hops[c].append(v)
            for c, v in zip(lat, (t, svc, lane, lane, bucket, 20)):
                lat[c].append(v)
    store = DuckStore(":memory:", clock=lambda: NOW)
    store.write(Batch(rollups={"hops": hops, "latency": lat}))
    try:
        settings = Settings()
        rows = Query(store, settings, clock=lambda: NOW).compare_all("gray", 60)
        json.dumps(rows, allow_nan=False)
        assert [r["service"] for r in rows][:2] in (["B", "C"], ["C", "B"]) and rows[2]["service"] == "A"
        assert rows[0]["worse"] and rows[1]["worse"] and rows[2]["worse"] is False
        b = next(r for r in rows if r["service"] == "B")
        assert b["lane_requests"] == 1200 and b["reason"] == "errors" and "gray is worse than base" in b["text"]
        single = Query(store, settings, clock=lambda: NOW).compare("B", "gray", 60)["verdict"]
        assert single["confidence"] == pytest.approx(b["confidence"]) and single["text"] == b["text"]
        assert Query(store, settings, clock=lambda: NOW).compare_all(None, 60) == rows
    finally:
        store.close()


def test_the_vectorised_screen_never_passes_a_pair_the_verdict_calls_worse() -> None:
    """may_be_worse is how the alert rule skips pairs: compared with compare_verdict (the plain
    reference) on random pairs, it is False only where the verdict is not worse."""
    from lanewatch.query.compare import may_be_worse

    rng = np.random.default_rng(11)
    rows = []
    for _ in range(400):
        n1, n2 = int(rng.integers(30, 3000)), int(rng.integers(30, 3000))
        e1, e2 = int(rng.integers(0, n1 // 3 + 1)), int(rng.integers(0, n2 // 10 + 1))
        a = hist(**{f"b{b}": int(rng.integers(0, 300)) for b in rng.integers(25, 60, size=4)})
        c = hist(**{f"b{b}": int(rng.integers(0, 300)) for b in rng.integers(25, 60, size=4)})
        th = Thresholds(alpha=float(rng.choice([0.01, 0.001])))
        rows.append((n1, e1, n2, e2, a, c, th))
    worse_seen = 0
    for n1, e1, n2, e2, a, c, th in rows:
        v = compare_verdict(tot(n1, e1), tot(n2, e2), a, c, "gray", "base", th)
        screen = may_be_worse(np.array([float(n1)]), np.array([float(e1)]), np.array([float(n2)]),
                              np.array([float(e2)]), a[None], c[None], th)
        assert v is not None
        if v["worse"]:
            worse_seen += 1
            assert screen[0], (n1, e1, n2, e2, v)
    assert 20 < worse_seen < 380  # the random pairs cover both answers


def test_a_caller_worse_only_with_its_callee_follows_it_and_comes_after_it() -> None:
    from lanewatch.query.compare import mark_followers

    def row(svc: str, reason: str | None, conf: float) -> dict[str, Any]:
        return {"service": svc, "lane": "gray", "worse": reason is not None, "reason": reason,
                "confidence": conf, "text": f"{svc} text"}

    rows = [row("A", "errors", 0.9999), row("B", "both", 0.999), row("C", None, 0.2), row("D", "latency", 0.99)]
    mark_followers(rows, {("A", "gray"): {"B"}, ("D", "gray"): {"C"}})
    assert [r["service"] for r in rows] == ["B", "D", "A", "C"]
    a = next(r for r in rows if r["service"] == "A")
    assert a["follows"] == "B" and "follows its callee B" in a["text"]
    assert "follows" not in next(r for r in rows if r["service"] == "D")  # its callee C is fine
