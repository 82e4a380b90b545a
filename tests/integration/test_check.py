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
               "stayed": [12408, 500]}})

LEAKY = Batch(
    rollups={"hops": hops([("A", "gray", "gray", "in_lane", 100), ("C", "base", "gray", "leak", 3)]),
             "edges": {"ts": [T - 5], "caller": ["B"], "callee": ["C"], "lane": ["gray"],
                       "entry_lane": ["gray"], "calls": [100],
                       "errors": [0], "in_lane": [97], "fallback": [0], "leak": [3], "intrusion": [0],
                       "tag_lost": [2], "tag_lost_inside": [0]},
             "traces": {"ts": [T - 5], "entry_lane": ["gray"], "traces": [100], "stayed": [95]}},
    violations=[{"ts": T - 5, "kind": "leak", "service": "C", "request_lane": "gray", "instance_lane": "base",
                 "entry_lane": "gray", "trace_id": TID, "span_id": "00f067aa0ba902b7",
                 "lane_path": "A[gray] -> B[gray] -> C[base, leak]", "late": False}])


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
    for name, batch in (("clean", CLEAN), ("leaky", LEAKY)):
        store = DuckStore(":memory:", clock=lambda: NOW)
        store.write(batch)
        app = flask.Flask(f"check-{name}")
        register_api(app, Query(store, Settings(retention_s=3600), clock=lambda: NOW))
        out[name], stop = serve(app)
        stops.append(stop)
        stores.append(store)
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
    assert r.stdout.rstrip().endswith("PASS: no hop or edge left its lane") and r.stderr == ""


def test_violations_fail_with_examples(urls: dict[str, str]) -> None:
    r = check("--url", urls["leaky"], "--window", "60", "--lane", "gray")
    assert r.returncode == 1, r.stderr
    assert "gray: 95.0% of 100 gray traces stayed in lane" in r.stdout
    assert f"leak at C (gray served by base), trace {TID}: A[gray] -> B[gray] -> C[base, leak]" in r.stdout
    assert "FAIL: 5 violations (3 leak, 0 intrusion, 2 tag_lost)" in r.stdout


def test_filters_narrow_the_gate(urls: dict[str, str]) -> None:
    assert check("--url", urls["leaky"], "--window", "60", "--service", "C").returncode == 1
    assert check("--url", urls["leaky"], "--window", "60", "--service", "A").returncode == 0
    assert check("--url", urls["leaky"], "--window", "60", "--lane", "blue").returncode == 0
    assert check("--url", urls["leaky"], "--window", "2").returncode == 0  # the violations are older


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
