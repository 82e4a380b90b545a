"""Take the README's dashboard screenshots: every page at 1440x900 in headless Chromium.

Point it at a running dashboard with traffic, e.g. ``lanewatch demo`` with a
fault or two switched on::

    lanewatch demo --scenario 1 --no-browser --run-file /tmp/demo.json &
    lanewatch demo --run-file /tmp/demo.json fault b_gray_errors on
    lanewatch demo --run-file /tmp/demo.json fault proxy_strips_tag on
    python tests/browser/make_screenshots.py --url http://127.0.0.1:PORT --compare "service=B&lane=gray"

Writes ``docs/screenshots/<page>.png`` (and ``overview-dark.png``).

One extra shot, of any page and query, with ``--only NAME [--path PATH]``
(writes ``NAME.png`` only; the page is the path's, so it waits for that page's data)::

    python tests/browser/make_screenshots.py --url ... --only overview-gray --path "/?lane=gray"
    lanewatch demo --run-file /tmp/demo.json fault dead_lane on   # wait past dead_lanes.after_s
    python tests/browser/make_screenshots.py --url ... --only overview-dead-lane --path /
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
    "alerts-page": ("/alerts", "#alerts-rules-table"),
    "flow": ("/flow", "#flow-graph .scatterlayer .trace"),
    "violations": ("/violations", "#violations-table .lw-table"),
    "compare": ("/compare", "#compare-qps .scatterlayer .trace"),
    "lanes": ("/lanes", "#lanes-matrix .lw-matrix"),
}


def ready_for(path: str) -> str:
    """The data marker of the page ``path`` (with or without a query) shows."""
    route = path.split("?", 1)[0].rstrip("/") or "/"
    for page, ready in SHOTS.values():
        if page == route:
            return ready
    raise SystemExit(f"--path {path}: not a page of {', '.join(p for p, _ in SHOTS.values())}")


def plan(compare_query: str, only: str | None, path: str | None) -> list[tuple[str, str, str, str]]:
    """(file stem, path with query, ready selector, theme) of every shot to take."""
    if only is not None:
        target = path or (SHOTS[only][0] if only in SHOTS else None)
        if target is None:
            raise SystemExit(f"--only {only}: not one of {', '.join(SHOTS)}, so --path is needed")
        return [(only, target, ready_for(target), "light")]
    shots = []
    for name, (page, ready) in SHOTS.items():
        query = f"?{compare_query}" if name == "compare" and compare_query else ""
        shots.append((name, page + query, ready, "light"))
    shots.append(("overview-dark", SHOTS["overview"][0], SHOTS["overview"][1], "dark"))
    return shots


def take(url: str, out: Path, shots: list[tuple[str, str, str, str]], timezone: str) -> list[Path]:
    """One PNG per planned shot, in its theme."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for theme in ("light", "dark"):
            mine = [s for s in shots if s[3] == theme]
            if not mine:
                continue
            context = browser.new_context(viewport={"width": 1440, "height": 900},
                                          color_scheme=theme, timezone_id=timezone)
            page = context.new_page()
            for name, path, ready, _ in mine:
                page.goto(url.rstrip("/") + path)
                page.wait_for_selector(ready, timeout=20_000)
                page.wait_for_timeout(2500)  # let the live charts settle
                target = out / f"{name}.png"
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
    p.add_argument("--only", help="take only this shot: a page name above, or a new name with --path")
    p.add_argument("--path", help="with --only: the page and query to shoot, e.g. '/?lane=gray'")
    p.add_argument("--timezone", default="Europe/Berlin")
    a = p.parse_args()
    if a.path and not a.only:
        p.error("--path needs --only NAME")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    take(a.url, Path(a.out), plan(a.compare, a.only, a.path), a.timezone)


if __name__ == "__main__":
    main()
