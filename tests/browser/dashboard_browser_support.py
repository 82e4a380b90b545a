"""Helpers of the dashboard browser tests (a uniquely named module: no ``from conftest import``).

* :func:`start_lanewatch`: ``lanewatch up`` in-process on free loopback ports
  (:class:`lanewatch.server.Collector`), fed by a real-SDK mesh.
* :class:`Running`, :class:`Browser`: what the tests get from the fixtures.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard_mesh import Mesh

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOSTILE = "<img src=x onerror=alert(1)>"
HAVE_API = importlib.util.find_spec("lanewatch.api") is not None
INSTANCES = (("A", "base"), ("A", "gray"), ("B", "base"), ("C", "base"), ("C", "gray"),
             (HOSTILE, "base"))


@dataclass
class Running:
    """What the tests reach: the dashboard URL, the Query, the mesh sending spans."""

    url: str
    query: Any
    mesh: Mesh
    collector: Any
    api: bool
    extra: list[Any] = field(default_factory=list)

    def summary(self, window_s: int) -> dict[str, Any]:
        """The summary as the API reports it (or the Query the API serves, without it)."""
        if self.api:
            import requests

            resp = requests.get(f"{self.url}/api/v1/summary", params={"window": window_s}, timeout=5)
            resp.raise_for_status()
            data: dict[str, Any] = resp.json()
            return data
        result: dict[str, Any] = self.query.summary(window_s)
        return result


@dataclass
class Browser:
    """A Chromium page at 1440x900 that records console errors and dialogs."""

    page: Any
    errors: list[str]
    dialogs: list[str]


def serve_dashboard(collector: Any) -> tuple[str, Any]:
    """The dashboard alone on a Flask app over the collector's Query (when there is no API)."""
    import flask
    from werkzeug.serving import make_server

    from lanewatch.dashboard.app import create_dash

    app = flask.Flask("lanewatch-test")
    create_dash(app, collector.query, collector.settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def send_baseline(mesh: Mesh) -> None:
    """Gray enters A-gray, falls back at B (no gray B), returns to C-gray; base stays base."""
    for _ in range(12):
        mesh.call([("A", "base"), ("B", "base"), ("C", "base")], "base")
    for _ in range(6):
        mesh.call([("A", "gray"), ("B", "base"), ("C", "gray")], "gray")
    for _ in range(3):
        mesh.call([(HOSTILE, "base"), ("C", "base")], "base")


def free_port() -> int:
    """A loopback port free right now (so that settings name the port really bound)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Switchboard:
    """The demo's real control server (its fault switchboard) on a free port."""

    def __init__(self, on: dict[str, bool]) -> None:
        from lanewatch.demo.control import ControlApp, ControlServer
        from lanewatch.demo.faults import Switchboard as Faults
        from lanewatch.demo.registry import Registry

        self.board = Faults()
        for name, state in on.items():
            self.board.set(name, state)
        self.server = ControlServer(ControlApp(Registry(), self.board)).start()
        self.url = self.server.url

    @property
    def faults(self) -> dict[str, bool]:
        return self.board.snapshot()

    def close(self) -> None:
        self.server.stop()


@contextmanager
def start_lanewatch(data_dir: Path, traffic: bool = True, **overrides: Any) -> Iterator[Running]:
    """``lanewatch up`` in-process; with ``traffic``, the baseline already judged."""
    from lanewatch.config import Settings
    from lanewatch.server import Collector

    options: dict[str, Any] = {
        "host": "127.0.0.1", "otlp_http_port": free_port(), "otlp_grpc_port": -1, "port": 0,
        "data_dir": str(data_dir), "trace_wait_s": 0.5, "flush_interval_s": 0.2,
        "liveness_ttl_s": 60, "trace_url_template": "http://trace.example/{trace_id}"}
    settings = Settings(**{**options, **overrides})
    collector = Collector(settings, web=HAVE_API).start()
    extra = []
    if HAVE_API:
        url = collector.endpoints()["url"]
    else:
        url, server = serve_dashboard(collector)
        extra.append(server)
    mesh = Mesh(collector.endpoints()["otlp_http"])
    try:
        if not traffic:
            yield Running(url=url, query=collector.query, mesh=mesh, collector=collector,
                          api=HAVE_API, extra=extra)
            return
        for svc, lane in INSTANCES:
            mesh.add(svc, lane)
        mesh.beat()
        send_baseline(mesh)
        deadline = time.time() + 10
        while time.time() < deadline:
            lanes = collector.query.summary(300)["lanes"]
            if lanes.get("gray", {}).get("traces", 0) >= 6 and \
                    lanes.get("base", {}).get("traces", 0) >= 15:
                break
            time.sleep(0.2)
        yield Running(url=url, query=collector.query, mesh=mesh, collector=collector,
                      api=HAVE_API, extra=extra)
    finally:
        mesh.shutdown()
        for server in extra:
            server.shutdown()
            server.server_close()
        collector.stop()
