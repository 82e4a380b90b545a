"""The zero-code path: `opentelemetry-instrument python app.py` with LANEWATCH_* env vars, in a subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from instrument_helpers import Sink

from lanewatch import lane as L
from lanewatch.instrument.testing import OTLPRecorder

APP = Path(__file__).parent / "apps" / "zero_code_app.py"


def instrument_command() -> str:
    beside = Path(sys.executable).parent / "opentelemetry-instrument"
    found = str(beside) if beside.exists() else shutil.which("opentelemetry-instrument")
    if not found:
        pytest.skip("opentelemetry-instrument is not installed")
    return found


def test_zero_code_gray_instance_with_dyeing(recorder: OTLPRecorder, sink: Sink) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LANEWATCH_"))}
    env.update({
        "OTEL_PYTHON_DISTRO": "lanewatch", "OTEL_PYTHON_CONFIGURATOR": "lanewatch",
        "OTEL_SERVICE_NAME": "cart", "OTEL_EXPORTER_OTLP_ENDPOINT": recorder.url,
        "LANEWATCH_LANE": "gray", "LANEWATCH_DYEING": "true", "LANEWATCH_INSTANCE_ID": "cart-gray-zc",
        "LANEWATCH_HEARTBEAT_INTERVAL_S": "0.3", "LANEWATCH_EXPORT_DELAY_MS": "100",
        "DOWNSTREAM_URL": sink.url + "/downstream",
    })
    proc = subprocess.Popen([instrument_command(), sys.executable, str(APP)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("READY"), (line, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        port = int(line.split()[1])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/order", timeout=10) as resp:
            assert resp.status == 200
        req = urllib.request.Request(f"http://127.0.0.1:{port}/order", headers={"x-mse-tag": "blue"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        assert [r["x-mse-tag"] for r in sink.requests] == ["gray", "blue"]

        spans = recorder.wait_for(lambda r: len(r.spans()) >= 4 and r.spans(), timeout_s=10)
        assert {s.resource[L.INSTANCE_LANE_ATTR] for s in spans} == {"gray"}
        assert {s.resource[L.INSTANCE_ID_ATTR] for s in spans} == {"cart-gray-zc"}
        servers = [s for s in spans if s.kind == 2]
        clients = [s for s in spans if s.kind == 3]
        assert sorted((s.attributes[L.REQUEST_LANE_ATTR], s.attributes.get(L.DYED_ATTR)) for s in servers) == [
            ("blue", None), ("gray", True)]
        assert sorted(s.attributes[L.REQUEST_LANE_ATTR] for s in clients) == ["blue", "gray"]
        recorder.wait_for(lambda r: r.points(L.HEARTBEAT_METRIC), timeout_s=10)

        proc.send_signal(signal.SIGTERM)  # graceful stop: the leaving beat goes out, then SIGTERM as usual
        assert proc.wait(10) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    beats = recorder.points(L.HEARTBEAT_METRIC)
    assert beats[-1].value == 0 and {b.value for b in beats[:-1]} == {1}
    assert beats[-1].resource[L.SERVICE_NAME_ATTR] == "cart"
