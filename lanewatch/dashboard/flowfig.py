"""Pure builders for the Flow page: the service graph and the lane Sankey.

Inputs are ``Query.edges``, ``Query.flows`` and the live lanes per service
(from ``Query.instances``). User strings (service names) are HTML-escaped
before they reach plotly, whose text accepts a few tags: a hostile name shows
as text.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from lanewatch import lane as L
from lanewatch.dashboard import theme as T
from lanewatch.dashboard.figures import empty_figure
from lanewatch.rollups import HOP_VERDICT_LABELS

EDGE_VERDICTS = L.VERDICT_NAMES  # the edge columns of every verdict (rollups.EDGE_METRICS)
#: Edges drawn at most; beyond, the graph is unreadable anyway.
MAX_EDGES = 120


def esc(text: object) -> str:
    """Text safe for plotly labels: ``<`` and ``>`` become entities."""
    return html.escape(str(text), quote=False)


def layered_positions(nodes: Iterable[str], pairs: Iterable[tuple[str, str]]
                      ) -> dict[str, tuple[float, float]]:
    """Left-to-right layout: x = longest call depth from an entry service, y spread per layer.

    Cycles are tolerated (depth stops growing after one pass per node).
    """
    names = sorted(set(nodes))
    links = [(a, b) for a, b in pairs if a != b]
    depth = dict.fromkeys(names, 0)
    for _ in range(len(names)):
        changed = False
        for a, b in links:
            if depth[b] < depth[a] + 1 <= len(names):
                depth[b] = depth[a] + 1
                changed = True
        if not changed:
            break
    layers: dict[int, list[str]] = defaultdict(list)
    for name in names:
        layers[depth[name]].append(name)
    pos: dict[str, tuple[float, float]] = {}
    for x, members in layers.items():
        for i, name in enumerate(members):
            pos[name] = (float(x), (len(members) - 1) / 2 - i)
    return pos


def _edge_label(row: Mapping[str, Any], worst: str) -> str:
    text = f"{esc(row['lane'])} {float(row.get('rate', 0)):,.1f}/s"
    return text if worst == "in_lane" else f"{text} · {T.VERDICT_LABELS[worst]}"


def _worst(row: Mapping[str, Any]) -> str:
    return T.worst_verdict({v: row.get(v, 0) for v in EDGE_VERDICTS})


def pick_edges(edges: Sequence[Mapping[str, Any]], limit: int) -> list[Mapping[str, Any]]:
    """The ``limit`` edges to draw: worst verdict first, then the busiest."""
    ranked = sorted(edges, key=lambda r: (-T.VERDICT_SEVERITY.index(_worst(r)),
                                          -float(r.get("rate", 0)), r["caller"], r["callee"],
                                          r["lane"]))
    return ranked[:limit]


def _width(rate: float) -> float:
    """Line width by rate, in three classes (so that lines of a class share one trace)."""
    return 2.0 if rate < 1 else (3.5 if rate < 50 else 5.5)


def flow_graph_figure(edges: Sequence[Mapping[str, Any]], live_lanes: Mapping[str, Sequence[str]],
                      *, theme: str = "light", selected: Sequence[str] | None = None,
                      window: str = "", max_edges: int = MAX_EDGES) -> go.Figure:
    """Services as nodes (with their live lanes), one arrow per (caller, callee, lane).

    Each arrow takes its worst verdict's colour; its midpoint marker has that
    verdict's shape and a label ``gray 12.0/s · leak``. Markers carry
    ``customdata = [caller, callee, lane]`` so a click selects the edge. At
    most ``max_edges`` edges are drawn (worst, then busiest); the title says so.
    """
    shown = pick_edges(edges, max_edges)
    nodes = set(live_lanes) | {r["caller"] for r in shown} | {r["callee"] for r in shown}
    if not nodes:
        return empty_figure("No services yet: instrument them and send spans to lanewatch.", theme)
    pos = layered_positions(nodes, [(r["caller"], r["callee"]) for r in shown])
    c = T.theme_colours(theme)
    by_pair: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for row in sorted(shown, key=lambda r: (r["caller"], r["callee"], r["lane"])):
        by_pair[(row["caller"], row["callee"])].append(row)
    lines: dict[tuple[str, float], tuple[list[Any], list[Any], list[float]]] = defaultdict(
        lambda: ([], [], []))
    mids: dict[str, list[tuple[float, float, str, list[str], str]]] = defaultdict(list)
    for (a, b), rows in by_pair.items():
        (x0, y0), (x1, y1) = pos[a], pos[b]
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        nx, ny = -(y1 - y0) / length, (x1 - x0) / length
        for k, row in enumerate(rows):
            off = (k - (len(rows) - 1) / 2) * 0.18 + (0.25 if a == b else 0)
            xm, ym = (x0 + x1) / 2 + nx * off, (y0 + y1) / 2 + ny * off
            worst = _worst(row)
            is_sel = selected is not None and list(selected) == [a, b, row["lane"]]
            xs, ys, sizes = lines[(worst, _width(float(row.get("rate", 0))) + 2.5 * is_sel)]
            # stop short of the callee's circle; the last point carries the arrow head
            xs += [x0, xm, x1 - (x1 - xm) * 0.16, math.nan]  # NaN: a gap between edges
            ys += [y0, ym, y1 - (y1 - ym) * 0.16, math.nan]
            sizes += [0, 0, 15, 0]
            counts = ", ".join(f"{T.VERDICT_LABELS[v]} {int(row.get(v, 0)):,}"
                               for v in EDGE_VERDICTS if row.get(v))
            hover = (f"{esc(a)} → {esc(b)} in lane {esc(row['lane'])}<br>"
                     f"{int(row.get('calls', 0)):,} calls, {float(row.get('rate', 0)):,.2f}/s, "
                     f"{int(row.get('errors', 0)):,} errors<br>{counts or 'no verdicts'}")
            mids[worst].append((xm, ym, _edge_label(row, worst), [a, b, row["lane"]], hover))
    # numpy arrays: plotly validates them in bulk, lists element by element (10x slower)
    traces: list[go.Scatter] = [
        go.Scatter(x=np.array(xs), y=np.array(ys), mode="lines+markers", hoverinfo="skip",
                   showlegend=False,
                   line={"color": T.verdict_colour(verdict), "width": width, "shape": "spline"},
                   marker={"symbol": "arrow", "angleref": "previous", "size": np.array(sizes),
                           "color": T.verdict_colour(verdict)})
        for (verdict, width), (xs, ys, sizes) in sorted(lines.items())]
    for verdict in EDGE_VERDICTS:
        pts = mids.get(verdict)
        if not pts:
            continue
        traces.append(go.Scatter(
            x=np.array([p[0] for p in pts]), y=np.array([p[1] for p in pts]), mode="markers+text",
            text=np.array([p[2] for p in pts], dtype=object), textposition="top center",
            customdata=np.array([p[3] for p in pts], dtype=object),
            hovertext=np.array([p[4] for p in pts], dtype=object),
            hovertemplate="%{hovertext}<extra></extra>",
            name=T.VERDICT_LABELS[verdict], textfont={"color": c["text"], "size": 11},
            marker={"color": T.verdict_colour(verdict), "size": 14,
                    "symbol": T.VERDICT_SYMBOLS[verdict], "line": {"width": 1, "color": c["paper"]}}))
    names = sorted(nodes)
    labels = [f"<b>{esc(n)}</b><br>{esc(' · '.join(live_lanes.get(n) or ['no live instance']))}"
              for n in names]
    traces.append(go.Scatter(
        x=[pos[n][0] for n in names], y=[pos[n][1] for n in names], mode="markers+text",
        text=labels, textposition="bottom center", name="service", showlegend=False,
        cliponaxis=False, hovertext=labels, hovertemplate="%{hovertext}<extra></extra>",
        marker={"size": 30, "color": c["paper"], "line": {"width": 2, "color": c["muted"]}}))
    hidden = {"visible": False, "showgrid": False, "zeroline": False}
    xs_all, ys_all = [p[0] for p in pos.values()], [p[1] for p in pos.values()]
    title = f"Service graph, edges by worst verdict ({window})"
    if len(shown) < len(edges):
        title += (f": the {len(shown)} worst or busiest of {len(edges)} edges; "
                  "pick a service to see all of its edges")
    layout = T.base_layout(theme, uirevision="flow", hovermode="closest", clickmode="event",
                           xaxis={**hidden, "range": [min(xs_all) - 0.6, max(xs_all) + 0.6]},
                           yaxis={**hidden, "range": [min(ys_all) - 0.8, max(ys_all) + 0.6]},
                           title={"text": title, "x": 0, "font": {"size": 14}})
    return go.Figure(data=traces, layout=layout)


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def sankey_figure(flows: Sequence[Mapping[str, Any]], *, colours: Mapping[str, str],
                  theme: str = "light", title: str = "") -> go.Figure:
    """Expected lane (left) -> instance lane that served it (right), per hop.

    Links take the verdict's colour and name it on hover; the legend line
    under the chart names every colour.
    """
    totals: dict[tuple[str, str, str], int] = defaultdict(int)
    for row in flows:
        totals[(row["expected_lane"], row["instance_lane"], row["verdict"])] += int(row["requests"])
    totals = {k: v for k, v in totals.items() if v > 0}
    if not totals:
        return empty_figure("No hops in this window yet.", theme)
    left = T.order_lanes(k[0] for k in totals)
    right = T.order_lanes(k[1] for k in totals)
    labels = [f"expects {esc(x)}" for x in left] + [f"served by {esc(x)}" for x in right]
    node_colours = [colours.get(x, T.BASE_COLOUR) for x in left + right]
    keys = sorted(totals, key=lambda k: (left.index(k[0]), right.index(k[1]), k[2]))
    link = {"source": np.array([left.index(k[0]) for k in keys]),
            "target": np.array([len(left) + right.index(k[1]) for k in keys]),
            "value": np.array([totals[k] for k in keys]),
            "color": np.array([_rgba(T.verdict_colour(k[2]), 0.55) for k in keys], dtype=object),
            "customdata": np.array([T.VERDICT_LABELS.get(k[2], esc(k[2])) for k in keys],
                                   dtype=object),
            "hovertemplate": "%{source.label} → %{target.label}<br>%{customdata}: "
                             "%{value:,} requests<extra></extra>"}
    c = T.theme_colours(theme)
    legend = " ".join(f"<span style='color:{T.verdict_colour(v)}'>■ {T.VERDICT_LABELS[v]}</span>"
                      for v in HOP_VERDICT_LABELS)
    sankey = go.Sankey(node={"label": labels, "color": node_colours, "pad": 18, "thickness": 16,
                             "line": {"width": 0}}, link=link, arrangement="snap",
                       textfont={"color": c["text"]})
    layout = T.base_layout(theme, title={"text": title, "x": 0, "font": {"size": 14}},
                           annotations=[{"text": legend, "showarrow": False, "x": 0, "y": -0.08,
                                         "xref": "paper", "yref": "paper", "xanchor": "left"}],
                           uirevision="sankey")
    return go.Figure(data=[sankey], layout=layout)
