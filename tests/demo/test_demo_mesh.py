"""The mesh on its own (``--no-collector``): the write-up's answers, the faults' effects, clean-up.

These check the services' own answers (``Agray[...] -> Bgray[...] -> C[...]``),
which need no collector; the verdicts are checked in ``test_demo_verdicts.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from conftest import RunningDemo, gone

from lanewatch.demo import web

Runner = Callable[..., AbstractContextManager[RunningDemo]]
BASE = "A[base] -> B[base] -> C[base]"
GRAY = "A[gray] -> B[gray] -> C[gray]"
MESH = ("--no-collector", "--no-traffic")


def paths(demo: RunningDemo, host: str, headers: dict[str, str] | None = None, n: int = 20) -> Counter[str]:
    return Counter(demo.path(host, headers) for _ in range(n))


def test_scenario_1_dyeing_and_weight_canary(demo_runner: Runner) -> None:
    with demo_runner("--scenario", "1", *MESH) as demo:
        assert paths(demo, "www.gray.com") == {GRAY: 20}
        base = paths(demo, "www.base.com", n=100)
        assert set(base) <= {BASE, GRAY} and base[BASE] >= 85  # 2% canary, dyed by A-gray


def test_scenario_2_headers_at_the_edge(demo_runner: Runner) -> None:
    with demo_runner("--scenario", "2", *MESH) as demo:
        assert demo.path("www.demo.com") == BASE
        assert demo.path("www.demo.com", {"x-mse-tag": "gray"}) == GRAY
        assert demo.path("www.demo.com", {"x-user-id": "100"}) == GRAY
        assert demo.path("www.demo.com", {"x-user-id": "101"}) == BASE


def test_scenario_3_per_service_rules(demo_runner: Runner) -> None:
    with demo_runner("--scenario", "3", *MESH) as demo:
        assert paths(demo, "www.base.com", {"x-user-id": "100"}, 5) == {"A[gray] -> B[gray] -> C[base]": 5}
        assert paths(demo, "www.base.com", {"x-user-id": "101"}, 5) == {BASE: 5}


def test_scenario_3_without_canary(demo_runner: Runner) -> None:
    with demo_runner("--scenario", "3", "--no-canary", *MESH) as demo:
        assert paths(demo, "www.base.com", {"x-user-id": "100"}, 5) == {"A[base] -> B[gray] -> C[base]": 5}
        assert paths(demo, "www.base.com", {"x-user-id": "101"}, 5) == {BASE: 5}


def test_faults_change_the_answers(demo_runner: Runner) -> None:
    with demo_runner("--scenario", "2", *MESH) as demo:
        tag = {"x-mse-tag": "gray"}
        demo.fault("b_gray_drops_tag", True)
        assert demo.path("www.demo.com", tag) == "A[gray] -> B[gray] -> C[base]"
        demo.fault("b_gray_drops_tag", False)

        demo.fault("proxy_strips_tag", True)
        assert demo.path("www.demo.com", tag) == "A[gray] -> B[base] -> C[base]"
        demo.fault("proxy_strips_tag", False)
        assert demo.path("www.demo.com", tag) == GRAY

        demo.fault("base_to_b_gray", True)
        assert paths(demo, "www.demo.com", n=10) == {BASE: 5, "A[base] -> B[gray] -> C[base]": 5}
        demo.fault("base_to_b_gray", False)

        demo.fault("b_gray_errors", True)
        statuses = Counter(demo.ask("www.demo.com", tag)[0] for _ in range(40))
        assert statuses[502] >= 3 and statuses[200] >= 20
        demo.fault("b_gray_errors", False)

        demo.fault("b_gray_slow", True)
        assert demo.ask("www.demo.com", tag)[2] >= 0.2
        assert demo.ask("www.demo.com")[2] < 0.2
        demo.fault("b_gray_slow", False)

        demo.fault("dead_lane", True)
        assert paths(demo, "www.demo.com", tag, 5) == {BASE: 5}
        demo.fault("dead_lane", False)

        c_gray = demo.info["children"]["C-gray"]
        demo.fault("c_gray_down", True)  # returns once C-gray has left
        assert "C-gray" not in {f"{r['service']}-{r['lane']}" for r in demo.registry()}
        assert paths(demo, "www.demo.com", tag, 5) == {"A[gray] -> B[gray] -> C[base]": 5}
        demo.fault("c_gray_down", False)
        deadline = time.monotonic() + 15
        while demo.path("www.demo.com", tag) != GRAY:
            assert time.monotonic() < deadline, "C-gray did not come back"
            time.sleep(0.2)
        restarted = [r for r in demo.registry() if r["service"] == "C" and r["lane"] == "gray"]
        assert restarted and restarted[0]["pid"] != c_gray
        demo.info["children"]["C-gray-restarted"] = restarted[0]["pid"]  # checked at clean-up too


def test_traffic_runs_and_duration_ends_the_demo(demo_runner: Runner) -> None:
    with demo_runner("--scenario", "1", "--no-collector", "--rate", "30", "--duration", "3") as demo:
        assert demo.proc.wait(30) == 0
    text = demo.log.read_text()
    assert "final" in text and "err 0" in text and "unexpected 0" in text


def test_children_stop_when_the_demo_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves the demo no chance to clean up: its children must go by themselves."""
    run_file = tmp_path / "run.json"
    proc = subprocess.Popen([sys.executable, "-m", "lanewatch.cli", "demo", "--scenario", "1", "--no-browser",
                             "--run-file", str(run_file)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not run_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.05)
        info = json.loads(run_file.read_text())
        ports = [int(info[k].rsplit(":", 1)[1]) for k in ("ingress_url", "api_url", "otlp_url")]
    finally:
        proc.kill()
        proc.wait(10)
    children = dict(info["children"])
    assert "collector" in children
    killed = time.monotonic()
    deadline = killed + 20  # mesh processes leave within LEAVE_DEADLINE_S (8 s) of their SIGTERM
    while not all(gone(p) for p in children.values()):
        left = {n: p for n, p in children.items() if not gone(p)}
        if time.monotonic() > deadline:  # which child, and what it was doing (its log)
            logs = {n: (Path(info["run_dir"]) / f"{n}.log") for n in left}
            tails = {n: f.read_text(errors="replace").splitlines()[-8:] if f.exists() else None
                     for n, f in logs.items()}
            raise AssertionError(f"alive {time.monotonic() - killed:.1f} s after the demo was killed: {left}; "
                                 f"their logs end: {tails}")
        time.sleep(0.1)
    assert all(web.port_is_free(p) for p in ports)
    shutil.rmtree(info["run_dir"], ignore_errors=True)
    run_file.unlink()
