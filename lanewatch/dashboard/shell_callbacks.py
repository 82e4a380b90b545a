"""Callbacks of the shell: URL <-> controls, filter options, navigation, theme, zone.

Registered on the app (``app.callback``) by :func:`register`; the functions
themselves are plain and tested directly.
"""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, ctx, html, no_update

from lanewatch.dashboard import context as A
from lanewatch.dashboard import state as S
from lanewatch.dashboard import theme as T

_NAV_IDS = [f"shell-nav-{label.split()[0].lower()}" for _, label in A.NAV]


def sync(search: str | None, window: str | None, custom: float | None, service: str | None,
         lane: str | None, current: dict[str, Any] | None, trigger: str | None
         ) -> tuple[Any, ...]:
    """Keep the URL query string, the controls and ``shell-state`` in agreement.

    A URL change (or the first load) sets the controls, with filter options
    that include the URL's values (a dropdown drops a value it has no option
    for); a control change rewrites the URL's view parameters and keeps the page's own
    (``?id=``, ``?name=``). Returns (search, window, custom,
    service, lane, state, custom box hidden, service options, lane options).

    The URL is the only source of the first state: on the initial call the
    ``dcc.Location`` may not have reported the address yet (``search`` is
    ``None``, not ``""``); that call changes nothing, and the Location's own
    report moments later sets everything. A default view can therefore never
    answer after, and overwrite, the shared link's view.
    """
    if trigger is None and search is None:
        return (no_update,) * 9
    if trigger in (None, "shell-url"):
        vs = S.parse_search(search)
        picker, minutes = S.picker_value(vs.window_s)
        service_opts, lane_opts = options(vs.to_dict())
        return (no_update, picker, minutes, vs.service, vs.lane, vs.to_dict(),
                picker != S.CUSTOM, service_opts, lane_opts)
    if current is None:  # a control reporting its mount value before the URL was read
        return (no_update,) * 9
    prev = S.ViewState.from_dict(current)
    vs = S.ViewState(window_s=S.window_from_picker(window, custom), service=service or None,
                     lane=lane or None, kind=prev.kind)
    new_search = S.to_search(vs, S.page_params(search))  # a page's own ?id= / ?name= stays
    return (new_search if new_search != (search or "") else no_update, no_update, no_update,
            no_update, no_update, vs.to_dict() if vs != prev else no_update, window != S.CUSTOM,
            no_update, no_update)


def options(state: dict[str, Any] | None) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Service and lane options over the window; the selected values always stay listed."""
    vs = S.ViewState.from_dict(state)
    query = A.get_query()
    services = set(query.services(vs.window_s)) | {row["service"] for row in query.instances()}
    lanes = set(query.lanes(vs.window_s)) | {row["lane"] for row in query.instances()}
    services |= {vs.service} if vs.service else set()
    lanes |= {vs.lane} if vs.lane else set()
    return ([{"label": s, "value": s} for s in sorted(services)],
            [{"label": x, "value": x} for x in T.order_lanes(lanes)])


def nav(search: str | None, pathname: str | None) -> list[Any]:
    """Navigation links keep the view's query string (not a page's own, like ``id``);
    the current page is marked."""
    view = S.to_search(S.parse_search(search))
    hrefs = [path + view for path, _ in A.NAV]
    classes = ["lw-nav-link lw-active" if path == (pathname or "/") else "lw-nav-link"
               for path, _ in A.NAV]
    return hrefs + classes


_THEME_JS = """
function(n, current) {
    var theme = current;
    if (!theme) {
        var dark = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
        theme = dark ? 'dark' : 'light';
    } else if (n) {
        theme = current === 'dark' ? 'light' : 'dark';
    }
    return theme;
}
"""
_APPLY_THEME_JS = """
function(theme) {
    document.documentElement.setAttribute('data-theme', theme || 'light');
    return theme === 'dark' ? 'Light theme' : 'Dark theme';
}
"""
_TZ_JS = """
function(_) {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'; }
    catch (e) { return 'UTC'; }
}
"""


def rules_banner(_: int | None = None) -> tuple[Any, bool]:
    """The banner over every page while the last reload of the routing rules was refused (the
    rules in force stayed), or while settings changed in the file wait for a restart."""
    rules = A.get_query().rules
    if rules is None:
        return [], True
    health = rules.health()
    failure, waiting = health["last_reload_error"], health["needs_restart"]
    if failure:
        return [html.B("Routing rules not reloaded: "), html.Code(failure["error"][:400]),
                f" ({failure['source']}). Version {health['version']} stays in force; fix it and save again."
                ], False
    if waiting:
        return [f"Changed in {health['watched_file']}, applied at the next restart: ",
                html.Code(", ".join(waiting)), " (routing_rules and topology apply live)."], False
    return [], True


def register(app: dash.Dash) -> None:
    """Attach the shell callbacks to ``app``."""

    @app.callback(Output("shell-url", "search"), Output("shell-window", "value"),
                  Output("shell-custom", "value"), Output("shell-service", "value"),
                  Output("shell-lane", "value"), Output("shell-state", "data"),
                  Output("shell-custom-box", "hidden"), Output("shell-service", "options"),
                  Output("shell-lane", "options"), Input("shell-url", "search"), Input("shell-window", "value"),
                  Input("shell-custom", "value"), Input("shell-service", "value"),
                  Input("shell-lane", "value"), State("shell-state", "data"))
    def _sync(search: str | None, window: str | None, custom: float | None,
              service: str | None, lane: str | None, current: dict[str, Any] | None
              ) -> tuple[Any, ...]:
        return sync(search, window, custom, service, lane, current, ctx.triggered_id)

    @app.callback(Output("shell-service", "options", allow_duplicate=True),
                  Output("shell-lane", "options", allow_duplicate=True),
                  Input("shell-slow", "n_intervals"), Input("shell-state", "data"),
                  prevent_initial_call=True)
    def _options(_: int | None, state: dict[str, Any] | None) -> tuple[Any, Any]:
        return options(state)

    @app.callback(Output("shell-rules-banner", "children"), Output("shell-rules-banner", "hidden"),
                  Input("shell-slow", "n_intervals"))
    def _rules_banner(n: int | None) -> tuple[Any, bool]:
        return rules_banner(n)

    @app.callback([Output(i, "href") for i in _NAV_IDS] + [Output(i, "className") for i in _NAV_IDS],
                  Input("shell-url", "search"), Input("shell-url", "pathname"))
    def _nav(search: str | None, pathname: str | None) -> list[Any]:
        return nav(search, pathname)

    clientside: Any = app.clientside_callback  # untyped in dash
    clientside(_THEME_JS, Output("shell-theme", "data"), Input("shell-theme-toggle", "n_clicks"),
               State("shell-theme", "data"))
    clientside(_APPLY_THEME_JS, Output("shell-theme-toggle", "children"),
               Input("shell-theme", "data"))
    clientside(_TZ_JS, Output("shell-tz", "data"), Input("shell-root", "id"))
