"""Real HTTP receivers for alert delivery tests, and a real Alertmanager.

:class:`Receiver` is an ``http.server`` on a free loopback port that records every
request and answers from a script (a status code, or "hang until released").
:func:`start_alertmanager` runs Debian's ``prometheus-alertmanager`` on loopback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from lanewatch.demo.web import free_port

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
HANG = "hang"


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class Receiver:
    """Answers the n-th request with ``script[n]`` (then ``default``): a status code, or
    :data:`HANG` (wait until :meth:`release`, at most 30 s, then 200)."""

    script: Sequence[int | str] = ()
    default: int = 200
    requests: list[Request] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        receiver = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    n = len(receiver.requests)
                    receiver.requests.append(Request(self.path, dict(self.headers), json.loads(raw), time.monotonic()))
                answer = receiver.script[n] if n < len(receiver.script) else receiver.default
                if answer == HANG:
                    receiver.released.wait(30)
                    answer = 200
                self.send_response(int(answer))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    @property
    def bodies(self) -> list[Any]:
        with self._lock:
            return [r.body for r in self.requests]

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


def wait_for(condition: Callable[[], Any], timeout_s: float = 15.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if out := condition():
            return out
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@contextmanager
def receiver(script: Sequence[int | str] = (), default: int = 200) -> Iterator[Receiver]:
    rec = Receiver(script, default)
    try:
        yield rec
    finally:
        rec.close()


@contextmanager
def start_alertmanager(tmp: Path, webhook_url: str) -> Iterator[str]:
    """A single-node Alertmanager on a free loopback port routing every alert (grouped by
    alertname, no wait, 1 s group interval) to ``webhook_url``; yields its base URL."""
    if shutil.which(ALERTMANAGER) is None:
        pytest.fail(f"{ALERTMANAGER} is missing: apt-get install -y --no-install-recommends "
                    "prometheus-alertmanager (.ci/run installs it)")
    (tmp / "am.yml").write_text(
        "route: {receiver: hook, group_by: [alertname], group_wait: 0s, group_interval: 1s, "
        "repeat_interval: 1h}\n"
        f"receivers:\n  - name: hook\n    webhook_configs: [{{url: '{webhook_url}', send_resolved: true}}]\n")
    port = free_port()
    log = (tmp / "am.log").open("w")
    proc = subprocess.Popen([ALERTMANAGER, f"--config.file={tmp / 'am.yml'}", f"--storage.path={tmp / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"alertmanager exited {proc.returncode}: {(tmp / 'am.log').read_text()}")
            try:
                return requests.get(f"{url}/api/v2/status", timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_for(ready, 30, "alertmanager to be ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
