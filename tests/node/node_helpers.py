"""Processes for the Node.js and end-to-end tests: the Node service, a zero-code Python service, `lanewatch up`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ZERO_CODE_APP = HERE.parent / "instrument" / "apps" / "zero_code_app.py"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without OTEL_* / LANEWATCH_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LANEWATCH_"))}
    env.update(extra)
    return env


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, bytes]:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
        return int(r.status), r.read()


class Service:
    """A child process that prints ``READY <port>`` once it listens; stopped with SIGTERM."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path = HERE) -> None:
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("READY"):
            self.stop()
            raise RuntimeError(f"{argv} did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def get(self, path: str, **headers: str) -> int:
        return http_get(self.url + path, headers)[0]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def node_service(endpoint: str, lane: str, name: str = "node-svc", downstream: str = "", **env: str) -> Service:
    """tests/node/service.js: GET /a calls its own /b; /b calls ``downstream`` when set."""
    full = clean_env(OTEL_SERVICE_NAME=name, OTEL_RESOURCE_ATTRIBUTES=f"service.lane={lane}",
                     OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_METRICS_EXPORTER="none",
                     OTEL_LOGS_EXPORTER="none", LANEWATCH_HEARTBEAT_INTERVAL_MS="300",
                     DOWNSTREAM_URL=downstream, **env)
    return Service(["node", "service.js"], full)


def python_service(endpoint: str, lane: str, name: str, downstream: str = "", **env: str) -> Service:
    """The zero-code Python app under `opentelemetry-instrument`, configured by LANEWATCH_* only."""
    beside = Path(sys.executable).parent / "opentelemetry-instrument"
    command = str(beside) if beside.exists() else shutil.which("opentelemetry-instrument") or "opentelemetry-instrument"
    full = clean_env(OTEL_PYTHON_DISTRO="lanewatch", OTEL_PYTHON_CONFIGURATOR="lanewatch", OTEL_SERVICE_NAME=name,
                     OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, LANEWATCH_LANE=lane,
                     LANEWATCH_HEARTBEAT_INTERVAL_S="0.3", LANEWATCH_EXPORT_DELAY_MS="100",
                     DOWNSTREAM_URL=downstream, **env)
    return Service([command, sys.executable, str(ZERO_CODE_APP)], full)


class LanewatchUp:
    """`lanewatch up` on free ports (port 0 + --ready-file), with a short trace wait."""

    def __init__(self, workdir: Path) -> None:
        cfg = workdir / "lanewatch.yaml"
        cfg.write_text("trace_wait_s: 1\nflush_interval_s: 0.2\nliveness_ttl_s: 10\n")
        ready = workdir / "ready.json"
        argv = [sys.executable, "-m", "lanewatch.cli", "up", "--otlp-http-port", "0", "--otlp-grpc-port", "-1",
                "--port", "0", "--data-dir", str(workdir / "data"), "--config", str(cfg),
                "--ready-file", str(ready), "--log-level", "WARNING"]
        self.proc = subprocess.Popen(argv, env=clean_env(), stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not ready.exists() or not ready.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("lanewatch up did not start")
            time.sleep(0.1)
        ep = json.loads(ready.read_text())
        self.otlp = str(ep["otlp_http"])
        self.api = str(ep["url"]) + "/api/v1"

    def get(self, path: str) -> Any:
        return json.loads(http_get(self.api + path)[1])

    def wait_for(self, path: str, predicate: Any, timeout_s: float = 20) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.get(path)
            if predicate(value):
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path}: condition not met; last answer {value}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
