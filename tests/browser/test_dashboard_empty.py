"""A fresh lanewatch with no spans: every page says, in one sentence, what to do next."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dashboard_browser_support import Browser, Running, start_lanewatch

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with start_lanewatch(tmp_path_factory.mktemp("fresh"), traffic=False) as running:
        yield running


@pytest.mark.parametrize("path,empty", [("/", "#overview-empty"), ("/violations", "#violations-empty"),
                                        ("/compare", "#compare-empty"), ("/lanes", "#lanes-empty")])
def test_empty_pages_say_where_to_send_spans(fresh: Running, browser: Browser, path: str,
                                             empty: str) -> None:
    browser.page.goto(fresh.url + path)
    box = browser.page.wait_for_selector(empty, timeout=10_000)
    assert box is not None
    port = fresh.collector.endpoints()["otlp_http_port"]
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in box.inner_text()
    assert f"http://127.0.0.1:{port}" in box.inner_text()
    browser.page.wait_for_timeout(1200)
    assert browser.errors == []
