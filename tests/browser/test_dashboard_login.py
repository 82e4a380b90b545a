"""A real `lanewatch up --auth-token` in Chromium: the login page, the one-time link, the
dashboard's own requests carried by the cookie; and the banner of a lanewatch bound beyond
loopback without a token."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_browser_support import Browser

from lanewatch.testing import start_up

pytestmark = pytest.mark.browser

TOKEN = "browser-token-0123456789abcdef"



def shots(tmp_path: Path) -> Path:
    """Where the screenshots go: ``$LANEWATCH_SCREENSHOTS`` (``docs/screenshots`` for the docs'
    login.png and exposed-banner.png), else the test's temporary directory."""
    out = Path(os.environ.get("LANEWATCH_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    proc, ep = start_up(tmp_path_factory.mktemp("login") / "data", "--auth-token", TOKEN)
    yield ep
    proc.terminate()
    proc.communicate(timeout=30)


def test_login_page_then_the_dashboard(guarded: dict[str, Any], browser: Browser, tmp_path: Path) -> None:
    page = browser.page
    page.goto(guarded["url"] + "/violations?window=900")
    page.wait_for_selector("#lw-login", timeout=10_000)
    assert page.locator("#react-entry-point").count() == 0  # no dashboard before signing in
    page.screenshot(path=str(shots(tmp_path) / "login.png"))
    page.fill("#lw-token", "not-the-token-at-all")
    page.click("#lw-login-submit")
    assert "Wrong token" in page.locator("#lw-login-error").inner_text()
    page.fill("#lw-token", TOKEN)
    refused_before = len(browser.errors)  # the login page itself is a 401 (twice by now)
    page.click("#lw-login-submit")
    # the dashboard's callbacks (XHRs) answer: the empty state comes from the data
    empty = page.wait_for_selector("#violations-empty", timeout=15_000)
    assert empty is not None and "OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>" in empty.inner_text()
    assert page.url.endswith("/violations?window=900")
    assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read it
    page.wait_for_timeout(1500)
    assert browser.errors[refused_before:] == []  # every request after signing in was answered


def test_one_time_link(guarded: dict[str, Any], browser: Browser) -> None:
    page = browser.page
    page.goto(guarded["url"] + f"/lanes?token={TOKEN}")
    page.wait_for_selector("#lanes-empty", timeout=15_000)
    assert TOKEN not in page.url and page.url.endswith("/lanes")
    page.goto(guarded["url"] + "/api/v1/health")  # the cookie opens the API in this browser too
    assert '"status":"ok"' in page.content().replace(" ", "")


def test_exposed_without_token_shows_a_banner(tmp_path: Path, browser: Browser) -> None:
    proc, ep = start_up(tmp_path / "data", "--host", "0.0.0.0")
    try:
        page = browser.page
        page.goto(f"http://127.0.0.1:{ep['port']}/")
        banner = page.wait_for_selector("#shell-exposed", timeout=15_000)
        assert banner is not None
        text = banner.inner_text()
        assert "without a token (bound to 0.0.0.0)" in text and "--auth-token" in text
        assert banner.is_visible()
        box = banner.bounding_box()
        assert box is not None and box["y"] < 10 and box["width"] > 1000  # across the top
        page.wait_for_selector("#overview-empty", timeout=15_000)
        page.screenshot(path=str(shots(tmp_path) / "exposed-banner.png"))
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "set --auth-token" in out  # and the log says it too


def test_no_banner_on_loopback(guarded: dict[str, Any], browser: Browser) -> None:
    page = browser.page
    page.goto(guarded["url"] + f"/?token={TOKEN}")
    page.wait_for_selector("#overview-empty", timeout=15_000)
    assert page.locator("#shell-exposed").count() == 0
