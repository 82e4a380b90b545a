"""The alerts in a real Chromium: the Overview's card and the Alerts page, against a real
in-process ``lanewatch up`` fed real OTLP.

The leak: B-gray starts and beats, yet 30 gray requests are served by B-base, so
the alert engine (evaluating every second) raises LaneLeak for (B, gray).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from dashboard_browser_support import Browser, Running, start_lanewatch
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("LANEWATCH_SCREENSHOTS", "")
LEAKS = 30


def leak_alert(running: Running) -> dict[str, Any] | None:
    """The firing LaneLeak of (B, gray) as ``GET /api/v1/alerts`` reports it, if any."""
    resp = requests.get(f"{running.url}/api/v1/alerts", timeout=5)
    resp.raise_for_status()
    for a in resp.json()["alerts"]:
        if a["name"] == "LaneLeak" and a["state"] == "firing" and a["labels"].get("service") == "B":
            return dict(a)
    return None


#: The leaks must stay in the alert's 60 s window for a whole test: they are sent again when the
#: last ones are older than this (the alert keeps firing, with fresh evidence).
FRESH_S = 15
_sent = {"at": 0.0}


def make_it_fire(running: Running, timeout_s: float = 30) -> dict[str, Any]:
    """Leak gray traffic at B (unless that was done in the last :data:`FRESH_S` s) and wait
    until LaneLeak fires."""
    found = leak_alert(running)
    if found and time.time() - _sent["at"] < FRESH_S:
        return found
    running.mesh.beat()
    for _ in range(LEAKS):
        running.mesh.call([("A", "gray"), ("B", "base"), ("C", "gray")], "gray")
    _sent["at"] = time.time()
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        found = leak_alert(running)
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"LaneLeak did not fire within {timeout_s} s of {LEAKS} leaked requests")


@pytest.fixture(scope="module")
def leaking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with start_lanewatch(tmp_path_factory.mktemp("lanewatch-alerts")) as running:
        running.mesh.add("B", "gray")
        running.mesh.beat()
        deadline = time.time() + 10
        while time.time() < deadline and not any(
                r["service"] == "B" and r["lane"] == "gray" and r["live"] for r in running.query.instances()):
            time.sleep(0.1)
        make_it_fire(running)
        yield running


def _shot(b: Browser, name: str, full: bool = False) -> None:
    if SHOTS:
        b.page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=full)


def _charts(b: Browser) -> None:
    """Wait until the Overview's charts are drawn (for screenshots)."""
    b.page.wait_for_selector("#overview-qps .scatterlayer .trace", timeout=15_000)
    b.page.wait_for_selector("#overview-verdicts .barlayer .trace", timeout=15_000)


def _dark(b: Browser) -> None:
    b.page.click("#shell-theme-toggle")
    expect(b.page.locator("html")).to_have_attribute("data-theme", "dark")


def test_overview_card_shows_the_leak_firing_and_links_to_its_violations(leaking: Running,
                                                                         browser: Browser) -> None:
    page = browser.page
    alert = make_it_fire(leaking)
    page.goto(leaking.url + "/")
    card = page.locator("#overview-alert-state")
    expect(card).to_have_attribute("data-state", "firing", timeout=15_000)
    expect(page.locator("#overview-alert-head")).to_contain_text("FIRING")
    item = card.locator('[data-alert="LaneLeak"]')
    expect(item).to_have_attribute("data-fingerprint", alert["fingerprint"])
    expect(item).to_contain_text("B · gray")
    expect(item).to_contain_text(re.compile(r"firing for \d+ (s|min)"))
    deadline = time.time() + 10  # the page shows the API's sentence (it may move on meanwhile)
    while (a := leak_alert(leaking)) is not None and a["text"] not in item.inner_text() \
            and time.time() < deadline:
        time.sleep(0.3)
    assert a is not None and a["text"] in item.inner_text()
    assert re.search(r"B served \d+ of \d+ gray hops \(.*\) outside gray while gray was live", item.inner_text())
    assert "OK" not in page.locator("#overview-alert-head").inner_text()
    _charts(browser)
    _shot(browser, "overview-alert-firing")
    link = item.locator("a.lw-alert-link")
    assert link.get_attribute("href") == "/violations?window=300&service=B&lane=gray&kind=leak"
    link.click()
    page.wait_for_url(re.compile(r".*/violations\?window=300&service=B&lane=gray&kind=leak$"), timeout=10_000)
    rows = page.locator("#violations-table tbody tr")
    expect(rows.first).to_be_visible(timeout=15_000)
    assert rows.count() >= 20
    for i in range(rows.count()):
        assert "leak" in rows.nth(i).inner_text()
        assert rows.nth(i).locator("td.lw-svc").inner_text().split(" -> ")[-1] == "B"
    expect(page.locator("#shell-service")).to_contain_text("B")
    expect(page.locator("#violations-kind")).to_contain_text("leak")
    _dark(browser)
    page.goto(leaking.url + "/")
    expect(page.locator("#overview-alert-state")).to_have_attribute("data-state", "firing", timeout=15_000)
    _charts(browser)
    _shot(browser, "overview-alert-firing-dark")
    assert browser.errors == [] and browser.dialogs == []


def test_alerts_page_lists_the_leak_its_history_and_the_rules(leaking: Running, browser: Browser) -> None:
    page = browser.page
    make_it_fire(leaking)
    page.goto(leaking.url + "/alerts")
    expect(page.locator("#shell-nav-alerts")).to_have_class(re.compile("lw-active"))
    row = page.locator('#alerts-current-table tr[data-alert="LaneLeak"]')
    expect(row).to_have_attribute("data-state", "firing", timeout=15_000)
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text("firing")
    expect(cells.nth(1)).to_have_text("warning")
    expect(cells.nth(3)).to_have_text("B · gray")
    expect(cells.nth(4)).to_contain_text(re.compile(r"\d+ of \d+: .*% \(≥ .*% at 95%\) > 1\.00%"))
    expect(cells.nth(6)).to_contain_text(re.compile(r"(CET|CEST)firing for"))
    assert cells.nth(7).locator("a").get_attribute("href") == \
        "/violations?window=300&service=B&lane=gray&kind=leak"
    expect(page.locator("#alerts-note")).to_contain_text("1 firing")
    fired = page.locator('#alerts-history-table tr[data-alert="LaneLeak"][data-state="firing"]')
    expect(fired.first).to_contain_text("fired")
    expect(fired.first).to_contain_text(re.compile(r"B served \d+ of \d+ gray hops .* outside gray while gray was live"))
    expect(page.locator("#alerts-rules-table tbody tr")).to_have_count(6)
    expect(page.locator("#alerts-evaluation")).to_contain_text(re.compile(r"Evaluated every 1 s; last at"))
    _shot(browser, "alerts-page", full=True)
    # the alert filter writes ?name= and keeps the view; another alert's view is empty
    page.goto(leaking.url + "/alerts?lane=gray&name=DeadLane")
    expect(page.locator("#alerts-empty")).to_contain_text("No DeadLane alert is firing or pending at gray",
                                                          timeout=15_000)
    expect(page.locator("#alerts-empty li")).to_have_count(6)
    page.locator("#alerts-name").click()
    page.get_by_role("option", name="LaneLeak").click()
    page.wait_for_url(re.compile(r".*/alerts\?lane=gray&name=LaneLeak$"), timeout=10_000)
    expect(page.locator('#alerts-current-table tr[data-alert="LaneLeak"]')).to_be_visible(timeout=15_000)
    _dark(browser)
    page.goto(leaking.url + "/alerts")
    expect(page.locator('#alerts-current-table tr[data-alert="LaneLeak"]')).to_be_visible(timeout=15_000)
    _shot(browser, "alerts-page-dark", full=True)
    assert browser.errors == [] and browser.dialogs == []


def test_alerts_tables_hold_still_while_the_viewer_points_at_them(leaking: Running, browser: Browser) -> None:
    page = browser.page
    make_it_fire(leaking)
    page.goto(leaking.url + "/alerts")
    row = page.locator('#alerts-current-table tr[data-alert="LaneLeak"]')
    expect(row).to_be_visible(timeout=15_000)
    page.locator("#alerts-current-table").hover()
    expect(page.locator("#alerts-paused")).to_be_visible(timeout=5_000)
    since = row.locator("td").nth(6).inner_text()
    page.wait_for_timeout(2500)  # "firing for N s" would have moved on
    assert row.locator("td").nth(6).inner_text() == since
    page.mouse.move(5, 5)
    expect(page.locator("#alerts-paused")).to_be_hidden(timeout=5_000)
    assert browser.errors == []
