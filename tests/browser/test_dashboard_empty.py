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


#: Hints a fresh install shows: empty-state boxes and texts written on blank charts.
COUNT_HINTS_JS = """() => {
    const shown = el => el.getClientRects().length > 0 && !el.closest('[hidden]');
    const boxes = [...document.querySelectorAll('main .lw-empty')].filter(shown)
        .map(el => el.innerText);
    const charts = [...document.querySelectorAll('main .js-plotly-plot .annotation-text')]
        .map(el => el.textContent).filter(t => t.trim() !== '');
    return boxes.concat(charts).filter(t => !t.includes('loading'));
}"""


@pytest.mark.parametrize("path", ["/", "/flow", "/violations", "/compare", "/lanes", "/trace"])
def test_each_page_says_what_to_do_next_exactly_once(fresh: Running, browser: Browser,
                                                     path: str) -> None:
    page = browser.page
    page.goto(fresh.url + path)
    page.wait_for_function(f"({COUNT_HINTS_JS})().length > 0", timeout=10_000)
    page.wait_for_timeout(3000)  # every live slot has answered, and charts are drawn
    hints = page.evaluate(COUNT_HINTS_JS)
    assert len(hints) == 1, f"{path}: {hints}"
    sentence = hints[0].strip()
    assert sentence.count(". ") == 0 and sentence.endswith("."), sentence  # one sentence
    assert "loading" not in page.locator("main").inner_text()
    assert browser.errors == []
