"""Take the README's dashboard screenshots: every page at 1440x900 in headless Chromium.

Point it at a running dashboard with traffic, e.g. ``lanewatch demo`` with a
fault or two switched on::

    lanewatch demo --scenario 1 --no-browser --run-file /tmp/demo.json &
    lanewatch demo fault b_gray_errors on; lanewatch demo fault proxy_strips_tag on
    python tests/browser/make_screenshots.py --url http://127.0.0.1:PORT --compare "service=B&lane=gray"

Writes ``docs/screenshots/<page>.png`` (and ``overview-dark.png``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dashboard_browser_support import CHROMIUM, CHROMIUM_ARGS

log = logging.getLogger("make_screenshots")

#: file name -> (path, element that shows the page has data)
SHOTS = {
    "overview": ("/", "#overview-headlines .lw-headline"),
    "flow": ("/flow", "#flow-graph .scatterlayer .trace"),
    "violations": ("/violations", "#violations-table .lw-table"),
    "compare": ("/compare", "#compare-qps .scatterlayer .trace"),
    "lanes": ("/lanes", "#lanes-matrix .lw-matrix"),
}


def take(url: str, out: Path, compare_query: str, timezone: str) -> list[Path]:
    """One PNG per page (light theme), plus the overview in the dark theme."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for theme in ("light", "dark"):
            context = browser.new_context(viewport={"width": 1440, "height": 900},
                                          color_scheme=theme, timezone_id=timezone)
            page = context.new_page()
            for name, (path, ready) in SHOTS.items():
                if theme == "dark" and name != "overview":
                    continue
                query = f"?{compare_query}" if name == "compare" and compare_query else ""
                page.goto(url.rstrip("/") + path + query)
                page.wait_for_selector(ready, timeout=20_000)
                page.wait_for_timeout(2500)  # let the live charts settle
                target = out / (f"{name}.png" if theme == "light" else f"{name}-dark.png")
                page.screenshot(path=str(target))
                written.append(target)
                log.info("wrote %s", target)
            context.close()
        browser.close()
    return written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="dashboard base URL")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "docs" / "screenshots"))
    p.add_argument("--compare", default="", help="query string for the Compare page")
    p.add_argument("--timezone", default="Europe/Berlin")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    take(a.url, Path(a.out), a.compare, a.timezone)


if __name__ == "__main__":
    main()
