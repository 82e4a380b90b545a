"""/api/v1/* over real HTTP: a Flask app served by werkzeug on a free loopback port."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import flask
import pytest
import requests
from werkzeug.serving import make_server

from lanewatch.api import register_api
from lanewatch.config import Settings
from lanewatch.query import Query
from lanewatch.store.base import Batch
from lanewatch.store.duck import DuckStore

T = 1_767_225_600
NOW = T + 0.5


def demo_batch() -> Batch:
    """Gray A -> B(base, fallback) -> C(gray), one leak at C and one tag lost on B -> C."""
    hops: dict[str, Sequence[Any]] = {"ts": [T - 3, T - 3, T - 3, T - 2], "service": ["A", "B", "C", "C"],
            "instance_lane": ["gray", "base", "gray", "base"], "request_lane": ["gray"] * 4,
            "expected_lane": ["gray"] * 4, "verdict": ["in_lane", "fallback", "in_lane", "leak"],
            "requests": [10, 10, 9, 1], "errors": [0, 1, 0, 0], "latency_sum_ms": [50.0, 80.0, 20.0, 3.0]}
    latency: dict[str, Sequence[Any]] = {"ts": [T - 3, T - 3], "service": ["A", "C"], "instance_lane": ["gray", "gray"],
               "request_lane": ["gray", "gray"], "bucket": [40, 35], "count": [10, 9]}
    edges: dict[str, Sequence[Any]] = {"ts": [T - 3, T - 3], "caller": ["A", "B"], "callee": ["B", "C"], "lane": ["gray", "gray"],
             "entry_lane": ["gray", "gray"], "calls": [10, 10], "errors": [1, 0], "in_lane": [0, 9], "fallback": [10, 0], "leak": [0, 1],
             "intrusion": [0, 0], "tag_lost": [0, 1], "tag_lost_inside": [0, 0]}
    traces: dict[str, Sequence[Any]] = {"ts": [T - 3], "entry_lane": ["gray"], "traces": [10], "stayed": [8]}
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    return Batch(
        rollups={"hops": hops, "latency": latency, "edges": edges, "traces": traces},
        violations=[{"ts": T - 2, "kind": "leak", "service": "C", "caller": "B", "callee": "C",
                     "request_lane": "gray", "instance_lane": "base", "entry_lane": "gray", "trace_id": tid,
                     "span_id": "00f067aa0ba902b7", "lane_path": "A[gray] -> B[base, fallback] -> C[base, leak]",
                     "late": False}],
        traces=[{"trace_id": tid, "ts": T - 2, "entry_lane": "gray", "stayed": False,
                 "lane_path": "A[gray] -> B[base, fallback] -> C[base, leak]",
                 "hops": [{"service": "A", "instance_lane": "gray", "verdict": "in_lane"}]}],
        instances=[{"service": "C", "lane": "gray", "instance": "c-gray-1", "first_seen": T - 50,
                    "last_seen": T - 1, "state": "up"}],
        counters={"unpaired_client_spans": 2})


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    store = DuckStore(":memory:", clock=lambda: NOW)
    store.write(demo_batch())
    app = flask.Flask("test-api")
    register_api(app, Query(store, Settings(retention_s=86400), clock=lambda: NOW))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/api/v1"
    server.shutdown()
    server.server_close()
    thread.join(5)
    store.close()


def get(api: str, path: str, status: int = 200, **params: Any) -> Any:
    r = requests.get(api + path, params=params, timeout=10)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def test_summary(api: str) -> None:
    s = get(api, "/summary", window=60)
    assert s["window_s"] == 60 and s["to"] == T + 1
    assert s["hops"] == {"in_lane": 19, "fallback": 10, "leak": 1, "intrusion": 0, "uncertain": 0}
    assert s["edges"] == {"tag_lost": 1, "calls": 20, "tag_lost_inside": 0}
    assert s["lanes"]["gray"]["traces"] == 10 and s["lanes"]["gray"]["stayed"] == 8
    assert s["lanes"]["gray"]["stayed_share"] == 0.8 and s["lanes"]["base"]["requests"] == 11
    assert s["violations"] == 2 and s["counters"] == {"unpaired_client_spans": 2}
    assert get(api, "/summary")["window_s"] == 300
    assert get(api, "/summary", window=60, service="A", lane="gray")["hops"]["leak"] == 0
    assert get(api, "/summary", window=60, lane="nope")["violations"] == 0


def test_series_violations_edges_flows(api: str) -> None:
    s = get(api, "/series", window=10, step=2)
    assert s["step_s"] == 2 and len(s["lanes"]["gray"]["ts"]) == 6 and s["lanes"]["gray"]["p50_ms"][3] is not None
    v = get(api, "/violations", window=60, kind="leak")
    assert [x["trace_id"] for x in v] == ["4bf92f3577b34da6a3ce929d0e0e4736"]
    assert get(api, "/violations", window=60, kind="intrusion") == []
    assert get(api, "/violations", window=60, limit=1, service="C", lane="gray")[0]["service"] == "C"
    e = get(api, "/edges", window=60, lane="gray")
    assert [(x["caller"], x["callee"], x["tag_lost"]) for x in e] == [("A", "B", 0), ("B", "C", 1)]
    assert [(x["caller"], x["callee"]) for x in get(api, "/edges", window=60, service="C")] == [("B", "C")]
    f = get(api, "/flows", window=60, service="B")
    assert f == [{"service": "B", "expected_lane": "gray", "instance_lane": "base", "verdict": "fallback",
                  "requests": 10}]


def test_instances_compare_trace_services_lanes_health(api: str) -> None:
    assert get(api, "/instances") == [{"service": "C", "lane": "gray", "instance": "c-gray-1", "first_seen": T - 50,
                                       "last_seen": T - 1, "state": "up", "hops": 0, "errors": 0, "last_hop": None,
                                       "live": True}]
    c = get(api, "/compare", service="C", lane="gray", window=60, step=10)
    assert c["totals"]["gray"]["requests"] == 9 and c["totals"]["base"]["requests"] == 1 and c["verdict"] is None
    t = get(api, "/traces/4BF92F3577B34DA6A3CE929D0E0E4736")
    assert t["stayed"] is False and t["violations"][0]["kind"] == "leak"
    assert get(api, "/traces/4bf92f3577b34da6a3ce929d0e0e4737", 404)["error"]
    assert get(api, "/traces/abcdef", 400)["error"]
    assert get(api, "/services", window=60) == ["A", "B", "C"]
    assert get(api, "/lanes", window=60) == ["base", "gray"]
    h = get(api, "/health")
    assert h["status"] == "ok" and h["time"] == NOW


@pytest.mark.parametrize("path,params,names", [
    ("/summary", {"window": "abc"}, "window"),
    ("/summary", {"window": "0"}, "window"),
    ("/summary", {"window": str(86400 + 1)}, "window"),
    ("/summary", {"windw": "60"}, "windw"),
    ("/series", {"window": "3600", "step": "0"}, "step"),
    ("/series", {"window": "86400", "step": "1"}, "step"),
    ("/violations", {"kind": "fallback"}, "kind"),
    ("/violations", {"limit": "-1"}, "limit"),
    ("/compare", {"lane": "gray"}, "service"),
    ("/compare", {"service": "C"}, "lane"),
    ("/traces/not-hex", {}, "trace_id"),
    ("/instances", {"window": "60"}, "window"),
    ("/summary", {"lane": ["gray", "base"]}, "lane is given 2 times"),
    ("/gate", {"lane": ["gray", "base"], "window": "60"}, "lane is given 2 times"),
    ("/alerts", {"state": "resolved"}, "state"),
    ("/alerts", {"name": "LaneLeek"}, "name"),
])
def test_bad_parameters_give_400_naming_them(api: str, path: str, params: dict[str, Any], names: str) -> None:
    body = get(api, path, 400, **params)
    assert set(body) == {"error"} and names in body["error"]


def test_unknown_route_and_method(api: str) -> None:
    assert requests.get(api + "/nope", timeout=10).status_code == 404
    assert requests.post(api + "/summary", timeout=10).status_code == 405


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``lanewatch up`` (Collector with the dashboard) on free loopback ports."""
    from lanewatch import config
    from lanewatch.server import Collector

    settings = config.load(environ={}, flags={
        "otlp_http_port": 0, "otlp_grpc_port": -1, "port": 0,
        "data_dir": str(tmp_path_factory.mktemp("api-data"))})
    with Collector(settings) as collector:
        yield collector.endpoints()["url"]


@pytest.mark.parametrize("path", ["/api/v1/x", "/api/v1/summary/extra", "/api/v1/traces", "/api/v1/",
                                  "/api/v1"])
def test_unknown_api_path_is_a_json_404_not_the_dashboard(running: str, path: str) -> None:
    r = requests.get(running + path, timeout=10)
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json"), r.text[:200]
    assert r.json() == {"error": f"unknown endpoint {path}; see docs/api.md"}


def test_known_api_paths_and_the_dashboard_still_answer(running: str) -> None:
    assert requests.get(running + "/api/v1/summary?window=60", timeout=10).json()["window_s"] == 60
    page = requests.get(running + "/violations", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert requests.post(running + "/api/v1/summary", timeout=10).status_code == 405


@pytest.mark.parametrize("trace_id,says", [
    ("abc", "32 hex digits"),
    ("00f067aa0ba902b7", "span id"),
    ("4bf92f3577b34da6a3ce929d0e0e4736ff", "32 hex digits"),
    ("0" * 32, "all-zero"),
])
def test_a_malformed_trace_id_is_a_400(running: str, trace_id: str, says: str) -> None:
    r = requests.get(f"{running}/api/v1/traces/{trace_id}", timeout=10)
    assert r.status_code == 400 and says in r.json()["error"] and "trace_id" in r.json()["error"], r.text


def test_a_well_formed_unknown_trace_id_is_a_404_not_kept(running: str) -> None:
    r = requests.get(f"{running}/api/v1/traces/4bf92f3577b34da6a3ce929d0e0e4737", timeout=10)
    assert r.status_code == 404 and "was not kept" in r.json()["error"]


def test_health_is_503_with_the_reason_when_the_store_is_damaged_and_liveness_still_answers() -> None:
    """A damaged store (a rollup table gone): every summary fails, so health must say so."""
    store = DuckStore(":memory:", clock=lambda: NOW)
    store.write(demo_batch())
    app = flask.Flask("test-health")
    register_api(app, Query(store, Settings(retention_s=86400), clock=lambda: NOW))
    client = app.test_client()
    try:
        assert client.get("/api/v1/health").status_code == 200
        store._con.execute("DROP TABLE r_hops_s")  # the damage: what every view reads is gone
        assert client.get("/api/v1/summary?window=60").status_code == 500
        r = client.get("/api/v1/health")
        assert r.status_code == 503 and r.json is not None
        assert r.json["status"] == "error" and "r_hops_s" in r.json["error"]
        live = client.get("/api/v1/health/live")
        assert live.status_code == 200 and live.json == {"status": "ok", "time": NOW}
    finally:
        store.close()
