"""Trace: one kept trace, the built-in view trace ids link to when no trace UI is configured.

``/trace?id=<32 or 16 hex digits>`` shows what ``GET /api/v1/traces/<id>``
answers (``Query.trace``): the entry lane, whether the trace stayed in lane,
its lane path and hops, and its violations. A trace that was not kept, and an
id that is not a trace id, each get one sentence saying so.
"""

from __future__ import annotations

import re
from typing import Any

import dash
from dash import Input, Output, dcc, html

from lanewatch.dashboard import components as C
from lanewatch.dashboard import tables
from lanewatch.dashboard.context import colours_for, get_query, get_settings
from lanewatch.dashboard.timefmt import local_time, utc_time

dash.register_page(  # type: ignore[no-untyped-call]
    __name__, path="/trace", name="Trace", title="lanewatch: trace", order=5)

#: A W3C / OpenTelemetry trace id (32 hex digits), or a 64-bit one (16).
TRACE_ID = re.compile(r"(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{16})")
EXAMPLE = "4bf92f3577b34da6a3ce929d0e0e4736"


def layout(**kwargs: Any) -> html.Div:
    """The trace named by ``?id=`` (loading until it was read)."""
    return html.Div([
        html.Div([html.H2("Trace"), html.Span("One trace's lane path, hops and violations.",
                                              className="lw-sub")], className="lw-page-head"),
        html.Div(C.loading("the trace"), id="trace-body"),
        dcc.Store(id="trace-id", data=str(kwargs.get("id") or "")),
    ], className="lw-page")


def _facts(found: dict[str, Any], tz: str | None) -> html.Table:
    hops = found.get("hops")
    n_hops = len(hops) if isinstance(hops, list) else int(hops or 0)
    ts = float(found.get("ts") or 0)
    stayed = bool(found.get("stayed"))
    colours = colours_for(get_query(), 3600)
    kinds = sorted({str(v.get("kind")) for v in found.get("violations") or []})
    verdict = (html.Span([C.verdict_badge("in_lane"), " stayed in lane"]) if stayed else
               html.Span(["left its lane: ", *[C.verdict_badge(k) for k in kinds]]))
    rows: list[tuple[str, Any]] = [("entry lane", C.lane_chip(str(found.get("entry_lane") or "base"), colours)),
            ("verdict", verdict),
            ("started", html.Span(local_time(ts, tz, True), title=utc_time(ts))),
            ("hops", f"{n_hops:,}"),
            ("lane path", C.lane_path(str(found.get("lane_path") or "")))]
    return html.Table(html.Tbody([html.Tr([html.Th(k), html.Td(v)]) for k, v in rows]),
                      className="lw-table lw-facts")


def render(trace_id: str | None, tz: str | None) -> Any:
    """The page body for ``trace_id``: the trace, or one sentence saying why not."""
    tid = (trace_id or "").strip()
    if not tid:
        return C.empty_state("Open a trace from the Violations page, or add ?id=<trace id> to "
                             "this address.", id="trace-empty")
    if not TRACE_ID.fullmatch(tid):
        return C.empty_state(f"“{tid[:80]}” is not a trace id: a trace id has 32 (or 16) hex "
                             f"digits, like {EXAMPLE}.", id="trace-error")
    tid = tid.lower()
    found = get_query().trace(tid)
    if found is None:
        return C.empty_state(f"Trace {tid} was not kept: lanewatch keeps every trace that left "
                             "its lane and a sample of the rest, so open a newer one from "
                             "Violations.", id="trace-missing")
    settings = get_settings()
    viols = found.get("violations") or []
    links: list[Any] = [html.A("as JSON", href=f"/api/v1/traces/{tid}", target="_blank",
                               rel="noopener noreferrer")]
    if settings.trace_url_template and "{trace_id}" in settings.trace_url_template:
        links += [" · ", html.A("open in your trace UI", target="_blank", rel="noopener noreferrer",
                                href=settings.trace_url_template.replace("{trace_id}", tid))]
    head = html.Div([html.Code(tid, className="lw-trace-id"),
                     dcc.Clipboard(content=tid, title=f"copy trace id {tid}", className="lw-copy"),
                     html.Span(links, className="lw-sub")], className="lw-trace lw-trace-head")
    body: Any = (tables.violations_table(viols, template=settings.trace_url_template, tz=tz,
                                         colours=colours_for(get_query(), 3600))
                 if viols else C.empty_state("No violations: every hop and edge of this trace "
                                             "stayed in its lane."))
    return html.Div([html.Div([head, _facts(found, tz)], className="lw-card", id="trace-facts"),
                     html.Div([html.H3(f"Violations ({len(viols):,})"), body],
                              className="lw-card", id="trace-violations")])


dash.callback(Output("trace-body", "children"), Input("trace-id", "data"),
              Input("shell-tz", "data"))(render)
