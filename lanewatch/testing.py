"""Test helpers shipped with lanewatch, so users can test their own lane setups.

* :class:`FakeClock`: an injectable clock you advance by hand.
* :class:`TraceBuilder`: builds traces hop by hop and encodes them as real
  OTLP ``ExportTraceServiceRequest`` bytes (protobuf or JSON), grouped by
  resource the way an SDK exports them.
* :func:`heartbeat_request`: an OTLP metrics request with the heartbeat gauge.
* :class:`RecordingSink`: a receiver's sink that records what it was given.
* :func:`start_up`, :func:`up_with_config`, :func:`wait_until`, :func:`settled_summary`:
  a real ``lanewatch up`` for a test, and its answers once they stop changing.

Example::

    tb = TraceBuilder()
    a = tb.hop("A", lane="gray", request_lane="gray")
    b = tb.hop("B", lane="base", request_lane="gray", caller=tb.call(a))
    body = tb.request()          # bytes for POST /v1/traces
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from lanewatch import lane as L
from lanewatch.collect.ingest import Format, IngestResult, Signal

_T = TypeVar("_T")

class FakeClock:
    """A clock for injection: ``clock()`` returns the current fake time."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


@dataclass
class SpanSpec:
    """One span as built: enough to encode it and to refer to it."""

    trace_id: bytes
    span_id: bytes
    parent_id: bytes
    kind: int
    service: str
    lane: str  # instance lane ('' = unset)
    request_lane: str  # the span's lane attribute ('' = unset)
    start_ns: int
    end_ns: int
    error: bool = False
    attributes: dict[str, str] = field(default_factory=dict)
    instance: str = ""


def _kv(attrs: Mapping[str, str]) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attrs.items()]


class TraceBuilder:
    """Builds spans of one or more traces; times advance 1 ms per span."""

    def __init__(self, t0: float = 1_800_000_000.0, trace_id: bytes | None = None) -> None:
        self.trace_id = trace_id or os.urandom(16)
        self.spans: list[SpanSpec] = []
        self._t = int(t0 * 1e9)

    def new_trace(self) -> TraceBuilder:
        """Further spans go into a fresh trace."""
        self.trace_id = os.urandom(16)
        return self

    def _span(self, kind: int, service: str, lane: str, request_lane: str, parent: SpanSpec | None,
              error: bool, attributes: Mapping[str, str] | None, duration_ms: float) -> SpanSpec:
        self._t += 1_000_000
        attrs = dict(attributes or {})
        if request_lane:
            attrs[L.REQUEST_LANE_ATTR] = request_lane
        s = SpanSpec(self.trace_id, os.urandom(8), parent.span_id if parent else b"", kind, service,
                     lane, request_lane, self._t, self._t + int(duration_ms * 1e6), error, attrs,
                     instance=f"{service}-{lane or 'base'}-1")
        self.spans.append(s)
        return s

    def hop(self, service: str, lane: str = "", request_lane: str = "", caller: SpanSpec | None = None,
            kind: int = L.SpanKind.SERVER, error: bool = False, dyed: bool = False,
            attributes: Mapping[str, str] | None = None, duration_ms: float = 5.0) -> SpanSpec:
        """A SERVER (or CONSUMER) span of ``service`` served by an instance of ``lane``."""
        attrs = dict(attributes or {})
        if dyed:
            attrs[L.DYED_ATTR] = "true"
        return self._span(kind, service, lane, request_lane, caller, error, attrs, duration_ms)

    def call(self, parent: SpanSpec, lane: str | None = None, kind: int = L.SpanKind.CLIENT,
             attributes: Mapping[str, str] | None = None) -> SpanSpec:
        """A CLIENT (or PRODUCER) span under ``parent`` sending ``lane`` (default: parent's)."""
        sent = parent.request_lane if lane is None else lane
        return self._span(kind, parent.service, parent.lane, sent, parent, False, attributes, 2.0)

    def internal(self, parent: SpanSpec) -> SpanSpec:
        return self._span(L.SpanKind.INTERNAL, parent.service, parent.lane, parent.request_lane,
                          parent, False, None, 1.0)

    def request(self, spans: Iterable[SpanSpec] | None = None) -> ExportTraceServiceRequest:
        """An export request of ``spans`` (default all), one ResourceSpans per instance."""
        req = ExportTraceServiceRequest()
        groups: dict[tuple[str, str, str], list[SpanSpec]] = {}
        for s in self.spans if spans is None else spans:
            groups.setdefault((s.service, s.lane, s.instance), []).append(s)
        for (service, lane, inst), members in groups.items():
            rs = req.resource_spans.add()
            rattrs = {L.SERVICE_NAME_ATTR: service, L.INSTANCE_ID_ATTR: inst}
            if lane:
                rattrs[L.INSTANCE_LANE_ATTR] = lane
            rs.resource.attributes.extend(_kv(rattrs))
            ss = rs.scope_spans.add()
            for s in members:
                ss.spans.append(PbSpan(
                    trace_id=s.trace_id, span_id=s.span_id, parent_span_id=s.parent_id, name="op",
                    kind=s.kind,  # type: ignore[arg-type]
                    start_time_unix_nano=s.start_ns, end_time_unix_nano=s.end_ns,
                    attributes=_kv(s.attributes),
                    status=Status(code=Status.STATUS_CODE_ERROR if s.error else Status.STATUS_CODE_OK)))
        return req

    def body(self, spans: Iterable[SpanSpec] | None = None, fmt: str = "proto") -> bytes:
        """Encoded request bytes; ``fmt="json"`` gives OTLP/JSON with hex ids."""
        req = self.request(spans)
        if fmt == "proto":
            return bytes(req.SerializeToString())
        return to_otlp_json(req)


def to_otlp_json(req: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON: protobuf JSON mapping, but trace and span ids as hex (per the spec)."""
    doc = orjson.loads(MessageToJson(req))
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                for k in ("traceId", "spanId", "parentSpanId"):
                    if sp.get(k):
                        sp[k] = base64.b64decode(sp[k]).hex()
    return orjson.dumps(doc)


def heartbeat_request(service: str, lane: str = "", instance: str = "", up: bool = True,
                      time_ns: int = 0) -> bytes:
    """OTLP/protobuf metrics request carrying the heartbeat gauge for one instance."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rattrs = {L.SERVICE_NAME_ATTR: service, L.INSTANCE_ID_ATTR: instance or f"{service}-{lane or 'base'}-1"}
    if lane:
        rattrs[L.INSTANCE_LANE_ATTR] = lane
    rm.resource.attributes.extend(_kv(rattrs))
    m = rm.scope_metrics.add().metrics.add(name=L.HEARTBEAT_METRIC)
    m.gauge.data_points.add(time_unix_nano=time_ns, as_int=1 if up else 0)
    return bytes(req.SerializeToString())


class RecordingSink:
    """A :class:`~lanewatch.collect.ingest.Sink` for testing receivers: records
    ``(signal, len(body), fmt)``, the bodies and the drops; set ``error`` to raise it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Signal, int, Format]] = []
        self.bodies: list[bytes] = []
        self.drops: list[tuple[str, int]] = []
        self.error: Exception | None = None
        self.result = IngestResult(accepted=1)

    def ingest(self, signal: Signal, body: bytes, fmt: Format) -> IngestResult:
        self.calls.append((signal, len(body), fmt))
        self.bodies.append(body)
        if self.error is not None:
            raise self.error
        return self.result

    def count_drop(self, reason: str, n: int = 1) -> None:
        self.drops.append((reason, n))


def start_up(data_dir: Path, *args: str, env: Mapping[str, str] | None = None,
             timeout_s: float = 60.0) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """``lanewatch up`` as its own process, on free loopback ports (OTLP/HTTP, API; gRPC off
    unless ``args`` say otherwise, later flags win), its store in ``data_dir``. Returns the
    process (its output piped) and the endpoints of its ready file once it listens; raises
    RuntimeError with its output when it does not start within ``timeout_s``."""
    ready = data_dir.with_name(data_dir.name + ".ready.json")
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lanewatch.cli", "up", "--otlp-http-port", "0", "--otlp-grpc-port", "-1",
         "--port", "0", "--data-dir", str(data_dir), "--ready-file", str(ready), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=None if env is None else dict(env))
    deadline = time.monotonic() + timeout_s
    while not ready.exists() or not ready.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, _ = proc.communicate(timeout=10)
            raise RuntimeError(f"lanewatch up did not start: {out}")
        time.sleep(0.05)
    return proc, dict(json.loads(ready.read_text()))


@contextmanager
def up_with_config(tmp: Path, config: str, *args: str
                   ) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any], Path]]:
    """:func:`start_up` on ``tmp/data`` with ``config`` written to ``tmp/lanewatch.yaml``
    (``--config``); yields (process, endpoints, config path). At the end it stops the process
    with SIGTERM and raises AssertionError with its output unless it stopped cleanly."""
    cfg = tmp / "lanewatch.yaml"
    cfg.write_text(config)
    proc, ep = start_up(tmp / "data", "--config", str(cfg), *args)
    try:
        yield proc, ep, cfg
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    if proc.returncode != 0:
        raise AssertionError(f"lanewatch up did not stop cleanly (exit {proc.returncode}): {out}")


def wait_until(pred: Callable[[], _T | None], timeout_s: float = 30.0, what: str = "condition",
               every_s: float = 0.2) -> _T:
    """The first truthy value of ``pred()``, polled every ``every_s``; AssertionError naming
    ``what`` and the last value after ``timeout_s`` (for tests against a running collector)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last  # type: ignore[no-any-return]
        time.sleep(every_s)
    raise AssertionError(f"{what}: not met within {timeout_s} s; last value {last!r}")


def settled_summary(url: str, traces: int, violations: int, quiet_s: float, window_s: int = 300,
                    timeout_s: float = 30.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``/api/v1/summary`` and ``/api/v1/violations`` of the API at ``url`` once at least
    ``traces`` traces and ``violations`` violations are in, and both read the same again
    ``quiet_s`` later (give the trace wait plus two flushes).

    Hops count as spans arrive, traces and edges once a trace is final; a trace whose spans
    came in two requests more than the trace wait apart is judged twice (the late part
    corrects the first verdict). Counting the traces alone can catch the moment between."""

    def read() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        with urllib.request.urlopen(f"{url}/api/v1/violations?window={window_s}", timeout=10) as r:
            found: list[dict[str, Any]] = json.loads(r.read())
        with urllib.request.urlopen(f"{url}/api/v1/summary?window={window_s}", timeout=10) as r:
            summary: dict[str, Any] = json.loads(r.read())
        return summary, found

    def state(summary: dict[str, Any], found: list[dict[str, Any]]) -> Any:
        lanes = {k: (v.get("traces"), v.get("stayed"), v.get("requests")) for k, v in summary["lanes"].items()}
        return (summary["hops"], summary["edges"], lanes, sorted((v["kind"], v["span_id"]) for v in found))

    def settled() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        summary, found = read()
        n = sum(lane.get("traces", 0) for lane in summary["lanes"].values())
        if n < traces or len(found) < violations:
            return None
        time.sleep(quiet_s)
        again = read()
        return again if state(*again) == state(summary, found) else None

    return wait_until(settled, timeout_s, what=f"{traces} traces and {violations} violations, unchanged "
                                               f"for {quiet_s} s")
