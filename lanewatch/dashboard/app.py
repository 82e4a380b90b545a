"""The Dash app shell: pages, shared controls, URL state, theme and time zone.

``create_dash(server, query, settings)`` mounts a multi-page Dash app at
``/`` on the given Flask server (the API lives under ``/api/v1/`` on the same
server). Pages live in :mod:`lanewatch.dashboard.pages`, one module each, and
reach the query layer through :func:`get_query` so that their callbacks stay
plain, testable functions.

Shared inputs every page listens to (ids prefixed ``shell-``):
``shell-state.data`` (the :class:`~lanewatch.dashboard.state.ViewState` as a
dict), ``shell-tick.n_intervals`` (every second), ``shell-theme.data``
("light"/"dark") and ``shell-tz.data`` (the viewer's IANA time zone).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import dash
import flask
from dash import Input, dcc, html

from lanewatch.config import Settings
from lanewatch.dashboard import cache
from lanewatch.dashboard import state as S
from lanewatch.dashboard import theme as T

if TYPE_CHECKING:
    from lanewatch.query import Query

log = logging.getLogger(__name__)

_context: dict[str, Any] = {}

#: (path, label) of the pages, in navigation order.
NAV: tuple[tuple[str, str], ...] = (("/", "Overview"), ("/flow", "Flow"),
                                    ("/violations", "Violations"), ("/compare", "Compare"),
                                    ("/lanes", "Lanes & instances"))


def get_query() -> Query:
    """The :class:`lanewatch.query.Query` the pages read from (set by :func:`create_dash`)."""
    try:
        query: Query = _context["query"]
        return query
    except KeyError:
        raise RuntimeError("lanewatch.dashboard: create_dash() has not been called") from None


def get_settings() -> Settings:
    """The settings given to :func:`create_dash` (defaults before that)."""
    settings: Settings = _context.get("settings") or Settings()
    return settings


def set_context(query: Query, settings: Settings) -> None:
    """Point the pages at ``query`` and ``settings`` (tests may call this directly)."""
    _context["query"], _context["settings"] = query, settings


def colours_for(query: Query, window_s: int) -> dict[str, str]:
    """Lane colours from every lane the system knows (instances ever seen + the window).

    Asked again at most every 5 s per window (lanes come and go slowly).
    """
    def known() -> dict[str, str]:
        lanes = {row["lane"] for row in query.instances()} | set(query.lanes(window_s))
        return T.lane_colours(lanes)

    return cache.per_step(query, 5, ("colours", window_s), known)[0]


def live_inputs() -> list[Input]:
    """The inputs a live page listens to: tick, view state, theme, time zone (in this order)."""
    return [Input("shell-tick", "n_intervals"), Input("shell-state", "data"),
            Input("shell-theme", "data"), Input("shell-tz", "data")]


#: dcc.Graph config shared by the pages.
GRAPH_CONFIG: Any = {"displaylogo": False, "responsive": True,
                                "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


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


def shell() -> html.Div:
    """The layout around every page: header, navigation, shared controls, stores."""
    nav = [dcc.Link(label, href=path, id=f"shell-nav-{label.split()[0].lower()}",
                    className="lw-nav-link") for path, label in NAV]
    return html.Div([
        dcc.Location(id="shell-url", refresh=False),
        dcc.Store(id="shell-state", data=S.ViewState().to_dict()),
        dcc.Store(id="shell-theme", storage_type="local"),
        dcc.Store(id="shell-tz"),
        dcc.Interval(id="shell-tick", interval=1000),
        dcc.Interval(id="shell-slow", interval=5000),
        html.Header([html.Div([html.Span("lanewatch", className="lw-brand"),
                               html.Nav(nav, className="lw-nav")], className="lw-top"),
                     _controls()], className="lw-header"),
        html.Main(dash.page_container, className="lw-main"),
    ], id="shell-root", className="lw-root")


def create_dash(server: flask.Flask, query: Query, settings: Settings) -> dash.Dash:
    """Mount the dashboard at ``/`` on ``server``, reading from ``query``.

    The pages' ``dash.callback`` registrations are global in Dash; creating a
    second app in one process (tests, restarts) starts from a clean list so
    that callbacks are not registered twice.
    """
    set_context(query, settings)
    cache.clear()
    from dash import _callback  # the global registry Dash copies into an app on first request

    _callback.GLOBAL_CALLBACK_LIST.clear()
    _callback.GLOBAL_CALLBACK_MAP.clear()
    options: dict[str, Any] = {"server": server, "update_title": None}  # typed narrower in dash
    app = dash.Dash("lanewatch.dashboard", use_pages=True, pages_folder="pages",
                    url_base_pathname="/", title="lanewatch", suppress_callback_exceptions=True,
                    **options)
    app.layout = shell
    from lanewatch.dashboard import shell_callbacks

    shell_callbacks.register(app)
    log.info("dashboard mounted at / with %d pages", len(dash.page_registry))
    return app
