"""Alert delivery over real HTTP: webhook payloads, retries, timeouts, isolation, redaction."""

from __future__ import annotations

import dataclasses
import logging
import time

import pytest
from alert_receivers import HANG, receiver, wait_for

from lanewatch.alerts.alertmanager import AlertmanagerNotifier
from lanewatch.alerts.delivery import RetryPolicy
from lanewatch.alerts.model import FIRING, RESOLVED, Alert, rfc3339
from lanewatch.alerts.notify import WebhookNotifier
from lanewatch.demo.web import free_port
from lanewatch.testing import FakeClock

T = 1_800_000_000.0
EXTERNAL = "http://lanewatch.test:8050"
FAST = RetryPolicy(timeout_s=2.0, retry_for_s=10.0, first_backoff_s=0.05, max_backoff_s=0.2)
TOP_KEYS = {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels",
            "commonAnnotations", "externalURL", "alerts"}
ALERT_KEYS = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}


def leak(service: str = "B", **changes: object) -> Alert:
    alert = Alert(labels={"alertname": "LaneLeak", "service": service, "lane": "gray", "severity": "warning"},
                  state=FIRING, active_at=T, fired_at=T + 3, last_seen=T + 3, value=0.05, threshold=0.01,
                  confidence=0.95, text=f"5% of gray hops at {service} ran on base",
                  link=f"/violations?service={service}")
    return dataclasses.replace(alert, **changes)


def test_firing_then_resolved_payload_has_every_v4_key_with_its_value() -> None:
    with receiver() as rec:
        notifier = WebhookNotifier(rec.url, EXTERNAL, FAST)
        firing = leak()
        notifier.notify([firing], [firing])
        resolved = leak(state=RESOLVED, resolved_at=T + 70)
        notifier.notify([resolved], [])
        first, second = wait_for(lambda: rec.bodies if len(rec.bodies) == 2 else None, what="two notifications")
        notifier.close()
    assert rec.requests[0].headers["Content-Type"] == "application/json"
    for body, status, ends in ((first, "firing", "0001-01-01T00:00:00Z"), (second, "resolved", rfc3339(T + 70))):
        assert set(body) == TOP_KEYS
        assert body["version"] == "4" and body["truncatedAlerts"] == 0 and body["receiver"] == "lanewatch"
        assert body["groupKey"] == '{}:{alertname="LaneLeak"}'
        assert body["status"] == status
        assert body["groupLabels"] == {"alertname": "LaneLeak"}
        assert body["commonLabels"] == firing.labels
        assert body["commonAnnotations"] == firing.annotations()
        assert body["externalURL"] == EXTERNAL
        [alert] = body["alerts"]
        assert set(alert) == ALERT_KEYS
        assert alert == {"status": status, "labels": firing.labels, "annotations": firing.annotations(),
                         "startsAt": rfc3339(T + 3), "endsAt": ends,
                         "generatorURL": EXTERNAL + "/violations?service=B", "fingerprint": firing.fingerprint}
    assert notifier.stats() == {"sent": 2, "failed": 0, "retried": 0, "dropped": 0, "queued": 0}


def test_5xx_is_retried_until_delivered() -> None:
    with receiver([500, 503]) as rec:
        notifier = WebhookNotifier(rec.url, EXTERNAL, FAST)
        notifier.notify([leak()], [leak()])
        wait_for(lambda: notifier.stats()["sent"] == 1, what="delivery after two 5xx")
        notifier.close()
    assert len(rec.requests) == 3
    assert rec.bodies[0] == rec.bodies[2]
    assert notifier.stats()["retried"] == 2 and notifier.stats()["failed"] == 0


def test_4xx_is_not_retried() -> None:
    with receiver([400]) as rec:
        notifier = WebhookNotifier(rec.url, EXTERNAL, FAST)
        notifier.notify([leak()], [leak()])
        wait_for(lambda: notifier.stats()["failed"] == 1, what="the 400 to count as failed")
        time.sleep(20 * FAST.first_backoff_s)  # several backoffs: a retry would have come by now
        notifier.close()
    assert len(rec.requests) == 1
    assert notifier.stats() == {"sent": 0, "failed": 1, "retried": 0, "dropped": 0, "queued": 0}


def test_a_hanging_receiver_is_retried_and_delays_no_other_url() -> None:
    policy = dataclasses.replace(FAST, timeout_s=1.0)
    with receiver([HANG, HANG]) as slow, receiver() as fast:
        notifiers = [WebhookNotifier(slow.url, EXTERNAL, policy), WebhookNotifier(fast.url, EXTERNAL, policy)]
        for n in notifiers:
            n.notify([leak()], [leak()])
        wait_for(lambda: notifiers[0].stats()["sent"] == 1, what="the slow URL's delivery after two timeouts")
        wait_for(lambda: notifiers[1].stats()["sent"] == 1, what="the second URL's delivery")
        for n in notifiers:
            n.close()
    assert len(slow.requests) == 3 and notifiers[0].stats()["retried"] == 2
    # the second URL got its notification while the first was still timing out, not after
    assert fast.requests[0].at < slow.requests[1].at < slow.requests[2].at
    assert notifiers[1].stats()["retried"] == 0


def test_notify_returns_at_once_while_the_receiver_hangs_and_overflow_is_counted() -> None:
    with receiver([HANG]) as rec:
        notifier = WebhookNotifier(rec.url, EXTERNAL, dataclasses.replace(FAST, timeout_s=5.0), max_queue=4)
        took = []
        for i in range(40):
            alert = leak(service=f"S{i}")
            start = time.perf_counter()
            notifier.notify([alert], [alert])
            took.append(time.perf_counter() - start)
        wait_for(lambda: rec.requests, what="the first request")
        # one attempt may take 5 s; each notify() is bounded far below that
        assert max(took) < 0.1, took
        stats = notifier.stats()
        assert stats["queued"] <= 4 and stats["dropped"] >= 40 - 4 - 1
        rec.release()
        wait_for(lambda: notifier.stats()["queued"] == 0 and notifier.stats()["sent"] >= 1, what="the queue to drain")
        notifier.close()
    assert notifier.stats()["sent"] + notifier.stats()["dropped"] == 40


def test_close_delivers_what_is_queued() -> None:
    with receiver() as rec:
        notifier = WebhookNotifier(rec.url, EXTERNAL, FAST)
        for i in range(5):
            notifier.notify([leak(service=f"S{i}")], [])
        notifier.close()
        assert len(rec.bodies) == 5
        assert [b["alerts"][0]["labels"]["service"] for b in rec.bodies] == [f"S{i}" for i in range(5)]


def test_credentials_in_urls_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = ("s3cr3tpass", "tok3nvalue", "T0K3NINTHEPATH0123456789")
    with receiver([500, 400]) as rec:
        port = rec.server.server_port
        url = f"http://alice:s3cr3tpass@127.0.0.1:{port}/hook/T0K3NINTHEPATH0123456789?token=tok3nvalue"
        notifier = WebhookNotifier(url, EXTERNAL, FAST)
        notifier.notify([leak()], [leak()])
        wait_for(lambda: notifier.stats()["failed"] == 1, what="500 then 400")
        notifier.close()
    assert rec.requests[0].headers["Authorization"].startswith("Basic ")  # the userinfo was used
    refused = WebhookNotifier(f"http://bob:s3cr3tpass@127.0.0.1:{free_port()}/x?token=tok3nvalue", EXTERNAL,
                              dataclasses.replace(FAST, retry_for_s=0.3))
    refused.notify([leak()], [leak()])
    wait_for(lambda: refused.stats()["failed"] == 1, what="connection refused to give up")
    refused.close()
    text = caplog.text
    assert "HTTP 500" in text and "HTTP 400" in text and "connection error" in text
    assert f"http://***@127.0.0.1:{port}/hook/***?token=***" in text
    for secret in secrets:
        assert secret not in text


def test_alertmanager_notifier_resends_firing_alerts_with_prometheus_endsat() -> None:
    clock = FakeClock(T + 3)
    with receiver() as rec:
        notifier = AlertmanagerNotifier(rec.url.removesuffix("/hook"), EXTERNAL, FAST, resend_s=60, clock=clock)
        a, b = leak("B"), leak("C")
        notifier.notify([a], [a])             # the change, at once
        clock.advance(1)
        notifier.notify([b], [a, b])          # the new one only
        clock.advance(30)
        notifier.notify([], [a, b])           # nothing due
        clock.advance(30)
        resolved = leak("B", state=RESOLVED, resolved_at=clock.t)
        notifier.notify([resolved], [b])      # 61 s after the first: everything, resolved too
        wait_for(lambda: len(rec.bodies) == 3, what="three pushes")
        notifier.close()
    assert {r.path for r in rec.requests} == {"/api/v2/alerts"}
    first, second, third = rec.bodies
    assert [x["labels"]["service"] for x in first] == ["B"] and [x["labels"]["service"] for x in second] == ["C"]
    assert set(first[0]) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert first[0]["endsAt"] == rfc3339(T + 3 + 240)  # 4 x the re-send interval ahead
    by_service = {x["labels"]["service"]: x for x in third}
    assert by_service["B"]["endsAt"] == rfc3339(T + 64)
    assert by_service["C"]["endsAt"] == rfc3339(T + 64 + 240)
