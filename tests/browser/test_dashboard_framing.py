"""A foreign page cannot frame the dashboard (clickjacking): Chromium refuses to render it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from dashboard_browser_support import Browser, Running

pytestmark = pytest.mark.browser


def test_a_foreign_site_cannot_frame_the_dashboard(lanewatch_up: Running, browser: Browser) -> None:
    target = lanewatch_up.url + "/"
    page_html = f'<html><body><iframe id="f" src="{target}" width="800" height="600"></iframe></body></html>'

    class Foreign(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page_html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    # another origin: localhost instead of 127.0.0.1, another port
    site = ThreadingHTTPServer(("127.0.0.1", 0), Foreign)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        page = browser.page
        page.goto(f"http://localhost:{site.server_port}/")
        page.wait_for_timeout(3000)
        frame = next(f for f in page.frames if f != page.main_frame)
        # blocked: the frame never loads the dashboard (no Dash app in it)
        assert frame.url != target or frame.evaluate("document.querySelector('#react-entry-point') === null")
        # and the dashboard itself loads fine when opened directly
        page.goto(target)
        page.locator("#react-entry-point").wait_for(timeout=15_000)
    finally:
        site.shutdown()
        site.server_close()
