"""The whole demo, collector included: verdicts and lane paths read back from the collector's API.

Each test starts ``lanewatch demo`` headless (real processes on loopback, traffic
at 20 req/s), sends its own requests through the ingress, and looks up their
traces by the ``X-Trace-Id`` the answer carries (the demo keeps every trace).
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from conftest import RunningDemo

from lanewatch.demo import web

Runner = Callable[..., AbstractContextManager[RunningDemo]]
WAIT_S = 15.0  # trace_wait_s is 2 in the demo; allow for a busy machine


def send(demo: RunningDemo, host: str, headers: dict[str, str] | None = None) -> str:
    """Send one request through the ingress; return its trace id."""
    host_port = demo.info["ingress_url"].split("//")[1]
    conn = http.client.HTTPConnection(host_port, timeout=10)
    try:
        conn.request("GET", "/a", headers={"Host": host, **(headers or {})})
        resp = conn.getresponse()
        resp.read()
        trace_id = resp.getheader("X-Trace-Id") or ""
    finally:
        conn.close()
    assert trace_id, "the answer carries no X-Trace-Id"
    return trace_id


def trace(demo: RunningDemo, trace_id: str, lane_path: str | None = None) -> dict[str, Any]:
    """The collector's judgement of one trace, once it is final. With ``lane_path``, the
    judgement is read again (until the deadline) while its path differs: on a busy machine
    an exporter can send a span after ``trace_wait_s``, and the trace is judged again
    when it comes (the newest judgement is what the API gives)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        status, body = web.request("GET", f"{demo.info['api_url']}/api/v1/traces/{trace_id}")
        if status == 200:
            got = dict(json.loads(body))
            if lane_path is None or got["lane_path"] == lane_path or time.monotonic() >= deadline:
                return got
        assert time.monotonic() < deadline, f"trace {trace_id} not judged in {WAIT_S} s ({status})"
        time.sleep(0.3)


def path_of(demo: RunningDemo, host: str, headers: dict[str, str] | None = None) -> str:
    return str(trace(demo, send(demo, host, headers))["lane_path"])


def violations_since(demo: RunningDemo, t0: float) -> list[dict[str, Any]]:
    window = int(time.time() - t0) + 2
    return [v for v in demo.api(f"/api/v1/violations?window={window}") if v["ts"] >= int(t0)]


BASE = "A[base] -> B[base] -> C[base]"
GRAY = "A[gray] -> B[gray] -> C[gray]"
EXPECTED = {
    "1": [("www.base.com", {}, BASE), ("www.gray.com", {}, GRAY)],
    "2": [("www.demo.com", {}, BASE), ("www.demo.com", {"x-mse-tag": "gray"}, GRAY),
          ("www.demo.com", {"x-user-id": "100"}, GRAY), ("www.demo.com", {"x-user-id": "101"}, BASE)],
    "3": [("www.base.com", {"x-user-id": "100"}, "A[gray] -> B[gray] -> C[base]"),
          ("www.base.com", {"x-user-id": "101"}, BASE)],
    "3-no-canary": [("www.base.com", {"x-user-id": "100"}, "A[base] -> B[gray] -> C[base]"),
                    ("www.base.com", {"x-user-id": "101"}, BASE)],
}


@pytest.mark.parametrize("scenario", ["1", "2", "3", "3-no-canary"])
def test_scenario_paths_and_no_violation(demo_runner: Runner, scenario: str) -> None:
    args = ["--scenario", "3", "--no-canary"] if scenario == "3-no-canary" else ["--scenario", scenario]
    with demo_runner(*args, "--rate", "20") as demo:
        assert demo.info["startup_s"] < 30
        t0 = time.time()
        for host, headers, expected in EXPECTED[scenario]:
            ids = [send(demo, host, headers) for _ in range(3)]
            assert [trace(demo, i, expected)["lane_path"] for i in ids] == [expected] * 3, (host, headers)
        time.sleep(3)  # let the background traffic's traces be judged too
        summary = demo.api("/api/v1/summary?window=10")
        assert summary["hops"]["in_lane"] > 50
        assert summary["hops"]["leak"] == summary["hops"]["intrusion"] == summary["edges"]["tag_lost"] == 0
        assert violations_since(demo, t0 - 10) == []


def test_every_fault_is_detected_as_its_own_kind(demo_runner: Runner) -> None:
    tag = {"x-mse-tag": "gray"}
    with demo_runner("--scenario", "2", "--rate", "20") as demo:

        def during(fault: str) -> float:
            demo.fault(fault, True)
            return time.time()

        # tag lost inside a service: B-gray calls C without the lane
        t0 = during("b_gray_drops_tag")
        got = trace(demo, send(demo, "www.demo.com", tag), "A[gray] -> B[gray, tag_lost] -> C[base]")
        assert got["lane_path"] == "A[gray] -> B[gray, tag_lost] -> C[base]"
        assert {(v["kind"], v["service"], v["callee"]) for v in got["violations"]} == {("tag_lost", "B", "")}
        demo.fault("b_gray_drops_tag", False)

        # tag lost in transit: the proxy strips it, the request goes on in base
        during("proxy_strips_tag")
        got = trace(demo, send(demo, "www.demo.com", tag), "A[gray] -> B[base, tag_lost] -> C[base]")
        assert {(v["kind"], v["caller"], v["callee"]) for v in got["violations"]} == {("tag_lost", "A", "B")}
        assert got["lane_path"] == "A[gray] -> B[base, tag_lost] -> C[base]"
        demo.fault("proxy_strips_tag", False)

        # intrusion: A's balancer sends base traffic to B-gray
        during("base_to_b_gray")
        paths = {trace(demo, i)["lane_path"] for i in [send(demo, "www.demo.com") for _ in range(6)]}
        assert "A[base] -> B[gray, intrusion] -> C[base]" in paths
        demo.fault("base_to_b_gray", False)
        time.sleep(4)  # the traffic of those faults is judged; what follows must be clean
        kinds = {v["kind"] for v in violations_since(demo, t0)}
        assert kinds == {"tag_lost", "intrusion"}

        # C-gray down: a legitimate fallback, no violation
        t1 = during("c_gray_down")
        got = trace(demo, send(demo, "www.demo.com", tag), "A[gray] -> B[gray] -> C[base, fallback]")
        assert got["lane_path"] == "A[gray] -> B[gray] -> C[base, fallback]" and got["stayed"]
        time.sleep(3)
        assert demo.api("/api/v1/summary?window=4")["hops"]["fallback"] > 0
        left = [i for i in demo.api("/api/v1/instances") if (i["service"], i["lane"]) == ("C", "gray")]
        assert left and not any(i["live"] for i in left)
        demo.fault("c_gray_down", False)
        deadline = time.monotonic() + WAIT_S
        while path_of(demo, "www.demo.com", tag) != GRAY:
            assert time.monotonic() < deadline, "C-gray did not come back"

        # gray worse than base: errors, then latency, as a claim with a confidence
        during("b_gray_errors")
        time.sleep(9)
        cmp = demo.api("/api/v1/compare?service=B&lane=gray&window=7")
        assert cmp["totals"]["gray"]["error_rate"] > cmp["totals"]["base"]["error_rate"]
        assert cmp["verdict"] and cmp["verdict"]["worse"]
        demo.fault("b_gray_errors", False)
        during("b_gray_slow")
        time.sleep(9)
        cmp = demo.api("/api/v1/compare?service=B&lane=gray&window=7")
        assert cmp["totals"]["gray"]["p50_ms"] > 150 > cmp["totals"]["base"]["p50_ms"]
        assert cmp["verdict"] and cmp["verdict"]["worse"]
        demo.fault("b_gray_slow", False)

        # dead lane: the gray instances are live but get nothing
        during("dead_lane")
        time.sleep(5)
        lanes = demo.api("/api/v1/summary?window=4")["lanes"]  # 1 s after the switch; the last seconds may not have arrived yet
        assert lanes.get("gray", {}).get("requests", 0) == 0 and lanes["base"]["requests"] > 0
        live_gray = {i["service"] for i in demo.api("/api/v1/instances") if i["lane"] == "gray" and i["live"]}
        assert live_gray == {"A", "B", "C"}
        demo.fault("dead_lane", False)
        assert violations_since(demo, t1) == []


def test_all_scenarios_cycle_without_false_alarms(demo_runner: Runner) -> None:
    with demo_runner("--scenario", "all", "--phase-seconds", "5", "--rate", "20") as demo:
        t0 = time.time()
        time.sleep(17)  # 1 -> 2 -> 3 -> 1: A-gray restarts without dyeing and with it again
        summary = demo.api("/api/v1/summary?window=20")
        assert summary["lanes"]["gray"]["traces"] > 20
        found = violations_since(demo, t0 - 5)
        for v in found:
            print(v, demo.api(f"/api/v1/traces/{v['trace_id']}"))
        print(demo.api("/api/v1/instances"))
        assert found == []
