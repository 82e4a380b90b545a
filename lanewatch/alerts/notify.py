"""Webhooks in Alertmanager's format (version "4"), and the notifiers the settings ask for.

A payload is what Alertmanager 0.25 posts for one group (``notify/webhook``,
``template.Data``): ``version``, ``groupKey``, ``truncatedAlerts``, ``status``,
``receiver``, ``groupLabels``, ``commonLabels``, ``commonAnnotations``, ``externalURL``,
``alerts``. lanewatch groups by ``alertname``, as a route with ``group_by: [alertname]``
does: the group key is ``{}:{alertname="LaneLeak"}``, exactly the key Alertmanager gives
that route. When an evaluation fires or resolves alerts, each touched group is sent once,
with every alert of it firing now plus the ones that just resolved (like an Alertmanager
group flush); ``status`` is ``firing`` while any of them fires. There is no repeat: a
receiver hears of an alert when it fires and when it resolves.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Final

from lanewatch.alerts.alertmanager import AlertmanagerNotifier
from lanewatch.alerts.delivery import ExternalURL, QueuedNotifier, RetryPolicy
from lanewatch.alerts.model import FIRING, RESOLVED, Alert
from lanewatch.config import Settings

VERSION: Final = "4"
RECEIVER: Final = "lanewatch"


def group_key(group_labels: Mapping[str, str]) -> str:
    """Alertmanager's group key of the root route for these group labels:
    ``{}:{alertname="LaneLeak"}`` (route matchers, then the label set as Go prints it)."""
    inner = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(group_labels.items()))
    return "{}:{" + inner + "}"


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The entries every map has with the same value (commonLabels, commonAnnotations)."""
    if not maps:
        return {}
    return {k: v for k, v in maps[0].items() if all(m.get(k) == v for m in maps[1:])}


def payload(group: Sequence[Alert], group_labels: Mapping[str, str], external_url: str,
            receiver: str = RECEIVER) -> dict[str, Any]:
    """The webhook body of one group of alerts (firing and resolved ones)."""
    alerts = [a.to_alertmanager(external_url) for a in group]
    return {
        "version": VERSION,
        "groupKey": group_key(group_labels),
        "truncatedAlerts": 0,
        "status": FIRING if any(a["status"] == FIRING for a in alerts) else RESOLVED,
        "receiver": receiver,
        "groupLabels": dict(group_labels),
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": external_url,
        "alerts": alerts,
    }


def payloads(changed: Sequence[Alert], firing: Sequence[Alert], external_url: str,
             receiver: str = RECEIVER) -> list[dict[str, Any]]:
    """One body per ``alertname`` that has a change: its firing alerts and its just-resolved
    ones, ordered by labels (as Alertmanager orders a group)."""
    current = {a.fingerprint: a for a in firing if a.state == FIRING}
    current.update((a.fingerprint, a) for a in changed if a.state in (FIRING, RESOLVED))
    out = []
    for name in sorted({a.name for a in changed if a.state in (FIRING, RESOLVED)}):
        group = sorted((a for a in current.values() if a.name == name), key=lambda a: sorted(a.labels.items()))
        out.append(payload(group, {"alertname": name}, external_url, receiver))
    return out


class WebhookNotifier(QueuedNotifier):
    """POSTs every firing and resolved change to one webhook URL, in Alertmanager's webhook
    format version 4, from its own thread (:class:`~lanewatch.alerts.delivery.DeliveryWorker`)."""

    kind = "webhook"

    def __init__(self, url: str, external_url: ExternalURL = "", policy: RetryPolicy | None = None,
                 max_queue: int = 256, receiver: str = RECEIVER) -> None:
        super().__init__(url, external_url, policy, max_queue)
        self.receiver = receiver

    def notify(self, changed: list[Alert], firing: list[Alert]) -> None:
        if not changed:
            return
        for body in payloads(changed, firing, self.external_url, self.receiver):
            self.worker.submit(body)


def default_external_url(settings: Settings, port: int | None = None) -> str:
    """``http://host:port`` of the dashboard (``https`` with ``tls_cert``); a wildcard bind
    address (0.0.0.0, ::) is replaced by this machine's host name, as Prometheus does for its
    external URL."""
    host = settings.host
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.tls_cert else "http"
    return f"{scheme}://{host}:{settings.port if port is None else port}"


def notifiers_from(settings: Settings, external_url: ExternalURL | None = None) -> list[QueuedNotifier]:
    """One notifier per ``alert_webhook`` URL and per ``alertmanager_url``, each with its own
    queue and thread. ``external_url`` is used when the ``external_url`` setting is empty
    (default: :func:`default_external_url`); a callable is read when sending."""
    url: ExternalURL = settings.external_url or external_url or default_external_url(settings)
    policy = RetryPolicy(timeout_s=settings.alert_timeout_s, retry_for_s=settings.alert_retry_for_s)
    out: list[QueuedNotifier] = [WebhookNotifier(u, url, policy) for u in settings.alert_webhook]
    out += [AlertmanagerNotifier(u, url, policy, resend_s=settings.alertmanager_resend_s)
            for u in settings.alertmanager_url]
    return out
