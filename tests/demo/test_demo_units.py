"""The demo's pure parts: ingress rules, balancer, registry, faults, scenarios, phases, answers."""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from lanewatch.config import Rule
from lanewatch.demo import cli as demo_cli
from lanewatch.demo import scenarios as S
from lanewatch.demo.balancer import Balancer, NoInstance, candidates, target_lane
from lanewatch.demo.control import ControlApp, ControlServer
from lanewatch.demo.faults import FAULT_NAMES, Switchboard
from lanewatch.demo.phases import Phases
from lanewatch.demo.proxy import strip_lane
from lanewatch.demo.registry import Instance, Registry
from lanewatch.demo.traffic import lane_path


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def inst(service: str, lane: str, port: int = 1) -> Instance:
    return Instance(id=f"{service}-{lane}-{port}", service=service, lane=lane, addr=f"127.0.0.1:{port}")


# -- ingress ------------------------------------------------------------------------------------
def test_ingress_host_routing_and_canaries() -> None:
    sc1, sc2, sc3 = (S.load(n).ingress for n in S.SCENARIOS)
    assert sc1.route("www.gray.com", {}, 0.99) == "gray"
    assert sc1.route("www.base.com:8080", {}, 0.5) == "base"
    assert sc1.route("www.base.com", {}, 0.01) == "gray"  # the 2% weight canary
    assert sc2.route("www.demo.com", {"x-mse-tag": "gray"}, 0.5) == "gray"
    assert sc2.route("www.demo.com", {"x-user-id": "100"}, 0.5) == "gray"
    assert sc2.route("www.demo.com", {"x-user-id": "101"}, 0.5) == "base"
    assert sc3.route("www.base.com", {"x-user-id": "100"}, 0.5) == "gray"
    assert S.IngressRules.from_json(sc2.to_json()) == sc2


def test_canary_by_header_value_is_a_rule_for_a() -> None:
    sc3 = S.load("3")
    assert Rule("A", {"x-user-id": "100"}, "gray") in sc3.collector_rules()
    assert Rule("B", {"x-user-id": "100"}, "gray") in sc3.collector_rules()
    off = sc3.without_canary()
    assert off.collector_rules() == [Rule("B", {"x-user-id": "100"}, "gray")]
    assert off.ingress.route("www.base.com", {"x-user-id": "100"}, 0.5) == "base"
    assert off.traffic[0].expect == ("A[base] -> B[gray] -> C[base]",)
    # a canary on the lane header needs no rule: the request carries its lane
    assert all(r.match != {"x-mse-tag": "gray"} for r in S.load("2").collector_rules())


def test_collector_settings_merge_rules_once() -> None:
    doc = S.collector_settings([S.load(n) for n in S.SCENARIOS], "http://127.0.0.1:1")
    assert doc["demo_control_url"] == "http://127.0.0.1:1"
    assert doc["liveness_ttl_s"] <= 5 and doc["trace_wait_s"] <= 3
    assert sorted(r["service"] for r in doc["routing_rules"]) == ["A", "B"]


# -- balancer -----------------------------------------------------------------------------------
def test_lane_aware_choice_with_fallback() -> None:
    mesh = [inst("B", "base"), inst("B", "gray"), inst("C", "base")]
    assert [i.lane for i in candidates(mesh, "B", "gray")] == ["gray"]
    assert [i.lane for i in candidates(mesh, "C", "gray")] == ["base"]  # fallback
    assert candidates(mesh, "D", "gray") == []
    rules = [Rule("B", {"x-user-id": "100"}, "gray")]
    assert target_lane("B", "base", {"x-user-id": "100"}, rules) == "gray"
    assert target_lane("B", "base", {"x-user-id": "101"}, rules) == "base"
    assert target_lane("C", "base", {"x-user-id": "100"}, rules) == "base"
    lb = Balancer(lambda: mesh)
    assert {lb.choose("B", "base", lane_blind=True).lane for _ in range(4)} == {"base", "gray"}  # type: ignore[union-attr]


def test_call_waits_for_a_leaving_instance_then_falls_back() -> None:
    mesh = [inst("C", "base", 1), inst("C", "gray", 2)]
    refreshed: list[int] = []

    def refresh() -> None:  # the leaving instance deregisters after two polls
        refreshed.append(1)
        if len(refreshed) == 2:
            mesh.pop()

    lb = Balancer(lambda: list(mesh), refresh=refresh)

    def send(i: Instance) -> str:
        if i.lane == "gray":
            raise ConnectionError("refused")
        return i.id

    assert lb.call("C", "gray", send, retry_on=(ConnectionError,)) == "C-base-1"
    assert len(refreshed) == 2
    with pytest.raises(NoInstance):
        lb.call("D", "gray", send, retry_on=(ConnectionError,))


# -- registry, faults, control --------------------------------------------------------------------
def test_registry_ttl_and_leave() -> None:
    clock = FakeClock()
    reg = Registry(ttl_s=3.0, clock=clock)
    reg.register(inst("A", "gray"))
    reg.register(Instance("proxy-9", "proxy", "base", "127.0.0.1:9", role="proxy"))
    assert [i.label for i in reg.live()] == ["Agray"]
    assert len(reg.live(role=None)) == 2
    clock.t += 2
    assert reg.renew("A-gray-1")
    clock.t += 2
    assert [i.id for i in reg.live(role=None)] == ["A-gray-1"]  # the proxy expired
    assert reg.deregister("A-gray-1") and not reg.renew("A-gray-1")
    with pytest.raises(ValueError, match="lane"):
        Instance.from_json({"id": "x", "service": "A", "addr": "h:1", "lane": "bad lane!"})


def test_switchboard_notifies_changes_only() -> None:
    board, seen = Switchboard(), []
    board.subscribe(lambda n, on: seen.append((n, on)))
    assert board.set("dead_lane", True) and not board.set("dead_lane", True)
    board.set("dead_lane", False)
    assert seen == [("dead_lane", True), ("dead_lane", False)]
    with pytest.raises(KeyError):
        board.set("no_such_fault", True)
    assert set(board.snapshot()) == set(FAULT_NAMES)


def call(app: ControlApp, method: str, path: str, body: Any = None, query: str = "") -> tuple[str, Any]:
    data = b"" if body is None else json.dumps(body).encode()
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data)}
    status: list[str] = []
    out = b"".join(app(environ, lambda s, h: status.append(s)))
    return status[0].split()[0], json.loads(out)


def test_control_endpoints() -> None:
    app = ControlApp(Registry(), Switchboard(), lambda: {"hosts": {"www.gray.com": "gray"}})
    assert call(app, "GET", "/faults") == ("200", dict.fromkeys(FAULT_NAMES, False))
    assert call(app, "POST", "/faults/b_gray_slow", {"on": True}) == ("200", {"b_gray_slow": True})
    assert call(app, "POST", "/faults/b_gray_slow", {"on": "yes"})[0] == "400"
    assert call(app, "POST", "/faults/nope", {"on": True})[0] == "404"
    assert call(app, "GET", "/faults/info")[1][5]["on"] is True
    me = {"id": "B-gray-7", "service": "B", "lane": "gray", "addr": "127.0.0.1:7"}
    assert call(app, "POST", "/registry", me)[0] == "200"
    _, state = call(app, "GET", "/state", query="instance=B-gray-7")
    assert state["known"] and state["faults"]["b_gray_slow"] and state["ingress"]["hosts"]
    assert [i["id"] for i in state["instances"]] == ["B-gray-7"]
    assert call(app, "DELETE", "/registry/B-gray-7")[0] == "200"
    assert call(app, "GET", "/state", query="instance=B-gray-7")[1]["known"] is False


@pytest.mark.parametrize("where", ["before", "after"])
def test_fault_command_reads_the_given_run_file(where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """``lanewatch demo --run-file X fault NAME on`` (or ``fault --run-file X``) talks to the
    demo of X, not to the default run file's (here: none)."""
    monkeypatch.delenv("LANEWATCH_DEMO_CONTROL_URL", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-default"))  # no default run file
    board = Switchboard()
    server = ControlServer(ControlApp(Registry(), board)).start()
    try:
        run_file = tmp_path / "demo.json"
        run_file.write_text(json.dumps({"control_url": server.url}))
        parser = argparse.ArgumentParser()
        demo_cli.add_arguments(parser)
        argv = ["fault", "b_gray_slow", "on"]
        argv = ["--run-file", str(run_file), *argv] if where == "before" else [*argv, "--run-file", str(run_file)]
        assert demo_cli.fault_command(parser.parse_args(argv)) == 0
        assert board.snapshot()["b_gray_slow"] is True
        assert "ON   b_gray_slow" in capsys.readouterr().out
        missing = parser.parse_args(["--run-file", str(tmp_path / "gone.json"), "fault"])
        assert demo_cli.fault_command(missing) == 2
        assert "gone.json" in capsys.readouterr().err
    finally:
        server.stop()


# -- the rest ------------------------------------------------------------------------------------
def test_strip_lane_keeps_trace_and_other_baggage() -> None:
    headers = {"x-mse-tag": "gray", "service-lane": "gray", "traceparent": "00-ab-cd-01",
               "baggage": "lane=gray,x-user-id=100", "x-user-id": "100"}
    assert strip_lane(headers) == {"traceparent": "00-ab-cd-01", "baggage": "x-user-id=100", "x-user-id": "100"}
    assert "baggage" not in strip_lane({"baggage": "lane=gray"})


def test_lane_path_reads_the_write_up_answer() -> None:
    assert lane_path("Agray[127.0.0.1:1] -> B[127.0.0.1:2] -> Cgray[127.0.0.1:3]") == \
        "A[gray] -> B[base] -> C[gray]"
    assert lane_path("A[127.0.0.1:1] -> (B: no live instance)") == "A[base]"


def test_phases_cycle_only_for_all() -> None:
    clock = FakeClock()
    one = Phases("3", canary=False, phase_s=10, clock=clock)
    clock.t += 60
    assert one.advance() is None and not one.current().canary
    cycle = Phases("all", phase_s=10, clock=clock)
    assert cycle.current().name == "1" and cycle.passthrough() == ("x-user-id",)
    clock.t += 11
    old, new = cycle.advance() or (None, None)
    assert (old.name, new.name) == ("1", "2")  # type: ignore[union-attr]
    assert cycle.advance() is None


def test_release_endpoint_runs_the_release_it_names() -> None:
    ran: list[str] = []
    app = ControlApp(Registry(), Switchboard(), release=lambda kind: ran.append(kind) or {"release": kind})
    assert call(app, "POST", "/release/rolling", {}) == ("200", {"release": "rolling"})
    assert call(app, "POST", "/release/nope", {})[0] == "404" and ran == ["rolling"]
    assert call(ControlApp(Registry(), Switchboard()), "POST", "/release/rolling", {})[0] == "404"
