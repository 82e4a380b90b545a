"""Colours, markers and plot templates: defined once, used by every page.

Every lane keeps one colour everywhere (base a neutral slate, the first
non-base lane amber, further lanes from one qualitative palette) and every
verdict keeps one colour and one marker symbol everywhere (see
``shared/UI.md``). Colour is never the only carrier: callers always put the
lane or verdict name next to it, and markers differ by shape too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from lanewatch import lane as L

BASE_COLOUR: Final = "#64748b"  # slate
FIRST_LANE_COLOUR: Final = "#f59e0b"  # amber
#: The dotted line marking a routing rule change on time series.
RULE_CHANGE_COLOUR: Final = "#94a3b8"
#: Further lanes, in order. Chosen to stay clear of the verdict colours below.
LANE_PALETTE: Final = ("#0d9488", "#db2777", "#0891b2", "#65a30d", "#a16207", "#4f46e5",
                       "#be123c", "#0f766e", "#c026d3", "#57534e")

VERDICT_COLOURS: Final = {
    "in_lane": "#16a34a",   # green
    "fallback": "#2563eb",  # blue
    "leak": "#ea580c",      # orange
    "intrusion": "#dc2626",  # red
    "tag_lost": "#9333ea",  # purple
    "uncertain": "#a1a1aa",  # zinc grey: not known (an overdue gray instance), neither bad nor fine
}
#: Marker shapes, so that a verdict reads without its colour.
VERDICT_SYMBOLS: Final = {
    "in_lane": "circle", "fallback": "square", "leak": "triangle-up",
    "intrusion": "x", "tag_lost": "diamond", "uncertain": "hourglass",
}
#: Severity order, worst last: an edge shows its worst verdict.
VERDICT_SEVERITY: Final = ("in_lane", "fallback", "uncertain", "tag_lost", "leak", "intrusion")
#: Human labels for the verdict names.
VERDICT_LABELS: Final = {"in_lane": "in lane", "fallback": "fallback", "leak": "leak",
                         "intrusion": "intrusion", "tag_lost": "tag lost", "uncertain": "uncertain"}

#: Line styles per lane rank, so that lines differ by more than colour.
LANE_DASHES: Final = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")

THEMES: Final = ("light", "dark")


def order_lanes(lanes: Iterable[str]) -> list[str]:
    """Base first, then a lane named ``gray`` if present, then the rest by name."""
    unique = set(lanes)
    head = [x for x in (L.BASE, "gray") if x in unique]
    return head + sorted(unique - set(head))


def lane_colours(lanes: Iterable[str]) -> dict[str, str]:
    """Colour per lane: base slate, the first other lane amber, then the palette.

    Pass every lane the system knows of (not just those in the window) so that
    a lane keeps its colour when others come and go.
    """
    out: dict[str, str] = {}
    others = 0
    for name in order_lanes(lanes):
        if name == L.BASE:
            out[name] = BASE_COLOUR
        elif others == 0:
            out[name] = FIRST_LANE_COLOUR
            others += 1
        else:
            out[name] = LANE_PALETTE[(others - 1) % len(LANE_PALETTE)]
            others += 1
    return out


def lane_dash(lane: str, lanes: Iterable[str]) -> str:
    """Line dash for ``lane``, stable for a given set of known lanes."""
    ordered = order_lanes(lanes)
    rank = ordered.index(lane) if lane in ordered else len(ordered)
    return LANE_DASHES[rank % len(LANE_DASHES)]


def verdict_colour(verdict: str) -> str:
    """Colour of a verdict name; unknown names get the base slate."""
    return VERDICT_COLOURS.get(verdict, BASE_COLOUR)


def worst_verdict(counts: dict[str, int | float]) -> str:
    """The most severe verdict with a non-zero count (``in_lane`` if none)."""
    worst = "in_lane"
    for name in VERDICT_SEVERITY:
        if counts.get(name, 0):
            worst = name
    return worst


_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
_PALETTES: Final = {
    "light": {"text": "#1e293b", "muted": "#64748b", "grid": "#e2e8f0", "paper": "#ffffff"},
    "dark": {"text": "#e2e8f0", "muted": "#94a3b8", "grid": "#334155", "paper": "#0f172a"},
}


def theme_colours(theme: str) -> dict[str, str]:
    """Text, muted, grid and paper colours of ``theme`` ("light" or "dark")."""
    return _PALETTES.get(theme, _PALETTES["light"])


def base_layout(theme: str, **extra: Any) -> dict[str, Any]:
    """Plotly layout shared by every figure: transparent paper, themed text and grid."""
    c = theme_colours(theme)
    axis = {"gridcolor": c["grid"], "zerolinecolor": c["grid"], "linecolor": c["grid"],
            "color": c["muted"]}
    layout: dict[str, Any] = {
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": _FONT, "color": c["text"], "size": 12},
        "margin": {"l": 56, "r": 16, "t": 44, "b": 40},
        "xaxis": dict(axis),
        "yaxis": dict(axis),
        "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        "hoverlabel": {"font": {"family": _FONT}},
    }
    layout.update(extra)
    return layout
