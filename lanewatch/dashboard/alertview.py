"""How alerts read to a person: what each means, the labels that matter, scope, links, times.

Pure helpers over the dicts of :meth:`lanewatch.query.Query.alerts` (``Alert.to_dict()``
rows and history rows), used by the Overview's alert card and the Alerts page
(:mod:`lanewatch.dashboard.alertparts`). No Dash, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

from lanewatch import lane as L
from lanewatch.config import Settings
from lanewatch.config.alerting import ALERT_NAMES, DEFAULT_FOR_S
from lanewatch.query.compare import confidence_text, pct

#: One line per alert: what it means when it fires.
MEANING: Final = {
    "LaneLeak": "Traffic of a lane was served outside it at a service while the lane had a live "
                "instance there.",
    "LaneIntrusion": "Base (untagged) traffic was served by unreleased, non-base code at a service.",
    "LaneTagLost": "Calls of a lane lost their lane tag: in transit (a proxy or gateway dropped "
                   "the header) or inside a service (context lost across a thread pool or queue).",
    "DeadLane": "A service has live instances in a lane that served nothing for a while although "
                "the service served traffic.",
    "GrayWorseThanBase": "A lane's errors or latency at a service are worse than base's: its "
                         "gray-vs-base score failed.",
    "GrayShareDrift": "A lane's share of entry traffic left its target ± tolerance.",
}
#: Labels that say where an alert is, in the order they are shown.
WHERE_LABELS: Final = ("service", "caller", "callee", "lane", "where")
_HIDDEN_LABELS: Final = {"alertname", "severity"}
_SEVERITY: Final = {"critical": 0, "warning": 1, "info": 2}


def is_on(alerts: Mapping[str, Any]) -> bool:
    """Do alert rules run here? (``Query.alerts()`` has an engine and it evaluates some rule;
    ``alerts.enabled: false`` leaves the engine with none.)"""
    return bool(alerts.get("enabled") and alerts.get("rules"))


def name_of(row: Mapping[str, Any]) -> str:
    """The alert name of a current alert (``name``) or a history row (``alertname``)."""
    return str(row.get("name") or row.get("alertname") or (row.get("labels") or {}).get("alertname") or "?")


def rule_lines(settings: Settings, rules: Iterable[str]) -> list[tuple[str, str, str]]:
    """(alert name, when it fires with this installation's thresholds, ``evaluated`` / ``off`` /
    ``no target set``) of every alert (what it means is :data:`MEANING`)."""
    a, evaluated = settings.alerts, set(rules)
    window = f"over the last {a.window_s:g} s"
    numbers = {
        "LaneLeak": f"Fires when the 95% lower bound of the leaked share is above {pct(a.leak_threshold)}, "
                    f"with at least {a.leak_min_hops:,} hops of the lane {window}.",
        "LaneIntrusion": f"Fires on {a.intrusion_min:,} intruding hop{'s' * (a.intrusion_min != 1)} {window}.",
        "LaneTagLost": f"Fires when the 95% lower bound of the lost share is above "
                       f"{pct(a.tag_lost_threshold)}, with at least {a.tag_lost_min_calls:,} calls {window}.",
        "DeadLane": f"Fires after {settings.dead_lanes.after_s:g} s without a hop.",
        "GrayWorseThanBase": (f"Fires when the lane's score against base falls below "
                              f"{settings.compare.marginal_score:g}/100 for "
                              f"{a.for_s.get('GrayWorseThanBase', DEFAULT_FOR_S['GrayWorseThanBase']):g} s "
                              f"(errors or latency worse), with at least {settings.compare.min_requests:,} "
                              f"requests on each side {window}."),
        "GrayShareDrift": ("Targets: " + ", ".join(f"{lane} {pct(t.target_share)} ± {pct(t.tolerance)}"
                                                   for lane, t in sorted(settings.lanes.items())) + "."
                           if settings.lanes else "Off until a lane has a target_share (lanes: in the config)."),
    }
    def here(n: str) -> str:
        if n not in evaluated:
            return "off"
        return "no target set" if n == "GrayShareDrift" and not settings.lanes else "evaluated"

    return [(n, numbers[n], here(n)) for n in ALERT_NAMES]


def in_scope(row: Mapping[str, Any], service: str | None, lane: str | None) -> bool:
    """Does the alert belong to the view filtered to ``service`` and ``lane``?

    A label it has must match the filter (a service filter matches ``service``, ``caller`` or
    ``callee``); a label it lacks does not exclude it. LaneIntrusion has no lane label: it is
    base traffic served by other lanes' code, so it belongs to base and to the lanes it reached.
    """
    labels: Mapping[str, Any] = row.get("labels") or {}
    if service:
        where = [labels[k] for k in ("service", "caller", "callee") if labels.get(k)]
        if where and service not in where:
            return False
    if lane:
        if labels.get("lane"):
            return bool(labels["lane"] == lane)
        reached = (row.get("details") or {}).get("by_lane")
        if name_of(row) == "LaneIntrusion" and lane != L.BASE and isinstance(reached, Mapping) and reached:
            return lane in reached
    return True


def split_scope(rows: Sequence[Mapping[str, Any]], service: str | None, lane: str | None
                ) -> tuple[list[Mapping[str, Any]], int]:
    """(rows in the view, how many others are outside the filter)."""
    shown = [r for r in rows if in_scope(r, service, lane)]
    return shown, len(rows) - len(shown)


def ordered(alerts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Firing before pending, critical before warning, then by name and labels."""
    return sorted(alerts, key=lambda a: (a.get("state") != "firing", _SEVERITY.get(str(a.get("severity")), 3),
                                         name_of(a), sorted((a.get("labels") or {}).items())))


def where_parts(labels: Mapping[str, Any]) -> list[str]:
    """The labels that say where: ``["B", "gray"]``, ``["A -> B", "gray", "in transit"]``."""
    parts = []
    if labels.get("caller") and labels.get("callee"):
        parts.append(f"{labels['caller']} -> {labels['callee']}")
    elif labels.get("service"):
        parts.append(str(labels["service"]))
    if labels.get("lane"):
        parts.append(str(labels["lane"]))
    if labels.get("where"):
        parts.append({"transit": "in transit", "inside": "inside the service"}.get(
            str(labels["where"]), str(labels["where"])))
    parts += [f"{k}={v}" for k, v in sorted(labels.items()) if k not in _HIDDEN_LABELS
              and k not in WHERE_LABELS]
    return parts


def where_text(labels: Mapping[str, Any]) -> str:
    """:func:`where_parts` joined: ``B · gray``."""
    return " · ".join(where_parts(labels)) or "everywhere"


def explain_href(link: str | None, window_s: int) -> str:
    """The alert's own link (it names the evidence: service, lane, kind) with a window at least
    as wide as the view's, so the evidence of an alert that keeps firing stays in it. Anything
    but a path on this dashboard reads ``/alerts``."""
    parts = urlsplit(link or "")
    if not parts.path.startswith("/") or parts.path.startswith("//") or parts.scheme or parts.netloc:
        return "/alerts"
    params = dict(parse_qsl(parts.query))
    try:
        own = int(float(params.get("window", 0)))
    except ValueError:
        own = 0
    params["window"] = str(max(own, int(window_s)))
    return f"{parts.path}?{urlencode(params)}"


def link_label(link: str | None) -> str:
    """What the link opens: ``violations``, ``Compare``..."""
    path = urlsplit(link or "").path
    return {"/violations": "see the violations", "/compare": "open Compare", "/lanes": "open Lanes",
            "/": "open the Overview"}.get(path, "open")


def span_text(seconds: float) -> str:
    """``42 s``, ``3 min``, ``2 h 5 min``, ``3 d``."""
    s = max(0.0, float(seconds))
    if s < 1:
        return "<1 s"
    if s < 120:
        return f"{int(s)} s"
    if s < 7200:
        return f"{int(s // 60)} min"
    if s < 172800:
        h, m = divmod(int(s // 60), 60)
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{int(s // 86400)} d"


def since(alert: Mapping[str, Any], now: float) -> tuple[str, float]:
    """(``firing for 12 s`` / ``pending for 3 s``, the moment it counts from)."""
    firing = alert.get("state") == "firing" and alert.get("fired_at") is not None
    at = float(alert["fired_at"] if firing else alert.get("active_at") or now)
    return f"{'firing' if firing else 'pending'} for {span_text(now - at)}", at


def value_text(row: Mapping[str, Any]) -> str:
    """The value against its threshold, in the alert's own unit."""
    name, d = name_of(row), row.get("details") or {}
    v, th = float(row.get("value") or 0.0), float(row.get("threshold") or 0.0)
    if name in ("LaneLeak", "LaneTagLost"):
        low = f" (≥ {pct(float(d['lower_bound']))} at 95%)" if d.get("lower_bound") is not None else ""
        count = (f"{int(d.get('leaked', d.get('lost', 0))):,} of {int(d.get('hops', d.get('calls', 0))):,}: "
                 if d.get("hops") or d.get("calls") else "")
        return f"{count}{pct(v)}{low} > {pct(th)}"
    if name == "LaneIntrusion":
        return f"{int(v):,} hop{'s' * (int(v) != 1)} ≥ {int(th):,}"
    if name == "DeadLane":
        return f"idle {span_text(v)} ≥ {span_text(th)}"
    if name == "GrayWorseThanBase":
        return f"score {v:.0f} < {th:.0f}"
    if name == "GrayShareDrift":
        return f"{pct(v)} vs target {pct(th)}"
    return f"{v:g} vs {th:g}"


def confidence_of(row: Mapping[str, Any]) -> str:
    """``>99.9%``; ``—`` for alerts that count rather than test."""
    c = row.get("confidence")
    return "—" if c is None else confidence_text(float(c))


def fired_for(rows: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]]) -> list[str]:
    """For each history row (newest first): how long that firing lasted, ``still firing``, or ``—``."""
    ended = {(r.get("fingerprint"), r.get("fired_at")): r.get("resolved_at") for r in rows
             if r.get("state") == "resolved"}
    firing = {(a.get("fingerprint"), a.get("fired_at")) for a in current if a.get("state") == "firing"}
    out = []
    for r in rows:
        key = (r.get("fingerprint"), r.get("fired_at"))
        end = r.get("resolved_at") if r.get("state") == "resolved" else ended.get(key)
        if end is not None and r.get("fired_at") is not None:
            out.append(span_text(float(end) - float(r["fired_at"])))
        else:
            out.append("still firing" if key in firing else "—")
    return out
