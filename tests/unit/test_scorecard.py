"""scorecard: checks into a Kayenta-style score, and judge() on known gray-vs-base cases."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from verdict_inputs import SAME, hist, tot

from lanewatch.histogram import N_BUCKETS
from lanewatch.scorecard import Check, judge, score
from lanewatch.stats import Thresholds


def ok(name: str, critical: bool = False, weight: float = 1.0) -> Check:
    return Check(name, True, 0.0, 0.0, f"{name} fine", critical, weight)


def bad(name: str, critical: bool = False, weight: float = 1.0) -> Check:
    return Check(name, False, 1.0, 0.0, f"{name} worse", critical, weight)


def unjudged(name: str, critical: bool = True) -> Check:
    return Check(name, None, None, None, f"{name} not judged", critical)


SLOW = hist(b40=900, b41=100)  # ~2.4x the latency of SAME's buckets


def test_a_failed_critical_check_scores_zero_and_fails() -> None:
    s = score([ok("a"), ok("b"), ok("c"), bad("errors", critical=True)])
    assert s == {"score": 0.0, "classification": "fail", "pass": False}


def test_a_failed_non_critical_check_is_marginal_with_default_thresholds() -> None:
    assert score([ok("errors", True), bad("latency")]) == {"score": 50.0, "classification": "marginal",
                                                         "pass": False}
    assert score([ok("a"), ok("b"), ok("c"), bad("d")])["classification"] == "pass"  # 75 passes
    assert score([ok("a"), bad("b"), bad("c")]) == {"score": 33.3, "classification": "fail", "pass": False}


def test_weights_and_custom_thresholds() -> None:
    checks = [ok("a", weight=3.0), bad("b", weight=1.0)]
    assert score(checks)["score"] == 75.0
    assert score(checks, Thresholds(pass_score=80.0))["classification"] == "marginal"
    assert score(checks, Thresholds(pass_score=90.0, marginal_score=80.0))["classification"] == "fail"


def test_nothing_judged_has_no_score_and_pass_none() -> None:
    assert score([]) == {"score": None, "classification": None, "pass": None}
    assert score([unjudged("errors"), unjudged("latency")]) == {"score": None, "classification": None,
                                                                "pass": None}
    # a check not judged is left out, even a critical one
    assert score([unjudged("errors"), ok("latency")]) == {"score": 100.0, "classification": "pass",
                                                           "pass": True}


def test_judge_gray_with_many_more_errors_fails_on_the_critical_errors_check() -> None:
    j = judge(tot(1000, 312), tot(1000, 4), SAME, SAME, "gray", "base", "B")
    assert (j["score"], j["classification"], j["pass"]) == (0.0, "fail", False)
    checks = {c["name"]: c for c in j["checks"]}
    assert checks["errors"]["pass"] is False and checks["errors"]["critical"] is True
    assert checks["errors"]["value"] == 0.312 and checks["errors"]["threshold"] == 0.004
    assert checks["latency"]["pass"] is True and checks["latency"]["value"] == 0.5
    assert j["text"].startswith("gray on B scores 0/100 vs base (fail): errors 31.2% vs 0.40% on base (higher, p=")
    assert j["text"].endswith("z), confidence >99.9%")
    assert j["confidence"] > 0.999 and j["verdict"]["reason"] == "errors"


def test_judge_slower_gray_fails_on_latency_with_the_share_of_pairs() -> None:
    j = judge(tot(1000, 4), tot(1000, 4), SLOW, SAME, "gray", "base", "C")
    checks = {c["name"]: c for c in j["checks"]}
    assert checks["latency"]["pass"] is False and checks["latency"]["value"] == 1.0
    assert checks["latency"]["threshold"] == pytest.approx(0.55)
    assert checks["errors"]["pass"] is True
    assert j["pass"] is False and j["score"] == 0.0
    assert "mean 9.6 ms vs 1.7 ms on base, slower in 100% of pairs (worse; the bar: more than 55%" in j["text"]


def test_judge_latency_not_critical_gives_marginal() -> None:
    th = Thresholds(critical=("errors",))
    j = judge(tot(1000, 4), tot(1000, 4), SLOW, SAME, "gray", "base", "C", th)
    assert (j["score"], j["classification"], j["pass"]) == (50.0, "marginal", False)
    assert j["text"].startswith("gray on C scores 50/100 vs base (marginal): mean 9.6 ms vs 1.7 ms on base, "
                                "slower in 100% of pairs")


def test_judge_no_difference_passes_and_says_at_what_confidence() -> None:
    j = judge(tot(400, 10), tot(400, 6), SAME, SAME, "gray", "base", "B")
    assert (j["score"], j["classification"], j["pass"]) == (100.0, "pass", True)
    assert j["text"] == ("gray on B scores 100/100 vs base (pass): errors and latency not shown worse "
                         "at 99.0% confidence")
    assert {c["name"]: c["text"] for c in j["checks"]}["errors"].startswith(
        "errors 2.50% vs 1.50% on base (not shown higher, p=")


@pytest.mark.parametrize("lane_n,base_n,short,n", [(29, 1000, "gray", 29), (1000, 12, "base", 12)])
def test_judge_below_min_requests_judges_nothing(lane_n: int, base_n: int, short: str, n: int) -> None:
    j = judge(tot(lane_n, 0), tot(base_n, 0), SAME, SAME, "gray", "base", "B")
    assert (j["score"], j["classification"], j["pass"], j["verdict"]) == (None, None, None, None)
    assert [c["pass"] for c in j["checks"]] == [None, None]
    assert j["text"] == f"gray vs base on B: not judged, {short} served {n} requests on B, fewer than 30"


def test_judge_without_latency_samples_judges_errors_only() -> None:
    empty = np.zeros(N_BUCKETS)
    j = judge(tot(1000, 4), tot(1000, 4), empty, SAME, "gray", "base", "B")
    checks = {c["name"]: c for c in j["checks"]}
    assert checks["latency"]["pass"] is None and checks["latency"]["text"] == "not judged: no latency histogram"
    assert j["pass"] is True and j["score"] == 100.0


def test_the_gate_says_a_failing_caller_follows_its_failing_callee() -> None:
    from lanewatch.gate_verdict import explain_callers

    def judged(svc: str, failed: bool) -> dict[str, Any]:
        return {"service": svc, "lane": "gray", "pass": not failed,
                "checks": [{"name": "errors", "pass": not failed, "text": f"errors at {svc}"},
                           {"name": "latency", "pass": True, "text": "fine"}]}

    rows = [judged("A", True), judged("B", True), judged("C", False)]
    explain_callers(rows, {("A", "gray"): {"B"}, ("B", "gray"): {"C"}})
    assert rows[0]["follows"] == "B" and "follows its callee B" in rows[0]["checks"][0]["text"]
    assert "follows" not in rows[1]  # B's callee C is fine: the failure starts at B
    assert rows[0]["checks"][1]["text"] == "fine"
