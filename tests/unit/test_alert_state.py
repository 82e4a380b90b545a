"""Alert states (pending, firing, resolved; for and keep_firing_for), fingerprints, the window."""

from __future__ import annotations

import numpy as np

from lanewatch.alerts.evidence import Finding
from lanewatch.alerts.model import FIRING, PENDING, RESOLVED, Alert, fingerprint
from lanewatch.alerts.state import States
from lanewatch.alerts.window import Family

LABELS = {"alertname": "LaneLeak", "service": "B", "lane": "gray", "severity": "warning"}


def finding(value: float = 0.05) -> Finding:
    return Finding(dict(LABELS), value, 0.01, 0.99, f"leaked {value}", "/violations")


def states(for_s: float = 0.0, keep: float = 0.0) -> States:
    return States(lambda _n: for_s, lambda _n: keep)


def test_pending_for_the_for_duration_then_firing_then_resolved() -> None:
    s = states(for_s=3)
    assert s.update([finding()], 100) == [] and s.current()[0].state == PENDING
    assert s.update([finding()], 102) == []
    [fired] = s.update([finding(0.07)], 103)
    assert fired.state == FIRING and fired.fired_at == 103 and fired.active_at == 100 and fired.value == 0.07
    [gone] = s.update([], 104)
    assert gone.state == RESOLVED and gone.resolved_at == 104 and s.current() == []


def test_a_pending_alert_that_stops_holding_is_never_notified() -> None:
    s = states(for_s=5)
    s.update([finding()], 100)
    assert s.update([], 101) == [] and s.current() == []
    assert s.update([finding()], 102) == [] and s.current()[0].active_at == 102  # starts over


def test_keep_firing_for_bridges_a_gap_and_a_changing_value_is_the_same_alert() -> None:
    s = states(keep=10)
    [a] = s.update([finding(0.05)], 100)
    assert s.update([], 105) == [] and s.firing()[0].value == 0.05
    assert s.update([finding(0.2)], 106) == [] and s.firing()[0] is a and a.value == 0.2
    assert s.update([], 115) == []
    assert [x.state for x in s.update([], 116)] == [RESOLVED]


def test_a_rule_that_could_not_run_leaves_its_alerts_alone() -> None:
    s = states()
    s.update([finding()], 100)
    assert s.update([], 101, evaluated=lambda n: n != "LaneLeak") == [] and s.firing()


def test_restored_firing_alerts_go_on_firing_without_a_new_notification() -> None:
    s = states()
    old = Alert(dict(LABELS), FIRING, 50.0, fired_at=50.0, last_seen=90.0)
    s.restore([old])
    assert s.update([finding()], 100) == [] and s.firing()[0].fired_at == 50.0


def test_fingerprint_is_alertmanagers_fnv1a_over_sorted_labels() -> None:
    # Alertmanager's fingerprint of the empty label set is FNV-1a's offset basis
    assert fingerprint({}) == "cbf29ce484222325"
    assert fingerprint(LABELS) == fingerprint(dict(reversed(list(LABELS.items()))))
    assert fingerprint(LABELS) != fingerprint({**LABELS, "lane": "gray2"})
    assert len(fingerprint(LABELS)) == 16


def test_window_totals_equal_a_plain_sum_of_the_seconds_in_each_span() -> None:
    rng = np.random.default_rng(3)
    fam = Family(2, [5, 20])
    rows: list[tuple[int, int, int, float]] = []
    now = 1000
    for _ in range(300):
        if rng.random() < 0.3:
            now += int(rng.integers(0, 4))
            fam.advance(now)
        sec = now - int(rng.integers(-2, 30))
        key = fam.index((f"s{int(rng.integers(0, 6))}",))
        col, val = int(rng.integers(0, 2)), float(rng.integers(-1, 5))
        if fam.add(sec, np.array([key]), np.array([col]), np.array([val])):
            rows.append((sec, key, col, val))
        for span in (5, 20):
            want = np.zeros((len(fam.keys), 2))
            for s, k, c, v in rows:
                if now - span < s:  # the span's seconds: (now - span, now], and later ones
                    want[k, c] += v
            assert np.allclose(fam.totals(span), want), (span, now)
