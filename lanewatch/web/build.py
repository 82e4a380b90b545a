"""The web server of ``up`` and ``serve``: API, dashboard and ``/metrics`` behind access
control, on the bounded request pool, TLS when configured."""

from __future__ import annotations

import dataclasses
import logging
import ssl
from collections.abc import Callable
from typing import Any

from lanewatch.config import Settings
from lanewatch.metrics import MetricsCollector, register_metrics
from lanewatch.query import Query

log = logging.getLogger("lanewatch")


def build_web(settings: Settings, query: Query, metrics: MetricsCollector, *, token: str,
              tls: ssl.SSLContext | None, count_drop: Callable[[str], None],
              count_event: Callable[[str], None], otlp_http_port: int | None) -> Any:
    """A server (not started: ``serve_forever`` on a thread) for ``settings.host:port``.
    ``count_drop``/``count_event``: where refused requests are counted; ``otlp_http_port``: the
    bound receiver port the empty state tells users to export to (None: this process has none)."""
    import flask

    from lanewatch.api import register_api
    from lanewatch.web import access as web_access
    from lanewatch.web.pool import make_bounded_server
    from lanewatch.web.security import quiet_handler, security_headers

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per API request
    app = flask.Flask("lanewatch")
    web_access.install(app, token, web_access.host_check(settings), count_drop, secure=tls is not None)
    register_api(app, query)
    register_metrics(app, metrics)
    try:
        from lanewatch.dashboard.app import create_dash
        shown = settings if otlp_http_port is None else dataclasses.replace(settings, otlp_http_port=otlp_http_port)
        create_dash(app, query, shown)
    except ImportError as e:  # the API still serves without the dashboard
        log.warning("dashboard unavailable: %s", e)
    app.after_request(security_headers)
    s = settings
    server = make_bounded_server(s.host, s.port, app, quiet_handler(), workers=s.api_workers,
                                 backlog=s.api_backlog, wait_s=s.api_wait_s, count=count_event)
    if tls is not None:  # wrapped here, not by werkzeug: each handshake in its request thread
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        server.ssl_context = tls
    return server
