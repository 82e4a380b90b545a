"""Investigating in a real Chromium: shared links, live tables, trace ids, loading states."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from dashboard_browser_support import Browser, Running
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

SHARED = "?window=900&service=C&lane=gray"
#: path -> (JS condition that holds once the page shows the shared link's view)
REFLECTS = {
    "/": """document.querySelectorAll('#overview-headlines .lw-headline').length === 1
            && document.querySelector('#overview-headlines .lw-headline').dataset.lane === 'gray'
            && (document.querySelector('#overview-window-note')?.innerText || '')
               .includes('last 15 min')""",
    "/flow": """[...document.querySelectorAll('#flow-sankey .gtitle')]
                .some(t => t.textContent.includes('last 15 min'))""",
    "/violations": """(document.querySelector('#violations-note')?.innerText || '')
                      .includes('last 15 min')""",
    "/compare": """document.querySelector('#compare-title')?.innerText === 'C: gray vs base'""",
    "/lanes": """(() => { const s = [...document.querySelectorAll('#lanes-matrix td.lw-svc')];
                 const h = [...document.querySelectorAll('#lanes-matrix th .lw-chip')];
                 return s.length === 1 && s[0].innerText === 'C' && h.length === 1
                        && h[0].innerText === 'gray'; })()""",
}


def _controls_say_the_link(page: Any) -> None:
    expect(page.locator("#shell-window")).to_contain_text("last 15 min", timeout=10_000)
    expect(page.locator("#shell-service")).to_contain_text("C", timeout=10_000)
    expect(page.locator("#shell-lane")).to_contain_text("gray", timeout=10_000)


@pytest.mark.parametrize("path", list(REFLECTS))
def test_a_shared_link_wins_on_every_one_of_10_loads(lanewatch_up: Running, browser: Browser,
                                                    path: str) -> None:
    page = browser.page
    for i in range(10):
        page.goto(lanewatch_up.url + path + SHARED)
        page.wait_for_function(REFLECTS[path], timeout=15_000)
        _controls_say_the_link(page)
        page.wait_for_timeout(1200)  # a late default would overwrite the view by now
        assert page.url.endswith(path + SHARED), f"load {i}: the URL became {page.url}"
        assert page.evaluate(REFLECTS[path]), f"load {i}: the page no longer shows the link's view"
        _controls_say_the_link(page)
    assert browser.errors == []


def _leak(running: Running) -> str:
    running.mesh.beat()  # C-gray is live: gray served by C-base is a leak
    return running.mesh.call([("A", "gray"), ("B", "base"), ("C", "base")], "gray")


def test_a_selected_trace_id_survives_new_violations(lanewatch_up: Running,
                                                     browser: Browser) -> None:
    page = browser.page
    first = _leak(lanewatch_up)
    page.goto(lanewatch_up.url + "/violations?window=900")
    code = page.locator(f'a[title="open trace {first}"] code')
    code.wait_for(timeout=10_000)
    page.mouse.move(5, 5)  # the pointer is not over the table
    page.evaluate("""(el) => { const r = document.createRange(); r.selectNodeContents(el);
                     const s = window.getSelection(); s.removeAllRanges(); s.addRange(r); }""",
                  code.element_handle())
    expect(page.locator("#violations-paused")).to_be_visible(timeout=3000)
    newer = [_leak(lanewatch_up) for _ in range(3)]
    page.wait_for_timeout(2500)  # more than two ticks, while the new leaks are judged
    assert page.evaluate("window.getSelection().toString()") == first
    assert page.locator(f'a[title="open trace {newer[-1]}"]').count() == 0  # held still
    page.evaluate("window.getSelection().removeAllRanges()")
    page.locator(f'a[title="open trace {newer[-1]}"]').wait_for(timeout=5000)  # they did arrive
    expect(page.locator("#violations-paused")).to_be_hidden()
    assert browser.errors == []


def test_the_overviews_escapes_hold_a_selected_trace_id(lanewatch_up: Running, browser: Browser) -> None:
    page = browser.page
    first = _leak(lanewatch_up)
    page.goto(lanewatch_up.url + "/?window=900")
    code = page.locator(f'#overview-escapes a[title="open trace {first}"] code')
    code.wait_for(timeout=10_000)
    page.mouse.move(5, 5)
    page.evaluate("""(el) => { const r = document.createRange(); r.selectNodeContents(el);
                     const s = window.getSelection(); s.removeAllRanges(); s.addRange(r); }""",
                  code.element_handle())
    newer = [_leak(lanewatch_up) for _ in range(3)]
    page.wait_for_timeout(2500)  # more than two ticks, while the new leaks are judged
    assert page.evaluate("window.getSelection().toString()") == first
    page.evaluate("window.getSelection().removeAllRanges()")
    page.locator(f'#overview-escapes a[title="open trace {newer[-1]}"]').wait_for(timeout=5000)
    assert browser.errors == []


def test_full_trace_ids_copy_and_open_the_built_in_trace_view(lanewatch_up: Running,
                                                             browser: Browser) -> None:
    page = browser.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"],
                                   origin=lanewatch_up.url)
    tid = _leak(lanewatch_up)
    page.goto(lanewatch_up.url + "/violations?window=900")
    row = page.locator("tr", has=page.locator(f'a[title="open trace {tid}"]'))
    row.wait_for(timeout=10_000)
    assert tid in row.inner_text()  # the full id, not a prefix
    page.mouse.move(5, 5)
    row.locator(".lw-copy").click()
    page.wait_for_function(f"navigator.clipboard.readText().then(t => t === '{tid}')",
                           timeout=5000)
    page.goto(lanewatch_up.url + f"/trace?id={tid}")
    facts = page.locator("#trace-facts")
    expect(facts).to_contain_text("A[gray] -> B[base, fallback] -> C[base, leak]", timeout=10_000)
    expect(facts).to_contain_text("left its lane")
    expect(page.locator("#trace-violations")).to_contain_text("leak")
    page.goto(lanewatch_up.url + "/trace?id=abc")
    expect(page.locator("#trace-error")).to_contain_text("is not a trace id", timeout=10_000)
    page.goto(lanewatch_up.url + "/trace?id=" + "ab" * 16)
    expect(page.locator("#trace-missing")).to_contain_text("was not kept", timeout=10_000)
    assert browser.errors == []


#: path -> (a page callback's output held back, JS that is true while "loading" shows)
LOADING = {
    "/": ("overview-headlines.children", """getComputedStyle(document.querySelector(
          '#overview-headlines'), '::before').content.includes('loading')"""),
    "/violations": ("violations-table.children",
                    "document.querySelector('#violations-table .lw-loading') !== null"),
    "/flow": ("flow-graph.figure", """[...document.querySelectorAll('#flow-graph text')]
              .some(t => t.textContent === 'loading…')"""),
    "/trace?id=" + "ab" * 16: ("trace-body.children",
                               "document.querySelector('#trace-body .lw-loading') !== null"),
}


@pytest.mark.parametrize("path", list(LOADING))
def test_first_render_says_loading_until_the_data_arrives(lanewatch_up: Running,
                                                          browser: Browser, path: str) -> None:
    page = browser.page
    output, loading = LOADING[path]
    held: list[Any] = []
    release = [False]

    def hold(route: Any) -> None:
        if not release[0] and output in (route.request.post_data or ""):
            held.append(route)
        else:
            route.continue_()

    page.route("**/_dash-update-component*", hold)
    page.goto(lanewatch_up.url + path)
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert held, f"{path}: the page never asked for {output}"
    # the data is held back: the page must say it is loading meanwhile, not stay blank (on a
    # busy machine Plotly may take a while to draw the placeholder figure: wait for it, the
    # data cannot arrive while it is held)
    try:
        page.wait_for_function(loading, timeout=10_000)
    except Exception as e:  # playwright's TimeoutError
        raise AssertionError(f"{path}: no loading state while its data is on the way") from e
    assert held and not release[0]
    release[0] = True
    for route in held:
        route.continue_()
    page.wait_for_function(f"!({loading})", timeout=10_000)


def test_alerts_card_has_no_roadmap_talk(lanewatch_up: Running, browser: Browser) -> None:
    page = browser.page
    page.goto(lanewatch_up.url + "/?window=900")
    card = page.locator("#overview-alert-state")
    expect(card).to_contain_text(re.compile(r"(violations|no dead lane), last 15 min"), timeout=10_000)
    assert "issue" not in card.inner_text() and "arrive" not in card.inner_text()
    assert card.locator("a", has_text="Violations").get_attribute("href").startswith("/violations")
    assert card.locator("#overview-alerts-link").get_attribute("href") == "/alerts?window=900"
