"""Pure builders of the alert pieces: the Overview's alert card, the Alerts page's tables.

They take :meth:`lanewatch.query.Query.alerts` and ``Query.summary`` values and return
components, with no I/O. The wording and the scope rules are in
:mod:`lanewatch.dashboard.alertview`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dash import dcc, html

from lanewatch import lane as L
from lanewatch.dashboard import alertview as V
from lanewatch.dashboard import components as C
from lanewatch.dashboard.timefmt import local_time, utc_time

#: The card lists at most this many alerts; the rest are on the Alerts page.
CARD_ITEMS = 5
_STATE_BADGE = {"firing": ("FIRING", "lw-v-intrusion"), "pending": ("PENDING", "lw-pending"),
                "below": ("NO ALERT", "lw-below"), "ok": ("OK", "lw-v-in_lane"), "off": ("OFF", "")}


def severity_badge(severity: str) -> html.Span:
    """``critical`` red, ``warning`` orange, written out."""
    cls = {"critical": "lw-v-intrusion", "warning": "lw-v-leak"}.get(severity, "")
    return html.Span(severity, className=f"lw-badge lw-sev {cls}".strip())


def state_badge(state: str, history: bool = False) -> html.Span:
    """``firing`` (filled) or ``pending`` (outlined); history rows: ``fired`` / ``resolved``."""
    label = "fired" if history and state == "firing" else state
    cls = {"firing": "lw-v-intrusion", "pending": "lw-pending", "resolved": "lw-v-in_lane"}.get(state, "")
    return html.Span(label, className=f"lw-badge {cls}".strip())


def _counts(summary: Mapping[str, Any]) -> tuple[dict[str, int], int, list[Mapping[str, Any]]]:
    hops, edges = summary.get("hops") or {}, summary.get("edges") or {}
    counts = {k: int(hops.get(k, 0)) for k in L.HOP_VIOLATION_NAMES}
    counts[L.Verdict.TAG_LOST.label] = int(edges.get(L.Verdict.TAG_LOST.label, 0))
    total = int(summary.get("violations") or sum(counts.values()))
    return counts, total, list(summary.get("dead_lanes") or [])


def _item(a: Mapping[str, Any], now: float, window_s: int) -> html.Div:
    said, at = V.since(a, now)
    href = V.explain_href(a.get("link"), window_s)
    return html.Div([
        html.Div([severity_badge(str(a.get("severity"))), " ", html.B(V.name_of(a)), " ",
                  html.Span(V.where_text(a.get("labels") or {}), className="lw-where"),
                  html.Span(said, className="lw-since", title=f"since {utc_time(at)}")],
                 className="lw-alert-line"),
        html.Div(str(a.get("text") or ""), className="lw-wrap lw-alert-text"),
        dcc.Link(V.link_label(a.get("link")) + " →", href=href, className="lw-alert-link"),
    ], className=f"lw-alert-item lw-alert-{a.get('state')}", **C._data(alert=V.name_of(a), state=str(a.get("state")),
                                                                 fingerprint=str(a.get("fingerprint"))))


def alerts_card(alerts: Mapping[str, Any], summary: Mapping[str, Any], window: str, *, now: float,
                window_s: int, service: str | None, lane: str | None, violations_href: str,
                alerts_href: str, rule_window_s: float = 60.0) -> html.Div:
    """The Overview's answer to "is anything alerting?".

    ``alerts`` is ``Query.alerts()``; only the alerts of the view's ``service``/``lane`` are
    listed, firing first, each with its one-sentence text, how long it fires and a link to
    what explains it; the others are counted ("+2 more outside this filter"). Below, the
    window's violation counts and dead lanes from ``summary``: when there are some but no
    alert, the card says they are below the alert thresholds, never "OK".
    """
    everything = list(alerts.get("alerts") or [])
    shown, outside = V.split_scope(everything, service, lane)
    firing_outside = sum(1 for a in everything if a.get("state") == "firing") - sum(
        1 for a in shown if a.get("state") == "firing")
    shown = V.ordered(shown)
    firing = [a for a in shown if a.get("state") == "firing"]
    pending = len(shown) - len(firing)
    counts, total, dead = _counts(summary)
    found = [f"{total:,} violation{'s' * (total != 1)}"] if total else []
    found += [f"{len(dead)} dead lane{'s' * (len(dead) != 1)}"] if dead else []
    at = f" for {' · '.join(x for x in (service, lane) if x)}" if service or lane else ""
    if not V.is_on(alerts):
        state, said = "off", "alert rules are off here (alerts.enabled is false)"
    elif firing:
        state = "firing"
        said = (f"{len(firing)} alert{'s' * (len(firing) != 1)} firing{at}"
                + (f", {pending} pending" if pending else ""))
    elif pending:
        state, said = "pending", (f"{pending} alert{'s' * (pending != 1)} pending{at}: the condition "
                                  "holds, not yet for long enough to fire")
    elif found:
        state, said = "below", f"{', '.join(found)}, {window}: below the alert thresholds"
    else:
        state, said = "ok", f"no alert firing{at}; no violations, no dead lane, {window}"
    label, cls = _STATE_BADGE[state]
    head = html.Div([html.Span(label, className=f"lw-badge {cls}".strip()), " ", said],
                    className="lw-alert-head", id="overview-alert-head")
    rows: list[Any] = [html.Div([html.H3("Alerts"), dcc.Link("all alerts and history →", href=alerts_href,
                                                             id="overview-alerts-link")],
                                className="lw-card-head"), head]
    rows += [_item(a, now, window_s) for a in shown[:CARD_ITEMS]]
    more = []
    if len(shown) > CARD_ITEMS:
        more.append(f"+{len(shown) - CARD_ITEMS} more on the Alerts page")
    if outside:
        more.append(f"+{outside} more outside this filter" + (f" ({firing_outside} firing)" if firing_outside else ""))
    if more:
        rows.append(html.Div(dcc.Link(" · ".join(more), href=alerts_href), className="lw-sub",
                             id="overview-alerts-more"))
    body: list[Any] = ([html.Span(f"{', '.join(found)}, {window}:", className="lw-sub")]
                       if found and state not in ("below", "ok") else [])
    body += [html.Span([C.verdict_badge(k), f" {v:,}"], className="lw-count") for k, v in counts.items() if v]
    body += [html.Span(f"dead: {d['lane']} at {d['service']} ({int(d['live_instances'])} live, "
                       f"idle {int(d['idle_s'])} s)", className="lw-count") for d in dead]
    body.append(dcc.Link("see them on Violations" if total else "open Violations", href=violations_href))
    rows.append(html.Div(body, className="lw-row"))
    rows.append(html.Div(f"Alert rules judge the last {rule_window_s:g} s of spans; the counts "
                         f"above cover the chosen window ({window}).", className="lw-sub"))
    return html.Div(rows, className=f"lw-card lw-alerts lw-alerts-{state}", id="overview-alert-state",
                    **C._data(state=state, firing="true" if firing else "false"))


def current_table(alerts: Sequence[Mapping[str, Any]], *, now: float, tz: str | None,
                  window_s: int) -> html.Div:
    """Firing and pending alerts: state, severity, alert, labels, value vs threshold,
    confidence, since, and the explanation with the link to what explains it."""
    body = []
    for a in V.ordered(alerts):
        said, at = V.since(a, now)
        body.append(html.Tr([
            html.Td(state_badge(str(a.get("state")))), html.Td(severity_badge(str(a.get("severity")))),
            html.Td(html.B(V.name_of(a)), title=V.MEANING.get(V.name_of(a), "")),
            html.Td(V.where_text(a.get("labels") or {}), className="lw-where-cell"),
            html.Td(V.value_text(a), className="lw-value"), html.Td(V.confidence_of(a), className="lw-num"),
            html.Td([local_time(at, tz), html.Div(said, className="lw-sub")], title=utc_time(at),
                    className="lw-time"),
            html.Td([str(a.get("text") or ""), html.Div(dcc.Link(
                V.link_label(a.get("link")) + " →", href=V.explain_href(a.get("link"), window_s)))],
                className="lw-wrap"),
        ], className=f"lw-row-{a.get('state')}", **C._data(alert=V.name_of(a), state=str(a.get("state")))))
    head = html.Thead(html.Tr([html.Th(h) for h in (
        "state", "severity", "alert", "where", "value vs threshold", "confidence", "since",
        "explanation")]))
    return html.Div(html.Table([head, html.Tbody(body)], className="lw-table lw-alerts-table",
                               id="alerts-current-table"), className="lw-scroll")


def history_table(rows: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]], *,
                  tz: str | None, window_s: int) -> html.Div:
    """State changes, newest first: time, fired/resolved, alert, labels, how long it fired, text."""
    lasted = V.fired_for(rows, current)
    body = []
    for r, took in zip(rows, lasted):
        state = str(r.get("state"))
        ts = float(r.get("ts") or 0)
        body.append(html.Tr([
            html.Td(local_time(ts, tz, True), title=utc_time(ts), className="lw-time"),
            html.Td(state_badge(state, history=True)),
            html.Td(html.B(V.name_of(r)), title=V.MEANING.get(V.name_of(r), "")),
            html.Td(V.where_text(r.get("labels") or {}), className="lw-where-cell"),
            html.Td(took, className="lw-num"),
            html.Td([str(r.get("text") or ""), " ", dcc.Link(
                V.link_label(r.get("link")), href=V.explain_href(r.get("link"), window_s))],
                className="lw-wrap"),
        ], **C._data(alert=V.name_of(r), state=state)))
    head = html.Thead(html.Tr([html.Th(h) for h in ("time", "change", "alert", "where",
                                                    "how long it fired", "what it said")]))
    return html.Div(html.Table([head, html.Tbody(body)], className="lw-table lw-alerts-table",
                               id="alerts-history-table"), className="lw-scroll")


def meanings(names: Sequence[str] = tuple(V.MEANING)) -> html.Ul:
    """One line per alert: what it means."""
    return html.Ul([html.Li([html.B(n), ": ", V.MEANING[n]]) for n in names if n in V.MEANING],
                   className="lw-meanings")


def rules_box(lines: Sequence[tuple[str, str, str]], evaluation: Mapping[str, Any], *, now: float,
              tz: str | None, every_s: float, enabled: bool) -> list[Any]:
    """The rules evaluated here (with their thresholds) and the last evaluation's time and cost."""
    if not enabled:
        line: Any = ("The alert rules are off here: set alerts.enabled to true in the config "
                     "(or LANEWATCH_ALERTS__ENABLED=true) to evaluate them.")
    elif evaluation.get("at") is None:
        line = "The rules have not been evaluated yet."
    else:
        at = float(evaluation["at"])
        late = now - at > max(5.0, 5 * every_s)
        found = int(evaluation.get("findings") or 0)
        cost = (f" ({float(evaluation.get('ms') or 0):.1f} ms, {found} finding{'s' * (found != 1)}, "
                f"{int(evaluation.get('count') or 0):,} evaluations so far)")
        stale = (f". Late: no evaluation for {V.span_text(now - at)}, so the alerts above may be stale."
                 if late else "")
        line = html.Span([f"Evaluated every {every_s:g} s; last at ",
                          html.Span(local_time(at, tz), title=utc_time(at), className="lw-time"), cost, stale],
                         className="lw-late" if late else "")
    body = [html.Tr([html.Td(html.B(n)), html.Td(here, className="lw-live" if here == "evaluated" else "lw-gone"),
                     html.Td(text, className="lw-wrap")], **C._data(rule=n))
            for n, text, here in lines]
    head = html.Thead(html.Tr([html.Th(h) for h in ("alert", "here", "fires when")]))
    return [html.H3("Rules"), html.Div(line, className="lw-sub", id="alerts-evaluation"),
            html.Table([head, html.Tbody(body)], className="lw-table", id="alerts-rules-table")]
