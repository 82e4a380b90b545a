"""Alerts: what is firing or pending now, the history of state changes, and the rules.

Reads ``Query.alerts`` (what ``GET /api/v1/alerts`` serves). The view's service and lane
filters apply (alerts of other services or lanes are counted, not listed); ``?name=``
narrows to one alert. Every alert links to the view that explains it. The window does not
apply: alerts judge their own evidence window, and the history lists the newest state
changes whenever they happened. Both tables are sent again only when what they show
changed, and hold still (with a visible "paused" line) while the viewer selects text in them
or points at them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

import dash
from dash import Input, Output, State, dcc, html

from lanewatch.config.alerting import ALERT_NAMES
from lanewatch.dashboard import alertparts as P
from lanewatch.dashboard import alertview as V
from lanewatch.dashboard import components as C
from lanewatch.dashboard import tables
from lanewatch.dashboard.context import get_query, get_settings, live_inputs
from lanewatch.dashboard.state import ViewState

dash.register_page(__name__, path="/alerts", name="Alerts",  # type: ignore[no-untyped-call]
                   title="lanewatch: alerts", order=1)

#: History rows asked for (the filters apply to them) and shown at most.
HISTORY = 500
SHOWN = 200
PAUSED = ("Paused while you select text in the tables or point at them: "
          "move the pointer away and clear the selection to see changes.")


def layout(name: str | None = None, **kwargs: Any) -> html.Div:
    """Alert filter, the current alerts, the history and the rules (loading until data)."""
    options = [{"label": n, "value": n} for n in ALERT_NAMES]
    return html.Div([
        html.Div([html.H2("Alerts"), html.Span(id="alerts-note", className="lw-sub")],
                 className="lw-page-head"),
        html.Label(["alert", dcc.Dropdown(id="alerts-name", options=options,
                                          value=name if name in ALERT_NAMES else None,
                                          placeholder="all alerts")],
                   className="lw-ctl lw-ctl-inline"),
        html.Div(f"“{str(name)[:80]}” is not an alert name (known: {', '.join(ALERT_NAMES)}): "
                 "showing every alert.", id="alerts-bad-name", className="lw-paused",
                 hidden=not name or name in ALERT_NAMES),
        html.Div(PAUSED, id="alerts-paused", className="lw-paused", hidden=True),
        html.Div([
            html.Div([html.H3("Now"), html.Div(C.loading("alerts"), id="alerts-current")],
                     className="lw-card"),
            html.Div([html.H3("History, newest first"), html.Div(id="alerts-history")],
                     className="lw-card"),
        ], id="alerts-tables", className="lw-page"),
        html.Div(id="alerts-rules", className="lw-card"),
        dcc.Store(id="alerts-drawn"),
        dcc.Store(id="alerts-hold", data=False),
    ], className="lw-page")


def _digest(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()


def refresh(_tick: int | None, state: dict[str, Any] | None, _theme: str | None, tz: str | None,
            name: str | None = None, hold: bool | None = False, drawn: str | None = None
            ) -> tuple[Any, ...]:
    """(note, current alerts, history, rules, drawn keys, paused line hidden).

    Each table is sent again only when what it shows changed, and neither while ``hold``
    (the viewer selects text in them or points at them). Before the shell has read the URL
    (``state`` is None) the loading placeholder stays.
    """
    if state is None:
        return "", dash.no_update, dash.no_update, dash.no_update, None, True
    q, settings, vs = get_query(), get_settings(), ViewState.from_dict(state)
    now = q.clock()
    name = name if name in ALERT_NAMES else None
    data = q.alerts(name=name, history=HISTORY)
    current, outside = V.split_scope(data["alerts"], vs.service, vs.lane)
    past, _ = V.split_scope(data["history"], vs.service, vs.lane)
    past = past[:SHOWN]
    a = settings.alerts
    rules = P.rules_box(V.rule_lines(settings, data["rules"]), data["evaluation"], now=now, tz=tz,
                        every_s=a.evaluate_every_s, enabled=V.is_on(data))
    firing = sum(1 for x in current if x.get("state") == "firing")
    scope = " · ".join(x for x in (vs.service, vs.lane) if x)
    note = (f"{firing} firing, {len(current) - firing} pending" + (f" ({name})" if name else "")
            + (f" at {scope}" if scope else "") + (f"; +{outside} outside this filter" if outside else ""))
    if not V.is_on(data):
        note = "alert rules are off"
    if hold and drawn:
        return note, dash.no_update, dash.no_update, rules, dash.no_update, False
    old = json.loads(drawn) if drawn else {}
    keys = {"current": _digest([(x.get("fingerprint"), x.get("state"), x.get("text"), x.get("value"),
                                 V.since(x, now)[0]) for x in current], tz, vs.window_s, outside),
            "history": _digest([(r.get("ts"), r.get("fingerprint"), r.get("state")) for r in past],
                               [x.get("fingerprint") for x in current], tz, vs.window_s)}
    what = f"{name} alert" if name else "alert"
    where = f" at {scope}" if scope else ""
    now_box: Any = dash.no_update
    if keys["current"] != old.get("current"):
        if current:
            now_box = P.current_table(current, now=now, tz=tz, window_s=vs.window_s)
        else:
            said = (f"No {what} is firing or pending{where}"
                    + (f" (+{outside} outside this filter)" if outside else "")
                    + f": the rules found nothing in the last {a.window_s:g} s of spans."
                    if V.is_on(data) else "The alert rules are off here, so nothing can fire.")
            now_box = html.Div([html.Div(said), html.Div("What each alert means:", className="lw-sub lw-gap"),
                                P.meanings()], className="lw-empty", id="alerts-empty")
    past_box: Any = dash.no_update
    if keys["history"] != old.get("history"):
        past_box = (P.history_table(past, data["alerts"], tz=tz, window_s=vs.window_s) if past else
                    C.empty_state(f"No {what} has fired{where} yet: state changes (fired, resolved) "
                                  "are listed here and kept across restarts.", id="alerts-history-empty"))
    return note, now_box, past_box, rules, json.dumps(keys), True


dash.callback(Output("alerts-note", "children"), Output("alerts-current", "children"),
              Output("alerts-history", "children"), Output("alerts-rules", "children"),
              Output("alerts-drawn", "data"), Output("alerts-paused", "hidden"), *live_inputs(),
              Input("alerts-name", "value"), Input("alerts-hold", "data"),
              State("alerts-drawn", "data"))(refresh)

#: True while the viewer has a text selection inside the tables or points at them.
HOLD_JS = tables.hold_js("alerts-tables")
dash.clientside_callback(HOLD_JS, Output("alerts-hold", "data"), Input("shell-tick", "n_intervals"))


def set_name(name: str | None, search: str | None) -> Any:
    """The URL query string with ``?name=`` set to the chosen alert (or removed), every other
    parameter kept; unchanged when the URL already says it."""
    pairs = [(k, v) for k, v in parse_qsl((search or "").lstrip("?")) if k != "name"]
    current = dict(parse_qsl((search or "").lstrip("?"))).get("name")
    if (name or None) == (current if current in ALERT_NAMES else None):
        return dash.no_update
    pairs += [("name", name)] if name else []
    return "?" + urlencode(pairs) if pairs else ""


dash.callback(Output("shell-url", "search", allow_duplicate=True),
              Input("alerts-name", "value"), State("shell-url", "search"),
              prevent_initial_call=True)(set_name)
