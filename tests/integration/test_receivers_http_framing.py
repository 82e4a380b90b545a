"""OTLP/HTTP message framing (RFC 9112 §6) and the errors the HTTP layer itself raises,
with raw sockets: every refusal is a counted google.rpc.Status JSON answer, never HTML."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from google.rpc.status_pb2 import Status

from lanewatch.collect.receivers.http import OtlpHttpReceiver
from lanewatch.testing import RecordingSink

HEAD = b"Host: x\r\nContent-Type: application/x-protobuf\r\n"


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def port(sink: RecordingSink) -> Iterator[int]:
    r = OtlpHttpReceiver(sink, port=0, max_body_bytes=1 << 20)
    r.start()
    yield r.port
    r.stop()


def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes, bool]:
    """Send ``data``; (status, headers, body, whether the server closed the connection after
    its answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without an answer: {buf!r}"
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        n = int(headers.get("content-length", "0"))
        while len(rest) < n:
            chunk = sock.recv(65536)
            assert chunk
            rest += chunk
        body, extra = rest[:n], rest[n:]
        sock.settimeout(1)
        try:
            closed = not extra and sock.recv(1) == b""
        except TimeoutError:
            closed = False
        except ConnectionResetError:
            closed = True
        return status, headers, body, closed


def assert_status_json(headers: dict[str, str], body: bytes, code: int) -> str:
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["code"] == code and set(doc) == {"code", "message"}
    return str(doc["message"])


def status_message(headers: dict[str, str], body: bytes, code: int) -> str:
    """The google.rpc.Status of a refusal, in the request's format."""
    if headers["content-type"] == "application/json":
        return assert_status_json(headers, body, code)
    assert headers["content-type"] == "application/x-protobuf"
    status = Status.FromString(body)
    assert status.code == code
    return str(status.message)


@pytest.mark.parametrize("version", [b"HTTP/1.0", b"HTTP/1.1"])
def test_post_without_length_is_411_and_counted(port: int, sink: RecordingSink, version: bytes) -> None:
    status, headers, body, closed = exchange(port, b"POST /v1/traces " + version + b"\r\n" + HEAD +
                                             b"\r\n\x0a\x00")
    assert status == 411 and closed
    assert "Content-Length" in status_message(headers, body, 3)
    assert sink.calls == [] and sink.drops == [("length_required", 1)]


def test_content_length_and_chunked_reads_chunked_and_closes(port: int, sink: RecordingSink) -> None:
    data = (b"POST /v1/traces HTTP/1.1\r\n" + HEAD + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n")
    status, headers, _, closed = exchange(port, data)
    assert status == 200
    assert sink.bodies == [b"hello"]  # Transfer-Encoding overrides Content-Length
    assert headers.get("connection") == "close" and closed  # and the server must close


def test_keep_alive_is_kept_without_the_conflict(port: int, sink: RecordingSink) -> None:
    status, headers, _, closed = exchange(port, b"POST /v1/traces HTTP/1.1\r\n" + HEAD +
                                          b"Content-Length: 5\r\n\r\nhello")
    assert status == 200 and not closed and "connection" not in headers


def test_chunked_in_http_1_0_is_faulty_framing(port: int, sink: RecordingSink) -> None:
    status, headers, body, closed = exchange(port, b"POST /v1/traces HTTP/1.0\r\n" + HEAD +
                                             b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert status == 400 and closed
    assert "HTTP/1.0" in status_message(headers, body, 3)
    assert sink.calls == [] and sink.drops == [("bad_request", 1)]


def test_conflicting_content_lengths_are_400(port: int, sink: RecordingSink) -> None:
    status, _, _, closed = exchange(port, b"POST /v1/traces HTTP/1.1\r\n" + HEAD +
                                    b"Content-Length: 5\r\nContent-Length: 2\r\n\r\nhello")
    assert status == 400 and closed
    assert sink.calls == [] and sink.drops == [("bad_request", 1)]


@pytest.mark.parametrize(("request_bytes", "status", "code", "reason"), [
    (b"GARBAGE\r\n\r\n", 400, 3, "bad_request"),
    (b"POST /v1/traces HTTP/x.y\r\n\r\n", 400, 3, "bad_request"),
    (b"POST /v1/traces HTTP/2.0\r\n\r\n", 505, 12, "unsupported_version"),
    (b"TRACE /v1/traces HTTP/1.1\r\nHost: x\r\n\r\n", 501, 12, "unsupported_method"),
    (b"POST /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414, 8, "uri_too_long"),
    (b"POST /v1/traces HTTP/1.1\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n", 431, 8, "header_too_large"),
    (b"POST /v1/traces HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n",
     431, 8, "header_too_large"),
], ids=["garbage", "bad-version", "http2", "trace", "long-uri", "long-header", "many-headers"])
def test_errors_of_the_http_layer_are_status_json_and_counted(
        port: int, sink: RecordingSink, request_bytes: bytes, status: int, code: int, reason: str) -> None:
    got, headers, body, closed = exchange(port, request_bytes)
    assert got == status and closed
    assert b"<html" not in body.lower()
    assert assert_status_json(headers, body, code)
    assert "python" not in str(headers).lower()  # no banner
    assert sink.calls == [] and sink.drops == [(reason, 1)]


def test_server_still_serves_after_the_refusals(port: int, sink: RecordingSink) -> None:
    for data in (b"GARBAGE\r\n\r\n", b"POST /v1/traces HTTP/1.0\r\n" + HEAD + b"\r\n"):
        exchange(port, data)
    t0 = time.monotonic()
    status, _, _, _ = exchange(port, b"POST /v1/traces HTTP/1.1\r\n" + HEAD + b"Content-Length: 0\r\n\r\n")
    assert status == 200 and time.monotonic() - t0 < 5
