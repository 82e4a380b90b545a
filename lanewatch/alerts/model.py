"""The alert value every part passes around: identity (labels), state, evidence.

Identity is the label set (``alertname``, ``severity``, and ``service``, ``lane``,
``caller``/``callee``, ``where`` where they apply); a changing value never goes in a
label. :func:`fingerprint` is Alertmanager's (64-bit FNV-1a over the sorted labels), so
an alert has the same id here, in Alertmanager and in every webhook receiver.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

#: Alert states. ``inactive`` alerts are not kept; ``resolved`` ones stay in the history.
PENDING: Final = "pending"
FIRING: Final = "firing"
RESOLVED: Final = "resolved"

_FNV_OFFSET: Final = 14695981039346656037
_FNV_PRIME: Final = 1099511628211
_SEP: Final = 0xFF  # Prometheus' label separator byte


def wire_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels Alertmanager keeps: it drops every label whose value is empty on receipt
    (``removeEmptyLabels`` in its API), so they are no part of the identity anywhere."""
    return {k: v for k, v in labels.items() if v != ""}


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set: FNV-1a 64 over name, 0xff, value, 0xff of
    each non-empty label in name order, as 16 hex digits."""
    return _fingerprint(tuple(sorted(wire_labels(labels).items())))


@functools.lru_cache(maxsize=65536)
def _fingerprint(items: tuple[tuple[str, str], ...]) -> str:
    h = _FNV_OFFSET
    for name, value in items:
        for part in (name, value):
            for byte in part.encode():
                h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ _SEP) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def rfc3339(t: float | None) -> str:
    """``2026-12-02T01:02:03.456Z``; None is Alertmanager's zero time (no end yet)."""
    if t is None:
        return "0001-01-01T00:00:00Z"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Alert:
    """One alert instance. ``value``/``threshold``/``confidence`` are the evidence of the
    newest evaluation; ``text`` says it in one sentence with the numbers; ``link`` is the
    dashboard path that explains it (relative, e.g. ``/violations?window=60&service=B``)."""

    labels: dict[str, str]
    state: str
    #: when the condition first held (start of pending)
    active_at: float
    #: when it started firing (None while pending)
    fired_at: float | None = None
    #: when it resolved (None while active)
    resolved_at: float | None = None
    #: the newest evaluation that saw the condition hold
    last_seen: float = 0.0
    value: float = 0.0
    threshold: float = 0.0
    confidence: float | None = None
    text: str = ""
    link: str = ""
    #: extra numbers of the newest evaluation (counts behind the value), for the API
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "warning")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    def annotations(self) -> dict[str, str]:
        """Alertmanager annotations: the explanation and the evidence, as strings."""
        out = {"summary": self.text, "value": f"{self.value:g}", "threshold": f"{self.threshold:g}"}
        if self.confidence is not None:
            out["confidence"] = f"{self.confidence:.4f}"
        if self.link:
            out["link"] = self.link
        return out

    def to_alertmanager(self, external_url: str = "") -> dict[str, Any]:
        """This alert as Alertmanager's ``POST /api/v2/alerts`` takes it (and, with ``status``
        and ``fingerprint``, as an entry of the webhook payload's ``alerts``)."""
        base = external_url.rstrip("/")
        return {
            "status": "resolved" if self.state == RESOLVED else "firing",
            "labels": wire_labels(self.labels),
            "annotations": self.annotations(),
            "startsAt": rfc3339(self.fired_at if self.fired_at is not None else self.active_at),
            "endsAt": rfc3339(self.resolved_at),
            "generatorURL": (base + self.link) if base and self.link else (self.link or base),
            "fingerprint": self.fingerprint,
        }

    def to_dict(self) -> dict[str, Any]:
        """The API's form (``GET /api/v1/alerts``)."""
        return {"fingerprint": self.fingerprint, "name": self.name, "labels": dict(self.labels),
                "state": self.state, "severity": self.severity, "active_at": self.active_at,
                "fired_at": self.fired_at, "resolved_at": self.resolved_at, "last_seen": self.last_seen,
                "value": self.value, "threshold": self.threshold, "confidence": self.confidence,
                "text": self.text, "link": self.link, "details": dict(self.details)}


class Notifier(Protocol):
    """Where the alert engine hands its changes after every evaluation (about once a second).

    ``changed``: alerts that started firing or resolved in this evaluation (pending ones
    are never notified); ``firing``: every alert firing now (for periodic re-sends). Runs on
    the evaluation thread: it must return at once (queue, then deliver on its own thread)."""

    @property
    def kind(self) -> str:
        """What it delivers to: ``webhook``, ``alertmanager``."""
        ...

    @property
    def target(self) -> str:
        """Where: the URL, redacted."""
        ...

    def notify(self, changed: list[Alert], firing: list[Alert]) -> None: ...

    def stats(self) -> dict[str, int]:
        """Counters ``sent``, ``failed``, ``retried``, ``dropped`` and the gauge ``queued``."""
        ...

    def close(self) -> None:
        """Deliver what is queued (bounded wait), then stop."""
        ...
