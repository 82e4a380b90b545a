"""Helpers of the /metrics integration tests (a uniquely named module, imported by them).

* :func:`running_lanewatch`: ``lanewatch up`` in-process (:class:`lanewatch.server.Collector`)
  on free loopback ports.
* :class:`Sdk`: real OpenTelemetry SDK tracer providers per (service, lane), exporting real
  OTLP/HTTP to it, and :meth:`Sdk.chain` to send one trace along a path.
* :func:`scrape`: ``GET /metrics`` parsed with ``prometheus_client``'s parser.
* :func:`wait_for`: poll a condition with a generous deadline.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import requests
from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from lanewatch import lane as L
from lanewatch.testing import heartbeat_request

T = TypeVar("T")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running_lanewatch(data_dir: Path, **overrides: Any) -> Iterator[Any]:
    """A started :class:`lanewatch.server.Collector` with the API (and /metrics) on a free port."""
    from lanewatch.config import Settings
    from lanewatch.server import Collector

    options: dict[str, Any] = {"host": "127.0.0.1", "otlp_http_port": 0, "otlp_grpc_port": -1, "port": 0,
                               "data_dir": str(data_dir), "trace_wait_s": 0.5, "flush_interval_s": 0.2,
                               "liveness_ttl_s": 60}
    collector = Collector(Settings(**{**options, **overrides})).start()
    try:
        yield collector
    finally:
        collector.stop()


class Sdk:
    """One real SDK ``TracerProvider`` per (service, lane), exporting OTLP/HTTP to ``otlp_http``."""

    def __init__(self, otlp_http: str) -> None:
        self.otlp_http = otlp_http.rstrip("/")
        self.providers: dict[tuple[str, str], TracerProvider] = {}

    def provider(self, service: str, lane: str) -> TracerProvider:
        key = (service, lane)
        if key not in self.providers:
            attrs = {"service.name": service, L.INSTANCE_ID_ATTR: f"{service}-{lane}-1"}
            if lane != L.BASE:
                attrs[L.INSTANCE_LANE_ATTR] = lane
            tp = TracerProvider(resource=Resource.create(attrs), shutdown_on_exit=False)
            tp.add_span_processor(SimpleSpanProcessor(
                OTLPSpanExporter(endpoint=self.otlp_http + "/v1/traces", timeout=10)))
            self.providers[key] = tp
        return self.providers[key]

    def heartbeat(self, service: str, lane: str) -> None:
        """A heartbeat of instance ``{service}-{lane}-1``: it is live from now on."""
        body = heartbeat_request(service, "" if lane == L.BASE else lane, f"{service}-{lane}-1")
        r = requests.post(self.otlp_http + "/v1/metrics", data=body,
                          headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        r.raise_for_status()

    def chain(self, path: Sequence[tuple[str, str]], received: Sequence[str], sent: Sequence[str],
              error_at: int = -1) -> str:
        """One trace along ``path`` = [(service, instance lane)]: hop i a SERVER span carrying
        lane ``received[i]``, with a CLIENT span under it sending ``sent[i]``; hop ``error_at``
        fails. Returns the trace id (hex)."""
        parent = context.get_current()
        trace_id = ""
        for i, (service, lane) in enumerate(path):
            tracer = self.provider(service, lane).get_tracer("lanewatch.tests.metrics")
            attrs = {L.REQUEST_LANE_ATTR: received[i]} if received[i] != L.BASE else {}
            with tracer.start_as_current_span("serve", context=parent, kind=trace.SpanKind.SERVER,
                                              attributes=attrs) as server:
                trace_id = trace_id or format(server.get_span_context().trace_id, "032x")
                if i == error_at:
                    server.set_status(Status(StatusCode.ERROR))
                if i + 1 < len(path):
                    out = {L.REQUEST_LANE_ATTR: sent[i]} if sent[i] != L.BASE else {}
                    with tracer.start_as_current_span("call", kind=trace.SpanKind.CLIENT, attributes=out):
                        parent = context.get_current()
        return trace_id

    def shutdown(self) -> None:
        for tp in self.providers.values():
            tp.shutdown()


def scrape(url: str, accept: str | None = None) -> tuple[Samples, str]:
    """(samples by (name, labels), Content-Type) of ``GET url/metrics``."""
    headers = {"Accept": accept} if accept else {}
    r = requests.get(url.rstrip("/") + "/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    got = {(s.name, frozenset(s.labels.items())): s.value
           for fam in text_string_to_metric_families(r.text) for s in fam.samples}
    return got, r.headers["Content-Type"]


def total(got: Samples, name: str, **match: str) -> float:
    """Sum of ``name`` over the series whose labels include ``match``."""
    want = set(match.items())
    return sum(v for (n, labels), v in got.items() if n == name and want <= labels)


def wait_for(pred: Callable[[], T | None], timeout: float = 60.0, every: float = 0.25) -> T:
    """The first truthy value of ``pred()``; fails with the last value after ``timeout`` s."""
    deadline = time.time() + timeout
    last: Any = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met in {timeout} s; last value {last!r}")
