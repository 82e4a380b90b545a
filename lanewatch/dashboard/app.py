"""The Dash app shell: pages, shared controls, URL state, theme and time zone.

``create_dash(server, query, settings)`` mounts a multi-page Dash app at
``/`` on the given Flask server (the API lives under ``/api/v1/`` on the same
server). Pages live in :mod:`lanewatch.dashboard.pages`, one module each, and
reach the query layer through :func:`get_query` (from the leaf module
:mod:`lanewatch.dashboard.context`, re-exported here) so that their
callbacks stay plain, testable functions.

Shared inputs every page listens to (ids prefixed ``shell-``):
``shell-state.data`` (the :class:`~lanewatch.dashboard.state.ViewState` as a
dict, ``None`` until the URL was read), ``shell-tick.n_intervals`` (every second), ``shell-theme.data``
("light"/"dark") and ``shell-tz.data`` (the viewer's IANA time zone).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import dash
import flask
from dash import dcc, html

from lanewatch.config import Settings
from lanewatch.dashboard import cache, shell_callbacks
from lanewatch.dashboard import state as S
from lanewatch.dashboard.context import (
    GRAPH_CONFIG,
    NAV,
    colours_for,
    get_query,
    get_settings,
    live_inputs,
    set_context,
)
from lanewatch.dashboard.warm import warm_up

if TYPE_CHECKING:
    from lanewatch.query import Query

log = logging.getLogger(__name__)

__all__ = ["GRAPH_CONFIG", "NAV", "colours_for", "create_dash", "forget_page_callbacks",
           "get_query", "get_settings", "live_inputs", "set_context", "shell"]


def _controls() -> html.Div:
    windows = [{"label": f"last {label}", "value": str(w)} for w, label in S.WINDOWS]
    windows.append({"label": "custom…", "value": S.CUSTOM})
    return html.Div([
        html.Label(["window", dcc.Dropdown(id="shell-window", options=windows,
                                           value=str(S.DEFAULT_WINDOW_S), clearable=False,
                                           searchable=False)], className="lw-ctl lw-ctl-window"),
        html.Label(["minutes", dcc.Input(id="shell-custom", type="number", min=1, step=1,
                                         debounce=True, placeholder="minutes")],
                   id="shell-custom-box", className="lw-ctl lw-ctl-custom", hidden=True),
        html.Label(["service", dcc.Dropdown(id="shell-service", options=[],
                                            placeholder="all services")], className="lw-ctl"),
        html.Label(["lane", dcc.Dropdown(id="shell-lane", options=[], placeholder="all lanes")],
                   className="lw-ctl"),
        html.Button("Dark theme", id="shell-theme-toggle", className="lw-button", n_clicks=0,
                    title="switch between the light and the dark theme"),
    ], className="lw-controls")


def _exposed_banner() -> html.Div | None:
    """A warning across the top when lanewatch is reachable from the network without a token."""
    from lanewatch.access import is_loopback

    settings = get_settings()
    if is_loopback(settings.host) or settings.auth_token or settings.auth_token_file:
        return None
    return html.Div(["Reachable from the network without a token (bound to ", html.Code(settings.host),
                     ("): anyone who can reach this port can read this dashboard and the API and send "
                     "telemetry. Start lanewatch with --auth-token (see docs/security.md).")],
                    id="shell-exposed", className="lw-banner-exposed", role="alert")


def shell() -> html.Div:
    """The layout around every page: header, navigation, shared controls, stores.

    ``shell-state`` starts as ``None`` ("the URL has not been read yet"), not as
    the default view: the only writer of the first state is the URL (see
    :func:`lanewatch.dashboard.shell_callbacks.sync`), so a shared link can
    never be overtaken by defaults. Until a page's data arrives it shows
    "loading…" (``lw-loading``, and ``:empty`` slots in ``assets/lanewatch.css``).
    """
    nav = [dcc.Link(label, href=path, id=f"shell-nav-{label.split()[0].lower()}",
                    className="lw-nav-link") for path, label in NAV]
    return html.Div([
        dcc.Location(id="shell-url", refresh=False),
        dcc.Store(id="shell-state", data=None),
        dcc.Store(id="shell-theme", storage_type="local"),
        dcc.Store(id="shell-tz"),
        dcc.Interval(id="shell-tick", interval=1000),
        dcc.Interval(id="shell-slow", interval=5000),
        _exposed_banner(),
        html.Div(id="shell-rules-banner", className="lw-banner-rules", role="alert", hidden=True),
        html.Header([html.Div([html.Span("lanewatch", className="lw-brand"),
                               html.Nav(nav, className="lw-nav")], className="lw-top"),
                     _controls()], className="lw-header"),
        html.Main(dash.page_container, className="lw-main"),
    ], id="shell-root", className="lw-root")


def forget_page_callbacks() -> int:
    """Empty Dash's global ``dash.callback`` registry; returns how many entries it held.

    Dash (checked on 4.4) keeps ``dash.callback`` registrations in module
    globals of the private ``dash._callback`` (``GLOBAL_CALLBACK_LIST``,
    ``GLOBAL_CALLBACK_MAP``) and moves them into an app only on its first
    request. Creating an app executes the page modules again, so a second app
    in one process (tests, restarts) would get every page callback twice.
    Dash has no public way to reset this (plotly/dash#2664: the maintainers
    keep it private on purpose), so this is the one place that touches it;
    ``tests/unit/test_dashboard_callbacks.py`` fails loudly if Dash changes it.
    """
    from dash import _callback

    registry, by_id = _callback.GLOBAL_CALLBACK_LIST, _callback.GLOBAL_CALLBACK_MAP
    if not isinstance(registry, list) or not isinstance(by_id, dict):
        raise TypeError(f"dash {dash.__version__}: dash._callback's global callback registry "
                        "changed shape; lanewatch.dashboard.app.forget_page_callbacks needs a look")
    held = len(registry)
    registry.clear()
    by_id.clear()
    return held


def create_dash(server: flask.Flask, query: Query, settings: Settings) -> dash.Dash:
    """Mount the dashboard at ``/`` on ``server``, reading from ``query``.

    The pages' ``dash.callback`` registrations are global in Dash; creating a
    second app in one process starts from a clean list
    (:func:`forget_page_callbacks`) so that callbacks are not registered twice.
    """
    set_context(query, settings)
    cache.clear()
    forget_page_callbacks()
    options: dict[str, Any] = {"server": server, "update_title": None}  # typed narrower in dash
    app = dash.Dash("lanewatch.dashboard", use_pages=True, pages_folder="pages",
                    url_base_pathname="/", title="lanewatch", suppress_callback_exceptions=True,
                    **options)
    app.layout = shell
    shell_callbacks.register(app)
    took = warm_up()  # before the process says it is ready: the first page does not pay it
    if took:
        log.info("plotly warmed up in %.0f ms", 1000 * took)
    log.info("dashboard mounted at / with %d pages", len(dash.page_registry))
    return app
