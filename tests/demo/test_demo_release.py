"""Releases under traffic with the demo's real processes (issue 13), checked through the API
(``/api/v1/summary``, ``/api/v1/alerts``, i.e. the alert engine): a rolling restart of every
gray instance and a promotion raise no leak or intrusion; a real leak injected during a
rolling restart is caught; a ``kill -9`` of C-gray gives ``uncertain`` hops for at most the
TTL and no leak alert."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from conftest import RunningDemo

from lanewatch.demo import web

Runner = Callable[..., AbstractContextManager[RunningDemo]]
BAD = {"LaneLeak", "LaneIntrusion"}


def _release(demo: RunningDemo, kind: str) -> dict[str, Any]:
    return dict(web.post_json(f"{demo.info['control_url']}/release/{kind}", {}, timeout=180))


def _alert_names(demo: RunningDemo) -> set[str]:
    return {a["name"] for a in demo.api("/api/v1/alerts?history=0")["alerts"]}


def _during(demo: RunningDemo, kind: str, after_s: float = 6.0) -> tuple[dict[str, Any], set[str]]:
    """Run release ``kind``; every alert seen (pending or firing) while it ran and ``after_s`` after."""
    seen: set[str] = set()
    out: dict[str, Any] = {}
    t = threading.Thread(target=lambda: out.update(_release(demo, kind)))
    t.start()
    while t.is_alive():
        seen |= _alert_names(demo)
        time.sleep(0.5)
    t.join()
    deadline = time.monotonic() + after_s
    while time.monotonic() < deadline:
        seen |= _alert_names(demo)
        time.sleep(0.5)
    return out, seen


def _hops(demo: RunningDemo, window_s: int) -> dict[str, int]:
    return dict(demo.api(f"/api/v1/summary?window={window_s}")["hops"])


def test_rolling_restart_crash_and_a_leak_during_a_restart(demo_runner: Runner) -> None:
    with demo_runner("--scenario", "1", "--rate", "20") as demo:
        time.sleep(8)
        assert _alert_names(demo) == set(), "healthy traffic raised an alert"
        t0 = time.monotonic()
        out, seen = _during(demo, "rolling")
        assert out["restarted"] == ["A-gray", "B-gray", "C-gray"]
        assert not seen & BAD, f"a rolling restart raised {seen}"
        hops = _hops(demo, int(time.monotonic() - t0) + 2)
        assert hops["leak"] == hops["intrusion"] == 0, hops
        assert hops["fallback"] > 0, hops  # gray traffic fell back while an instance was away

        t0 = time.monotonic()
        out, seen = _during(demo, "crash", after_s=8.0)
        assert out["killed"] == "C-gray"
        assert "LaneLeak" not in seen, f"kill -9 raised {seen}"
        hops = _hops(demo, int(time.monotonic() - t0) + 2)
        assert hops["uncertain"] > 0, hops
        assert hops["leak"] <= 2, hops  # at most the hops in flight at the kill (not an alert)

        demo.fault("gray_to_c_base", True)  # a real leak while the gray instances restart
        _, seen = _during(demo, "rolling", after_s=25.0)
        demo.fault("gray_to_c_base", False)
        assert "LaneLeak" in seen, f"the leak was missed: {seen}"


def test_promotion_raises_no_intrusion(demo_runner: Runner) -> None:
    with demo_runner("--scenario", "1", "--rate", "20") as demo:
        time.sleep(8)
        t0 = time.monotonic()
        out, seen = _during(demo, "promote")
        assert out["promoted"] == ["A", "B", "C"]
        assert not seen & BAD, f"a promotion raised {seen}"
        hops = _hops(demo, int(time.monotonic() - t0) + 2)
        assert hops["intrusion"] == 0 and hops["leak"] == 0, hops
        assert not [i for i in demo.registry() if i["lane"] == "gray"]
