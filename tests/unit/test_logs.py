"""OTLP logs through Engine.ingest: counted, liveness evidence, bad records rejected, nothing else."""

from __future__ import annotations

import base64
import subprocess
import sys

import orjson
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from lanewatch import config
from lanewatch.collect.engine import Engine
from lanewatch.collect.ingest import DecodeError
from lanewatch.testing import FakeClock, heartbeat_request

_NS = 1_000_000_000


def _engine() -> tuple[Engine, FakeClock]:
    clock = FakeClock()
    return Engine(config.load(environ={}, flags={"liveness_ttl_s": 10}), clock=clock), clock


def logs_request(service: str, lane: str, records: list[LogRecord], instance: str = "") -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    attrs = {"service.name": service, "service.instance.id": instance or f"{service}-{lane}-1"}
    if lane:
        attrs["service.lane"] = lane
    rl.resource.attributes.extend(KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attrs.items())
    rl.scope_logs.add().log_records.extend(records)
    return req


def as_json(req: ExportLogsServiceRequest) -> bytes:
    doc = MessageToDict(req)
    for rl in doc.get("resourceLogs", []):
        for sl in rl.get("scopeLogs", []):
            for rec in sl.get("logRecords", []):
                for k, size in (("traceId", 16), ("spanId", 8)):
                    if rec.get(k):  # hex ids, as OTLP/JSON has them
                        raw = base64.b64decode(rec[k])
                        rec[k] = raw.hex() if len(raw) == size else rec[k]
    return orjson.dumps(doc)


@pytest.mark.parametrize("fmt", ["proto", "json"])
def test_log_records_are_counted_and_show_the_instance_alive(fmt: str) -> None:
    e, clock = _engine()
    t = int((clock() - 2) * _NS)
    req = logs_request("C", "gray", [LogRecord(time_unix_nano=t, observed_time_unix_nano=t + 5,
                                               body=AnyValue(string_value="hello")),
                                     LogRecord(observed_time_unix_nano=t - _NS)])
    body = req.SerializeToString() if fmt == "proto" else as_json(req)
    got = e.ingest("logs", body, fmt)  # type: ignore[arg-type]
    assert (got.accepted, got.rejected, got.message) == (2, 0, "")
    assert e.liveness.is_live("C", "gray", clock() - 2)  # from its newest record on
    assert not e.liveness.is_live("C", "gray", clock() - 3)
    b = e.flush()
    assert b.counters == {"log_records_received": 2}
    assert [(r["service"], r["lane"], r["instance"], r["state"]) for r in b.instances] == \
        [("C", "gray", "C-gray-1", "up")]
    assert e.counters == {} and e.assembly.n_open == 0  # nothing else is kept


@pytest.mark.parametrize("fmt", ["proto", "json"])
def test_bad_records_are_rejected_with_partial_success(fmt: str) -> None:
    e, _ = _engine()
    req = logs_request("A", "", [LogRecord(trace_id=b"\x01" * 16, span_id=b"\x02" * 8),
                                 LogRecord(trace_id=b"\x01" * 5), LogRecord(span_id=b"\x01" * 3),
                                 LogRecord()])
    body = req.SerializeToString() if fmt == "proto" else as_json(req)
    got = e.ingest("logs", body, fmt)  # type: ignore[arg-type]
    assert (got.accepted, got.rejected) == (2, 2)
    assert got.message.startswith("2 log records rejected: trace_id must be empty or 16 bytes")
    assert e.flush().counters == {"log_records_received": 2, "log_records_rejected_invalid": 2}


def test_time_of_2_63_and_above_is_rejected() -> None:
    e, _ = _engine()
    got = e.ingest("logs", logs_request("A", "", [LogRecord(time_unix_nano=2**63), LogRecord()])
                   .SerializeToString(), "proto")
    assert (got.accepted, got.rejected) == (1, 1)
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "1"}, {"timeUnixNano": 1.5},
                                                           {"timeUnixNano": str(2**63)}]}]}]}
    got = e.ingest("logs", orjson.dumps(doc), "json")
    assert (got.accepted, got.rejected) == (1, 2)


def test_a_log_record_does_not_revive_an_instance_that_said_goodbye() -> None:
    e, clock = _engine()
    e.ingest("metrics", heartbeat_request("C", "gray"), "proto")
    clock.advance(1)
    e.ingest("metrics", heartbeat_request("C", "gray", up=False), "proto")
    clock.advance(1)
    e.ingest("logs", logs_request("C", "gray", [LogRecord(body=AnyValue(string_value="bye"))])
             .SerializeToString(), "proto")
    assert not e.liveness.is_live("C", "gray", clock())
    assert [r["state"] for r in e.flush().instances] == ["left"]


@pytest.mark.parametrize(("body", "fmt"), [(b"\x0a\x05\x12", "proto"), (b"[1]", "json"),
                                           (b'{"resourceLogs": [{"scopeLogs": 3}]}', "json")])
def test_malformed_logs_are_a_decode_error(body: bytes, fmt: str) -> None:
    e, _ = _engine()
    with pytest.raises(DecodeError):
        e.ingest("logs", body, fmt)  # type: ignore[arg-type]
    assert e.flush().counters == {"requests_refused_malformed": 1}  # refused whole, counted once


_EMPTY_RECORDS = """
import resource, sys
from lanewatch import config
from lanewatch.collect.engine import Engine
from lanewatch.collect.schema import varint
records = b"\\x12\\x00" * 8_000_000
scope = b"\\x12" + varint(len(records)) + records
body = b"\\x0a" + varint(len(scope)) + scope
e = Engine(config.load(environ={}, flags={}))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
got = e.ingest("logs", body, "proto")
print(got.accepted, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_eight_million_empty_records_are_counted_without_an_object_each() -> None:
    """16 MB of empty records (the default body limit), in a process of its own: counted from
    one parse with no object per record (a parse into record messages took 800 MB)."""
    out = subprocess.run([sys.executable, "-c", _EMPTY_RECORDS], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out[0] == "8000000"
    assert int(out[1]) < 400, f"peak RSS grew by {out[1]} MB"
