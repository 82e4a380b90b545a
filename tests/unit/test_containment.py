"""The containment rules shared by ``lanewatch check`` and ``/api/v1/gate``."""

from __future__ import annotations

from typing import Any

import pytest

from lanewatch.containment import SummaryError, UnknownName, containment


def summary(leak: int = 0, tag_lost: int = 0, traces: int = 10, violated: int = 0,
            dead: list[dict[str, Any]] | None = None, lanes: tuple[str, ...] = ("base", "gray"),
            services: tuple[str, ...] = ("A", "B")) -> dict[str, Any]:
    return {"window_s": 60, "hops": {"in_lane": 5, "fallback": 0, "leak": leak, "intrusion": 0},
            "edges": {"tag_lost": tag_lost, "calls": 5}, "lanes": {}, "traces": traces,
            "traces_violated": violated, "dead_lanes": dead or [],
            "seen": {"lanes": list(lanes), "services": list(services)}}


def by_name(checks: list[dict[str, Any]]) -> dict[str, Any]:
    return {c["name"]: c for c in checks}


def test_clean_traffic_passes_every_check() -> None:
    c = containment(summary(), "gray", None)
    assert c.passed is True and not c.failed
    checks = c.checks()
    assert [x["name"] for x in checks] == ["leak", "intrusion", "tag_lost", "traces_violated", "dead_lanes"]
    assert all(x["pass"] is True and x["critical"] and x["threshold"] == 0 for x in checks)
    assert by_name(checks)["traces_violated"]["text"] == "all 10 traces in lane gray stayed in lane"


def test_a_violation_fails_even_without_finished_traces() -> None:
    c = containment(summary(tag_lost=2, traces=0), "gray", None)
    assert c.failed and c.passed is False
    checks = by_name(c.checks())
    assert checks["tag_lost"] == {"name": "tag_lost", "pass": False, "value": 2, "threshold": 0,
                                  "text": "2 tags lost in lane gray (must be 0)", "critical": True}
    assert checks["leak"]["pass"] is None and checks["leak"]["text"] == "not judged: no finished trace in lane gray"


def test_no_finished_trace_is_not_judged() -> None:
    c = containment(summary(traces=0), None, None)
    assert c.passed is None and all(x["pass"] is None for x in c.checks())


def test_a_dead_lane_fails() -> None:
    dead = [{"service": "B", "lane": "gray", "live_instances": 3}]
    checks = by_name(containment(summary(dead=dead), "gray", None).checks())
    assert checks["dead_lanes"]["pass"] is False and checks["dead_lanes"]["value"] == 1
    assert checks["dead_lanes"]["text"].startswith("1 dead lane(s): gray at B")


def test_under_a_service_a_trace_that_left_elsewhere_does_not_fail() -> None:
    c = containment(summary(violated=3), None, "A")
    assert c.passed is True and "traces_violated" not in by_name(c.checks())
    assert containment(summary(violated=3), None, None).passed is False


def test_a_typo_names_what_was_seen_and_a_fresh_collector_has_no_typos() -> None:
    with pytest.raises(UnknownName) as e:
        containment(summary(), "grey", None)
    assert str(e.value) == "lane=grey: not seen in the last 60 s; seen: base, gray"
    assert e.value.message(as_flag=True).startswith("--lane grey: not seen")
    with pytest.raises(UnknownName, match="service=C: not seen in the last 60 s; seen: A, B"):
        containment(summary(), "gray", "C")
    fresh = containment(summary(traces=0, lanes=(), services=()), "gray", "B")
    assert fresh.passed is None


def test_not_a_summary() -> None:
    with pytest.raises(SummaryError, match="is this a lanewatch API"):
        containment({"hops": {}}, None, None)
