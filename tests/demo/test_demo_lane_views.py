"""What a user reads for one lane, on the real demo: the gate, the summary, the edges, dead lanes.

Each test reproduces a finding of a new user (issue 9) with ``lanewatch demo``'s real
processes and the real ``lanewatch check`` command.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from conftest import RunningDemo

Runner = Callable[..., AbstractContextManager[RunningDemo]]


def check(demo: RunningDemo, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lanewatch.cli", "check", "--url", demo.info["api_url"], *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_tag_lost_inside_b_gray_fails_the_gray_gate_and_not_the_base_one(demo_runner: Runner) -> None:
    with demo_runner("--scenario", "1", "--rate", "20") as demo:
        demo.fault("b_gray_drops_tag", True)
        time.sleep(8)  # 6 s of faulty traffic, judged 2 s after their last span
        gray = check(demo, "--window", "6", "--lane", "gray")
        assert gray.returncode == 1, gray.stdout + gray.stderr
        assert "tag_lost" in gray.stdout and "FAIL" in gray.stdout
        base = check(demo, "--window", "6", "--lane", "base")
        assert base.returncode == 0, base.stdout + base.stderr  # base is not blamed for gray's loss
        s = demo.api("/api/v1/summary?window=6&lane=gray")
        assert s["edges"]["tag_lost"] > 0 and s["violations"] > 0 and s["traces_violated"] > 0
        listed = demo.api("/api/v1/violations?window=6&lane=gray")
        assert listed and {v["kind"] for v in listed} == {"tag_lost"}
        assert demo.api("/api/v1/summary?window=6&lane=base")["violations"] == 0


def test_rule_routed_gray_traffic_draws_as_gray(demo_runner: Runner) -> None:
    with demo_runner("--scenario", "3", "--rate", "20") as demo:
        time.sleep(6)
        edges = demo.api("/api/v1/edges?window=5")
        gray = {(e["caller"], e["callee"]) for e in edges if e["lane"] == "gray"}
        assert ("A", "B") in gray, edges  # the rule sent no tag, yet the request was gray's
        assert all(e["sent_lane"] == "base" for e in edges)
        assert {(e["caller"], e["callee"]) for e in demo.api("/api/v1/edges?window=5&lane=gray")} >= gray


def test_a_dead_gray_lane_is_reported_and_fails_the_gate(demo_runner: Runner) -> None:
    with demo_runner("--scenario", "1", "--rate", "20") as demo:
        after = float(demo.api("/api/v1/summary?window=5")["dead_after_s"])
        assert after <= 15, "the demo detects dead lanes within seconds"
        demo.fault("dead_lane", True)
        deadline = time.monotonic() + after + 15
        dead: list[dict[str, object]] = []
        while time.monotonic() < deadline and {d["service"] for d in dead} != {"A", "B", "C"}:
            time.sleep(1)
            dead = demo.api("/api/v1/summary?window=30&lane=gray")["dead_lanes"]
        assert {d["service"] for d in dead} == {"A", "B", "C"}, dead
        assert all(d["lane"] == "gray" and int(str(d["live_instances"])) >= 1 for d in dead)
        s = demo.api("/api/v1/summary?window=30")
        assert "gray" in s["lanes"]  # the lane keeps its row
        r = check(demo, "--window", "30", "--lane", "gray")
        assert r.returncode == 1 and "dead lane" in r.stdout, r.stdout + r.stderr
