"""The alert engine: a batch sink that evaluates the rules every second and hands on changes.

:class:`AlertEngine` takes every batch the span path flushes (:meth:`AlertEngine.write`,
cheap: it only adds to the sliding window), and on its own thread evaluates the rules of
:mod:`.rules` over that window every ``alerts.evaluate_every_s``, updates the states
(:mod:`.state`), writes state changes to the history (a store with the
:class:`~lanewatch.store.base.AlertHistory` capability) and hands them to the notifiers.
Nothing here queries the rollups of the store; on start the alerts that were firing
before a restart are read back from the history. Several processes on one shared store (an
:class:`~lanewatch.store.base.AlertLease`) all evaluate, and the one holding the lease records
and notifies.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lanewatch.alerts.evidence import Evidence, Finding
from lanewatch.alerts.model import FIRING, RESOLVED, Alert, Notifier
from lanewatch.alerts.rules import RULES
from lanewatch.alerts.state import States
from lanewatch.alerts.window import Window
from lanewatch.config import Settings
from lanewatch.config.alerting import DEFAULT_FOR_S
from lanewatch.store.base import AlertHistory, AlertLease, Batch, ChangeFeed

log = logging.getLogger(__name__)
#: rollup table -> the keys the window reads of it (besides ``ts``)
PRIME = {"hops": ["service", "instance_lane", "expected_lane", "verdict"],
         "latency": ["service", "instance_lane", "bucket"],
         "edges": ["caller", "callee", "lane", "entry_lane"], "traces": ["entry_lane"]}
#: The alert lease (a shared store, several evaluating processes) lasts this many evaluations,
#: at least LEASE_MIN_S: a holder that stops is replaced that long after its last evaluation.
LEASE_EVALUATIONS = 5
LEASE_MIN_S = 5.0
#: State changes kept in memory for the API when the store keeps no history.
MEMORY_HISTORY = 1000


class AlertEngine:
    """Rules over a sliding window of batches; ``instances()`` gives the engine's instance rows."""

    def __init__(self, settings: Settings, instances: Callable[[], list[dict[str, Any]]],
                 history: AlertHistory | None = None, notifiers: Sequence[Notifier] = (),
                 clock: Callable[[], float] = time.time, lease: AlertLease | None = None,
                 holder: str = "") -> None:
        a = settings.alerts
        self.settings, self.instances, self.history, self.clock = settings, instances, history, clock
        self.notifiers = list(notifiers)
        #: several processes evaluating one shared store: only the lease's holder records and
        #: notifies (every process evaluates, so each one's API and dashboard are current)
        self._lease, self.holder = lease, holder or f"{socket.gethostname()}:{os.getpid()}"
        self.lease_s = max(LEASE_MIN_S, LEASE_EVALUATIONS * float(a.evaluate_every_s))
        #: whether this process recorded and notified at its last evaluation; who did
        self.leader, self.lease_holder = lease is None, self.holder if lease is None else ""
        self.window_s, self.dead_s = int(a.window_s), int(settings.dead_lanes.after_s)
        self.window = Window([self.window_s, self.dead_s])
        self.states = States(lambda n: a.for_s.get(n, DEFAULT_FOR_S.get(n, 0.0)),
                             lambda n: a.keep_firing_for_s.get(n, 0.0))
        self.rules = {n: r for n, r in RULES.items() if a.enabled and n not in a.disabled}
        #: rule, history and notifier failures by name; evaluations done; the last one's cost
        self.failures: Counter[str] = Counter()
        self.evaluations = 0
        self.last_evaluation: dict[str, Any] = {}
        self._recent: deque[dict[str, Any]] = deque(maxlen=MEMORY_HISTORY)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: ``lanewatch serve``: no batches arrive; each evaluation reads the window from here
        self._follow: Any = None
        #: the followed store's version at the last read, and the second it read up to
        self._followed: tuple[int, int] | None = None
        if history is not None:
            self._restore(history)

    # ---- the feed -----------------------------------------------------------------------
    def write(self, batch: Batch) -> None:
        """BatchSink: add the batch's rollups to the window (the rules run on their own clock)."""
        with self._lock:
            self.window.add(batch)

    def prime(self, store: Any, now: float) -> None:
        """Fill the window from ``store``'s rollups of the last seconds (once, on start), so an
        alert firing before a restart is judged on the same evidence after it."""
        batch = self._read_window(store, now)
        with self._lock:
            self.window.advance(now)
            self.window.add(batch)

    def _read_window(self, store: Any, now: float, since: int | None = None) -> Batch:
        """The window's rollups up to ``now`` (from ``since`` on when given)."""
        t0, t1 = int(now) - max(self.window_s, self.dead_s), int(now) + 1
        if since is not None:
            t0 = max(t0, since)
        rollups: dict[str, Mapping[str, Sequence[Any]]] = {}
        for table, keys in PRIME.items():
            df = store.rollup(table, t0, t1, ["ts", *keys])
            rollups[table] = {c: df[c].tolist() for c in df.columns}
        return Batch(rollups=rollups)

    def follow(self, store: Any) -> None:
        """Evaluate from ``store``'s rollups, read before each evaluation (a process that writes
        no batches itself: ``lanewatch serve`` over a shared store). A store with a change feed
        is re-read only from the oldest second that changed (or that the last read did not
        reach); one without, whole."""
        self._follow = store
        self._followed = None

    def _refill(self, now: float) -> None:
        store = self._follow
        feed = store if isinstance(store, ChangeFeed) else None
        version = feed.version() if feed is not None else None  # before the read: a change
        # committed during it is reported again next time (re-read, never missed)
        start = int(now) - max(self.window_s, self.dead_s)
        if feed is not None and version is not None and self._followed is not None:
            seen, reached = self._followed
            changed = feed.changed_since(seen)
            since = reached if changed is None else min(reached, changed)
            if since > start:  # 0 (anything may have changed) or older: read it all
                batch = self._read_window(store, now, since)
                with self._lock:
                    self.window.advance(now)
                    self.window.drop_from(since)
                    self.window.add(batch)
                self._followed = (version, int(now) + 1)
                return
        fresh = Window([self.window_s, self.dead_s])
        fresh.advance(now)
        fresh.add(self._read_window(store, now))
        with self._lock:
            self.window = fresh
        self._followed = None if version is None else (version, int(now) + 1)

    # ---- evaluation ---------------------------------------------------------------------
    def evidence(self, now: float) -> Evidence:
        """The window's sums at ``now`` as the rules read them."""
        if self._follow is not None and self.rules:  # no rule on: nothing to read the store for
            self._refill(now)
        with self._lock:
            self.window.advance(now)
            fam = self.window.families
            hops = _pairs(fam["hops"].keys, fam["hops"].totals(self.window_s))
            dead = _pairs(fam["hops"].keys, fam["hops"].totals(self.dead_s))
            latency = {k: row.copy() for k, row in zip(fam["latency"].keys, fam["latency"].totals(self.window_s))
                       if row.any()}
            edges = _pairs(fam["edges"].keys, fam["edges"].totals(self.window_s))
            traces = {k[0]: v[0] for k, v in _pairs(fam["traces"].keys,
                                                    fam["traces"].totals(self.window_s)).items()}
        served: dict[tuple[str, str], int] = {}
        wanted: set[str] = set()
        for (svc, inst, exp, _v), (n, _e) in dead.items():
            if n > 0:
                served[(svc, inst)] = served.get((svc, inst), 0) + int(n)
                wanted.add(exp)
        return Evidence(now, self.window_s, hops, latency, edges, traces,
                        instances=live_rows(self.instances(), now, self.settings.liveness_ttl_s),
                        dead_served=served, dead_wanted=wanted)

    def evaluate(self, now: float | None = None) -> list[Alert]:
        """Run every rule once; returns the alerts that started firing or resolved."""
        now = self.clock() if now is None else now
        t0 = time.perf_counter()
        ev = self.evidence(now)
        findings: list[Finding] = []
        failed: set[str] = set()
        for name, rule in self.rules.items():
            try:
                findings += rule(ev, self.settings)
            except Exception:  # one broken rule must not silence the others
                log.exception("alert rule %s failed", name)
                self.failures[f"rule:{name}"] += 1
                failed.add(name)
        with self._lock:
            changed = self.states.update(findings, now, lambda n: n not in failed)
            firing = self.states.firing()
        self.evaluations += 1
        self.last_evaluation = {"at": now, "ms": round(1000 * (time.perf_counter() - t0), 3),
                                "findings": len(findings), "late_rows": self.window.too_late}
        leader = self._hold_lease(now)
        if changed:
            self._record(changed, now, leader)
        for n in self.notifiers if leader else ():
            try:
                n.notify(changed, firing)
            except Exception:
                log.exception("alert notifier %s failed", type(n).__name__)
                self.failures[f"notifier:{type(n).__name__}"] += 1
        return changed

    def _hold_lease(self, now: float) -> bool:
        if self._lease is None:
            return True
        try:
            self.lease_holder = self._lease.alert_lease(self.holder, self.lease_s, now)
        except Exception:  # no lease, no second copy of each change: stand by, counted
            log.exception("alert lease failed")
            self.failures["lease"] += 1
            self.lease_holder = ""
        was, self.leader = self.leader, self.lease_holder == self.holder
        if was != self.leader:
            log.info("alerts: %s records and notifies (lease holder %s)",
                     "this process" if self.leader else "another process", self.lease_holder or "unknown")
        return self.leader

    def _record(self, changed: list[Alert], now: float, leader: bool = True) -> None:
        rows = [event_row(a, now) for a in changed]
        self._recent.extendleft(rows)
        if self.history is None or not leader:
            return
        try:
            self.history.write_alert_events(rows, self.settings.alerts.history_keep)
        except Exception:  # the alert still goes out; the history misses it, counted
            log.exception("alert history write failed")
            self.failures["history"] += 1

    def _restore(self, history: AlertHistory) -> None:
        try:
            events = history.alert_events(limit=self.settings.alerts.history_keep)
        except Exception:
            log.exception("alert history read failed")
            self.failures["history"] += 1
            return
        newest: dict[str, dict[str, Any]] = {}
        for e in events:  # newest first: the first event of each alert is its state now
            newest.setdefault(str(e["fingerprint"]), e)
        self.states.restore(alert_of(e) for e in newest.values() if e["state"] == FIRING)
        self._recent.extend(events[:MEMORY_HISTORY])

    # ---- reads --------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Evaluations, failures (rules, history, notifiers) and each notifier's counters."""
        notifiers = []
        for n in self.notifiers:
            try:
                notifiers.append({"kind": n.kind, "target": n.target, **n.stats()})
            except Exception:  # a broken notifier still shows, without its counters
                log.exception("alert notifier %s: stats failed", type(n).__name__)
                notifiers.append({"kind": n.kind, "target": n.target})
        return {"evaluations": self.evaluations, "last_evaluation": dict(self.last_evaluation),
                "failures": dict(self.failures), "notifiers": notifiers,
                "lease": {"shared": self._lease is not None, "leader": self.leader,
                          "holder": self.lease_holder or None, "me": self.holder, "ttl_s": self.lease_s}}

    def current(self) -> list[Alert]:
        with self._lock:
            return self.states.current()

    def recent(self, limit: int = 100, name: str | None = None) -> list[dict[str, Any]]:
        """The newest state changes (of alert ``name``), newest first (the store's history
        when it keeps one)."""
        if self.history is not None:
            try:
                return self.history.alert_events(limit=limit, name=name)
            except Exception:
                log.exception("alert history read failed")
        return [e for e in self._recent if name is None or e["alertname"] == name][:limit]

    # ---- thread -------------------------------------------------------------------------
    def start(self) -> None:
        """Evaluate on a thread, every ``evaluate_every_s``. Following a store, the first
        evaluation (the one read of the whole window) runs here, before the caller says it is
        ready: its alerts are current from the first request, and the first page does not
        share the cores with it."""
        if self._follow is not None:
            self._evaluate_logged()
        self._thread = threading.Thread(target=self._loop, name="lanewatch-alerts", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        every = self.settings.alerts.evaluate_every_s
        while not self._stop.wait(every - (time.time() % every) if every >= 1 else every):
            self._evaluate_logged()

    def _evaluate_logged(self) -> None:
        try:
            self.evaluate()
        except Exception:
            log.exception("alert evaluation failed")
            self.failures["evaluation"] += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for n in self.notifiers:
            try:
                n.close()
            except Exception:
                log.exception("alert notifier %s failed to close", type(n).__name__)


def _pairs(keys: list[tuple[str, ...]], totals: Any) -> dict[tuple[str, ...], tuple[float, ...]]:
    return {k: tuple(row.tolist()) for k, row in zip(keys, totals) if row.any()}


def live_rows(rows: list[dict[str, Any]], now: float, ttl_s: float) -> list[dict[str, Any]]:
    """The engine's instance rows with ``live`` as :meth:`lanewatch.query.Query.instances` sets it."""
    return [{**r, "live": bool(r["last_seen"] >= now - ttl_s and r["state"] != "left")} for r in rows]


def event_row(a: Alert, now: float) -> dict[str, Any]:
    """A state change as a history row."""
    return {"ts": now, "fingerprint": a.fingerprint, "alertname": a.name, "state": a.state,
            "labels": dict(a.labels), "active_at": a.active_at, "fired_at": a.fired_at,
            "resolved_at": a.resolved_at, "value": a.value, "threshold": a.threshold,
            "confidence": a.confidence, "text": a.text, "link": a.link, "details": dict(a.details)}


def alert_of(e: dict[str, Any]) -> Alert:
    """A history row back as an alert."""
    return Alert(dict(e["labels"]), str(e["state"]), float(e["active_at"]), fired_at=e["fired_at"],
                 resolved_at=e["resolved_at"] if e["state"] == RESOLVED else None,
                 last_seen=float(e["ts"]), value=float(e["value"] or 0.0),
                 threshold=float(e["threshold"] or 0.0), confidence=e["confidence"],
                 text=str(e["text"] or ""), link=str(e["link"] or ""), details=dict(e["details"] or {}))
