"""Pure builders of Dash HTML pieces: cards, chips, badges, empty states (the alert card is
in :mod:`lanewatch.dashboard.alertparts`).

Like the figure builders they take Query values and return components, with
no I/O. Every user string goes in as a child (Dash renders children as
text), never as HTML.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from dash import dcc, html

from lanewatch.config import Settings
from lanewatch.dashboard import theme as T
from lanewatch.dashboard.timefmt import ago

_HOP_RE = re.compile(r"^(?P<service>.*)\[(?P<inside>[^\[\]]*)\]$", re.DOTALL)


def otlp_hint(settings: Settings) -> str:
    """Where to send spans, for the empty states (``PORT`` when it was picked at start)."""
    host = "HOST" if settings.host in ("0.0.0.0", "::", "") else settings.host
    port = settings.otlp_http_port or "PORT"
    return f"{'https' if settings.tls_cert else 'http'}://{host}:{port}"


def no_spans(settings: Settings) -> str:
    """The one-sentence empty state of a fresh install."""
    token = (" with OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>"
             if settings.auth_token or settings.auth_token_file else "")
    return f"No spans yet: point OTEL_EXPORTER_OTLP_ENDPOINT at {otlp_hint(settings)}{token}."


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


#: Card states, worst first: (label, colour); the label is always written out.
CARD_STATES: dict[str, tuple[str, str]] = {
    "violated": ("violated", T.VERDICT_COLOURS["intrusion"]), "worse": ("{lane} worse", T.FIRST_LANE_COLOUR),
    "dead": ("dead", T.BASE_COLOUR), "ok": ("all stayed in lane", T.VERDICT_COLOURS["in_lane"]),
    "none": ("no finished traces", "var(--lw-border)")}


#: How a count extrapolated from sampled spans is marked, and what hovering it says.
ESTIMATED_MARK = "≈"
ESTIMATED_TITLE = "estimated from sampled spans"


def headline_card(lane: str, stats: Mapping[str, Any], colours: Mapping[str, str], window: str, *,
                  verdict: Mapping[str, Any] | None = None, dead: list[Mapping[str, Any]] | None = None,
                  window_s: int | None = None, live_idle: int = 0) -> html.Div:
    """One lane's answer to "did it stay in lane, and is it worse?".

    ``stats`` is ``summary["lanes"][lane]`` (any key may be missing); ``verdict`` the
    lane's worst row of ``Query.compare_all``; ``dead`` its ``summary["dead_lanes"]``
    entries; ``live_idle`` live instances of the lane seen without traffic (used when
    there are no dead-lane entries). The card says which window or stretch of data
    its numbers cover ("last 5 min", "last 38 s of data").
    """
    traces, stayed = int(stats.get("traces") or 0), int(stats.get("stayed") or 0)
    violated = int(stats["violated"]) if stats.get("violated") is not None else traces - stayed
    covered = stats.get("covered_s")
    span = (f"last {int(covered)} s of data" if covered is not None and window_s
            and float(covered) < window_s - 1 else window)
    states = [k for k, on in (("violated", violated > 0), ("worse", bool(verdict and verdict.get("worse"))),
                              ("dead", bool(dead) or (live_idle > 0 and traces == 0))) if on]
    state = states[0] if states else ("ok" if traces else "none")
    colour = CARD_STATES[state][1]
    badges = [html.Span(CARD_STATES[k][0].format(lane=lane), className=f"lw-note lw-{k}",
                        style={"color": CARD_STATES[k][1]}) for k in states] or [
        html.Span(CARD_STATES[state][0] if traces else f"no finished {lane} traces",
                  className=f"lw-note lw-{state}")]
    estimated = bool(stats.get("estimated"))
    approx = ESTIMATED_MARK if estimated else ""
    if estimated:  # the counts stand for more spans than were received: say so, on hover
        badges.append(html.Span(f"{ESTIMATED_MARK} estimated", className="lw-note lw-estimated",
                                title=ESTIMATED_TITLE, **_data(estimated="true")))
    rows: list[Any] = [
        html.Div([lane_chip(lane, colours), html.Span(badges, className="lw-row")], className="lw-card-head"),
        html.Div(approx + share_text(stayed, traces), className="lw-big", title=ESTIMATED_TITLE if estimated else None),
        html.Div(f"of {approx}{traces:,} {lane} traces stayed in lane, {span}"
                 + (f"; {violated:,} violated" if violated else ""), className="lw-sub")]
    if traces or stats.get("requests"):
        if stats.get("entry_rate") is not None:
            entry = rate_text(stats.get("entry_rate"), " entry req/s")
        else:
            entry = rate_text(traces / window_s if window_s else None, " traces/s entered")
        rows.append(html.Div([html.Span(entry, className="lw-rate"), " · ",
                              pct_text(stats.get("error_rate")), " of hops failed"], className="lw-card-line"))
        rows.append(html.Div(f"{rate_text(stats.get('hop_rate', stats.get('qps')), ' hops/s')} over all "
                             f"services · {approx}{int(stats.get('requests') or 0):,} hops, {span}",
                             className="lw-sub"))
    if dead or (live_idle and traces == 0):
        idle = max((float(d.get("idle_s") or 0) for d in dead or []), default=0.0)
        n = sum(int(d.get("live_instances") or 0) for d in dead or []) or live_idle
        services = sorted({str(d.get("service")) for d in dead or []})
        since = f" for {ago(idle).removesuffix(' ago')}" if idle >= 1 else ""
        rows.append(html.Div(f"no {lane} traffic{since} while {n} {lane} instance{'s' * (n != 1)} "
                             f"{'are' if n != 1 else 'is'} live" + (f" ({', '.join(services)})" if services else ""),
                             className="lw-card-line lw-dead-note", **_data(dead="true")))
    if verdict:
        params = {"service": str(verdict["service"]), "lane": lane, **({"window": str(window_s)} if window_s else {})}
        href = f"/compare?{urlencode(params)}"
        worse = verdict.get("worse")
        label = "worse" if worse else "not worse" if worse is False else "no verdict"
        rows.append(html.Div([html.Span(label, className="lw-badge " + (
            "lw-v-in_lane" if worse is False else ""), style={"backgroundColor": CARD_STATES["worse"][1]} if worse else {}), " ",
            dcc.Link(f"{verdict['service']}: {verdict.get('text', '')}", href=href,
                     className="lw-card-compare")], className="lw-card-line", **_data(worse=str(worse).lower())))
    return html.Div(rows, className=f"lw-card lw-headline lw-{state}", style={"borderLeftColor": colour},
                    **_data(lane=lane, state=state))


def headline_cards(summary: Mapping[str, Any], colours: Mapping[str, str], window: str, *,
                   window_s: int | None = None, verdicts: list[Mapping[str, Any]] | None = None,
                   instances: list[Mapping[str, Any]] | None = None, lane: str | None = None
                   ) -> list[html.Div]:
    """One card per lane, base first: lanes of ``summary["lanes"]``, of ``summary["dead_lanes"]``
    and (non-base) lanes with live ``instances`` but no traffic; only ``lane`` when given.

    ``verdicts`` are ``Query.compare_all`` rows, worst first: each lane shows its first."""
    lanes = dict(summary.get("lanes") or {})
    dead: dict[str, list[Mapping[str, Any]]] = {}
    for d in summary.get("dead_lanes") or []:
        dead.setdefault(str(d.get("lane")), []).append(d)
    idle: dict[str, int] = {}
    for r in instances or []:
        if r.get("live") and r.get("lane") != "base" and not (lanes.get(r["lane"]) or {}).get("traces"):
            idle[str(r["lane"])] = idle.get(str(r["lane"]), 0) + 1
    worst: dict[str, Mapping[str, Any]] = {}
    for v in verdicts or []:
        worst.setdefault(str(v.get("lane")), v)
    cover = {"covered_s": summary["covered_s"]} if summary.get("covered_s") is not None else {}
    names = [x for x in T.order_lanes(set(lanes) | set(dead) | set(idle)) if lane is None or x == lane]
    return [headline_card(x, {**cover, **(lanes.get(x) or {})}, colours, window, verdict=worst.get(x),
                          dead=dead.get(x), window_s=window_s, live_idle=idle.get(x, 0)) for x in names]


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

