"""Browser test fixtures: a running lanewatch fed by real OTLP, and a headless Chromium.

The server is :class:`lanewatch.server.Collector` (receivers, pipeline, DuckDB
store, Query, API and dashboard) on free loopback ports; see
:mod:`dashboard_browser_support`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from dashboard_browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Browser,
    Running,
    Switchboard,
    start_lanewatch,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not os.path.exists(CHROMIUM):
        skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: apt-get install chromium")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="module")
def switchboard() -> Iterator[Switchboard]:
    board = Switchboard({"c_gray_down": False, "proxy_strips_tag": True})
    yield board
    board.close()


@pytest.fixture(scope="module")
def lanewatch_up(tmp_path_factory: pytest.TempPathFactory,
                 switchboard: Switchboard) -> Iterator[Running]:
    """``lanewatch up`` in-process on free ports, with baseline traffic already judged, and a
    demo fault switchboard for the Demo faults panel."""
    with start_lanewatch(tmp_path_factory.mktemp("lanewatch-data"),
                         demo_control_url=switchboard.url) as running:
        yield running


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
