"""Alert states: inactive -> pending -> firing -> resolved, as Prometheus keeps them. Pure.

An alert is identified by its labels (its fingerprint). When its condition starts holding
it is *pending*; once it held for ``for_s`` it is *firing* (at once with ``for_s`` 0).
A pending alert whose condition stops holding goes back to inactive (never notified); a
firing one keeps firing for ``keep_firing_for_s`` after the condition last held, then is
*resolved*. :meth:`States.update` returns the alerts that started firing or resolved in
that evaluation: what notifiers send and what the history keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lanewatch.alerts.evidence import Finding
from lanewatch.alerts.model import FIRING, PENDING, RESOLVED, Alert


class States:
    """The active (pending and firing) alerts, by fingerprint."""

    def __init__(self, for_s: Callable[[str], float], keep_firing_for_s: Callable[[str], float]) -> None:
        self.for_s, self.keep_firing_for_s = for_s, keep_firing_for_s
        self.active: dict[str, Alert] = {}

    def restore(self, alerts: Iterable[Alert]) -> None:
        """Alerts that were firing before a restart: they go on firing (no new notification)
        and resolve as usual when their condition no longer holds."""
        for a in alerts:
            if a.state == FIRING:
                self.active.setdefault(a.fingerprint, a)

    def update(self, findings: Iterable[Finding], now: float,
               evaluated: Callable[[str], bool] = lambda _name: True) -> list[Alert]:
        """Apply one evaluation at ``now``. ``evaluated(alertname)``: False for a rule that could
        not run this time (it raised): its alerts are left as they are, not resolved."""
        changed: list[Alert] = []
        held: set[str] = set()
        for f in findings:
            fp = Alert(f.labels, PENDING, now).fingerprint
            held.add(fp)
            a = self.active.get(fp)
            if a is None:
                a = self.active[fp] = Alert(dict(f.labels), PENDING, active_at=now)
            a.last_seen, a.value, a.threshold, a.confidence = now, f.value, f.threshold, f.confidence
            a.text, a.link, a.details = f.text, f.link, f.details
            if a.state == PENDING and now - a.active_at >= self.for_s(a.name):
                a.state, a.fired_at = FIRING, now
                changed.append(a)
        for fp, a in list(self.active.items()):
            if fp in held or not evaluated(a.name):
                continue
            if a.state == PENDING:
                del self.active[fp]
            elif now - a.last_seen >= self.keep_firing_for_s(a.name):
                a.state, a.resolved_at = RESOLVED, now
                del self.active[fp]
                changed.append(a)
        return changed

    def firing(self) -> list[Alert]:
        return sorted((a for a in self.active.values() if a.state == FIRING), key=_order)

    def current(self) -> list[Alert]:
        """Pending and firing alerts, firing first, critical first, then by name and labels."""
        return sorted(self.active.values(), key=_order)


_SEVERITY = {"critical": 0, "warning": 1, "info": 2}


def _order(a: Alert) -> tuple[int, int, str, list[tuple[str, str]]]:
    return (a.state != FIRING, _SEVERITY.get(a.severity, 3), a.name, sorted(a.labels.items()))
