"""What the shell and every page share: the Query, the settings, the navigation, live inputs.

A leaf module (it imports no other dashboard module but :mod:`cache` and
:mod:`theme`), so that :mod:`lanewatch.dashboard.app`, the shell callbacks
and the pages can all import it without a cycle. ``app`` re-exports these
names for the pages that import them from there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dash import Input

from lanewatch.config import Settings
from lanewatch.dashboard import cache
from lanewatch.dashboard import theme as T

if TYPE_CHECKING:
    from lanewatch.query import Query

_context: dict[str, Any] = {}

#: (path, label) of the pages, in navigation order.
NAV: tuple[tuple[str, str], ...] = (("/", "Overview"), ("/alerts", "Alerts"), ("/flow", "Flow"),
                                    ("/violations", "Violations"), ("/compare", "Compare"),
                                    ("/lanes", "Lanes & instances"))

#: dcc.Graph config shared by the pages.
GRAPH_CONFIG: Any = {"displaylogo": False, "responsive": True,
                     "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def get_query() -> Query:
    """The :class:`lanewatch.query.Query` the pages read from (set by ``create_dash``)."""
    try:
        query: Query = _context["query"]
        return query
    except KeyError:
        raise RuntimeError("lanewatch.dashboard: create_dash() has not been called") from None


def get_settings() -> Settings:
    """The settings given to ``create_dash`` (defaults before that)."""
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


def live_inputs(tick: str = "shell-tick") -> list[Input]:
    """The inputs a live page listens to: tick, view state, theme, time zone (in this order).
    ``tick``: ``shell-tick`` (every second) or ``shell-slow`` (every 5 s).

    ``shell-state.data`` is ``None`` until the shell has read the page's URL
    (see :func:`lanewatch.dashboard.shell_callbacks.sync`); a page may show
    its loading state until then.
    """
    return [Input(tick, "n_intervals"), Input("shell-state", "data"),
            Input("shell-theme", "data"), Input("shell-tz", "data")]
