"""What every HTTP answer of the API and dashboard carries, and what it does not say."""

from __future__ import annotations

from typing import Any

#: Sent with every API and dashboard answer: never framed by another site (clickjacking), no
#: content-type sniffing, no referrer to other sites.
SECURITY_HEADERS = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def security_headers(resp: Any) -> Any:
    """Flask ``after_request``: add :data:`SECURITY_HEADERS` (a header already set is kept)."""
    for k, v in SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)
    return resp


def quiet_handler() -> Any:
    """Werkzeug's request handler without its ``Server: Werkzeug/x Python/y`` banner."""
    from werkzeug.serving import WSGIRequestHandler

    class Handler(WSGIRequestHandler):
        server_version = "lanewatch"
        sys_version = ""

        def version_string(self) -> str:
            return "lanewatch"

    return Handler
