"""Pure builders of Dash HTML pieces: cards, chips, badges, empty states.

Like the figure builders they take Query values and return components, with
no I/O. Every user string goes in as a child (Dash renders children as
text), never as HTML.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from dash import dcc, html

from lanewatch.config import Settings
from lanewatch.dashboard import theme as T

_HOP_RE = re.compile(r"^(?P<service>.*)\[(?P<inside>[^\[\]]*)\]$", re.DOTALL)


def otlp_hint(settings: Settings) -> str:
    """Where to send spans, for the empty states (``PORT`` when it was picked at start)."""
    host = "HOST" if settings.host in ("0.0.0.0", "::", "") else settings.host
    port = settings.otlp_http_port or "PORT"
    return f"http://{host}:{port}"


def no_spans(settings: Settings) -> str:
    """The one-sentence empty state of a fresh install."""
    return f"No spans yet: point OTEL_EXPORTER_OTLP_ENDPOINT at {otlp_hint(settings)}."


def empty_state(message: str, **kwargs: Any) -> html.Div:
    """A muted box with one sentence telling the viewer what to do next."""
    return html.Div(message, className="lw-empty", **kwargs)


def lane_chip(lane: str, colours: Mapping[str, str]) -> html.Span:
    """A lane's colour swatch followed by its name."""
    colour = colours.get(lane, T.BASE_COLOUR)
    return html.Span([html.Span(className="lw-swatch", style={"backgroundColor": colour}), lane],
                     className="lw-chip", title=f"lane {lane}")


def verdict_badge(verdict: str) -> html.Span:
    """A verdict in its colour, with its name written out (never colour alone)."""
    return html.Span(T.VERDICT_LABELS.get(verdict, verdict), className=f"lw-badge lw-v-{verdict}"
                     if verdict in T.VERDICT_COLOURS else "lw-badge")


def share_text(stayed: int, traces: int) -> str:
    """``99.2%``; never rounds a partial share up to 100%."""
    if traces <= 0:
        return "—"
    pct = math.floor(1000 * stayed / traces) / 10 if stayed < traces else 100.0
    return f"{pct:.1f}%"


def rate_text(value: float | None, unit: str = "/s") -> str:
    """``12.3/s``, ``0.41/s``; missing reads ``—``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.1f}{unit}" if value >= 10 else f"{value:,.2f}{unit}"


def pct_text(value: float | None) -> str:
    """A 0..1 share as ``0.3%``; missing reads ``—``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * value:.2f}%" if value < 0.1 else f"{100 * value:.1f}%"


def _data(**attrs: str) -> dict[str, Any]:
    """``data-*`` attributes for a component (``_data(lane="gray")``)."""
    return {f"data-{k}": v for k, v in attrs.items()}


def headline_card(lane: str, stats: Mapping[str, Any], colours: Mapping[str, str],
                  window: str) -> html.Div:
    """One lane's answer to "did it stay in lane?": share, count, and live rates."""
    traces, stayed = int(stats.get("traces") or 0), int(stats.get("stayed") or 0)
    escaped = traces - stayed
    state = "none" if traces == 0 else ("ok" if escaped == 0 else "bad")
    note = {"none": f"no finished {lane} traces",
            "ok": "all stayed in lane",
            "bad": f"{escaped:,} escaped"}[state]
    return html.Div([
        html.Div([lane_chip(lane, colours), html.Span(note, className=f"lw-note lw-{state}")],
                 className="lw-card-head"),
        html.Div(share_text(stayed, traces), className="lw-big"),
        html.Div(f"of {traces:,} {lane} traces stayed in lane, {window}", className="lw-sub"),
        html.Div(f"{rate_text(stats.get('qps'), ' req/s')} · {pct_text(stats.get('error_rate'))}"
                 f" errors · {int(stats.get('requests') or 0):,} requests", className="lw-sub"),
    ], className=f"lw-card lw-headline lw-{state}", **_data(lane=lane))


def headline_cards(summary: Mapping[str, Any], colours: Mapping[str, str], window: str
                   ) -> list[html.Div]:
    """One headline card per lane, base first."""
    lanes = summary.get("lanes") or {}
    return [headline_card(x, lanes[x], colours, window) for x in T.order_lanes(lanes)]


def alerts_card(summary: Mapping[str, Any], window: str, violations_href: str) -> html.Div:
    """Did anything leave its lane in the window? Firing on any leak, intrusion or lost tag,
    with the counts per kind and a link to the violations view."""
    hops, edges = summary.get("hops") or {}, summary.get("edges") or {}
    counts = {"leak": int(hops.get("leak", 0)), "intrusion": int(hops.get("intrusion", 0)),
              "tag_lost": int(edges.get("tag_lost", 0))}
    total = int(summary.get("violations") or sum(counts.values()))
    if total:
        head = html.Div([html.Span("FIRING", className="lw-badge lw-v-intrusion"),
                         f" {total:,} violations, {window}"], className="lw-alert-head")
        body: list[Any] = [html.Span([verdict_badge(k), f" {v:,}"], className="lw-count")
                           for k, v in counts.items() if v]
        body.append(dcc.Link("see them on Violations", href=violations_href))
    else:
        head = html.Div([html.Span("OK", className="lw-badge lw-v-in_lane"),
                         f" no violations, {window}"], className="lw-alert-head")
        body = [dcc.Link("open Violations", href=violations_href)]
    note = html.Div("Fires on any leak, intrusion or lost lane tag in the window.",
                    className="lw-sub")
    return html.Div([html.H3("Alerts"), head, html.Div(body, className="lw-row"), note],
                    className="lw-card lw-alerts", id="overview-alert-state",
                    **_data(firing="true" if total else "false"))


def loading(what: str = "", **kwargs: Any) -> html.Div:
    """The placeholder a live slot shows until its first data arrives."""
    return html.Div(f"loading {what}…" if what else "loading…", className="lw-loading", **kwargs)


def counters_line(summary: Mapping[str, Any]) -> html.Div:
    """Losses the collector counted (drops, duplicates, unpaired) and the estimate flag."""
    counters = {k: v for k, v in (summary.get("counters") or {}).items() if v}
    parts = [f"{k.replace('_', ' ')} {int(v):,}" for k, v in sorted(counters.items())]
    text = "Collector counters: " + (", ".join(parts) if parts else "no drops, no duplicates")
    if summary.get("estimated"):
        text += ". Counts are estimates from sampled traces."
    return html.Div(text, className="lw-sub lw-counters")


def lane_path(text: str) -> html.Span:
    """``A[gray] -> B[base, fallback] -> C[gray]`` with verdicts in their colours.

    The rendered text equals ``text`` exactly; hops that do not parse stay plain.
    """
    children: list[Any] = []
    for i, hop in enumerate((text or "").split(" -> ")):
        if i:
            children.append(" -> ")
        m = _HOP_RE.match(hop)
        if not m:
            children.append(hop)
            continue
        parts = m.group("inside").split(", ")
        inner: list[Any] = [parts[0]]
        for extra in parts[1:]:
            inner += [", ", html.Span(extra, className=f"lw-v-text lw-v-{extra}"
                                      if extra in T.VERDICT_COLOURS else "")]
        children += [m.group("service"), "[", *inner, "]"]
    return html.Span(children, className="lw-path")

