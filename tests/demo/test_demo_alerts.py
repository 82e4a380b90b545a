"""Each of the demo's faults raises exactly its alert, on the real demo (issue 10).

``b_gray_errors``/``b_gray_slow`` -> GrayWorseThanBase at B, ``base_to_b_gray`` ->
LaneIntrusion at B, ``proxy_strips_tag`` -> LaneTagLost on A -> B (in transit),
``b_gray_drops_tag`` -> LaneTagLost inside B, ``dead_lane`` -> DeadLane, ``c_gray_down``
-> none (a graceful stop is a fallback). The demo's alert window is 20 s, so each fault's
alerts clear within about 20 s of switching it off.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from conftest import RunningDemo

Runner = Callable[..., AbstractContextManager[RunningDemo]]

#: fault -> the (alertname, labels without alertname/severity) it must raise; all of them
EXPECTED: dict[str, set[tuple[str, tuple[tuple[str, str], ...]]]] = {
    "b_gray_errors": {("GrayWorseThanBase", (("lane", "gray"), ("service", "B")))},
    "b_gray_slow": {("GrayWorseThanBase", (("lane", "gray"), ("service", "B")))},
    "base_to_b_gray": {("LaneIntrusion", (("service", "B"),))},
    "proxy_strips_tag": {("LaneTagLost", (("callee", "B"), ("caller", "A"), ("lane", "gray"),
                                          ("where", "transit")))},
    "b_gray_drops_tag": {("LaneTagLost", (("lane", "gray"), ("service", "B"), ("where", "inside")))},
}


def _alerts(demo: RunningDemo) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    out = set()
    for a in demo.api("/api/v1/alerts?history=0")["alerts"]:
        labels = tuple(sorted((k, v) for k, v in a["labels"].items() if k not in ("alertname", "severity")))
        out.add((a["name"], labels))
    return out


def _watch(demo: RunningDemo, until: Callable[[set[Any]], bool], timeout_s: float) -> set[Any]:
    """Every alert seen (pending or firing) until ``until(seen)`` or the timeout."""
    seen: set[Any] = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen |= _alerts(demo)
        if until(seen):
            break
        time.sleep(0.5)
    return seen


def _firing(demo: RunningDemo) -> set[str]:
    return {a["name"] for a in demo.api("/api/v1/alerts?state=firing&history=0")["alerts"]}


def _cleared(demo: RunningDemo) -> None:
    deadline = time.monotonic() + 60
    while _alerts(demo) and time.monotonic() < deadline:
        time.sleep(1)
    assert not _alerts(demo), f"alerts did not clear: {_alerts(demo)}"


def test_each_fault_raises_exactly_its_alert(demo_runner: Runner) -> None:
    with demo_runner("--scenario", "1", "--rate", "20") as demo:
        time.sleep(8)
        assert _watch(demo, lambda _s: False, 5) == set(), "healthy traffic raised an alert"
        for fault, want in EXPECTED.items():
            demo.fault(fault, True)
            seen = _watch(demo, functools.partial(_all_firing, demo, want), 45)
            seen |= _watch(demo, lambda _s: False, 3)  # anything else it raises shows by now
            demo.fault(fault, False)
            assert seen == want, f"{fault}: raised {sorted(seen)}, expected {sorted(want)}"
            _cleared(demo)


def _all_firing(demo: RunningDemo, want: set[Any], seen: set[Any]) -> bool:
    """Every wanted alert was seen, and each one's name is firing now."""
    return want <= seen and {name for name, _ in want} <= _firing(demo)


def test_a_dead_lane_raises_dead_lane_and_a_graceful_stop_raises_nothing(demo_runner: Runner) -> None:
    with demo_runner("--scenario", "1", "--rate", "20") as demo:
        time.sleep(8)
        demo.fault("c_gray_down", True)
        assert _watch(demo, lambda _s: False, 20) == set(), "a graceful stop (fallback) raised an alert"
        demo.fault("c_gray_down", False)
        time.sleep(5)
        demo.fault("dead_lane", True)
        seen = _watch(demo, lambda s: {n for n, _ in s} == {"DeadLane"} and "DeadLane" in _firing(demo), 60)
        assert {n for n, _ in seen} == {"DeadLane"}, seen
        assert {dict(labels)["service"] for _, labels in seen} <= {"A", "B", "C"}


def test_the_demo_delivers_its_alerts_to_a_webhook(demo_runner: Runner) -> None:
    got: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{hook.server_port}/hook"
        with demo_runner("--scenario", "1", "--rate", "20", "--alert-webhook", url) as demo:
            time.sleep(3)
            demo.fault("base_to_b_gray", True)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                    a["labels"]["alertname"] == "LaneIntrusion" for b in got for a in b["alerts"]):
                time.sleep(0.5)
            demo.fault("base_to_b_gray", False)
        firing = [a for b in got for a in b["alerts"] if a["status"] == "firing"]
        assert firing and firing[0]["labels"] == {"alertname": "LaneIntrusion", "service": "B",
                                                  "severity": "critical"}, got
        assert got[0]["version"] == "4"
    finally:
        hook.shutdown()
        hook.server_close()
