"""Coverage-guided fuzzing (atheris, libFuzzer) of the OTLP decoders through ``Engine.ingest``.

    python bench/fuzz_decoders.py --runs 1000000                 # the benchmark run
    python bench/fuzz_decoders.py --runs 20000 --target http     # through the real OTLP/HTTP receiver
    python bench/fuzz_decoders.py --write-seeds DIR              # the seed corpus (tests/testdata/fuzz)

Each input is one selector byte and an export request body. The selector picks the signal
(traces, metrics, logs), the format (protobuf or JSON) and, for protobuf traces, whether the
request goes through the fast numpy path (:mod:`lanewatch.collect.wire`, normally taken from
16 KiB on: here also for small inputs). The body goes to ``Engine.ingest`` exactly as the
receivers hand it over. Every input must end in an ``IngestResult`` (counts >= 0), a
``DecodeError`` or ``Overloaded``; after every accepted trace request the engine is flushed
with its clock moved past ``trace_wait_s`` (the traces are judged) and must have lost no
span to an internal error. Anything else, or an input running over ``--timeout`` seconds
(a hang), is a finding: libFuzzer stops, prints the traceback and writes the input as
``crash-*`` / ``timeout-*`` under ``--artifacts``.

``--target http`` sends the same inputs as POSTs to a real :class:`OtlpHttpReceiver` over one
keep-alive connection (gzip when the selector says so): the answer must be 200, 400, 413,
415 or 503 with a body that parses as the OTLP response or a ``google.rpc.Status``.

At the end it prints one line: inputs, seconds, executions per second, the outcomes and
``findings: 0`` (on a finding libFuzzer exits non-zero before that line). The corpus
directories given are read and, as libFuzzer does, the first one receives new inputs: the
pytest (tests/unit/test_fuzz_decoders.py) copies the seeds to a temporary directory first.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import atheris
import orjson

with atheris.instrument_imports(include=["lanewatch"]):
    from lanewatch import config
    from lanewatch.collect import decode
    from lanewatch.collect.engine import Engine
    from lanewatch.collect.ingest import DecodeError, Format, IngestResult, Overloaded, Signal
    from lanewatch.collect.receivers.http import OtlpHttpReceiver

from google.protobuf.json_format import MessageToJson
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from lanewatch.testing import FakeClock, TraceBuilder, heartbeat_request, to_otlp_json

#: selector % 6 -> (signal, format); bit 3: protobuf traces through the fast path; bit 4: gzip (http)
TARGETS: list[tuple[Signal, Format]] = [("traces", "proto"), ("traces", "json"), ("metrics", "proto"),
                                        ("metrics", "json"), ("logs", "proto"), ("logs", "json")]
FAST, GZIP = 0x08, 0x10
_RESPONSES = {"traces": ExportTraceServiceResponse, "metrics": ExportMetricsServiceResponse,
              "logs": ExportLogsServiceResponse}
_CTYPE = {"proto": "application/x-protobuf", "json": "application/json"}
ENGINE_INPUTS = 5000  # a fresh engine every so many inputs: memory stays flat over a long run


class Finding(AssertionError):
    """An input that did not end in a clean answer."""


class Harness:
    def __init__(self, runs: int, target: str) -> None:
        self.runs, self.target, self.n = runs, target, 0
        self.outcomes: Counter[str] = Counter()
        self.settings = config.load(environ={}, flags={"trace_wait_s": 1.0, "max_pending_spans": 50_000})
        self._new_engine()
        self.t0 = time.monotonic()
        self.receiver: OtlpHttpReceiver | None = None
        self.conn: http.client.HTTPConnection | None = None
        if target == "http":
            self.receiver = OtlpHttpReceiver(self.engine, port=0, max_body_bytes=1 << 20)
            self.receiver.start()

    def _new_engine(self) -> None:
        self.clock = FakeClock()
        self.engine = Engine(self.settings, clock=self.clock)
        if getattr(self, "receiver", None) is not None:
            assert self.receiver is not None
            self.receiver._sink = self.engine
            server = self.receiver._server
            if server is not None:
                server.sink = server.guard.sink = self.engine

    def one(self, data: bytes) -> None:
        self.n += 1
        if self.n > self.runs:
            self.finish()
        if self.n % ENGINE_INPUTS == 0:
            self._new_engine()
        if not data:
            return
        signal, fmt = TARGETS[data[0] % 6]
        body = data[1:]
        decode.FAST_MIN_BYTES = 0 if data[0] & FAST else 16 * 1024
        if self.target == "http":
            self._http(signal, fmt, body, bool(data[0] & GZIP))
        else:
            self._ingest(signal, fmt, body)

    def _ingest(self, signal: Signal, fmt: Format, body: bytes) -> None:
        try:
            got = self.engine.ingest(signal, body, fmt)
        except DecodeError:
            self.outcomes["decode_error"] += 1
            return
        except Overloaded:
            self.outcomes["overloaded"] += 1
            return
        if not (isinstance(got, IngestResult) and got.accepted >= 0 and got.rejected >= 0):
            raise Finding(f"not a clean IngestResult: {got!r}")
        self.outcomes["partial" if got.rejected else "ok"] += 1
        if signal == "traces" and got.accepted:
            self._flush()

    def _flush(self) -> None:
        self.clock.advance(self.settings.trace_wait_s + 1.0)
        batch = self.engine.flush()
        lost = batch.counters.get("spans_lost_internal_error", 0)
        if lost:
            raise Finding(f"the span path failed on {lost} spans (logged above)")

    def _http(self, signal: Signal, fmt: Format, body: bytes, gz: bool) -> None:
        assert self.receiver is not None
        headers = {"Content-Type": _CTYPE[fmt]}
        if gz:
            body = gzip.compress(body, 1)
            headers["Content-Encoding"] = "gzip"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.receiver.port, timeout=30)
            try:
                self.conn.request("POST", f"/v1/{signal}", body=body, headers=headers)
                resp = self.conn.getresponse()
                payload = resp.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise Finding("the receiver dropped the connection twice") from None
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        status = resp.status
        self.outcomes[str(status)] += 1
        if status not in (200, 400, 413, 415, 503):
            raise Finding(f"HTTP {status}: {payload[:300]!r}")
        ctype = resp.getheader("Content-Type")
        try:
            if status == 200:
                msg = _RESPONSES[signal]()
                if ctype == "application/json":
                    if not isinstance(orjson.loads(payload), dict):
                        raise ValueError("not an object")
                else:
                    msg.ParseFromString(payload)
            elif ctype == "application/json":
                doc = orjson.loads(payload)
                if not (isinstance(doc, dict) and isinstance(doc.get("code"), int)):
                    raise ValueError("not a google.rpc.Status")
            else:
                Status.FromString(payload)
        except Exception as e:  # noqa: BLE001 -- reported as the finding
            raise Finding(f"HTTP {status} body does not parse ({e}): {payload[:300]!r}") from None
        if signal == "traces" and status == 200:
            self._flush()

    def finish(self) -> None:
        s = time.monotonic() - self.t0
        n = self.n - 1
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        print(f"fuzz_decoders target={self.target}: {n} inputs in {s:.1f} s, {n / s:,.0f} exec/s; "
              f"{outcomes}; findings: 0", flush=True)
        if self.receiver is not None:
            self.receiver.stop()
        os._exit(0)


# --- the seed corpus -----------------------------------------------------------------------

def _logs(fmt: str, n: int) -> bytes:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend([KeyValue(key="service.name", value=AnyValue(string_value="C")),
                                   KeyValue(key="service.lane", value=AnyValue(string_value="gray"))])
    sl = rl.scope_logs.add()
    for i in range(n):
        sl.log_records.add(time_unix_nano=1_800_000_000_000_000_000 + i, observed_time_unix_nano=1,
                           trace_id=os.urandom(16), span_id=os.urandom(8),
                           body=AnyValue(string_value=f"line {i}"))
    return req.SerializeToString() if fmt == "proto" else MessageToJson(req).encode()


def _metrics_json() -> bytes:
    return MessageToJson(ExportMetricsServiceRequest.FromString(heartbeat_request("C", "gray"))).encode()


def seeds() -> dict[str, bytes]:
    """Requests as the SDKs send them, each behind its selector byte."""
    tb = TraceBuilder()
    a = tb.hop("A", lane="gray", request_lane="gray", dyed=True)
    b = tb.hop("B", lane="base", request_lane="gray", caller=tb.call(a), attributes={"x-user-id": "100"})
    tb.hop("C", lane="gray", request_lane="", caller=tb.call(b, lane=""), error=True)
    tb.internal(a)
    big = TraceBuilder()
    for i in range(120):  # above 16 KiB: the fast path takes it whatever the selector says
        root = big.new_trace().hop("A", lane="gray" if i % 2 else "", request_lane="gray")
        big.hop("B", lane="gray", request_lane="gray", caller=big.call(root))
    out = {
        "traces-proto": b"\x00" + tb.body(),
        "traces-proto-fast": bytes((FAST,)) + tb.body(),
        "traces-proto-large": b"\x00" + big.body(),
        "traces-json": b"\x01" + to_otlp_json(tb.request()),
        "metrics-proto": b"\x02" + heartbeat_request("C", "gray"),
        "metrics-proto-goodbye": b"\x02" + heartbeat_request("C", "gray", up=False),
        "metrics-json": b"\x03" + _metrics_json(),
        "logs-proto": b"\x04" + _logs("proto", 3),
        "logs-json": b"\x05" + _logs("json", 2),
        "traces-proto-gzip": bytes((GZIP,)) + tb.body(),
    }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1_000_000, help="inputs to run (default 1,000,000)")
    p.add_argument("--target", choices=("engine", "http"), default="engine")
    p.add_argument("--max-len", type=int, default=32768, help="longest input, bytes")
    p.add_argument("--timeout", type=int, default=10, help="seconds one input may take (a hang)")
    p.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed")
    p.add_argument("--artifacts", default="./", help="where crash-*/timeout-* inputs are written")
    p.add_argument("--dict", default=str(Path(__file__).resolve().parents[1] / "tests/testdata/fuzz_otlp.dict"))
    p.add_argument("--write-seeds", metavar="DIR", help="write the seed corpus to DIR and exit")
    p.add_argument("corpus", nargs="*", help="corpus directories (the first receives new inputs)")
    args = p.parse_args()
    if args.write_seeds:
        d = Path(args.write_seeds)
        d.mkdir(parents=True, exist_ok=True)
        for name, data in seeds().items():
            (d / name).write_bytes(data)
        return
    harness = Harness(args.runs, args.target)
    libfuzzer = [sys.argv[0], f"-max_len={args.max_len}", f"-timeout={args.timeout}", f"-seed={args.seed}",
                 f"-artifact_prefix={args.artifacts.rstrip('/')}/", "-rss_limit_mb=4096", "-print_final_stats=0",
                 *([f"-dict={args.dict}"] if args.dict and Path(args.dict).exists() else []), *args.corpus]
    atheris.Setup(libfuzzer, harness.one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
