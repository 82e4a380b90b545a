"""Push alerts to an Alertmanager, the way Prometheus does.

``POST <url>/api/v2/alerts`` with a JSON array of ``{labels, annotations, startsAt,
endsAt, generatorURL}``. Sent at once when an evaluation fires or resolves alerts, and
every ``resend_s`` (default 60 s, Prometheus' ``--rules.alert.resend-delay``) all firing
alerts again, plus those resolved in the last 15 minutes (Prometheus' resolved
retention), so an Alertmanager that restarted or missed a push learns them again.

``endsAt`` of a firing alert is ``now + 4 × max(resend_s, 1 s evaluation interval)``
(Prometheus' ``ValidUntil``): Alertmanager keeps it firing across three missed re-sends,
and resolves it on its own only if lanewatch stops sending. A resolved alert is sent
with ``endsAt`` = the time it resolved.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from lanewatch.alerts.delivery import ExternalURL, QueuedNotifier, RetryPolicy
from lanewatch.alerts.model import FIRING, RESOLVED, Alert, rfc3339

API_PATH: Final = "/api/v2/alerts"
#: How long a resolved alert is still re-sent (Prometheus' ``resolvedRetention``).
RESOLVED_RETENTION_S: Final = 15 * 60.0
EVAL_INTERVAL_S: Final = 1.0


def alerts_url(url: str) -> str:
    """The ``POST /api/v2/alerts`` URL of an Alertmanager given by its base URL (a route
    prefix is kept: ``http://h/am`` -> ``http://h/am/api/v2/alerts``); a URL that already
    ends in ``/api/v2/alerts`` is taken as it is."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    if not path.endswith(API_PATH):
        path += API_PATH
    return urlunsplit(parts._replace(path=path))


def postable(alerts: Sequence[Alert], now: float, valid_s: float, external_url: str) -> list[dict[str, Any]]:
    """The ``POST /api/v2/alerts`` body: firing alerts end ``valid_s`` after ``now``, resolved
    ones when they resolved."""
    out = []
    for a in alerts:
        wire = a.to_alertmanager(external_url)
        end = (a.resolved_at if a.resolved_at is not None else now) if a.state == RESOLVED else now + valid_s
        out.append({"labels": wire["labels"], "annotations": wire["annotations"], "startsAt": wire["startsAt"],
                    "endsAt": rfc3339(end), "generatorURL": wire["generatorURL"]})
    return out


class AlertmanagerNotifier(QueuedNotifier):
    """Pushes firing and resolved alerts to one Alertmanager, re-sending the firing ones
    every ``resend_s``; delivery (queue, thread, retries) as for webhooks."""

    kind = "alertmanager"

    def __init__(self, url: str, external_url: ExternalURL = "", policy: RetryPolicy | None = None,
                 max_queue: int = 256, resend_s: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        super().__init__(alerts_url(url), external_url, policy, max_queue)
        self.resend_s = resend_s
        self._clock = clock
        self._last_resend = float("-inf")
        self._resolved: dict[str, Alert] = {}

    def notify(self, changed: list[Alert], firing: list[Alert]) -> None:
        now = self._clock()
        for a in [*firing, *changed]:
            if a.state == RESOLVED:
                self._resolved[a.fingerprint] = a
            elif a.state == FIRING:
                self._resolved.pop(a.fingerprint, None)
        for fp in [fp for fp, a in self._resolved.items()
                   if now - (a.resolved_at or now) > RESOLVED_RETENTION_S]:
            del self._resolved[fp]
        if now - self._last_resend >= self.resend_s:
            self._last_resend = now
            active = {a.fingerprint: a for a in [*firing, *changed] if a.state == FIRING}
            batch = [a for fp, a in self._resolved.items() if fp not in active] + list(active.values())
        else:
            batch = [a for a in changed if a.state in (FIRING, RESOLVED)]
        if batch:
            valid_s = 4 * max(self.resend_s, EVAL_INTERVAL_S)
            self.worker.submit(postable(batch, now, valid_s, self.external_url))
