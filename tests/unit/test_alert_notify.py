"""Alert delivery, the pure parts: webhook grouping, Alertmanager bodies, URL redaction, settings."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from lanewatch import config
from lanewatch.alerts.alertmanager import AlertmanagerNotifier, alerts_url, postable
from lanewatch.alerts.delivery import RetryPolicy
from lanewatch.alerts.model import FIRING, PENDING, RESOLVED, Alert, fingerprint, rfc3339
from lanewatch.alerts.notify import (
    WebhookNotifier,
    default_external_url,
    group_key,
    notifiers_from,
    payloads,
)
from lanewatch.config.urls import redact, scrub
from lanewatch.server import add_up_arguments

T = 1_800_000_000.0


def alert(name: str, service: str, state: str = FIRING, **labels: str) -> Alert:
    return Alert(labels={"alertname": name, "service": service, "lane": "gray", "severity": "warning", **labels},
                 state=state, active_at=T, fired_at=T + 1, resolved_at=T + 9 if state == RESOLVED else None,
                 value=0.02, threshold=0.01, text=f"leak at {service}")


def test_one_payload_per_alertname_with_the_group_firing_now_and_the_just_resolved() -> None:
    b, c, d = alert("LaneLeak", "B"), alert("LaneLeak", "C"), alert("LaneLeak", "D", RESOLVED)
    intrusion = alert("LaneIntrusion", "B", severity="critical")
    out = payloads([c, d, intrusion], [b, c, intrusion], "http://lw:8050")
    assert [p["groupKey"] for p in out] == ['{}:{alertname="LaneIntrusion"}', '{}:{alertname="LaneLeak"}']
    leak = out[1]
    assert [a["labels"]["service"] for a in leak["alerts"]] == ["B", "C", "D"]
    assert [a["status"] for a in leak["alerts"]] == ["firing", "firing", "resolved"]
    assert leak["status"] == "firing"
    assert leak["commonLabels"] == {"alertname": "LaneLeak", "lane": "gray", "severity": "warning"}
    assert leak["commonAnnotations"] == {"value": "0.02", "threshold": "0.01"}  # summaries differ


def test_a_group_is_resolved_when_none_of_it_fires_and_unchanged_groups_are_not_sent() -> None:
    gone = alert("LaneLeak", "B", RESOLVED)
    [only] = payloads([gone], [alert("DeadLane", "C")], "")
    assert only["status"] == "resolved" and only["groupLabels"] == {"alertname": "LaneLeak"}
    assert only["alerts"][0]["endsAt"] == rfc3339(T + 9)
    assert payloads([], [alert("LaneLeak", "B")], "") == []
    assert payloads([alert("LaneLeak", "B", PENDING)], [], "") == []


def test_group_key_is_alertmanagers_form() -> None:
    assert group_key({"alertname": "LaneLeak"}) == '{}:{alertname="LaneLeak"}'
    assert group_key({"b": 'x"y', "a": "1"}) == '{}:{a="1", b="x\\"y"}'


def test_empty_labels_are_no_part_of_the_identity() -> None:
    # Alertmanager drops empty-valued labels on receipt; the fingerprint must agree
    assert fingerprint({"alertname": "A", "caller": ""}) == fingerprint({"alertname": "A"})
    assert "caller" not in alert("LaneLeak", "B", caller="").to_alertmanager()["labels"]


def test_alertmanager_body_and_url() -> None:
    firing, resolved = alert("LaneLeak", "B"), alert("LaneLeak", "C", RESOLVED)
    body = postable([firing, resolved], T + 5, 240.0, "http://lw:8050")
    assert [set(x) for x in body] == [{"labels", "annotations", "startsAt", "endsAt", "generatorURL"}] * 2
    assert body[0]["startsAt"] == rfc3339(T + 1) and body[0]["endsAt"] == rfc3339(T + 245)
    assert body[1]["endsAt"] == rfc3339(T + 9)
    assert alerts_url("http://am:9093") == "http://am:9093/api/v2/alerts"
    assert alerts_url("http://am:9093/prefix/?x=1") == "http://am:9093/prefix/api/v2/alerts?x=1"
    assert alerts_url("http://am:9093/api/v2/alerts") == "http://am:9093/api/v2/alerts"


def test_redaction_hides_userinfo_query_values_and_token_segments() -> None:
    url = "https://user:pw@hooks.example:8443/services/T0/B0/abcdefghijklmnopqrstuvwx?token=s3&x=1#frag"
    assert redact(url) == "https://***@hooks.example:8443/services/T0/B0/***?token=***&x=***"
    assert redact("http://h/alerts") == "http://h/alerts"
    text = f"error posting to {url}: 'abcdefghijklmnopqrstuvwx' token=s3"
    cleaned = scrub(text, url)
    assert "pw" not in cleaned and "abcdefghijklmnopqrstuvwx" not in cleaned and "s3" not in cleaned


def test_settings_from_env_yaml_and_flags(tmp_path: Path) -> None:
    s = config.load({}, {"LANEWATCH_ALERT_WEBHOOK": "http://a:1/x, https://b/y",
                         "LANEWATCH_ALERTMANAGER_URL": "http://am:9093"})
    assert s.alert_webhook == ["http://a:1/x", "https://b/y"] and s.alertmanager_url == ["http://am:9093"]
    (tmp_path / "c.yaml").write_text("alert_webhook: [http://c/h]\nexternal_url: https://lw.example\n"
                                     "alertmanager_resend_s: 30\n")
    s = config.load({"config": str(tmp_path / "c.yaml")}, {})
    assert s.alert_webhook == ["http://c/h"] and s.external_url == "https://lw.example"
    parser = argparse.ArgumentParser()
    add_up_arguments(parser)
    args = parser.parse_args(["--alert-webhook", "http://d/1", "--alert-webhook", "http://e/2",
                              "--alertmanager-url", "http://am:9093", "--external-url", "http://lw:1"])
    s = config.load({k: getattr(args, k) for k in ("alert_webhook", "alertmanager_url", "external_url")},
                    {"LANEWATCH_ALERT_WEBHOOK": "http://ignored/"})
    assert s.alert_webhook == ["http://d/1", "http://e/2"] and s.external_url == "http://lw:1"


@pytest.mark.parametrize(("env", "message"), [
    ({"LANEWATCH_ALERT_WEBHOOK": "http://ok/,ftp://u:secret@h/x"},
     "alert_webhook[1]=ftp://***@h/x: expected an http:// or https:// URL"),
    ({"LANEWATCH_ALERTMANAGER_URL": "am:9093"}, "alertmanager_url[0]=am://"),
    ({"LANEWATCH_EXTERNAL_URL": "http:///nohost"}, "external_url=http:///nohost: the URL has no host"),
    ({"LANEWATCH_ALERTMANAGER_RESEND_S": "0"}, "alertmanager_resend_s=0.0: must be > 0"),
])
def test_bad_urls_are_named_at_start_up_without_their_secrets(env: dict[str, str], message: str) -> None:
    with pytest.raises(config.ConfigError) as e:
        config.load({}, env)
    assert message in str(e.value) and "secret" not in str(e.value)


def test_notifiers_from_settings_one_per_url() -> None:
    s = config.load({}, {"LANEWATCH_ALERT_WEBHOOK": "http://a/1,http://b/2", "LANEWATCH_ALERTMANAGER_URL": "http://am:9093",
                         "LANEWATCH_ALERT_TIMEOUT_S": "2", "LANEWATCH_PORT": "9999"})
    notifiers = notifiers_from(s)
    assert [type(n) for n in notifiers] == [WebhookNotifier, WebhookNotifier, AlertmanagerNotifier]
    assert [n.target for n in notifiers] == ["http://a/1", "http://b/2", "http://am:9093/api/v2/alerts"]
    assert notifiers[0].worker.policy == RetryPolicy(timeout_s=2.0, retry_for_s=60.0)
    assert notifiers[0].external_url == "http://127.0.0.1:9999"
    assert notifiers_from(s, lambda: "http://bound:1")[2].external_url == "http://bound:1"
    pinned = dataclasses.replace(s, external_url="https://lw.example")
    assert notifiers_from(pinned, "http://bound:1")[0].external_url == "https://lw.example"
    assert notifiers_from(config.Settings()) == []
    assert default_external_url(dataclasses.replace(s, host="::1"), 80) == "http://[::1]:80"


def test_backoff_doubles_up_to_its_cap() -> None:
    backoffs = RetryPolicy(first_backoff_s=0.5, max_backoff_s=3.0).backoffs()
    assert [next(backoffs) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_the_documented_payload_is_what_lanewatch_sends() -> None:
    import datetime as dt
    import json
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs/alerts.md").read_text()
    example = json.loads(re.findall(r"```json\n(.*?)```", doc, flags=re.DOTALL)[0])
    fired = dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.UTC).timestamp()
    a = Alert(labels={"alertname": "LaneLeak", "service": "B", "lane": "gray", "severity": "warning"},
              state=FIRING, active_at=fired - 3, fired_at=fired, value=0.05, threshold=0.01, confidence=0.95,
              text="20 of 400 gray hops at B (5.0%, Wilson 95% lower bound 3.3%) ran on base over 60 s",
              link="/violations?window=60&service=B&lane=gray")
    assert payloads([a], [a], "http://lanewatch.example:8050") == [example]
