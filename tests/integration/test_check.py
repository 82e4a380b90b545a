"""``lanewatch check`` as a subprocess against a real served API: exit 0 / 1 / 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import flask
import pytest
from werkzeug.serving import make_server

from lanewatch.api import register_api
from lanewatch.config import Settings
from lanewatch.query import Query
from lanewatch.store.base import Batch
from lanewatch.store.duck import DuckStore

T = 1_767_225_600
NOW = T + 0.5
TID = "4bf92f3577b34da6a3ce929d0e0e4736"


def hops(verdicts: list[tuple[str, str, str, str, int]]) -> dict[str, Sequence[Any]]:
    """(service, instance lane, expected lane, verdict, requests) at T - 5."""
    n = len(verdicts)
    return {"ts": [T - 5] * n, "service": [v[0] for v in verdicts], "instance_lane": [v[1] for v in verdicts],
            "request_lane": [v[2] for v in verdicts], "expected_lane": [v[2] for v in verdicts],
            "verdict": [v[3] for v in verdicts], "requests": [v[4] for v in verdicts], "errors": [0] * n,
            "latency_sum_ms": [1.0] * n}


CLEAN = Batch(rollups={
    "hops": hops([("A", "gray", "gray", "in_lane", 12408), ("B", "base", "gray", "fallback", 12408),
                  ("C", "gray", "gray", "in_lane", 12408), ("A", "base", "base", "in_lane", 500)]),
    "traces": {"ts": [T - 5, T - 5], "entry_lane": ["gray", "base"], "traces": [12408, 500],
               "stayed": [12408, 500]},
    "trace_services": {"ts": [T - 5] * 4, "service": ["A", "B", "C", "A"], "entry_lane": ["gray"] * 3 + ["base"],
                       "traces": [12408] * 3 + [500], "stayed": [12408] * 3 + [500]}})

LEAKY = Batch(
    rollups={"hops": hops([("A", "gray", "gray", "in_lane", 100), ("C", "base", "gray", "leak", 3)]),
             "edges": {"ts": [T - 5], "caller": ["B"], "callee": ["C"], "lane": ["gray"],
                       "entry_lane": ["gray"], "calls": [100],
                       "errors": [0], "in_lane": [97], "fallback": [0], "leak": [3], "intrusion": [0],
                       "tag_lost": [2], "tag_lost_inside": [0]},
             "traces": {"ts": [T - 5], "entry_lane": ["gray"], "traces": [100], "stayed": [95]},
             "trace_services": {"ts": [T - 5] * 3, "service": ["A", "B", "C"], "entry_lane": ["gray"] * 3,
                                "traces": [100] * 3, "stayed": [95] * 3}},
    violations=[{"ts": T - 5, "kind": "leak", "service": "C", "request_lane": "gray", "instance_lane": "base",
                 "entry_lane": "gray", "trace_id": TID, "span_id": "00f067aa0ba902b7",
                 "lane_path": "A[gray] -> B[gray] -> C[base, leak]", "late": False}])

#: Gray instances of B live for minutes, all traffic served by base: a dead gray lane at B.
DEAD = Batch(
    rollups={"hops": hops([("A", "base", "base", "in_lane", 400), ("B", "base", "base", "in_lane", 400)]),
             "traces": {"ts": [T - 5], "entry_lane": ["base"], "traces": [400], "stayed": [400]}},
    instances=[{"service": "B", "lane": "gray", "instance": f"b-gray-{i}", "first_seen": T - 600,
                "last_seen": T - 1, "state": "up", "hops": 0, "errors": 0, "last_hop": T - 300.0}
               for i in range(3)])


def serve(app: flask.Flask) -> tuple[str, Callable[[], None]]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)
    return f"http://127.0.0.1:{server.server_port}", stop


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, str]]:
    out, stops, stores = {}, [], []
    for name, batch in (("clean", CLEAN), ("leaky", LEAKY), ("dead", DEAD)):
        store = DuckStore(":memory:", clock=lambda: NOW)
        store.write(batch)
        app = flask.Flask(f"check-{name}")
        register_api(app, Query(store, Settings(retention_s=3600), clock=lambda: NOW))
        out[name], stop = serve(app)
        stops.append(stop)
        stores.append(store)
    empty = DuckStore(":memory:", clock=lambda: NOW)  # no data yet, a declared topology
    app = flask.Flask("check-declared")
    register_api(app, Query(empty, Settings(retention_s=3600, topology={"B": ["base", "gray"]}),
                            clock=lambda: NOW))
    out["declared"], stop = serve(app)
    stops.append(stop)
    stores.append(empty)
    html = flask.Flask("not-lanewatch")
    html.add_url_rule("/api/v1/summary", "summary", lambda: "<html>hello</html>")
    out["html"], stop = serve(html)
    stops.append(stop)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        out["closed"] = f"http://127.0.0.1:{s.getsockname()[1]}"
    yield out
    for stop in stops:
        stop()
    for store in stores:
        store.close()


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lanewatch.cli", "check", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_clean_window_passes(urls: dict[str, str]) -> None:
    r = check("--url", urls["clean"], "--window", "60")
    assert r.returncode == 0, r.stderr
    assert "gray: 100.0% of 12,408 gray traces stayed in lane" in r.stdout
    assert "12,408 fallback, 0 leak, 0 intrusion" in r.stdout
    # rates over the seconds the data covers: hops from T - 5 (6 s), finished traces 1 s
    assert "(12,408 entry req/s); 24,816 hops served (4,136 hops/s, 0.00% errors)" in r.stdout
    assert r.stdout.rstrip().endswith("PASS: no hop or edge left its lane (12,908 traces checked)")
    assert r.stderr == ""


def test_violations_fail_with_examples(urls: dict[str, str]) -> None:
    r = check("--url", urls["leaky"], "--window", "60", "--lane", "gray")
    assert r.returncode == 1, r.stderr
    assert "gray: 95.0% of 100 gray traces stayed in lane" in r.stdout
    assert f"leak at C (gray expected, served by base), trace {TID}: A[gray] -> B[gray] -> C[base, leak]" in r.stdout
    assert "FAIL: 5 violations (3 leak, 0 intrusion, 2 tag_lost); 5 of 100 traces left their lane" in r.stdout
    assert "not counted" not in r.stdout


def test_filters_narrow_the_gate(urls: dict[str, str]) -> None:
    assert check("--url", urls["leaky"], "--window", "60", "--service", "C").returncode == 1
    a = check("--url", urls["leaky"], "--window", "60", "--service", "A")
    assert a.returncode == 0 and "95.0% of 100 gray traces that passed A stayed in lane" in a.stdout


@pytest.mark.parametrize("args,seen", [
    (["--lane", "grey"], "--lane grey: not seen in the last 60 s; seen: base, gray"),
    (["--service", "D"], "--service D: not seen in the last 60 s; seen: A, B, C"),
    (["--lane", "gray", "--service", "c"], "--service c: not seen"),
])
def test_a_typo_is_an_error_naming_what_was_seen(urls: dict[str, str], args: list[str], seen: str) -> None:
    r = check("--url", urls["clean"], "--window", "60", *args)
    assert r.returncode == 2 and r.stdout == "" and seen in r.stderr, r.stderr


def test_no_traffic_is_inconclusive_unless_allowed(urls: dict[str, str]) -> None:
    r = check("--url", urls["leaky"], "--window", "2")  # everything is older than 2 s
    assert r.returncode == 3 and "INCONCLUSIVE: no finished trace" in r.stdout, r.stdout
    allowed = check("--url", urls["leaky"], "--window", "2", "--allow-empty")
    assert allowed.returncode == 0 and "PASS (allowed empty)" in allowed.stdout


def test_a_dead_lane_fails_the_gate(urls: dict[str, str]) -> None:
    r = check("--url", urls["dead"], "--window", "60", "--lane", "gray")
    assert r.returncode == 1, r.stdout + r.stderr
    assert ("dead lane: B has 3 live gray instance(s) and served no gray hop for 5 min 0 s; nothing "
            "asked for gray and B served 400 hops in the last 60 s") in r.stdout
    assert "FAIL: 1 dead lane(s): gray at B" in r.stdout
    assert check("--url", urls["dead"], "--window", "60", "--lane", "base").returncode == 0


def test_a_closed_pipe_is_not_a_traceback(urls: dict[str, str]) -> None:
    # like `lanewatch check --json | head -c 0`: the reader is gone before the report is written
    p = subprocess.Popen([sys.executable, "-m", "lanewatch.cli", "check", "--url", urls["leaky"], "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(60) == 1 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_json_output(urls: dict[str, str]) -> None:
    r = check("--url", urls["leaky"], "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["summary"]["hops"]["leak"] == 3 and doc["violations"][0]["trace_id"] == TID


@pytest.mark.parametrize("target,args,message", [
    ("closed", [], "cannot reach lanewatch"),
    ("html", [], "not JSON"),
    ("clean", ["--window", "7200"], "window=7200"),
    ("clean", ["--window", "0"], "--window=0"),
])
def test_errors_exit_2_with_one_line(urls: dict[str, str], target: str, args: list[str], message: str) -> None:
    r = check("--url", urls[target], *args)
    assert r.returncode == 2 and r.stdout == ""
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_fresh_collector_is_inconclusive_not_a_typo() -> None:
    store = DuckStore(":memory:", clock=lambda: NOW)
    app = flask.Flask("check-fresh")
    register_api(app, Query(store, Settings(retention_s=3600), clock=lambda: NOW))
    url, stop = serve(app)
    try:
        r = check("--url", url, "--window", "60", "--lane", "gray")
        assert r.returncode == 3 and "INCONCLUSIVE" in r.stdout, r.stdout + r.stderr
        assert check("--url", url, "--window", "60", "--lane", "gray", "--allow-empty").returncode == 0
    finally:
        stop()
        store.close()


def test_a_typo_is_caught_before_any_data_when_the_topology_declares_the_lanes(urls: dict[str, str]) -> None:
    """A new user's finding: on a collector with no data yet, `--lane grey` was "nothing to
    check" (3) although the topology declares base and gray."""
    r = check("--url", urls["declared"], "--window", "60", "--lane", "grey")
    assert r.returncode == 2 and "gray" in r.stderr + r.stdout, r.stdout + r.stderr
    assert check("--url", urls["declared"], "--window", "60", "--service", "Bogus").returncode == 2
    assert check("--url", urls["declared"], "--window", "60", "--lane", "gray").returncode == 3
