"""Pure figure builders: Query return values in, plotly figures out.

No I/O and no Dash here: every builder takes the plain dicts and lists that
:class:`lanewatch.query.Query` returns (see ``docs/design.md``) plus the
theme, the viewer's time zone and the lane colours, and is unit-tested with
hand-written inputs. Graph and Sankey builders live in :mod:`.flowfig`.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from lanewatch import lane as L
from lanewatch.dashboard import theme as T
from lanewatch.dashboard.timefmt import local_axis, zone_label

#: metric key -> (axis title, hover format, tick format)
METRICS: dict[str, tuple[str, str, str]] = {
    "qps": ("requests per second", "%{y:,.2f} req/s", ""),
    #: the overview's ``qps``: server hops summed over every service, not entry requests
    "hops": ("hops per second (all services)", "%{y:,.2f} hops/s", ""),
    "error_rate": ("error rate", "%{y:.2%} errors", ".1%"),
    "p50_ms": ("p50 latency (ms)", "p50 %{y:,.1f} ms", ""),
    "p95_ms": ("p95 latency (ms)", "p95 %{y:,.1f} ms", ""),
    "p99_ms": ("p99 latency (ms)", "p99 %{y:,.1f} ms", ""),
}
PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")
_PCT_DASH = {"p50_ms": "solid", "p95_ms": "dash", "p99_ms": "dot"}


#: Characters per line of an empty figure's message (plotly does not wrap annotations).
WRAP_AT = 60


def empty_figure(message: str, theme: str = "light") -> go.Figure:
    """A blank figure that says, in one sentence, what to do next (wrapped, escaped)."""
    c = T.theme_colours(theme)
    text = "<br>".join(textwrap.wrap(html.escape(message, quote=False), WRAP_AT)) or " "
    layout = T.base_layout(theme, xaxis={"visible": False}, yaxis={"visible": False},
                           annotations=[{"text": text, "showarrow": False, "x": 0.5, "y": 0.5,
                                         "xref": "paper", "yref": "paper",
                                         "font": {"size": 14, "color": c["muted"]}}])
    return go.Figure(layout=layout)


#: Seconds at the live edge withheld from charts: spans for them are still arriving
#: (SDK export batches, the collector's flush), so drawing them dips every refresh.
SETTLE_S = 3


def complete_steps(series: Mapping[str, Any], settle_s: int = SETTLE_S) -> dict[str, Any]:
    """``series`` without the steps that end within ``settle_s`` of its ``to``.

    The headline numbers still count those seconds; only the lines stop short
    of the live edge, so they do not dip at the right on every refresh.
    """
    step = int(series.get("step_s") or 1)
    lanes: dict[str, Any] = {}
    for lane, data in (series.get("lanes") or {}).items():
        ts = list(data.get("ts") or [])
        end = series.get("to") or (ts[-1] + step if ts else 0)
        keep = sum(1 for t in ts if t + step <= end - settle_s)
        lanes[lane] = {k: list(v)[:keep] for k, v in data.items()}
    return {**series, "lanes": lanes}


def _hover(label: str, fmt: str) -> str:
    return f"<b>{label}</b><br>%{{x|%H:%M:%S}} local<br>%{{customdata}} UTC<br>{fmt}<extra></extra>"


def _time_layout(theme: str, tz: str | None, to: float | None, metric: str, title: str,
                 uirevision: str, rule_changes: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    axis_title, _, tickformat = METRICS[metric]
    layout = T.base_layout(theme, title={"text": title, "x": 0, "font": {"size": 14}},
                           uirevision=uirevision, hovermode="x unified")
    layout["xaxis"].update(title={"text": f"local time, {zone_label(tz, to)}"}, type="date")
    layout["yaxis"].update(title={"text": axis_title}, tickformat=tickformat, rangemode="tozero")
    if rule_changes:
        layout["shapes"], layout["annotations"] = rule_change_marks(rule_changes, tz)
    return layout


def rule_change_marks(changes: Sequence[Mapping[str, Any]], tz: str | None
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A dotted vertical line and a label ``rules v3 (file)`` at each routing rule change
    (``rule_changes`` of ``Query.series`` / ``Query.compare``); changes less than
    :data:`RULE_MARK_MERGE_S` apart share one line and one label (``rules v3-v6, 4 changes``),
    which is drawn left of its line (the newest change is often at the right edge)."""
    groups: list[list[Mapping[str, Any]]] = []
    for c in sorted(changes, key=lambda c: float(c["since"])):
        if groups and float(c["since"]) - float(groups[-1][-1]["since"]) < RULE_MARK_MERGE_S:
            groups[-1].append(c)
        else:
            groups.append([c])
    x, _ = local_axis([float(g[-1]["since"]) for g in groups], tz)
    shapes, notes = [], []
    for when, g in zip(np.datetime_as_string(x, unit="ms").tolist(), groups):
        first, last = g[0], g[-1]
        if len(g) == 1:
            text = f"rules v{last['version']} ({last['source']})"
            hover = (f"routing rules version {last['version']} in force from here "
                     f"({last['routing_rules']} rules, applied by {last['source']})")
        else:
            text = f"rules v{first['version']}-v{last['version']}, {len(g)} changes"
            hover = "<br>".join(f"version {c['version']}: {c['routing_rules']} rules, applied by {c['source']}"
                                for c in g) + f"<br>version {last['version']} in force from here"
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": when, "x1": when, "y0": 0, "y1": 1,
                       "line": {"color": T.RULE_CHANGE_COLOUR, "width": 1, "dash": "dot"}})
        notes.append({"x": when, "xref": "x", "y": 1, "yref": "paper", "yanchor": "top", "xanchor": "right",
                      "showarrow": False, "text": text, "font": {"size": 10}, "hovertext": hover})
    return shapes, notes


#: Rule changes closer than this share one mark on the time series.
RULE_MARK_MERGE_S = 10.0


def lane_series_figure(series: Mapping[str, Any], metric: str, *, colours: Mapping[str, str],
                       theme: str = "light", tz: str | None = None, title: str = "",
                       uirevision: str = "live", hops: bool = False) -> go.Figure:
    """One line per lane of ``series["lanes"][lane][metric]`` (from ``Query.series``).

    Lines keep their lane's colour and dash, carry the lane name in the legend
    and the hover, show local time on the axis and UTC on hover. ``uirevision``
    keeps the viewer's zoom across refreshes. ``hops`` labels ``qps`` as what a
    series over several services counts: hops per second, not entry requests.
    """
    lanes = series.get("lanes") or {}
    if not lanes:
        return empty_figure("No requests in this window yet.", theme)
    label = "hops" if metric == "qps" and hops else metric
    traces = []
    for lane in T.order_lanes(lanes):
        tr = lane_trace(lane, lanes[lane], metric, colours, tz)
        tr.update(hovertemplate=_hover(lane, METRICS[label][1]))
        traces.append(tr)
    return go.Figure(data=traces, layout=_time_layout(theme, tz, series.get("to"), label,
                                                      title, uirevision, series.get("rule_changes") or ()))


def lane_trace(lane: str, data: Mapping[str, Any], metric: str, colours: Mapping[str, str],
               tz: str | None) -> go.Scatter:
    """The line of one lane for one metric (also used to patch a live figure)."""
    x, utc = local_axis(data.get("ts") or [], tz)
    y = np.asarray(data.get(metric) or [], dtype="float64")
    colour = colours.get(lane, T.BASE_COLOUR)
    return go.Scatter(x=x, y=y, customdata=utc, name=lane, mode="lines",
                      line={"color": colour, "width": 2, "dash": T.lane_dash(lane, colours)},
                      hovertemplate=_hover(lane, METRICS[metric][1]))


def verdict_figure(hops: Mapping[str, int], tag_lost: int = 0, theme: str = "light",
                   title: str = "") -> go.Figure:
    """Horizontal bars of hop verdict counts plus lost tags, each labelled with its count."""
    hop_names = [v.label for v in L.HOP_VERDICTS]
    names = [*hop_names, L.Verdict.TAG_LOST.label]
    counts = [int(hops.get(n, 0)) for n in hop_names] + [int(tag_lost)]
    if not any(counts):
        return empty_figure("No hops in this window yet.", theme)
    labels = [T.VERDICT_LABELS[n] for n in names]
    bar = go.Bar(x=counts, y=labels, orientation="h", text=[f"{c:,}" for c in counts],
                 textposition="auto", marker={"color": [T.verdict_colour(n) for n in names]},
                 customdata=names, hovertemplate="%{y}: %{x:,}<extra></extra>")
    layout = T.base_layout(theme, title={"text": title, "x": 0, "font": {"size": 14}},
                           showlegend=False, bargap=0.3, uirevision="verdicts")
    layout["yaxis"].update(autorange="reversed")
    layout["xaxis"].update(title={"text": "hops (tag lost: edges)"}, type="log" if max(counts) >
                           1000 * max(1, min(c for c in counts if c)) else "linear")
    return go.Figure(data=[bar], layout=layout)


def compare_figure(compare: Mapping[str, Any], metric: str, *, colours: Mapping[str, str],
                   theme: str = "light", tz: str | None = None, uirevision: str = "compare"
                   ) -> go.Figure:
    """Lane vs base for one service (from ``Query.compare``).

    ``metric`` is ``qps``, ``error_rate`` or ``latency`` (p50/p95/p99 in one
    chart, told apart by dash and name, not by colour alone).
    """
    series = compare.get("series") or {}
    lane, base = compare.get("lane", ""), compare.get("base", "base")
    if not any((series.get(x) or {}).get("ts") for x in (lane, base)):
        service = str(compare.get("service", "this service"))
        return empty_figure(f"No requests to {service} in this window yet.", theme)
    metrics = PERCENTILES if metric == "latency" else (metric,)
    traces = []
    for name in (base, lane):
        data = series.get(name) or {}
        for m in metrics:
            tr = lane_trace(name, data, m, colours, tz)
            label = f"{name} {m.removesuffix('_ms')}" if metric == "latency" else name
            tr.update(name=label, hovertemplate=_hover(label, METRICS[m][1]))
            if metric == "latency":
                tr.line.dash = _PCT_DASH[m]
            traces.append(tr)
    title = {"qps": "Requests per second", "error_rate": "Error rate",
             "latency": "Latency p50 / p95 / p99"}[metric]
    layout = _time_layout(theme, tz, None, metrics[0], title, uirevision, compare.get("rule_changes") or ())
    if metric == "latency":
        layout["yaxis"]["title"] = {"text": "latency (ms)"}
    return go.Figure(data=traces, layout=layout)
