"""Browser test fixtures: a running lanewatch fed by real OTLP, and a headless Chromium.

The server is :class:`lanewatch.server.Collector` (receivers, pipeline, DuckDB
store, Query) on free loopback ports. When ``lanewatch.api`` is available the
Collector serves the API and the dashboard itself; otherwise the dashboard is
mounted here on a Flask app beside it, over the same Query.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mesh import Mesh

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOSTILE = "<img src=x onerror=alert(1)>"
HAVE_API = importlib.util.find_spec("lanewatch.api") is not None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not os.path.exists(CHROMIUM):
        skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: apt-get install chromium")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


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


def _serve_dashboard(collector: Any) -> tuple[str, Any]:
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


@pytest.fixture(scope="module")
def lanewatch_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """``lanewatch up`` in-process on free ports, with baseline traffic already judged."""
    from lanewatch.config import Settings
    from lanewatch.server import Collector

    data = tmp_path_factory.mktemp("lanewatch-data")
    settings = Settings(host="127.0.0.1", otlp_http_port=0, otlp_grpc_port=-1, port=0,
                        data_dir=str(data), trace_wait_s=0.5, flush_interval_s=0.2,
                        liveness_ttl_s=60, trace_url_template="http://trace.example/{trace_id}")
    collector = Collector(settings, web=HAVE_API).start()
    extra = []
    if HAVE_API:
        url = collector.endpoints()["url"]
    else:
        url, server = _serve_dashboard(collector)
        extra.append(server)
    mesh = Mesh(collector.endpoints()["otlp_http"])
    for svc, lane in (("A", "base"), ("A", "gray"), ("B", "base"), ("C", "base"), ("C", "gray"),
                      (HOSTILE, "base")):
        mesh.add(svc, lane)
    mesh.beat()
    send_baseline(mesh)
    deadline = time.time() + 10
    while time.time() < deadline:
        s = collector.query.summary(300)
        if s["lanes"].get("gray", {}).get("traces", 0) >= 6 and s["lanes"].get("base", {}).get(
                "traces", 0) >= 15:
            break
        time.sleep(0.2)
    running = Running(url=url, query=collector.query, mesh=mesh, collector=collector, api=HAVE_API,
                      extra=extra)
    yield running
    mesh.shutdown()
    for server in extra:
        server.shutdown()
        server.server_close()
    collector.stop()


@dataclass
class Browser:
    """A Chromium page at 1440x900 that records console errors and dialogs."""

    page: Any
    errors: list[str]
    dialogs: list[str]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser(chromium: Any) -> Iterator[Browser]:
    context = chromium.new_context(viewport={"width": 1440, "height": 900},
                                   timezone_id="Europe/Berlin")
    page = context.new_page()
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def on_dialog(d: Any) -> None:
        dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)
    yield Browser(page, errors, dialogs)
    context.close()


def screenshot_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "docs" / "screenshots"
