"""Overview: did gray stay gray, where did it escape, and the live lanes.

Refreshes every second. Charts keep the viewer's zoom (``uirevision``) and,
while the lanes, window and filters stay the same, only their data is sent
(``Patch``), so nothing flickers.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import dash
from dash import Input, Output, Patch, State, ctx, dcc, html

from lanewatch.dashboard import alertparts as P
from lanewatch.dashboard import cache, demo_control, tables
from lanewatch.dashboard import components as C
from lanewatch.dashboard import figures as F
from lanewatch.dashboard.app import GRAPH_CONFIG, colours_for, get_query, get_settings, live_inputs
from lanewatch.dashboard.state import ViewState, step_for, to_search
from lanewatch.dashboard.timefmt import local_time, window_label

dash.register_page(  # type: ignore[no-untyped-call]
    __name__, path="/", name="Overview", title="lanewatch: overview", order=0)

#: "Where it escaped" groups at most this many newest violations.
ESCAPES_FROM = 200
#: The cards' Compare verdicts (every lane vs base on every service) are recomputed at
#: most this often (seconds), or once per chart step when that is longer.
VERDICT_EVERY_S = 5


def layout(**kwargs: Any) -> html.Div:
    """Headline per lane, alerts, verdicts, where it escaped, live QPS and errors."""
    children: list[Any] = [
        html.Div([html.H2("Did gray stay gray?"), html.Span(id="overview-window-note",
                                                            className="lw-sub")],
                 className="lw-page-head"),
        html.Div(id="overview-headlines", className="lw-cards"),
        html.Div([html.Div(id="overview-alerts"),
                  html.Div(dcc.Graph(id="overview-verdicts", config=GRAPH_CONFIG,
                                     style={"height": "240px"}), className="lw-card")],
                 className="lw-grid-2"),
        html.Div([html.H3("Where it escaped"), html.Div(id="overview-escapes")],
                 className="lw-card"),
        html.Div([dcc.Graph(id="overview-qps", config=GRAPH_CONFIG, style={"height": "300px"}),
                  dcc.Graph(id="overview-errors", config=GRAPH_CONFIG,
                            style={"height": "300px"})], className="lw-grid-2 lw-charts"),
        html.Div(id="overview-counters"),
        dcc.Store(id="overview-figkey"),
        dcc.Store(id="overview-escapes-hold", data=False),
    ]
    demo_url = get_settings().demo_control_url
    children.append(html.Div([
        html.H3("Demo faults"),
        html.Div("Switch a fault on and watch it show up above within seconds.", className="lw-sub"),
        dcc.Checklist(id="overview-faults", options=[], value=[], className="lw-faults"),
        html.Div(id="overview-faults-status", className="lw-sub"),
        dcc.Interval(id="overview-faults-poll", interval=3000, disabled=not demo_url),
        dcc.Store(id="overview-faults-known"),
    ], className="lw-card lw-demo", id="overview-demo", hidden=not demo_url))
    return html.Div(children, className="lw-page")


def _patch(series: dict[str, Any], lanes: list[str], metric: str, colours: dict[str, str],
           tz: str | None) -> Patch:
    patch = Patch()
    for i, lane in enumerate(lanes):
        trace = F.lane_trace(lane, series["lanes"][lane], metric, colours, tz)
        patch["data"][i]["x"] = trace.x
        patch["data"][i]["y"] = trace.y
        patch["data"][i]["customdata"] = trace.customdata
    return patch


def refresh(_tick: int | None, state: dict[str, Any] | None, theme: str | None, tz: str | None,
            figkey: str | None, hold: bool | None = False) -> tuple[Any, ...]:
    """Everything on the page for the current window and filters.

    Headline numbers are recomputed every tick; the charts are re-queried once
    per step (:mod:`..cache`), patched when only their data moved, and left
    alone within a step. Returns (window note, headline cards, alerts, verdict
    figure, escapes, QPS figure, error figure, counters, figure key).
    """
    q, settings, vs, theme = get_query(), get_settings(), ViewState.from_dict(state), theme or "light"
    window = window_label(vs.window_s)
    step = step_for(vs.window_s)
    summary, (raw, data_slot), colours, viols, (compared, _), instances, alerts = cache.gather(
        lambda: q.summary(vs.window_s, service=vs.service, lane=vs.lane),
        lambda: cache.per_step(q, step, ("series", vs.window_s, vs.service, vs.lane),
                               lambda: q.series(vs.window_s, service=vs.service, lane=vs.lane,
                                                step_s=step)),
        lambda: colours_for(q, vs.window_s),
        lambda: q.violations(vs.window_s, service=vs.service, lane=vs.lane, limit=ESCAPES_FROM),
        lambda: cache.per_step(q, max(step, VERDICT_EVERY_S), ("compare_all", vs.window_s),
                               lambda: q.compare_all(None, vs.window_s)),
        q.instances, lambda: q.alerts(history=0), store=q.store)
    series = F.complete_steps(raw)
    note = f"{window}, up to {local_time(summary['to'], tz)}"
    note += f"; charts end {F.SETTLE_S} s back while spans arrive"
    if step > 1:
        note += f", in {step} s steps"
    if not summary.get("lanes") and not q.instances():
        empty = C.empty_state(C.no_spans(settings), id="overview-empty")
        fig = F.empty_figure("", theme)  # the one hint is the card above
        return (note, [empty], None, fig, None, fig, fig, None, None)
    # "Where it escaped" is sent again only when its rows changed, and holds still while the
    # viewer selects text in it or points at it (trace ids can be copied)
    old_layout, old_slot, old_escapes = json.loads(figkey) if figkey else (None, None, None)
    escapes_key = tables.fingerprint(viols, vs.to_dict(), tz, settings.trace_url_template)
    escapes: Any = dash.no_update
    if hold and old_escapes:
        escapes_key = old_escapes
    elif escapes_key != old_escapes:
        escapes = (tables.escapes_table(viols, window_s=vs.window_s, colours=colours,
                                        template=settings.trace_url_template, limit=ESCAPES_FROM)
                   if viols else C.empty_state("Nothing escaped: every hop and edge stayed in its "
                                               f"lane, {window}."))
    verdicts = F.verdict_figure(summary.get("hops") or {}, (summary.get("edges") or {})
                                .get("tag_lost", 0), theme, title=f"Hop verdicts, {window}")
    lanes = list(series.get("lanes") or {})
    lanes = [x for x in colours if x in lanes] + [x for x in lanes if x not in colours]
    layout_key = json.dumps([lanes, vs.to_dict(), step, theme, tz])
    key = json.dumps([layout_key, data_slot, escapes_key])
    qps: Any
    errors: Any
    if old_layout == layout_key and old_slot == data_slot:
        qps = errors = dash.no_update
    elif old_layout == layout_key and lanes:
        qps = _patch(series, lanes, "qps", colours, tz)
        errors = _patch(series, lanes, "error_rate", colours, tz)
    else:
        where = f"requests to {vs.service}" if vs.service else "hops, all services"
        qps = F.lane_series_figure(series, "qps", colours=colours, theme=theme, tz=tz, hops=not vs.service,
                                   title=f"Per second by instance lane: {where}, {window}")
        errors = F.lane_series_figure(series, "error_rate", colours=colours, theme=theme, tz=tz,
                                      title=f"Error rate by instance lane: {where}, {window}")
    compared = [v for v in compared if not vs.service or v["service"] == vs.service]
    instances = [r for r in instances if not vs.service or r["service"] == vs.service]
    cards = C.headline_cards(summary, colours, window, window_s=vs.window_s, verdicts=compared,
                             instances=instances, lane=vs.lane)
    card = P.alerts_card(alerts, summary, window, now=q.clock(), window_s=vs.window_s,
                         service=vs.service, lane=vs.lane, violations_href="/violations" + to_search(vs),
                         alerts_href="/alerts" + to_search(dataclasses.replace(vs, kind=None)),
                         rule_window_s=settings.alerts.window_s)
    return (note, cards, card, verdicts, escapes, qps, errors, C.counters_line(summary), key)


dash.callback(Output("overview-window-note", "children"), Output("overview-headlines", "children"),
              Output("overview-alerts", "children"), Output("overview-verdicts", "figure"),
              Output("overview-escapes", "children"), Output("overview-qps", "figure"),
              Output("overview-errors", "figure"), Output("overview-counters", "children"),
              Output("overview-figkey", "data"), *live_inputs(),
              Input("overview-escapes-hold", "data"), State("overview-figkey", "data"))(
    # the hold is an Input, not a State: Dash then runs this after the clientside hold check of
    # the same tick, never with the hold value of the tick before (a selection made between
    # two ticks would be redrawn away)
    lambda tick, state, theme, tz, hold, figkey: refresh(tick, state, theme, tz, figkey, hold))

dash.clientside_callback(tables.hold_js("overview-escapes"), Output("overview-escapes-hold", "data"),
                         Input("shell-tick", "n_intervals"))


def faults(_n: int | None, value: list[str] | None, known: dict[str, bool] | None,
           trigger: str | None = None) -> tuple[Any, Any, str, Any]:
    """Poll the demo's faults; when the checklist changed, switch the faults that differ.

    Returns (options, checked names, status line, known state).
    """
    url = get_settings().demo_control_url
    if not url:
        return dash.no_update, dash.no_update, "", dash.no_update
    try:
        if trigger == "overview-faults" and known is not None:
            on_now = {k for k, v in known.items() if v}
            for name in sorted(set(value or []) ^ on_now):
                demo_control.set_fault(url, name, name in (value or []))
        current = demo_control.list_faults(url)
    except demo_control.DemoControlError as e:
        status = (f"Demo control at {url} does not answer ({e}): "
                  "is `lanewatch demo` still running?")
        return dash.no_update, dash.no_update, status, dash.no_update
    options = [{"label": name, "value": name} for name in sorted(current)]
    on = sorted(k for k, v in current.items() if v)
    status = f"{len(on)} of {len(current)} faults on." if current else "The demo has no faults."
    return options, on, status, current


def _faults_cb(n: int | None, value: list[str] | None, known: dict[str, bool] | None
               ) -> tuple[Any, Any, str, Any]:
    return faults(n, value, known, ctx.triggered_id)


dash.callback(Output("overview-faults", "options"), Output("overview-faults", "value"),
              Output("overview-faults-status", "children"), Output("overview-faults-known", "data"),
              Input("overview-faults-poll", "n_intervals"), Input("overview-faults", "value"),
              State("overview-faults-known", "data"))(_faults_cb)
