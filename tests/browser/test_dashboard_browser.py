"""The dashboard in a real headless Chromium against a running lanewatch fed by real OTLP."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from dashboard_browser_support import HOSTILE, Browser, Running, Switchboard
from playwright.sync_api import expect

from lanewatch.dashboard.components import share_text
from lanewatch.demo.faults import FAULTS

pytestmark = pytest.mark.browser

#: path -> an element that exists once the page's callbacks have rendered data
PAGES = {
    "/": "#overview-headlines .lw-headline",
    "/flow": "#flow-graph .scatterlayer .trace",
    "/violations": "#violations-table .lw-table, #violations-empty",
    "/compare": "#compare-qps .scatterlayer .trace",
    "/lanes": "#lanes-matrix .lw-matrix",
}


def _open(b: Browser, url: str, ready: str) -> None:
    b.page.goto(url)
    b.page.wait_for_selector(ready, timeout=10_000)


def test_every_page_loads_without_console_errors(lanewatch_up: Running, browser: Browser) -> None:
    for path, ready in PAGES.items():
        _open(browser, lanewatch_up.url + path, ready)
        browser.page.wait_for_timeout(2200)  # two refresh ticks (the second one patches)
        assert browser.errors == [], f"{path}: {browser.errors}"
    assert browser.dialogs == []


def test_overview_shows_the_lanes_and_numbers_the_api_reports(lanewatch_up: Running,
                                                               browser: Browser) -> None:
    _open(browser, lanewatch_up.url + "/?window=900", PAGES["/"])
    browser.page.wait_for_timeout(1200)
    api = lanewatch_up.summary(900)
    assert {"base", "gray"} <= set(api["lanes"])
    for lane, stats in api["lanes"].items():
        card = browser.page.locator(f'.lw-headline[data-lane="{lane}"]')
        text = card.inner_text()
        assert share_text(stats["stayed"], stats["traces"]) in text
        assert f"of {stats['traces']:,} {lane} traces" in text
        assert f"{stats['requests']:,} hops" in text


def test_injected_leak_appears_on_violations_within_3s(lanewatch_up: Running,
                                                       browser: Browser) -> None:
    _open(browser, lanewatch_up.url + "/violations", PAGES["/violations"])
    mesh = lanewatch_up.mesh
    mesh.beat()  # C-gray is live: gray served by C-base is a leak, not a fallback
    start = time.monotonic()
    trace_id = mesh.call([("A", "gray"), ("B", "base"), ("C", "base")], "gray")
    row = browser.page.locator(f'a[title="open trace {trace_id}"]')
    row.wait_for(timeout=3000)
    elapsed = time.monotonic() - start
    assert elapsed <= 3.0
    tr = browser.page.locator("tr", has=row)
    assert "leak" in tr.inner_text()
    assert "A[gray] -> B[base, fallback] -> C[base, leak]" in tr.inner_text()
    assert row.get_attribute("href") == f"http://trace.example/{trace_id}"


def test_hostile_service_name_renders_as_text(lanewatch_up: Running, browser: Browser) -> None:
    page = browser.page
    _open(browser, lanewatch_up.url + "/lanes", PAGES["/lanes"])
    cells = page.locator("#lanes-matrix td.lw-svc")
    assert HOSTILE in cells.all_inner_texts()
    _open(browser, lanewatch_up.url + "/flow", PAGES["/flow"])
    page.wait_for_timeout(500)
    svg_text = " ".join(page.locator("#flow-graph text").all_text_contents())
    assert HOSTILE in svg_text
    page.locator("#shell-service").click()
    assert page.get_by_text(HOSTILE, exact=True).count() >= 1
    assert page.locator("img[src='x']").count() == 0
    assert browser.dialogs == []
    assert browser.errors == []


def test_filters_live_in_the_url(lanewatch_up: Running, browser: Browser) -> None:
    page = browser.page
    _open(browser, lanewatch_up.url + "/?window=60&lane=gray", PAGES["/"])
    expect(page.locator("#shell-window")).to_contain_text("last 1 min")
    expect(page.locator("#shell-lane")).to_contain_text("gray")
    expect(page.locator(".lw-headline")).to_have_count(1)  # only the gray lane
    expect(page.locator("#shell-nav-violations")).to_have_attribute(
        "href", "/violations?window=60&lane=gray")
    page.locator("#shell-window").click()
    page.get_by_text("last 15 min", exact=True).click()
    page.wait_for_url(re.compile(r".*window=900.*"), timeout=10_000)
    assert "lane=gray" in page.url


def test_theme_switch_persists(lanewatch_up: Running, browser: Browser) -> None:
    page = browser.page
    _open(browser, lanewatch_up.url + "/", PAGES["/"])
    before = page.evaluate("document.documentElement.getAttribute('data-theme')")
    page.locator("#shell-theme-toggle").click()
    after = "dark" if before == "light" else "light"
    page.wait_for_function(f"document.documentElement.getAttribute('data-theme') === '{after}'",
                           timeout=10_000)
    page.reload()
    page.wait_for_function(f"document.documentElement.getAttribute('data-theme') === '{after}'",
                           timeout=20_000)


def _point_of_trace(page: Any, graph_id: str, name: str) -> dict[str, float]:
    """Screen position of the first point of the trace called ``name`` in a dcc.Graph."""
    box = page.evaluate("""([gid, name]) => {
        const gd = document.querySelector('#' + gid + ' .js-plotly-plot');
        const i = gd._fullData.findIndex(t => t.name === name);
        const pt = gd.querySelectorAll('.scatterlayer .trace')[i].querySelector('.point');
        const r = pt.getBoundingClientRect();
        return {x: r.x + r.width / 2, y: r.y + r.height / 2};
    }""", [graph_id, name])
    return dict(box)


def test_clicking_a_leaking_edge_lists_its_violations(lanewatch_up: Running,
                                                      browser: Browser) -> None:
    page = browser.page
    mesh = lanewatch_up.mesh
    mesh.beat()
    mesh.call([("A", "gray"), ("B", "base"), ("C", "base")], "gray")
    _open(browser, lanewatch_up.url + "/flow", PAGES["/flow"])
    page.wait_for_function("""() => {
        const gd = document.querySelector('#flow-graph .js-plotly-plot');
        return gd && gd._fullData && gd._fullData.some(t => t.name === 'leak');
    }""", timeout=15_000)
    pos = _point_of_trace(page, "flow-graph", "leak")
    page.mouse.click(pos["x"], pos["y"])
    page.wait_for_selector("#flow-edge-violations .lw-table", timeout=10_000)
    assert page.locator("#flow-edge-title").inner_text().startswith("B -> C, lane gray")
    assert "leak" in page.locator("#flow-edge-violations").inner_text()


def test_zoom_survives_the_live_refresh(lanewatch_up: Running, browser: Browser) -> None:
    page = browser.page
    _open(browser, lanewatch_up.url + "/", "#overview-qps .scatterlayer .trace")
    plot = page.locator("#overview-qps .nsewdrag").bounding_box()
    assert plot is not None
    y = plot["y"] + plot["height"] / 2
    page.mouse.move(plot["x"] + plot["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(plot["x"] + plot["width"] * 0.6, y, steps=5)
    page.mouse.up()
    gd = "document.querySelector('#overview-qps .js-plotly-plot')"
    zoomed = page.evaluate(f"{gd}.layout.xaxis.range")
    last_x = page.evaluate(f"{gd}.data[0].x[{gd}.data[0].x.length - 1]")
    assert zoomed is not None
    page.wait_for_timeout(2500)  # at least two refreshes
    assert page.evaluate(f"{gd}.data[0].x[{gd}.data[0].x.length - 1]") != last_x  # it moved on
    assert page.evaluate(f"{gd}.layout.xaxis.range") == zoomed
    assert browser.errors == []


def test_custom_window_goes_into_the_url(lanewatch_up: Running, browser: Browser) -> None:
    page = browser.page
    _open(browser, lanewatch_up.url + "/violations", PAGES["/violations"])
    assert page.locator("#shell-custom-box").is_hidden()
    page.locator("#shell-window").click()
    page.get_by_text("custom…", exact=True).click()
    page.locator("#shell-custom").fill("20")
    page.locator("#shell-custom").press("Enter")
    page.wait_for_url(re.compile(r".*/violations\?window=1200$"), timeout=10000)
    page.wait_for_function("(document.querySelector('#violations-note')?.innerText || '')"
                           ".includes('last 20 min')", timeout=10000)
    page.reload()
    # a reload renders the whole Dash app again: generous under a loaded CI machine
    page.wait_for_function("document.querySelector('#shell-custom')?.value === '20'", timeout=20000)
    assert page.locator("#shell-custom-box").is_visible()


def test_demo_faults_panel_switches_faults(lanewatch_up: Running, switchboard: Switchboard,
                                           browser: Browser) -> None:
    page = browser.page
    _open(browser, lanewatch_up.url + "/", "#overview-faults input")
    expect(page.locator("#overview-faults-status")).to_have_text(f"1 of {len(FAULTS)} faults on.")
    page.get_by_label("c_gray_down").check()
    deadline = time.monotonic() + 10  # a busy shared machine; the state is what is tested
    while not switchboard.faults["c_gray_down"] and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert {k for k, v in switchboard.faults.items() if v} == {"c_gray_down", "proxy_strips_tag"}
    expect(page.locator("#overview-faults-status")).to_have_text(f"2 of {len(FAULTS)} faults on.")
    assert browser.errors == []
