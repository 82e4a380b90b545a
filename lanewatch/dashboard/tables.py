"""Pure table builders: violations, lanes x services, instances, compare totals.

Plain ``html.Table`` (not DataTable) so that links, badges and the UTC
tooltip on every time stay simple, and every cell is text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from dash import dcc, html

from lanewatch.dashboard import components as C
from lanewatch.dashboard import theme as T
from lanewatch.dashboard.timefmt import ago, local_time, utc_time

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{1,64}$")
#: Where a trace id links when no ``trace_url_template`` is set: the built-in trace view.
BUILT_IN_TRACE = "/trace?id={trace_id}"


def trace_href(trace_id: str, template: str) -> str | None:
    """The user's trace UI (``trace_url_template``), else the built-in ``/trace?id=`` view."""
    if not _TRACE_ID.match(trace_id or ""):
        return None
    use = template if template and "{trace_id}" in template else BUILT_IN_TRACE
    return use.replace("{trace_id}", trace_id)


def trace_link(trace_id: str, template: str) -> html.Span:
    """The full trace id, linked to its trace, with a copy button.

    Links open the user's trace UI in a new tab, or the built-in trace view in
    place. The id is never shortened, so it can be selected and copied too.
    """
    href = trace_href(trace_id, template)
    code = html.Code(trace_id, className="lw-trace-id")
    if href is None:
        return html.Span(code, className="lw-trace")
    external = href != BUILT_IN_TRACE.replace("{trace_id}", trace_id)
    link = (html.A(code, href=href, title=f"open trace {trace_id}", target="_blank",
                   rel="noopener noreferrer") if external
            else html.A(code, href=href, title=f"open trace {trace_id}"))
    return html.Span([link, dcc.Clipboard(content=trace_id, title=f"copy trace id {trace_id}",
                                          className="lw-copy")], className="lw-trace")


def time_cell(ts: float, tz: str | None, with_date: bool = False) -> html.Td:
    """Local time with zone; the UTC time on hover."""
    return html.Td(local_time(ts, tz, with_date), title=utc_time(ts), className="lw-time")


def where_text(row: Mapping[str, Any]) -> str:
    """``A -> B`` for an edge, the service for a hop."""
    caller, callee = row.get("caller") or "", row.get("callee") or ""
    if caller and callee:
        return f"{caller} -> {callee}"
    return str(row.get("service") or callee or caller or "?")


def _th(*names: str) -> html.Thead:
    return html.Thead(html.Tr([html.Th(n) for n in names]))


def violations_table(rows: Sequence[Mapping[str, Any]], *, template: str, tz: str | None,
                     colours: Mapping[str, str]) -> html.Table:
    """Newest first: time, kind, service or edge, lanes, lane path, trace link."""
    body = []
    for r in rows:
        lanes = html.Span([C.lane_chip(r.get("request_lane") or "base", colours), " served by ",
                           C.lane_chip(r.get("instance_lane") or "base", colours)])
        kind = [C.verdict_badge(r.get("kind", "")), " late" if r.get("late") else ""]
        body.append(html.Tr([
            time_cell(float(r["ts"]), tz), html.Td(kind), html.Td(where_text(r), className="lw-svc"),
            html.Td(lanes), html.Td(C.lane_path(r.get("lane_path") or "")),
            html.Td(trace_link(str(r.get("trace_id") or ""), template)),
        ], className=f"lw-row-{r.get('kind', '')}"))
    return html.Table([_th("time", "kind", "service / edge", "lanes (request, instance)",
                           "lane path", "trace"), html.Tbody(body)], className="lw-table")


def live_lanes(instances: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """service -> lanes with at least one live instance, base first."""
    out: dict[str, set[str]] = defaultdict(set)
    for row in instances:
        out[row["service"]]  # services with no live instance still appear
        if row.get("live"):
            out[row["service"]].add(row["lane"])
    return {svc: T.order_lanes(lanes) for svc, lanes in sorted(out.items())}


def lanes_matrix(instances: Sequence[Mapping[str, Any]], *, now: float, tz: str | None,
                 colours: Mapping[str, str]) -> html.Table:
    """Services x lanes: live instance count and when each lane was last seen."""
    cells: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for row in instances:
        cells[(row["service"], row["lane"])].append(row)
    services = sorted({s for s, _ in cells})
    lanes = T.order_lanes(x for _, x in cells)
    body = []
    for svc in services:
        tds: list[html.Td] = [html.Td(svc, className="lw-svc")]
        for lane in lanes:
            rows = cells.get((svc, lane), [])
            if not rows:
                tds.append(html.Td("— none", className="lw-none"))
                continue
            live = [r for r in rows if r.get("live")]
            last = max(float(r["last_seen"]) for r in rows)
            text = (f"● live, {len(live)} instance{'s' * (len(live) != 1)}, seen {ago(now - last)}"
                    if live else f"○ not live, last seen {ago(now - last)}")
            tds.append(html.Td(text, title=f"last seen {local_time(last, tz, True)} "
                               f"({utc_time(last)})", className="lw-live" if live else "lw-gone",
                               **C._data(lane=lane)))
        body.append(html.Tr(tds))
    head = html.Thead(html.Tr([html.Th("service")] + [html.Th(C.lane_chip(x, colours))
                                                       for x in lanes]))
    return html.Table([head, html.Tbody(body)], className="lw-table lw-matrix")


def instances_table(instances: Sequence[Mapping[str, Any]], *, now: float, tz: str | None,
                    colours: Mapping[str, str]) -> html.Table:
    """One row per instance, live ones first, then by service and lane."""
    rows = sorted(instances, key=lambda r: (not r.get("live"), r["service"], r["lane"],
                                            r["instance"]))
    body = [html.Tr([
        html.Td(r["service"], className="lw-svc"), html.Td(C.lane_chip(r["lane"], colours)),
        html.Td(html.Code(r["instance"])), html.Td("live" if r.get("live") else "not live",
                                                   className="lw-live" if r.get("live") else "lw-gone"),
        html.Td(str(r.get("state") or "")), time_cell(float(r["first_seen"]), tz, True),
        html.Td(ago(now - float(r["last_seen"])), title=utc_time(float(r["last_seen"]))),
    ]) for r in rows]
    return html.Table([_th("service", "lane", "instance", "live", "state", "first seen",
                           "last seen"), html.Tbody(body)], className="lw-table")


_TOTALS = (("requests", "requests", "{:,.0f}"), ("error_rate", "error rate", "pct"),
           ("p50_ms", "p50 latency", "{:,.1f} ms"), ("p95_ms", "p95 latency", "{:,.1f} ms"),
           ("p99_ms", "p99 latency", "{:,.1f} ms"))


def _fmt(value: Any, fmt: str) -> str:
    if value is None:
        return "—"
    return C.pct_text(float(value)) if fmt == "pct" else fmt.format(float(value))


def compare_totals(compare: Mapping[str, Any], window_s: int,
                   colours: Mapping[str, str]) -> html.Table:
    """Window totals, lane beside base, with the lane's difference."""
    lane, base = compare.get("lane", ""), compare.get("base", "base")
    totals = compare.get("totals") or {}
    a, b = totals.get(lane) or {}, totals.get(base) or {}
    body = [html.Tr([html.Td("requests per second"),
                     html.Td(C.rate_text((a.get("requests") or 0) / max(1, window_s), " req/s")),
                     html.Td(C.rate_text((b.get("requests") or 0) / max(1, window_s), " req/s")),
                     html.Td("")])]
    for key, label, fmt in _TOTALS:
        va, vb = a.get(key), b.get(key)
        diff = ""
        if va is not None and vb is not None and key != "requests":
            d = float(va) - float(vb)
            diff = (("+" if d >= 0 else "−") + _fmt(abs(d), fmt)) if fmt != "pct" else \
                f"{'+' if d >= 0 else '−'}{100 * abs(d):.2f} pp"
        body.append(html.Tr([html.Td(label), html.Td(_fmt(va, fmt)), html.Td(_fmt(vb, fmt)),
                             html.Td(diff)]))
    head = html.Thead(html.Tr([html.Th("over the window"), html.Th(C.lane_chip(lane, colours)),
                               html.Th(C.lane_chip(base, colours)), html.Th(f"{lane} − {base}")]))
    return html.Table([head, html.Tbody(body)], className="lw-table lw-compare")


def escapes_table(rows: Sequence[Mapping[str, Any]], *, window_s: int, template: str,
                  colours: Mapping[str, str], limit: int = 500) -> html.Div:
    """Where traffic escaped: violations grouped by kind and service/edge, worst first.

    Each group shows its count, its rate over the window and its newest
    example's lane path and trace link. ``rows`` are newest first.
    """
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(str(r.get("kind", "")), where_text(r))].append(r)
    order = sorted(groups, key=lambda k: (-len(groups[k]), k))
    capped = len(rows) >= limit
    body = [html.Tr([
        html.Td(C.verdict_badge(kind)), html.Td(where, className="lw-svc"),
        html.Td(f"{'≥' if capped else ''}{len(groups[(kind, where)]):,}"),
        html.Td(f"{'≥' if capped else ''}{C.rate_text(len(groups[(kind, where)]) / max(1, window_s))}"),
        html.Td(C.lane_path(groups[(kind, where)][0].get("lane_path") or "")),
        html.Td(trace_link(str(groups[(kind, where)][0].get("trace_id") or ""), template)),
    ]) for kind, where in order[:10]]
    note = (f"Counted from the newest {limit:,} violations, so counts and rates are lower bounds."
            if capped else "")
    return html.Div([html.Table([_th("kind", "service / edge", "count", "rate",
                                     "newest example lane path", "trace"), html.Tbody(body)],
                                className="lw-table"), html.Div(note, className="lw-sub")])


def hold_js(box_id: str) -> str:
    """Clientside callback body: True while the viewer has a text selection inside element
    ``box_id`` or points at it (a live table then holds still, so ids can be copied)."""
    return _HOLD_JS.replace("BOX_ID", box_id)


_HOLD_JS = """
function(_) {
    var box = document.getElementById('BOX_ID');
    if (!box) { return false; }
    var sel = window.getSelection ? window.getSelection() : null;
    var selecting = !!(sel && sel.rangeCount && !sel.isCollapsed &&
                       box.contains(sel.getRangeAt(0).commonAncestorContainer));
    return selecting || box.matches(':hover');
}
"""


def fingerprint(rows: list[dict[str, Any]], *extra: Any) -> str:
    """Identity of a drawn violations table: unchanged rows are not sent again."""
    ids = [(r.get("ts"), r.get("kind"), r.get("trace_id"), r.get("span_id")) for r in rows]
    return hashlib.sha1(json.dumps([ids, extra], default=str).encode()).hexdigest()
