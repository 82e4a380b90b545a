"""A Node.js service with pinned stock @opentelemetry/* packages, exporting OTLP/HTTP to a recording receiver.

Runs `npm ci` into tests/node once (seconds; needs the npm registry). Skipped,
with the reason, only when node or npm is missing.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import requests
from node_helpers import node_service
from opentelemetry.propagate import get_global_textmap, set_global_textmap

from lanewatch import lane as L
from lanewatch.instrument import LaneWSGIMiddleware, configure
from lanewatch.instrument.testing import HeaderSink, OTLPRecorder

HERE = Path(__file__).parent
pytestmark = pytest.mark.node


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[OTLPRecorder]:
    with OTLPRecorder() as rec:
        yield rec


@pytest.fixture
def sink() -> Iterator[HeaderSink]:
    s = HeaderSink()
    yield s
    s.stop()


def test_versions_are_pinned_exactly() -> None:
    deps = json.loads((HERE / "package.json").read_text())["dependencies"]
    assert all(v[0].isdigit() for v in deps.values()), deps
    lock = json.loads((HERE / "package-lock.json").read_text())["packages"]
    for name, version in deps.items():
        assert lock[f"node_modules/{name}"]["version"] == version


def test_node_spans_carry_lane_from_header_and_baggage(node_modules: Path, recorder: OTLPRecorder,
                                                      sink: HeaderSink) -> None:
    svc = node_service(recorder.url, "gray", downstream=sink.url + "/end", LANEWATCH_PASSTHROUGH_HEADERS="x-user-id")
    try:
        assert svc.get("/a", **{"x-mse-tag": "gray", "x-user-id": "100"}) == 200
        assert svc.get("/a", baggage="lane=blue") == 200
        spans = recorder.wait_for(lambda r: len(r.spans()) >= 8 and r.spans(), timeout_s=15)
        recorder.wait_for(lambda r: r.points(L.HEARTBEAT_METRIC), timeout_s=10)
    finally:
        assert svc.stop() == 0
    assert [(r["x-mse-tag"], r.get("x-user-id")) for r in sink.requests] == [("gray", "100"), ("blue", None)]
    by_trace: dict[str, list[tuple[int, object]]] = {}
    for s in spans:
        assert s.resource[L.INSTANCE_LANE_ATTR] == "gray" and s.service == "node-svc"
        by_trace.setdefault(s.trace_id, []).append((s.kind, s.attributes.get(L.REQUEST_LANE_ATTR)))
    assert sorted(sorted(v) for v in by_trace.values()) == [  # 2 SERVER + 2 CLIENT spans per request
        [(2, "blue"), (2, "blue"), (3, "blue"), (3, "blue")], [(2, "gray"), (2, "gray"), (3, "gray"), (3, "gray")]]
    assert {s.attributes.get("x-user-id") for s in spans if s.attributes.get(L.REQUEST_LANE_ATTR) == "gray"} == {"100"}
    beats = recorder.points(L.HEARTBEAT_METRIC)
    assert beats[-1].value == 0 and {b.value for b in beats[:-1]} == {1}
    assert beats[0].resource[L.INSTANCE_LANE_ATTR] == "gray"
    assert beats[0].resource[L.INSTANCE_ID_ATTR] == spans[0].resource[L.INSTANCE_ID_ATTR]


def test_python_dyes_node_follows(node_modules: Path, recorder: OTLPRecorder, sink: HeaderSink) -> None:
    """A gray Python entry with dyeing on calls a base Node service: the lane crosses languages."""
    before = get_global_textmap()
    handle = configure(service_name="py-entry", lane="gray", dyeing=True, endpoint=recorder.url,
                       heartbeat_interval_s=0, export_delay_ms=50, handle_sigterm=False,
                       set_global_tracer_provider=False, environ={})
    node = node_service(recorder.url, "base", downstream=sink.url + "/end")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        requests.get(node.url + "/a", timeout=10)
        start_response("200 OK", [])
        return [b"ok"]

    entry = make_server("127.0.0.1", 0, LaneWSGIMiddleware(app, tracer_provider=handle.tracer_provider),
                        handler_class=_Quiet)
    threading.Thread(target=entry.serve_forever, args=(0.05,), daemon=True).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{entry.server_port}/order", timeout=10) as r:
            assert r.status == 200
        handle.force_flush()
        spans = recorder.wait_for(lambda r: len(r.spans()) >= 6 and r.spans(), timeout_s=15)
    finally:
        entry.shutdown()
        entry.server_close()
        node.stop()
        handle.shutdown()
        set_global_textmap(before)
    assert sink.requests[0]["x-mse-tag"] == "gray"
    node_servers = [s for s in spans if s.service == "node-svc" and s.kind == 2]
    assert [s.attributes[L.REQUEST_LANE_ATTR] for s in node_servers] == ["gray", "gray"]
    assert {s.resource[L.INSTANCE_LANE_ATTR] for s in node_servers} == {"base"}
    py_server = next(s for s in spans if s.service == "py-entry" and s.kind == 2)
    assert py_server.attributes[L.DYED_ATTR] is True
    assert len({s.trace_id for s in spans}) == 1
