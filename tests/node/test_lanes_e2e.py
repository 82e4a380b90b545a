"""End to end: Python (zero-code) and Node services export to a real `lanewatch up`, which judges the hops.

The write-up's scenario 1 with a fallback: A-gray (Python, dyeing on) -> B (Node,
base only) -> C-gray (Python). Expected: ``A[gray] -> B[base, fallback] -> C[gray]``.
Then an idle gray B that only sends heartbeats appears: the same traffic is now a
leak at B (a live gray B existed); once that instance stops gracefully (leaving
heartbeat, value 0) B is a fallback again at once, not after the liveness TTL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from node_helpers import LanewatchUp, Service, node_service, python_service

pytestmark = pytest.mark.node


@pytest.fixture
def up(tmp_path: Path) -> Iterator[LanewatchUp]:
    lw = LanewatchUp(tmp_path)
    yield lw
    lw.stop()


def hops(summary: dict[str, Any]) -> dict[str, int]:
    return dict(summary["hops"])


def live(lw: LanewatchUp, service: str, lane: str) -> bool:
    return any(i["service"] == service and i["lane"] == lane and i["live"] for i in lw.get("/instances"))


def test_python_and_node_hops_judged_by_lanewatch_up(node_modules: Path, up: LanewatchUp) -> None:
    started: list[Service] = []
    try:
        c = python_service(up.otlp, "gray", "C")
        started.append(c)
        b = node_service(up.otlp, "base", name="B", downstream=c.url + "/stock")
        started.append(b)
        a = python_service(up.otlp, "gray", "A", downstream=b.url + "/b", LANEWATCH_DYEING="true")
        started.append(a)
        up.wait_for("/instances", lambda rows: sum(r["live"] for r in rows) >= 3)

        # Phase 1: no gray B at all -> B serves gray traffic from base: a fallback, and correct.
        for _ in range(3):
            assert a.get("/order") == 200  # no lane header: A dyes it gray
        s = up.wait_for("/summary?window=300", lambda s: hops(s)["in_lane"] >= 6 and hops(s)["fallback"] >= 3
                        and s["lanes"].get("gray", {}).get("traces", 0) >= 3)
        assert hops(s) == {"in_lane": 6, "fallback": 3, "leak": 0, "intrusion": 0, "uncertain": 0}
        assert s["edges"]["tag_lost"] == 0 and s["violations"] == 0
        assert s["lanes"]["gray"]["traces"] == 3 and s["lanes"]["gray"]["stayed"] == 3

        # Phase 2: an idle gray B appears (heartbeats only). Gray traffic still served by base B: a leak.
        idle_gray_b = node_service(up.otlp, "gray", name="B")
        started.append(idle_gray_b)
        up.wait_for("/instances", lambda _: live(up, "B", "gray"))
        assert a.get("/order") == 200
        s = up.wait_for("/summary?window=300", lambda s: hops(s)["leak"] >= 1)
        assert hops(s)["leak"] == 1 and hops(s)["intrusion"] == 0
        leak = up.wait_for("/violations?window=300&kind=leak", lambda rows: rows)[0]
        assert (leak["service"], leak["instance_lane"], leak["request_lane"]) == ("B", "base", "gray"), leak
        assert leak["lane_path"] == "A[gray] -> B[base, leak] -> C[gray]", leak

        # Phase 3: the idle gray B stops gracefully: its leaving beat ends its liveness at once.
        assert idle_gray_b.stop() == 0
        up.wait_for("/instances", lambda _: not live(up, "B", "gray"), timeout_s=5)
        time.sleep(0.2)
        assert a.get("/order") == 200
        s = up.wait_for("/summary?window=300", lambda s: hops(s)["fallback"] >= 4)
        assert hops(s)["leak"] == 1 and hops(s)["fallback"] == 4
    finally:
        for svc in reversed(started):
            svc.stop()
