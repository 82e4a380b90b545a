"""Routing rule changes on the dashboard: each change is a marked line on the time series, and a
refused reload is a banner over every page until the file is fixed (issue 13, "Live rules")."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_browser_support import Browser, Running, start_lanewatch

from lanewatch.testing import wait_until

pytestmark = pytest.mark.browser

TOPOLOGY = "topology: {B: [base, gray]}\n"
RULE = "routing_rules:\n  - {service: B, match: {x-user-id: '100'}, lane: gray}\n"


def rewrite(path: Path, text: str) -> None:
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, Path]]:
    tmp = tmp_path_factory.mktemp("rules-ui")
    cfg = tmp / "lanewatch.yaml"
    cfg.write_text(TOPOLOGY)
    with start_lanewatch(tmp / "data", config=str(cfg)) as r:
        yield r, cfg


def test_a_rule_change_is_marked_on_the_time_series(running: tuple[Running, Path], browser: Browser) -> None:
    r, cfg = running
    rewrite(cfg, TOPOLOGY + RULE)
    wait_until(lambda: r.query.rules.book.current.version == 2, 5, "version 2 in force")
    page = browser.page
    for path, chart in (("/", "#overview-qps"), ("/compare?service=B&lane=gray", "#compare-qps")):
        page.goto(r.url + path)
        page.wait_for_function(
            f"""() => [...document.querySelectorAll('{chart} .annotation-text')]
                 .some(el => el.textContent === 'rules v2 (file)')""", timeout=15_000)
    assert browser.errors == []


def test_a_refused_reload_is_a_banner_until_fixed(running: tuple[Running, Path], browser: Browser) -> None:
    r, cfg = running
    page = browser.page
    page.goto(r.url + "/violations")
    page.wait_for_selector("#shell-root", timeout=10_000)
    assert page.locator("#shell-rules-banner").is_hidden()
    rewrite(cfg, TOPOLOGY + "routing_rules:\n  - {service: B, lane: gray}\n")
    banner = page.wait_for_selector("#shell-rules-banner:not([hidden])", timeout=12_000)
    assert banner is not None
    text = banner.inner_text()
    assert "Routing rules not reloaded" in text and "routing_rules" in text and "stays in force" in text
    rewrite(cfg, TOPOLOGY + RULE)
    page.wait_for_selector("#shell-rules-banner[hidden]", state="attached", timeout=12_000)
    assert browser.errors == []
