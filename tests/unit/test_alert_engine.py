"""The alert engine on the real span path: spans in, the right alert out (and only that one)."""

from __future__ import annotations

from typing import Any

from lanewatch import config
from lanewatch.alerts.engine import AlertEngine
from lanewatch.alerts.model import FIRING, RESOLVED, Alert
from lanewatch.collect.engine import Engine
from lanewatch.collect.pipeline import Pipeline
from lanewatch.store.duck import DuckStore
from lanewatch.testing import FakeClock, TraceBuilder, heartbeat_request


class Recorder:
    kind, target = "test", "memory"

    def __init__(self) -> None:
        self.changed: list[Alert] = []

    def stats(self) -> dict[str, int]:
        return {"sent": len(self.changed)}

    def notify(self, changed: list[Alert], firing: list[Alert]) -> None:
        self.changed += changed

    def close(self) -> None:
        pass


def _setup(flags: dict[str, Any] | None = None, store: DuckStore | None = None
           ) -> tuple[Engine, Pipeline, AlertEngine, FakeClock, Recorder]:
    clock = FakeClock()
    settings = config.load(environ={}, flags={"trace_wait_s": 1.0, **(flags or {})})
    engine = Engine(settings, clock=clock)
    rec = Recorder()
    alerts = AlertEngine(settings, engine.instances, history=store, notifiers=[rec], clock=clock)
    pipe = Pipeline(engine, [alerts], interval_s=0.5, clock=clock)
    return engine, pipe, alerts, clock, rec


def _beat(engine: Engine, clock: FakeClock, *pairs: tuple[str, str]) -> None:
    for svc, lane in pairs:
        engine.ingest("metrics", heartbeat_request(svc, lane, time_ns=int(clock() * 1e9)), "proto")


def _traffic(engine: Engine, clock: FakeClock, n_ok: int, n_leak: int) -> None:
    """``n_ok`` gray traces that stay gray, ``n_leak`` whose B hop is served by B-base."""
    tb = TraceBuilder(t0=clock())
    for i in range(n_ok + n_leak):
        tb.new_trace()
        a = tb.hop("A", "gray", "gray")
        tb.hop("B", "base" if i < n_leak else "gray", "gray", caller=tb.call(a))
    engine.ingest("traces", tb.body(), "proto")


def _names(alerts: list[Alert]) -> list[tuple[str, str]]:
    return [(a.name, a.state) for a in alerts]


def test_one_leak_in_a_thousand_hops_does_not_fire_twenty_in_four_hundred_do() -> None:
    engine, pipe, alerts, clock, rec = _setup()
    _beat(engine, clock, ("A", "gray"), ("B", "gray"), ("A", "base"), ("B", "base"))
    _traffic(engine, clock, 1000, 1)
    pipe.flush()
    assert alerts.evaluate() == [] and alerts.current() == []
    clock.advance(70)  # the sparse leak (3 s of spans) leaves the window
    _beat(engine, clock, ("A", "gray"), ("B", "gray"), ("A", "base"), ("B", "base"))
    _traffic(engine, clock, 380, 20)
    pipe.flush()
    changed = alerts.evaluate()
    assert _names(changed) == [("LaneLeak", FIRING)]
    a = changed[0]
    assert a.labels == {"alertname": "LaneLeak", "service": "B", "lane": "gray", "severity": "warning"}
    assert a.details["leaked"] == 20 and a.details["hops"] == 400 and a.details["lower_bound"] > 0.01
    assert "20 of 400" in a.text and a.link.startswith("/violations?") and "kind=leak" in a.link
    assert rec.changed == changed


def test_a_leak_resolves_once_it_leaves_the_window_and_the_history_keeps_both() -> None:
    store = DuckStore(":memory:")
    engine, pipe, alerts, clock, _rec = _setup(store=store)
    _beat(engine, clock, ("B", "gray"))
    _traffic(engine, clock, 100, 30)
    pipe.flush()
    assert _names(alerts.evaluate()) == [("LaneLeak", FIRING)]
    clock.advance(30)
    assert alerts.evaluate() == []  # still in the window: still firing
    clock.advance(40)
    assert _names(alerts.evaluate()) == [("LaneLeak", RESOLVED)]
    assert [e["state"] for e in store.alert_events()] == [RESOLVED, FIRING]
    assert alerts.current() == []



class Lease:
    """An alert lease another process may hold (``holder``), or that fails (``broken``)."""

    def __init__(self) -> None:
        self.holder = ""
        self.broken = False
        self.asked: list[tuple[str, float]] = []

    def alert_lease(self, holder: str, ttl_s: float, now: float) -> str:
        self.asked.append((holder, ttl_s))
        if self.broken:
            raise ConnectionError("store gone")
        if not self.holder:
            self.holder = holder
        return self.holder


def test_only_the_lease_holder_records_and_notifies_and_a_broken_lease_stands_by() -> None:
    store = DuckStore(":memory:")
    clock = FakeClock()
    settings = config.load(environ={}, flags={"trace_wait_s": 1.0})
    engine = Engine(settings, clock=clock)
    lease, rec = Lease(), Recorder()
    lease.holder = "other"
    alerts = AlertEngine(settings, engine.instances, history=store, notifiers=[rec], clock=clock,
                         lease=lease, holder="me")
    pipe = Pipeline(engine, [alerts], interval_s=0.5, clock=clock)
    _beat(engine, clock, ("B", "gray"))
    _traffic(engine, clock, 100, 30)
    pipe.flush()
    assert _names(alerts.evaluate()) == [("LaneLeak", FIRING)]  # evaluated: current here too
    assert _names(alerts.current()) == [("LaneLeak", FIRING)]
    assert rec.changed == [] and store.alert_events() == []  # but recorded and sent by "other"
    assert alerts.health()["lease"] == {"shared": True, "leader": False, "holder": "other", "me": "me",
                                        "ttl_s": 5.0}
    lease.holder = ""  # the other stopped: this one takes it and records the next change
    clock.advance(70)
    assert _names(alerts.evaluate()) == [("LaneLeak", RESOLVED)]
    assert _names(rec.changed) == [("LaneLeak", RESOLVED)]
    assert [e["state"] for e in store.alert_events()] == [RESOLVED]
    assert alerts.leader and lease.asked[-1] == ("me", 5.0)
    lease.broken = True  # no lease answer: stand by (no second copy), counted
    alerts.evaluate()
    assert not alerts.leader and alerts.failures["lease"] == 1


def test_alone_an_engine_is_always_the_leader() -> None:
    _engine, _pipe, alerts, _clock, _rec = _setup()
    alerts.evaluate()
    assert alerts.leader and alerts.health()["lease"]["shared"] is False
