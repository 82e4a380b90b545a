"""Dead lanes: live instances of a lane that nothing asked for, while their service served traffic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lanewatch.config import Settings
from lanewatch.query import Query
from lanewatch.store.base import Batch
from lanewatch.store.duck import DuckStore

T = 1_767_225_600
NOW = T + 0.5


def hops(rows: Sequence[tuple[str, str, str, str, int]]) -> dict[str, list[Any]]:
    """(service, instance lane, expected lane, verdict, requests) at T - 5."""
    cols = ("service", "instance_lane", "expected_lane", "verdict", "requests")
    out: dict[str, list[Any]] = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    n = len(rows)
    out.update(ts=[T - 5] * n, request_lane=out["expected_lane"], errors=[0] * n, latency_sum_ms=[1.0] * n)
    return out


def gray_instances(*services: str) -> list[dict[str, Any]]:
    return [{"service": s, "lane": "gray", "instance": f"{s}-gray", "first_seen": T - 600, "last_seen": T - 1,
             "state": "up", "hops": 0, "errors": 0, "last_hop": None} for s in services]


def summary(rows: Sequence[tuple[str, str, str, str, int]], services: Sequence[str]) -> dict[str, Any]:
    store = DuckStore(":memory:", clock=lambda: NOW)
    try:
        store.write(Batch(rollups={"hops": hops(rows)}, instances=gray_instances(*services)))
        return Query(store, Settings(), clock=lambda: NOW).summary(60)
    finally:
        store.close()


def test_a_lane_nothing_asked_for_is_dead_where_it_is_live() -> None:
    s = summary([("A", "base", "base", "in_lane", 50), ("B", "base", "base", "in_lane", 50)], ["A", "B"])
    assert [(d["service"], d["lane"], d["live_instances"]) for d in s["dead_lanes"]] == [("A", "gray", 1),
                                                                                      ("B", "gray", 1)]
    assert "gray" in s["lanes"] and s["dead_after_s"] == 60.0


def test_a_service_off_the_gray_path_is_not_dead() -> None:
    """Scenario 3: rules route user 100 to A-gray and B-gray; C has no rule and serves base,
    while a C-gray instance is live. Healthy: C-gray idles by design."""
    s = summary([("A", "gray", "gray", "in_lane", 20), ("B", "gray", "gray", "in_lane", 20),
                 ("C", "base", "base", "in_lane", 50)], ["A", "B", "C"])
    assert s["dead_lanes"] == []


def test_a_service_whose_instances_came_up_recently_is_not_dead_yet() -> None:
    store = DuckStore(":memory:", clock=lambda: NOW)
    young = [{**i, "first_seen": T - 20} for i in gray_instances("A")]
    try:
        store.write(Batch(rollups={"hops": hops([("A", "base", "base", "in_lane", 50)])}, instances=young))
        assert Query(store, Settings(), clock=lambda: NOW).summary(60)["dead_lanes"] == []
    finally:
        store.close()
