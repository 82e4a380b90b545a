"""Compare and the Overview's cards in a real Chromium, against a real Collector fed real OTLP.

The mesh: A and B in base and gray, C in base only, and a ``blue`` instance of A that beats
but gets no traffic. Gray B fails half its requests; every span has the same fixed length in
every lane, so only B's errors tell gray from base.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dashboard_browser_support import Browser, Running, start_lanewatch
from dashboard_mesh import Mesh
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

N = 40  # traces per lane: above the 30 requests a verdict needs on each side
SHOTS = os.environ.get("LANEWATCH_SCREENSHOTS", "")


def call(mesh: Mesh, hops: list[tuple[str, str]], lane: str, fail: str | None = None) -> None:
    """One trace along ``hops``; the SERVER span of service ``fail`` ends in ERROR. Hop ``i``
    lasts ``20 - 2i`` ms whatever its lane."""
    attrs = {"lane": lane} if lane != "base" else {}
    t0, ms = time.time_ns() - 50_000_000, 1_000_000
    parent = None
    opened: list[tuple[Any, int]] = []
    for i, (svc, inst_lane) in enumerate(hops):
        tracer = mesh.instances[(svc, inst_lane)].tracer
        server = tracer.start_span(f"GET /{svc}", kind=SpanKind.SERVER, context=parent, attributes=attrs,
                                   start_time=t0 + i * ms)
        if svc == fail:
            server.set_status(Status(StatusCode.ERROR))
        opened.append((server, t0 + (20 - i) * ms))
        if i + 1 < len(hops):
            client = tracer.start_span(f"call {hops[i + 1][0]}", kind=SpanKind.CLIENT, attributes=attrs,
                                       context=trace.set_span_in_context(server), start_time=t0 + i * ms)
            opened.append((client, t0 + (20 - i) * ms))
            parent = trace.set_span_in_context(client)
    for span, end in reversed(opened):
        span.end(end_time=end)


@pytest.fixture(scope="module")
def gray_worse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with start_lanewatch(tmp_path_factory.mktemp("lanewatch-cards"), traffic=False) as running:
        mesh = running.mesh
        for svc, lane in (("A", "base"), ("A", "gray"), ("B", "base"), ("B", "gray"), ("C", "base"),
                          ("A", "blue")):
            mesh.add(svc, lane)
        mesh.beat()
        for i in range(N):
            call(mesh, [("A", "base"), ("B", "base"), ("C", "base")], "base")
            call(mesh, [("A", "gray"), ("B", "gray"), ("C", "base")], "gray", fail="B" if i % 2 else None)
        deadline = time.time() + 15
        while time.time() < deadline:
            rows = running.query.compare_all("gray", 300)
            if any(r["service"] == "B" and r["worse"] for r in rows) and \
                    running.query.summary(300)["lanes"].get("gray", {}).get("traces", 0) >= N:
                break
            time.sleep(0.2)
        mesh.beat()
        yield running


def _shot(b: Browser, name: str) -> None:
    if SHOTS:
        b.page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def test_compare_all_services_lists_verdicts_worst_first_and_links_each(gray_worse: Running,
                                                                        browser: Browser) -> None:
    page = browser.page
    page.goto(gray_worse.url + "/compare?lane=gray")
    page.wait_for_selector("#compare-table tbody tr", timeout=15_000)
    expect(page.locator("#compare-title")).to_have_text("Every service: gray vs base")
    rows = page.locator("#compare-table tbody tr")
    assert rows.nth(0).get_attribute("data-service") == "B"
    first = rows.nth(0).inner_text()
    assert "worse" in first and "gray is worse than base (errors 50.0% vs 0.00%" in first
    for i in range(rows.count()):  # wording and confidence agree on every row
        row = rows.nth(i).inner_text()
        if "no significant difference" in row:
            assert "not shown worse at 99.0% confidence" in row and ">99.9%" not in row
    _shot(browser, "compare-all")
    rows.nth(0).locator("a").click()
    page.wait_for_url(re.compile(r".*/compare\?service=B&lane=gray$"), timeout=10_000)
    expect(page.locator("#compare-title")).to_have_text("B: gray vs base", timeout=10_000)
    expect(page.locator("#compare-all")).to_be_hidden()
    head = page.locator("#compare-verdict-head")
    expect(head).to_contain_text("gray is worse")
    expect(head).to_contain_text("confidence >99.9% that gray is worse")
    assert "no significant difference" not in page.locator("#compare-verdict").inner_text()
    page.wait_for_selector("#compare-qps .scatterlayer .trace", timeout=10_000)
    _shot(browser, "compare-one")
    assert browser.errors == []


def test_gray_card_says_gray_is_worse_and_links_to_compare(gray_worse: Running, browser: Browser) -> None:
    page = browser.page
    page.goto(gray_worse.url + "/")
    card = page.locator('.lw-headline[data-lane="gray"]')
    expect(card).to_have_attribute("data-state", "worse", timeout=15_000)
    expect(card).to_contain_text("gray worse")
    stats = gray_worse.query.summary(300)["lanes"]["gray"]
    expect(card).to_contain_text(f"of {stats['traces']:,} gray traces stayed in lane")
    expect(card).not_to_contain_text("req/s over")
    link = card.locator("a.lw-card-compare")
    assert link.get_attribute("href") == "/compare?service=B&lane=gray&window=300"
    _shot(browser, "overview-gray-worse")
    link.click()
    expect(page.locator("#compare-title")).to_have_text("B: gray vs base", timeout=10_000)
    assert browser.errors == []


def test_an_idle_lane_keeps_its_card_and_compare_says_why_in_full(gray_worse: Running,
                                                                   browser: Browser) -> None:
    page = browser.page
    gray_worse.mesh.beat()
    page.goto(gray_worse.url + "/")
    blue = page.locator('.lw-headline[data-lane="blue"]')
    expect(blue).to_have_attribute("data-state", "dead", timeout=15_000)
    expect(blue).to_contain_text("no blue traffic")
    expect(blue).to_contain_text("1 blue instance is live")
    page.goto(gray_worse.url + "/compare?lane=blue")
    empty = page.locator("#compare-empty")
    expect(empty).to_contain_text("No blue requests last 5 min while 1 blue instance is live (A)",
                                  timeout=15_000)
    assert "start" not in empty.inner_text()
    expect(page.locator("#compare-title")).to_have_text("Is blue worse than base?")
    # the advice wraps inside its box instead of being clipped, and is said once
    assert page.evaluate("(() => { const e = document.querySelector('#compare-empty');"
                         " return e.scrollWidth <= e.clientWidth; })()")
    assert (page.locator("#compare-qps .annotation-text").first.text_content() or "").strip() == ""  # said once
    _shot(browser, "compare-idle-lane")
    assert browser.errors == []
