"""The alert rules on known evidence: what fires, what must not, and what it says."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lanewatch import config
from lanewatch.alerts.evidence import Evidence
from lanewatch.alerts.rules import RULES, share_confidence
from lanewatch.histogram import N_BUCKETS
from lanewatch.stats import wilson

NOW = 1_800_000_000.0


def ev(hops: dict[tuple[str, ...], tuple[float, float]] | None = None, *, latency: Any = None,
       edges: Any = None, traces: Any = None, **kw: Any) -> Evidence:
    return Evidence(NOW, 60, dict(hops or {}), dict(latency or {}), dict(edges or {}), dict(traces or {}), **kw)


def run(name: str, e: Evidence, **flags: Any) -> list[Any]:
    return RULES[name](e, config.load(environ={}, flags=flags))


def test_one_leak_among_a_thousand_never_fires_twenty_of_four_hundred_does() -> None:
    sparse = ev({("B", "gray", "gray", "in_lane"): (1000, 0), ("B", "base", "gray", "leak"): (1, 0)})
    assert run("LaneLeak", sparse) == []
    dense = ev({("B", "gray", "gray", "in_lane"): (380, 0), ("B", "base", "gray", "leak"): (20, 0)})
    [f] = run("LaneLeak", dense)
    assert f.labels == {"alertname": "LaneLeak", "service": "B", "lane": "gray", "severity": "warning"}
    assert f.value == pytest.approx(0.05) and f.threshold == 0.01
    assert f.details["lower_bound"] == pytest.approx(wilson(20, 400)[0], abs=1e-6)
    assert f.confidence is not None and f.confidence > 0.975
    assert "20 of 400" in f.text and "5.00%" in f.text


def test_a_fallback_never_fires_however_large() -> None:
    e = ev({("C", "base", "gray", "fallback"): (5000, 0), ("C", "gray", "gray", "in_lane"): (10, 0)})
    assert all(run(n, e) == [] for n in ("LaneLeak", "LaneIntrusion", "LaneTagLost"))


def test_a_leak_needs_the_minimum_of_hops() -> None:
    e = ev({("B", "base", "gray", "leak"): (5, 0), ("B", "gray", "gray", "in_lane"): (5, 0)})
    assert run("LaneLeak", e) == []  # half leaked, but 10 hops: below leak_min_hops (20)
    assert len(run("LaneLeak", e, **{"alerts.leak_min_hops": 10})) == 1


def test_the_wilson_test_and_its_confidence_agree() -> None:
    rng = np.random.default_rng(7)
    for _ in range(500):
        n = int(rng.integers(1, 5000))
        k = int(rng.integers(0, n + 1))
        thr = float(rng.choice([0.005, 0.01, 0.05]))
        assert (wilson(k, n)[0] > thr) == (share_confidence(k, n, thr) > 0.975) or \
            abs(wilson(k, n)[0] - thr) < 1e-9


def test_one_intrusion_fires_critical_and_names_the_lane_that_served_it() -> None:
    [f] = run("LaneIntrusion", ev({("B", "gray", "base", "intrusion"): (1, 0), ("B", "base", "base", "in_lane"): (900, 0)}))
    assert f.labels == {"alertname": "LaneIntrusion", "service": "B", "severity": "critical"}
    assert "1 by gray" in f.text and "kind=intrusion" in f.link


def test_tag_lost_in_transit_blames_the_edge_and_inside_blames_the_caller() -> None:
    transit = ev(edges={("A", "B", "base", "gray"): (100, 100, 0)})
    [f] = run("LaneTagLost", transit)
    assert f.labels == {"alertname": "LaneTagLost", "caller": "A", "callee": "B", "lane": "gray",
                        "where": "transit", "severity": "warning"}
    inside = ev(edges={("B", "C", "base", "gray"): (100, 100, 100), ("A", "B", "gray", "gray"): (100, 0, 0)})
    [g] = run("LaneTagLost", inside)
    assert g.labels == {"alertname": "LaneTagLost", "service": "B", "lane": "gray", "where": "inside",
                        "severity": "warning"}
    base_only = ev(edges={("A", "B", "base", "base"): (1000, 0, 0)})
    assert run("LaneTagLost", base_only) == []


def _instances(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"service": s, "lane": ln, "instance": f"{s}-{ln}", "first_seen": NOW - 600, "last_seen": NOW - 1,
             "state": "up", "live": True, "last_hop": None} for s, ln in pairs]


def test_a_live_lane_nothing_reaches_is_dead_and_one_off_the_path_is_not() -> None:
    e = ev(instances=_instances(("B", "gray")), dead_served={("B", "base"): 500}, dead_wanted={"base"})
    [f] = run("DeadLane", e)
    assert f.labels == {"alertname": "DeadLane", "service": "B", "lane": "gray", "severity": "warning"}
    assert f.link.startswith("/lanes?")
    asked = ev(instances=_instances(("C", "gray")), dead_served={("C", "base"): 500}, dead_wanted={"base", "gray"})
    assert run("DeadLane", asked) == []  # gray was asked for somewhere: leaks say it, not DeadLane


def _hist(bucket: int, n: int) -> np.ndarray:
    h = np.zeros(N_BUCKETS)
    h[bucket] = n
    return h


def test_gray_with_many_more_errors_fails_with_score_zero_and_base_alone_never_does() -> None:
    hops = {("B", "gray", "gray", "in_lane"): (400, 120), ("B", "base", "base", "in_lane"): (4000, 8)}
    lat = {("B", "gray"): _hist(50, 400), ("B", "base"): _hist(50, 4000)}
    [f] = run("GrayWorseThanBase", ev(hops, latency=lat))
    assert f.labels == {"alertname": "GrayWorseThanBase", "service": "B", "lane": "gray", "severity": "critical"}
    assert f.value == 0.0 and f.details["classification"] == "fail"
    assert [c["name"] for c in f.details["checks"] if c["pass"] is False] == ["errors"]
    assert "30.0%" in f.text and f.link.startswith("/compare?")
    same = {("B", "gray", "gray", "in_lane"): (400, 1), ("B", "base", "base", "in_lane"): (4000, 10)}
    assert run("GrayWorseThanBase", ev(same, latency=lat)) == []
    few = {("B", "gray", "gray", "in_lane"): (10, 9), ("B", "base", "base", "in_lane"): (4000, 10)}
    assert run("GrayWorseThanBase", ev(few, latency=lat)) == []  # 10 requests: not judged


def test_a_caller_that_fails_only_with_its_callee_is_not_alerted_the_callee_is() -> None:
    hops = {(s, ln, ln, "in_lane"): (n, e) for s, ln, n, e in
            (("A", "gray", 400, 110), ("A", "base", 4000, 4), ("B", "gray", 400, 120), ("B", "base", 4000, 4))}
    lat = {(s, ln): _hist(50, 100) for s in "AB" for ln in ("gray", "base")}
    edges = {("A", "B", "gray", "gray"): (400, 0, 0), ("A", "B", "base", "base"): (4000, 0, 0)}
    found = run("GrayWorseThanBase", ev(hops, latency=lat, edges=edges))
    assert [f.labels["service"] for f in found] == ["B"]
    assert found[0].details["explains"] == ["A"] and "callers A" in found[0].text
    # without the edge, A is judged on its own
    alone = run("GrayWorseThanBase", ev(hops, latency=lat))
    assert [f.labels["service"] for f in alone] == ["A", "B"]


def test_slower_gray_fails_on_latency() -> None:
    hops = {("B", "gray", "gray", "in_lane"): (400, 0), ("B", "base", "base", "in_lane"): (4000, 0)}
    lat = {("B", "gray"): _hist(70, 400), ("B", "base"): _hist(50, 4000)}
    [f] = run("GrayWorseThanBase", ev(hops, latency=lat))
    assert [c["name"] for c in f.details["checks"] if c["pass"] is False] == ["latency"]


def test_gray_share_drift_fires_only_outside_target_and_tolerance_and_is_off_by_default() -> None:
    lanes = {"lanes": {"gray": {"target_share": 0.02, "tolerance": 0.01}}}
    high = ev(traces={"base": 9500, "gray": 500})
    assert run("GrayShareDrift", high) == []  # no target set: off
    [f] = run("GrayShareDrift", high, **lanes)
    assert f.labels == {"alertname": "GrayShareDrift", "lane": "gray", "severity": "warning"}
    assert "above" in f.text and f.value == pytest.approx(0.05)
    assert run("GrayShareDrift", ev(traces={"base": 9800, "gray": 200}), **lanes) == []
    assert run("GrayShareDrift", ev(traces={"base": 50, "gray": 0}), **lanes) == []  # 50 traces: can't tell
    [low] = run("GrayShareDrift", ev(traces={"base": 20000, "gray": 20}), **lanes)
    assert "below" in low.text
