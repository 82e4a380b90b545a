"""Helpers of the access-control tests (a uniquely named module, imported by them): a self-signed
certificate made in the test, real SDK spans to export, a ``lanewatch up`` process."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from lanewatch.testing import start_up

TOKEN = "test-token-0123456789abcdef"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(cert.pem, key.pem) for localhost and 127.0.0.1, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def spans(service: str = "authsvc", n: int = 3) -> list[ReadableSpan]:
    """``n`` finished SERVER spans made by the real SDK, ready for ``exporter.export``."""
    memory = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": service}))
    tp.add_span_processor(SimpleSpanProcessor(memory))
    tracer = tp.get_tracer("access-test")
    for _ in range(n):
        with tracer.start_as_current_span("serve", kind=SpanKind.SERVER):
            pass
    tp.shutdown()
    return list(memory.get_finished_spans())


@contextmanager
def lanewatch_up(data_dir: Path, *args: str) -> Iterator[dict[str, Any]]:
    """``lanewatch up`` with ``args`` (gRPC on); its endpoints; it must exit 0 when stopped."""
    proc, ep = start_up(data_dir, "--otlp-grpc-port", "0", *args)
    try:
        yield ep
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out


def counters(ep: dict[str, Any], verify: Any = True) -> dict[str, int]:
    """``/api/v1/summary``'s counters, read with the token."""
    r = requests.get(ep["url"] + "/api/v1/summary?window=60", timeout=30, verify=verify,
                     headers={"Authorization": f"Bearer {TOKEN}"})
    r.raise_for_status()
    return dict(r.json()["counters"])


def settled_counters(ep: dict[str, Any], verify: Any = True) -> dict[str, int]:
    """:func:`counters` once two reads 0.3 s apart agree (a flush in progress can hide counts
    for a moment: they have left the engine and not yet reached the store)."""
    last = counters(ep, verify)
    for _ in range(100):
        time.sleep(0.3)
        now = counters(ep, verify)
        if now == last:
            return now
        last = now
    return last
