"""The Overview's alert card and the Alerts page, as plain functions over the real span path.

Spans go through the real Engine and Pipeline into a DuckStore and the AlertEngine (which
keeps its history in the same store); the dashboard reads both through a real Query, as
``lanewatch up`` wires them. Leaks: gray traces whose B hop is served by B-base while B-gray
is live.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flask
import pytest
from dash import dcc, html, no_update
from dash_tree import find, text

from lanewatch import config
from lanewatch.alerts.engine import AlertEngine
from lanewatch.collect.engine import Engine
from lanewatch.collect.pipeline import Pipeline
from lanewatch.dashboard import alertparts as P
from lanewatch.dashboard import alertview as V
from lanewatch.query import Query
from lanewatch.store.duck import DuckStore
from lanewatch.testing import FakeClock, TraceBuilder, heartbeat_request

LIVE = (("A", "base"), ("A", "gray"), ("B", "base"), ("B", "gray"))
LEAK_LINK = "/violations?window=60&service=B&lane=gray&kind=leak"


class Mesh:
    """Engine -> Pipeline -> (DuckStore, AlertEngine), a Query over both, on a fake clock."""

    def __init__(self, **flags: Any) -> None:
        self.clock = FakeClock()
        self.settings = config.load(environ={}, flags={"trace_wait_s": 1.0, **flags})
        self.store = DuckStore(":memory:", clock=self.clock)
        self.engine = Engine(self.settings, clock=self.clock)
        self.alerts = AlertEngine(self.settings, self.engine.instances, history=self.store, clock=self.clock)
        self.pipe = Pipeline(self.engine, [self.store, self.alerts], interval_s=0.5, clock=self.clock)
        self.query = Query(self.store, self.settings, clock=self.clock, alerts=self.alerts)

    def beat(self) -> None:
        for svc, lane in LIVE:
            self.engine.ingest("metrics", heartbeat_request(svc, lane, time_ns=int(self.clock() * 1e9)),
                               "proto")

    def gray(self, n_ok: int, n_leak: int) -> None:
        """``n_ok`` gray traces that stay gray, ``n_leak`` whose B hop is served by B-base."""
        tb = TraceBuilder(t0=self.clock())
        for i in range(n_ok + n_leak):
            tb.new_trace()
            a = tb.hop("A", "gray", "gray")
            tb.hop("B", "base" if i < n_leak else "gray", "gray", caller=tb.call(a))
        self.engine.ingest("traces", tb.body(), "proto")
        self.pipe.flush()

    def use(self) -> None:
        from lanewatch.dashboard.app import create_dash

        create_dash(flask.Flask(__name__), self.query, self.settings)


@pytest.fixture
def mesh() -> Iterator[Mesh]:
    m = Mesh()
    m.beat()
    m.use()
    yield m
    m.store.close()


STATE = {"window_s": 300, "service": None, "lane": None, "kind": None}


def _card(m: Mesh, service: str | None = None, lane: str | None = None, window_s: int = 300) -> html.Div:
    summary = m.query.summary(window_s, service=service, lane=lane)
    return P.alerts_card(m.query.alerts(history=0), summary, f"last {window_s // 60} min", now=m.clock(),
                         window_s=window_s, service=service, lane=lane, violations_href="/violations",
                         alerts_href="/alerts")


def _leak(m: Mesh) -> None:
    m.gray(380, 20)
    m.alerts.evaluate()
    m.clock.advance(12)
    m.alerts.evaluate()


# ---- the card --------------------------------------------------------------------------------

def test_card_shows_the_firing_leak_with_its_text_how_long_and_the_link_to_its_violations(mesh: Mesh) -> None:
    _leak(mesh)
    card = _card(mesh)
    shown = text(card)
    assert card.__dict__["data-state"] == "firing" and "FIRING 1 alert firing" in shown
    item = [d for d in find(card, html.Div) if d.__dict__.get("data-alert") == "LaneLeak"]
    assert len(item) == 1 and item[0].__dict__["data-state"] == "firing"
    said = text(item[0])
    assert "warning" in said and "B · gray" in said and "firing for 12 s" in said
    assert "B served 20 of 400 gray hops (5.00%) outside gray while gray was live" in said
    links = [link.href for link in find(item[0], dcc.Link)]
    # the alert's own filters, in a window no narrower than the view's
    assert links == ["/violations?window=300&service=B&lane=gray&kind=leak"]
    assert "OK" not in shown


def test_card_keeps_to_the_filter_and_counts_what_is_outside_it(mesh: Mesh) -> None:
    _leak(mesh)
    card = _card(mesh, service="A")
    assert [d for d in find(card, html.Div) if d.__dict__.get("data-alert")] == []
    assert "+1 more outside this filter (1 firing)" in text(card)
    assert "OK no alert firing for A; no violations" in text(card)
    assert card.__dict__["data-state"] == "ok"  # A itself served every gray hop in lane
    assert "+1 more" in text(_card(mesh, lane="base"))  # base is not blamed for gray's leak
    assert "+1 more" not in text(_card(mesh, service="B", lane="gray"))


def test_a_sparse_leak_is_below_the_thresholds_not_ok(mesh: Mesh) -> None:
    mesh.gray(1000, 1)
    assert mesh.alerts.evaluate() == []
    card = _card(mesh)
    shown = text(card)
    assert card.__dict__["data-state"] == "below" and card.__dict__["data-firing"] == "false"
    assert "1 violation, last 5 min: below the alert thresholds" in shown
    assert "OK" not in shown and "leak 1" in shown and "see them on Violations" in shown


def test_nothing_wrong_reads_ok_with_no_alert_firing(mesh: Mesh) -> None:
    mesh.gray(50, 0)
    mesh.alerts.evaluate()
    card = _card(mesh)
    assert card.__dict__["data-state"] == "ok"
    assert text(card).startswith("Alertsall alerts and history →OK no alert firing; no violations, "
                                 "no dead lane, last 5 min")


def test_pending_alerts_are_marked_pending() -> None:
    mesh = Mesh()
    mesh.alerts.states.for_s = lambda name: 30.0  # every alert waits 30 s before firing
    mesh.beat()
    mesh.use()
    mesh.gray(380, 20)
    mesh.alerts.evaluate()
    card = _card(mesh)
    assert card.__dict__["data-state"] == "pending"
    assert "PENDING 1 alert pending" in text(card) and "pending for <1 s" in text(card)
    mesh.store.close()


@pytest.mark.parametrize("how", ["alerts.enabled false", "no alert engine"])
def test_alerts_switched_off_say_so_and_keep_the_counts(how: str) -> None:
    from lanewatch.dashboard.pages import alerts

    mesh = Mesh(**{"alerts.enabled": False})
    if how == "no alert engine":
        mesh = Mesh()
        mesh.query.alert_source = None
    mesh.beat()
    mesh.use()
    mesh.gray(380, 20)
    mesh.alerts.evaluate()
    card = _card(mesh)
    assert card.__dict__["data-state"] == "off"
    assert "OFF alert rules are off here" in text(card) and "20 violations, last 5 min" in text(card)
    note, now_box, _, rules, *_ = alerts.refresh(1, STATE, "light", "UTC")
    assert note == "alert rules are off" and "The alert rules are off here" in text(now_box)
    assert "set alerts.enabled to true" in text(rules)
    assert {text(r.children[1]) for r in find(rules, html.Tr) if r.__dict__.get("data-rule")} == {"off"}
    mesh.store.close()


def test_a_dead_lane_without_its_alert_yet_is_not_ok() -> None:
    dead = [{"service": "B", "lane": "gray", "live_instances": 3, "idle_s": 50, "last_hop_ts": None,
             "service_requests": 400}]
    card = P.alerts_card({"enabled": True, "alerts": [], "rules": ["DeadLane"]}, {"hops": {}, "edges": {}, "violations": 0,
                                                           "dead_lanes": dead},
                         "last 5 min", now=0.0, window_s=300, service=None, lane=None,
                         violations_href="/violations", alerts_href="/alerts")
    assert card.__dict__["data-state"] == "below"
    assert "1 dead lane, last 5 min: below the alert thresholds" in text(card)
    assert "dead: gray at B (3 live, idle 50 s)" in text(card)


def test_the_card_lists_five_and_points_to_the_page_for_the_rest() -> None:
    alerts = [{"name": "LaneIntrusion", "state": "firing", "severity": "critical", "fired_at": 0.0,
               "active_at": 0.0, "labels": {"alertname": "LaneIntrusion", "service": f"S{i}"},
               "text": f"S{i} intruded", "link": f"/violations?window=60&service=S{i}&kind=intrusion",
               "fingerprint": str(i)} for i in range(7)]
    card = P.alerts_card({"enabled": True, "alerts": alerts, "rules": ["LaneIntrusion"]}, {"violations": 7, "hops": {"intrusion": 7}},
                         "last 5 min", now=65.0, window_s=60, service=None, lane=None,
                         violations_href="/violations", alerts_href="/alerts")
    items = [d for d in find(card, html.Div) if d.__dict__.get("data-alert")]
    assert len(items) == 5 and "+2 more on the Alerts page" in text(card)
    assert "critical" in text(items[0]) and "firing for 65 s" in text(items[0])
    assert "7 violations, last 5 min" in text(card)


# ---- scope, links, wording -------------------------------------------------------------------

def test_scope_follows_the_labels_an_alert_has() -> None:
    leak = {"name": "LaneLeak", "labels": {"service": "B", "lane": "gray"}}
    transit = {"name": "LaneTagLost", "labels": {"caller": "A", "callee": "B", "lane": "gray", "where": "transit"}}
    intrusion = {"name": "LaneIntrusion", "labels": {"service": "C"}, "details": {"by_lane": {"gray": 3}}}
    drift = {"name": "GrayShareDrift", "labels": {"lane": "gray"}}
    assert V.in_scope(leak, "B", "gray") and not V.in_scope(leak, "A", None) and not V.in_scope(leak, None, "blue")
    assert V.in_scope(transit, "A", None) and V.in_scope(transit, "B", None) and not V.in_scope(transit, "C", None)
    # base traffic served by gray code: base's and gray's, not blue's
    assert V.in_scope(intrusion, "C", "gray") and V.in_scope(intrusion, None, "base")
    assert not V.in_scope(intrusion, None, "blue") and not V.in_scope(intrusion, "B", None)
    assert V.in_scope(drift, "B", "gray")  # it names no service: the service filter does not hide it
    assert V.where_text(transit["labels"]) == "A -> B · gray · in transit"


def test_explain_links_stay_on_the_dashboard_and_never_narrow_the_window() -> None:
    assert V.explain_href(LEAK_LINK, 30) == LEAK_LINK
    assert V.explain_href(LEAK_LINK, 900) == "/violations?window=900&service=B&lane=gray&kind=leak"
    assert V.explain_href("/compare?service=B&lane=gray", 300) == "/compare?service=B&lane=gray&window=300"
    for bad in ("https://evil.example/x", "//evil.example/x", "javascript:alert(1)", "", None):
        assert V.explain_href(bad, 300) == "/alerts"
    assert V.link_label(LEAK_LINK) == "see the violations" and V.link_label("/compare?x=1") == "open Compare"


def test_values_read_in_each_alerts_unit() -> None:
    leak = {"name": "LaneLeak", "value": 0.05, "threshold": 0.01,
            "details": {"leaked": 20, "hops": 400, "lower_bound": 0.0327}}
    assert V.value_text(leak) == "20 of 400: 5.00% (≥ 3.27% at 95%) > 1.00%"
    assert V.value_text({"name": "LaneIntrusion", "value": 3, "threshold": 1}) == "3 hops ≥ 1"
    assert V.value_text({"name": "DeadLane", "value": 125, "threshold": 60}) == "idle 2 min ≥ 60 s"
    assert V.value_text({"name": "GrayWorseThanBase", "value": 20, "threshold": 50}) == "score 20 < 50"
    assert V.value_text({"name": "GrayShareDrift", "value": 0.2, "threshold": 0.02}) == "20.0% vs target 2.00%"
    assert V.confidence_of({"confidence": 1.0}) == ">99.9%" and V.confidence_of({"confidence": None}) == "—"
    assert [V.span_text(s) for s in (0.2, 42, 600, 7500, 200000)] == ["<1 s", "42 s", "10 min", "2 h 5 min", "2 d"]


# ---- the Alerts page -------------------------------------------------------------------------

def test_alerts_page_lists_the_current_alert_its_history_and_the_rules(mesh: Mesh) -> None:
    from lanewatch.dashboard.pages import alerts

    _leak(mesh)
    note, now_box, past_box, rules, _drawn, paused_hidden = alerts.refresh(1, STATE, "light", "Europe/Berlin")
    assert note == "1 firing, 0 pending" and paused_hidden
    row = [r for r in find(now_box, html.Tr) if r.__dict__.get("data-alert") == "LaneLeak"]
    cells = [text(td) for td in find(row[0], html.Td)]
    assert cells[:6] == ["firing", "warning", "LaneLeak", "B · gray", "20 of 400: 5.00% (≥ 3.26% at 95%) > 1.00%",
                         ">99.9%"]
    assert cells[6].endswith("firing for 12 s") and "CET" in cells[6]
    assert "B served 20 of 400 gray hops" in cells[7] and cells[7].endswith("see the violations →")
    assert [link.href for link in find(row[0], dcc.Link)] == ["/violations?window=300&service=B&lane=gray&kind=leak"]
    history = [text(td) for td in find(find(past_box, html.Tbody)[0], html.Td)]
    assert history[1:5] == ["fired", "LaneLeak", "B · gray", "still firing"] and "CET" in history[0]
    shown = text(rules)
    assert "Evaluated every 1 s; last at" in shown and "2 evaluations so far" in shown
    rule_rows = {r.__dict__["data-rule"]: text(r) for r in find(rules, html.Tr) if r.__dict__.get("data-rule")}
    assert list(rule_rows) == list(V.MEANING)
    here = {r.__dict__["data-rule"]: text(r.children[1]) for r in find(rules, html.Tr) if r.__dict__.get("data-rule")}
    assert here == {**dict.fromkeys(V.MEANING, "evaluated"), "GrayShareDrift": "no target set"}
    assert "above 1.00%, with at least 20 hops" in rule_rows["LaneLeak"]
    assert "Off until a lane has a target_share" in rule_rows["GrayShareDrift"]


def test_alerts_page_history_says_how_long_an_alert_fired(mesh: Mesh) -> None:
    from lanewatch.dashboard.pages import alerts

    _leak(mesh)
    mesh.clock.advance(70)  # the leak leaves the 60 s window: resolved
    mesh.beat()
    mesh.alerts.evaluate()
    _, now_box, past_box, *_ = alerts.refresh(1, STATE, "light", "UTC")
    assert "No alert is firing or pending" in text(now_box)
    rows = [[text(td) for td in find(r, html.Td)] for r in find(find(past_box, html.Tbody)[0], html.Tr)]
    assert [r[1] for r in rows] == ["resolved", "fired"]
    assert rows[0][4] == rows[1][4] == "82 s"  # fired at t+0, resolved at t+82


def test_alerts_page_empty_state_explains_every_alert(mesh: Mesh) -> None:
    from lanewatch.dashboard.pages import alerts

    _, now_box, past_box, *_ = alerts.refresh(1, STATE, "light", "UTC")
    shown = text(now_box)
    assert now_box.id == "alerts-empty"
    assert shown.startswith("No alert is firing or pending: the rules found nothing in the last 60 s of spans.")
    items = [text(li) for li in find(now_box, html.Li)]
    assert [i.split(":")[0] for i in items] == ["LaneLeak", "LaneIntrusion", "LaneTagLost", "DeadLane",
                                                "GrayWorseThanBase", "GrayShareDrift"]
    assert "No alert has fired yet" in text(past_box)


def test_alerts_page_filters_by_name_and_by_the_views_service(mesh: Mesh) -> None:
    from lanewatch.dashboard.pages import alerts

    _leak(mesh)
    note, now_box, past_box, *_ = alerts.refresh(1, STATE, "light", "UTC", "DeadLane")
    assert note == "0 firing, 0 pending (DeadLane)" and "No DeadLane alert is firing" in text(now_box)
    assert "No DeadLane alert has fired yet" in text(past_box)
    note, now_box, *_ = alerts.refresh(1, {**STATE, "service": "A"}, "light", "UTC")
    assert note == "0 firing, 0 pending at A; +1 outside this filter"
    assert "(+1 outside this filter)" in text(now_box)
    bad = alerts.layout(name="NoSuchAlert")
    box = next(d for d in find(bad, html.Div) if getattr(d, "id", None) == "alerts-bad-name")
    assert box.hidden is False and "“NoSuchAlert” is not an alert name" in text(box)
    assert alerts.refresh(1, STATE, "light", "UTC", "NoSuchAlert")[0] == "1 firing, 0 pending"


def test_alerts_page_holds_still_while_the_viewer_selects_and_redraws_only_changes(mesh: Mesh) -> None:
    from lanewatch.dashboard.pages import alerts

    _leak(mesh)
    *_, drawn, _hidden = alerts.refresh(1, STATE, "light", "UTC")
    again = alerts.refresh(2, STATE, "light", "UTC", None, False, drawn)
    assert again[1] is no_update and again[2] is no_update  # nothing changed: nothing sent
    mesh.clock.advance(1)
    mesh.alerts.evaluate()
    later = alerts.refresh(3, STATE, "light", "UTC", None, False, drawn)
    assert later[1] is not no_update and later[2] is no_update  # "firing for 13 s"; same history
    held = alerts.refresh(4, STATE, "light", "UTC", None, True, drawn)
    assert held[1] is no_update and held[2] is no_update and held[5] is False  # paused line shows
    assert alerts.refresh(1, None, "light", "UTC")[1] is no_update  # URL not read yet: loading stays
    assert "loading alerts…" in text(alerts.layout())


def test_the_name_dropdown_writes_the_url_and_keeps_the_view() -> None:
    from lanewatch.dashboard.pages import alerts

    assert alerts.set_name("LaneLeak", "?window=60&lane=gray") == "?window=60&lane=gray&name=LaneLeak"
    assert alerts.set_name("LaneLeak", "?name=LaneLeak") is no_update
    assert alerts.set_name(None, "?lane=gray&name=LaneLeak") == "?lane=gray"
    assert alerts.set_name(None, "?name=Bogus") is no_update


def test_controls_keep_a_pages_own_parameters(mesh: Mesh) -> None:
    from lanewatch.dashboard import shell_callbacks as SC

    state = {"window_s": 300, "service": None, "lane": None, "kind": None}
    out = SC.sync("?name=LaneLeak", "60", None, None, None, state, "shell-window")
    assert out[0] == "?window=60&name=LaneLeak"
    assert SC.nav("?name=LaneLeak&lane=gray", "/alerts")[:2] == ["/?lane=gray", "/alerts?lane=gray"]


def test_overview_shows_the_real_alert_card(mesh: Mesh) -> None:
    from lanewatch.dashboard.pages import overview

    _leak(mesh)
    out = overview.refresh(1, {**STATE, "lane": "gray"}, "light", "UTC", None)
    card = out[2]
    assert card.id == "overview-alert-state" and card.__dict__["data-state"] == "firing"
    assert "B served 20 of 400 gray hops" in text(card)
    hrefs = [link.href for link in find(card, dcc.Link)]
    assert hrefs == ["/alerts?lane=gray", "/violations?window=300&service=B&lane=gray&kind=leak",
                     "/violations?lane=gray"]


def test_rules_say_which_run_here_with_their_thresholds() -> None:
    import dataclasses

    from lanewatch.config.alerting import LaneTarget

    settings = dataclasses.replace(config.load(environ={}, flags={"alerts.leak_threshold": 0.05}),
                                   lanes={"gray": LaneTarget(0.02, 0.01)})
    lines = {n: (text_, here) for n, text_, here in V.rule_lines(settings, ["LaneLeak", "GrayShareDrift"])}
    assert lines["LaneLeak"] == (("Fires when the 95% lower bound of the leaked share is above 5.00%, with at "
                                  "least 20 hops of the lane over the last 60 s."), "evaluated")
    assert lines["GrayShareDrift"] == ("Targets: gray 2.00% ± 1.00%.", "evaluated")
    assert lines["DeadLane"][1] == "off"
