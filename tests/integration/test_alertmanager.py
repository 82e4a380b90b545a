"""Against a real Alertmanager (Debian's prometheus-alertmanager 0.25) on loopback: alerts
pushed by lanewatch arrive at a webhook receiver through Alertmanager's own routing, with
the same fingerprint, and Alertmanager's webhook body has the shape of lanewatch's own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from alert_receivers import Receiver, start_alertmanager, wait_for

from lanewatch.alerts.alertmanager import AlertmanagerNotifier
from lanewatch.alerts.delivery import RetryPolicy
from lanewatch.alerts.model import FIRING, RESOLVED, Alert, wire_labels
from lanewatch.alerts.notify import payloads

EXTERNAL = "http://lanewatch.test:8050"
POLICY = RetryPolicy(timeout_s=5.0, retry_for_s=20.0, first_backoff_s=0.2, max_backoff_s=1.0)


@pytest.fixture(scope="module")
def hook() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory, hook: Receiver) -> Iterator[str]:
    with start_alertmanager(tmp_path_factory.mktemp("alertmanager"), hook.url) as url:
        yield url


def alert(name: str, service: str, state: str = FIRING, resolved_at: float | None = None) -> Alert:
    now = time.time()
    return Alert(labels={"alertname": name, "service": service, "lane": "gray", "severity": "critical",
                         "caller": ""},  # an empty label: Alertmanager drops it, and so must the fingerprint
                 state=state, active_at=now - 5, fired_at=now - 2, resolved_at=resolved_at, value=3,
                 threshold=0, text=f"3 base requests served by gray code at {service}",
                 link=f"/violations?service={service}")


def received(hook: Receiver, name: str, status: str) -> dict[str, Any] | None:
    for body in hook.bodies:
        if body.get("groupLabels", {}).get("alertname") == name and body["status"] == status:
            return body
    return None


def test_pushed_alert_arrives_through_alertmanager_routing_then_resolves(alertmanager: str, hook: Receiver) -> None:
    notifier = AlertmanagerNotifier(alertmanager, EXTERNAL, POLICY)
    firing = alert("LaneIntrusion", "B")
    notifier.notify([firing], [firing])
    body = wait_for(lambda: received(hook, "LaneIntrusion", "firing"), 20, "the firing notification from Alertmanager")
    [got] = body["alerts"]
    assert got["labels"] == wire_labels(firing.labels) and "caller" not in got["labels"]
    assert got["annotations"] == firing.annotations()
    assert got["fingerprint"] == firing.fingerprint
    assert got["generatorURL"] == EXTERNAL + "/violations?service=B"
    listed = requests.get(f"{alertmanager}/api/v2/alerts", params={"filter": 'alertname="LaneIntrusion"'},
                          timeout=5).json()
    assert [a["fingerprint"] for a in listed] == [firing.fingerprint]
    assert listed[0]["status"]["state"] == "active"

    resolved = alert("LaneIntrusion", "B", RESOLVED, resolved_at=time.time())
    notifier.notify([resolved], [])
    body = wait_for(lambda: received(hook, "LaneIntrusion", "resolved"), 20, "the resolved notification")
    [got] = body["alerts"]
    assert got["status"] == "resolved" and got["fingerprint"] == firing.fingerprint
    notifier.close()
    assert notifier.stats()["sent"] == 2 and notifier.stats()["failed"] == 0


def test_alertmanager_webhook_body_has_the_shape_of_ours(alertmanager: str, hook: Receiver) -> None:
    a, b = alert("GrayWorseThanBase", "B"), alert("GrayWorseThanBase", "C")
    notifier = AlertmanagerNotifier(alertmanager, EXTERNAL, POLICY)
    notifier.notify([a, b], [a, b])

    def both() -> dict[str, Any] | None:
        body = received(hook, "GrayWorseThanBase", "firing")
        return body if body and len(body["alerts"]) == 2 else None

    theirs = wait_for(both, 20, "Alertmanager's notification of both alerts")
    notifier.close()
    [ours] = payloads([a, b], [a, b], EXTERNAL)
    assert set(ours) == set(theirs)
    assert [set(x) for x in ours["alerts"]] == [set(x) for x in theirs["alerts"]]
    for key in ("version", "groupKey", "status", "groupLabels", "commonLabels", "truncatedAlerts"):
        assert ours[key] == theirs[key], key
    assert theirs["commonLabels"] == {"alertname": "GrayWorseThanBase", "lane": "gray", "severity": "critical"}
    assert ([x["fingerprint"] for x in ours["alerts"]] == [x["fingerprint"] for x in theirs["alerts"]])
    assert [x["endsAt"] for x in theirs["alerts"]] == [x["endsAt"] for x in ours["alerts"]]  # firing: zero time

