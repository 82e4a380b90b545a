"""``/api/v1/gate`` on a real ``lanewatch up``, fed through its OTLP/HTTP receiver.

Two collectors (see :func:`gate_support.feed_mesh` and :func:`gate_support.feed_lossy`):
``mesh`` with clean gray traffic, a ``blue`` lane failing half its requests at E and a ``quiet``
lane deployed without traffic; ``lossy`` with gray traffic whose tag is lost inside B-gray.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from gate_support import Lanewatch, N, chain, feed_lossy, feed_mesh, running

from lanewatch.testing import TraceBuilder


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lanewatch]:
    with running(tmp_path_factory.mktemp("gate-mesh")) as lw:
        yield feed_mesh(lw)


@pytest.fixture(scope="module")
def lossy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lanewatch]:
    with running(tmp_path_factory.mktemp("gate-lossy")) as lw:
        yield feed_lossy(lw)


def checks(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in doc["checks"]}


def test_clean_gray_traffic_passes(mesh: Lanewatch) -> None:
    status, doc = mesh.gate(lane="gray", window="300")
    assert status == 200, doc
    assert (doc["pass"], doc["score"], doc["classification"]) == (True, 100.0, "pass"), doc["text"]
    assert (doc["lane"], doc["service"], doc["window_s"]) == ("gray", None, 300)
    names = [c["name"] for c in doc["checks"]]
    assert names == ["leak", "intrusion", "tag_lost", "traces_violated", "dead_lanes",
                     "errors:A", "latency:A", "errors:B", "latency:B", "errors:C", "latency:C"]
    assert all(c["pass"] is True for c in doc["checks"])
    assert set(doc["checks"][0]) >= {"name", "pass", "value", "threshold", "text"}
    assert doc["text"].startswith(f"PASS (lane gray, last 300 s): score 100/100: all {N} traces stayed in lane")


def test_a_service_narrows_the_comparison(mesh: Lanewatch) -> None:
    status, doc = mesh.gate(lane="gray", service="B")
    assert status == 200 and doc["pass"] is True
    assert [c["name"] for c in doc["checks"]][-2:] == ["errors:B", "latency:B"]
    assert "errors:A" not in checks(doc) and "traces_violated" not in checks(doc)


def test_gray_with_far_more_errors_than_base_fails_on_errors_with_score_0(mesh: Lanewatch) -> None:
    status, doc = mesh.gate(lane="blue")
    assert status == 200
    assert (doc["pass"], doc["score"], doc["classification"]) == (False, 0.0, "fail")
    err = checks(doc)["errors:E"]
    assert (err["pass"], err["value"], err["threshold"], err["critical"]) == (False, 0.5, 0.0, True)
    assert err["text"].startswith("blue on E: errors 50.0% vs 0.00% on base (higher, p=")
    assert all(c["pass"] is True for c in doc["checks"] if c["name"] != "errors:E")  # only that failed
    assert "errors 50.0% vs 0.00%" in doc["text"] and doc["text"].startswith("FAIL (lane blue")
    assert doc["comparisons"][0]["text"].startswith("blue on E scores 0/100 vs base (fail)")


def test_without_a_lane_every_lane_is_compared_and_named(mesh: Lanewatch) -> None:
    status, doc = mesh.gate()
    assert status == 200 and doc["pass"] is False and doc["lane"] is None
    assert checks(doc)["errors:E[blue]"]["pass"] is False and checks(doc)["errors:A[gray]"]["pass"] is True


def test_a_deployed_lane_without_traffic_is_inconclusive_not_an_error(mesh: Lanewatch) -> None:
    status, doc = mesh.gate(lane="quiet")
    assert status == 200  # Argo Rollouts: a non-2xx is an Error, four in a row abort the rollout
    assert (doc["pass"], doc["score"], doc["classification"]) == (None, None, "inconclusive")
    assert doc["text"] == "INCONCLUSIVE (lane quiet, last 300 s): no finished trace in lane quiet, nothing was checked"
    assert {c["pass"] for c in doc["checks"]} == {None}


def test_argo_rollouts_reads_pass_with_its_json_path(mesh: Lanewatch) -> None:
    # Argo's web provider applies jsonPath "{$.pass}" to the body: true, false, or JSON null, which
    # with successCondition "result == true" and failureCondition "result == false" is Inconclusive.
    raw = {}
    for lane in ("gray", "blue", "quiet"):
        status, doc = mesh.gate(lane=lane)
        assert status == 200
        raw[lane] = doc["pass"]
    assert raw == {"gray": True, "blue": False, "quiet": None}


def test_flagger_webhook_200_when_passing_412_when_failing_or_inconclusive(mesh: Lanewatch) -> None:
    status, doc = mesh.webhook(lane="gray", window="5m")
    assert status == 200 and doc["pass"] is True and doc["window_s"] == 300
    assert doc["webhook"] == {"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "6f3c9a"}
    status, doc = mesh.webhook(lane="blue", service="E")
    assert status == 412 and doc["pass"] is False and checks(doc)["errors:E"]["pass"] is False
    assert doc["text"].startswith("FAIL (lane blue at E")
    status, doc = mesh.webhook(lane="quiet")
    assert status == 412 and doc["pass"] is None and doc["text"].startswith("INCONCLUSIVE")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_typo_lane_or_service_is_a_404_naming_what_was_seen(mesh: Lanewatch, method: str) -> None:
    for params, said in (({"lane": "grey"}, "lane=grey: not seen in the last 300 s; seen: base, blue, gray, quiet"),
                         ({"lane": "gray", "service": "b"}, "service=b: not seen in the last 300 s; seen: A, B, C, E")):
        status, doc = mesh.gate(**params) if method == "GET" else mesh.webhook(**params)
        assert status == 404 and doc["error"].startswith(said), doc


@pytest.mark.parametrize("path,body,said", [
    ("/api/v1/gate?window=0", None, "window=0: must be between 1 and"),
    ("/api/v1/gate?window=5m", None, "window='5m': expected a whole number"),
    ("/api/v1/gate?lnae=gray", None, "unknown parameter 'lnae'"),
    ("/api/v1/gate", b'{"name": "podinfo", "metadata": {', "the body is not valid JSON"),
    ("/api/v1/gate", b'["podinfo"]', "the body is a list: expected a Flagger webhook payload"),
    ("/api/v1/gate", b'{"name": "p", "metadata": {"window": 300}}', "metadata.window: expected a string"),
    ("/api/v1/gate", b'{"name": "p", "metadata": {"window": "forever"}}', "metadata.window='forever'"),
    ("/api/v1/gate", b'{"name": "p", "metadata": {"lnae": "gray"}}', "metadata.lnae: unknown key"),
    ("/api/v1/gate", b'{"name": ["p"]}', "name: expected a string, got a list"),
])
def test_bad_input_is_a_400_with_a_clear_message(mesh: Lanewatch, path: str, body: bytes | None, said: str) -> None:
    status, doc = mesh.call("GET" if body is None else "POST", path, body)
    assert status == 400 and said in doc["error"], doc


def test_a_tag_lost_inside_gray_b_fails_the_gray_gate(lossy: Lanewatch) -> None:
    status, doc = lossy.gate(lane="gray")
    assert status == 200 and (doc["pass"], doc["score"]) == (False, 0.0)
    lost = checks(doc)["tag_lost"]
    assert (lost["pass"], lost["value"], lost["text"]) == (False, N, f"{N} tags lost in lane gray (must be 0)")
    assert checks(doc)["traces_violated"]["value"] == N
    assert lossy.call("GET", "/api/v1/summary?lane=gray")[1]["edges"]["tag_lost_inside"] == N  # inside B
    assert lossy.webhook(lane="gray")[0] == 412
    # base is not blamed for gray's losses: its own traffic stayed in lane
    status, base = lossy.gate(lane="base")
    assert status == 200 and base["pass"] is True and checks(base)["tag_lost"]["value"] == 0


def test_a_lane_whose_code_never_ran_at_the_service_is_inconclusive_not_a_pass(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """C-gray is down: every gray request falls back to C-base (a legitimate fallback, no
    violation). The gray release at C was never exercised: the gate must not pass it."""
    with running(tmp_path_factory.mktemp("gate-fellback")) as lw:
        for svc, lane in (("A", "base"), ("A", "gray"), ("B", "base"), ("B", "gray"), ("C", "base")):
            lw.heartbeat(svc, lane)
        tb = TraceBuilder(t0=time.time())
        for _ in range(N):
            chain(tb, ["gray", "gray", "base"], ["gray"] * 3)
            chain(tb, ["base"] * 3, ["base"] * 3)
        lw.send(tb)
        lw.wait_for_traces("gray", N)
        status, doc = lw.gate(lane="gray", service="C", window="300")
        assert status == 200, doc
        assert doc["pass"] is None and doc["score"] is None and doc["classification"] == "inconclusive"
        assert "not exercised" in doc["text"] and doc["text"].startswith("INCONCLUSIVE"), doc["text"]
        status, doc = lw.webhook(lane="gray", service="C", window="300")
        assert status == 412, doc  # Flagger must not promote code that never ran
        status, doc = lw.gate(lane="gray", service="B", window="300")
        assert doc["pass"] is True, doc["text"]  # where gray ran, it passes
