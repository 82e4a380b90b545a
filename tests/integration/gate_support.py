"""An in-process ``lanewatch up`` fed over real OTLP/HTTP, for the release-gate tests."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lanewatch import config
from lanewatch.server import Collector
from lanewatch.testing import TraceBuilder, heartbeat_request


class Lanewatch:
    """A running collector: its API URL, and helpers that go through its real receiver."""

    def __init__(self, collector: Collector) -> None:
        ep = collector.endpoints()
        self.collector, self.url, self.otlp = collector, ep["url"], ep["otlp_http"]

    def _post_otlp(self, path: str, body: bytes) -> None:
        req = urllib.request.Request(self.otlp + path, body, {"Content-Type": "application/x-protobuf"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200

    def heartbeat(self, service: str, lane: str) -> None:
        """A live instance ``{service}-{lane}-1``: the id TraceBuilder gives its spans."""
        self._post_otlp("/v1/metrics", heartbeat_request(service, "" if lane == "base" else lane,
                                                        f"{service}-{lane}-1"))

    def send(self, tb: TraceBuilder) -> None:
        self._post_otlp("/v1/traces", tb.body())

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        """``(status, decoded JSON)`` of a request to the API (errors included)."""
        req = urllib.request.Request(self.url + path, body, method=method,
                                     headers={"Content-Type": "application/json"} if body is not None else {})
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def gate(self, **params: str) -> tuple[int, Any]:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return self.call("GET", "/api/v1/gate" + (f"?{query}" if query else ""))

    def webhook(self, **metadata: str) -> tuple[int, Any]:
        body = {"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "6f3c9a",
                "metadata": metadata}
        return self.call("POST", "/api/v1/gate", json.dumps(body).encode())

    def wait_for_traces(self, lane: str, n: int, timeout: float = 60.0) -> None:
        """Poll until ``n`` finished traces entered in ``lane`` (each trace is final after trace_wait_s)."""
        def got() -> int:
            return int(self.call("GET", f"/api/v1/summary?lane={lane}")[1]["lanes"].get(lane, {}).get("traces", 0))
        wait(lambda: got() >= n, timeout, lambda: f"{got()} of {n} {lane} traces final")


def wait(pred: Callable[[], bool], timeout: float, said: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled in {timeout} s: {said()}")
        time.sleep(0.2)


@contextmanager
def running(data_dir: Path) -> Iterator[Lanewatch]:
    """``lanewatch up`` on free loopback ports; traces final 1 s after their last span."""
    settings = config.load(environ={}, flags={
        "otlp_http_port": 0, "otlp_grpc_port": -1, "port": 0, "data_dir": str(data_dir),
        "trace_wait_s": 1.0, "flush_interval_s": 0.2, "liveness_ttl_s": 600})
    with Collector(settings) as collector:
        yield Lanewatch(collector)


def chain(tb: TraceBuilder, served: list[str], sent: list[str], errors: bool = False) -> None:
    """One trace through services A, B, C... : hop ``i`` served by lane ``served[i]`` receiving
    ``sent[i - 1]`` (the first receives ``sent[0]``), calling on with ``sent[i]``."""
    tb.new_trace()
    caller = None
    for i, lane in enumerate(served):
        received = sent[0] if i == 0 else sent[i - 1]
        hop = tb.hop("ABCDEFG"[i], "" if lane == "base" else lane, "" if received == "base" else received,
                     caller=caller, error=errors and i == len(served) - 1)
        if i + 1 < len(served):
            caller = tb.call(hop, "" if sent[i] == "base" else sent[i])


def single(tb: TraceBuilder, service: str, lane: str, error: bool = False) -> None:
    """A one-hop trace at ``service`` served by ``lane``, carrying ``lane``."""
    tb.new_trace()
    tb.hop(service, "" if lane == "base" else lane, "" if lane == "base" else lane, error=error)


N = 40  # traces per side: above compare.min_requests (30)


def feed_mesh(lw: Lanewatch) -> Lanewatch:
    """Clean gray A -> B -> C beside base; E's ``blue`` lane fails half its requests (base E none);
    Q's ``quiet`` lane is live but got no traffic. Returns once every trace is final."""
    for svc in "ABC":
        lw.heartbeat(svc, "base")
        lw.heartbeat(svc, "gray")
    for svc, lane in (("E", "base"), ("E", "blue"), ("Q", "base"), ("Q", "quiet")):
        lw.heartbeat(svc, lane)
    tb = TraceBuilder(t0=time.time())
    for i in range(N):
        chain(tb, ["gray"] * 3, ["gray"] * 3)
        chain(tb, ["base"] * 3, ["base"] * 3)
        single(tb, "E", "blue", error=i % 2 == 0)
        single(tb, "E", "base")
    lw.send(tb)
    for lane, n in (("gray", N), ("base", 2 * N), ("blue", N)):
        lw.wait_for_traces(lane, n)
    return lw


def feed_lossy(lw: Lanewatch) -> Lanewatch:
    """Gray A -> B whose tag is lost inside B-gray: its call carries no lane on, so C's base serves
    it (the bug class of the last issue); and base A -> B -> C."""
    for svc, lane in (("A", "gray"), ("B", "gray"), ("A", "base"), ("B", "base"), ("C", "base")):
        lw.heartbeat(svc, lane)
    tb = TraceBuilder(t0=time.time())
    for _ in range(N):
        chain(tb, ["gray", "gray", "base"], ["gray", "base", "base"])
        chain(tb, ["base"] * 3, ["base"] * 3)
    lw.send(tb)
    lw.wait_for_traces("gray", N)
    lw.wait_for_traces("base", N)
    return lw
