"""``lanewatch check`` (with and without ``--compare``) and ``/api/v1/gate`` on the same real
``lanewatch up``: the same rules, the same exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from gate_support import Lanewatch, feed_lossy, feed_mesh, running

from lanewatch.containment import CHECK_NAMES


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lanewatch]:
    with running(tmp_path_factory.mktemp("check-compare")) as lw:
        yield feed_mesh(lw)


@pytest.fixture(scope="module")
def lossy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lanewatch]:
    with running(tmp_path_factory.mktemp("check-compare-lossy")) as lw:
        yield feed_lossy(lw)


def check(lw: Lanewatch, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lanewatch.cli", "check", "--url", lw.url, *args],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("where,scope", [
    ("mesh", []), ("mesh", ["--lane", "gray"]), ("mesh", ["--lane", "blue"]), ("mesh", ["--lane", "quiet"]),
    ("mesh", ["--lane", "base"]), ("mesh", ["--service", "E"]), ("mesh", ["--lane", "gray", "--service", "B"]),
    ("lossy", []), ("lossy", ["--lane", "gray"]), ("lossy", ["--lane", "base"]), ("lossy", ["--service", "B"]),
    ("lossy", ["--service", "C"]), ("lossy", ["--lane", "gray", "--service", "C"]),
])
def test_check_and_the_gates_containment_checks_agree(request: pytest.FixtureRequest, where: str,
                                                      scope: list[str]) -> None:
    lw: Lanewatch = request.getfixturevalue(where)
    r = check(lw, *scope)
    params = dict(zip([a.lstrip("-") for a in scope[::2]], scope[1::2]))
    status, gate = lw.gate(**params)
    assert status == 200
    contained = [c["pass"] for c in gate["checks"] if c["name"] in CHECK_NAMES]
    expected = 1 if False in contained else 3 if set(contained) == {None} else 0
    assert r.returncode == expected, r.stdout + r.stderr


def test_both_fail_the_gray_gate_on_a_tag_lost_inside_b_gray(lossy: Lanewatch) -> None:
    r = check(lossy, "--lane", "gray")
    assert r.returncode == 1 and "FAIL: 40 violations (0 leak, 0 intrusion, 40 tag_lost)" in r.stdout, r.stdout
    r = check(lossy, "--lane", "gray", "--compare")
    assert r.returncode == 1 and "40 tags lost in lane gray (must be 0)" in r.stdout, r.stdout


def test_compare_fails_on_a_lane_worse_than_base_that_containment_alone_passes(mesh: Lanewatch) -> None:
    plain = check(mesh, "--lane", "blue")
    assert plain.returncode == 0, plain.stdout
    r = check(mesh, "--lane", "blue", "--compare")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "  blue vs base (1 compared):\n    blue on E scores 0/100 vs base (fail): errors 50.0% vs 0.00%" in r.stdout
    last = r.stdout.rstrip().splitlines()[-1]
    assert last.startswith("FAIL (lane blue, last 300 s): score 0/100 (fail): blue on E: errors 50.0% vs 0.00%")


def test_compare_passes_clean_gray(mesh: Lanewatch) -> None:
    r = check(mesh, "--lane", "gray", "--compare")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "gray on B scores 100/100 vs base (pass)" in r.stdout
    assert r.stdout.rstrip().splitlines()[-1].startswith("PASS (lane gray, last 300 s): score 100/100")


def test_compare_inconclusive_is_3_unless_allowed(mesh: Lanewatch) -> None:
    r = check(mesh, "--lane", "quiet", "--compare")
    assert r.returncode == 3 and r.stdout.rstrip().endswith("nothing was checked"), r.stdout
    allowed = check(mesh, "--lane", "quiet", "--compare", "--allow-empty")
    assert allowed.returncode == 0 and "PASS (allowed empty): no finished trace in lane quiet" in allowed.stdout


def test_compare_typo_is_2_and_json_carries_the_gate(mesh: Lanewatch) -> None:
    r = check(mesh, "--lane", "grey", "--compare")
    assert r.returncode == 2 and "--lane grey: not seen" in r.stderr and r.stdout == ""
    j = check(mesh, "--lane", "blue", "--compare", "--json")
    doc = json.loads(j.stdout)
    assert j.returncode == 1 and doc["status"] == 1 and doc["ok"] is False
    assert doc["gate"]["pass"] is False and doc["summary"]["lanes"]["blue"]["traces"] == 40
