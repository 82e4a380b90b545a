"""The read side shared by the API, the dashboard, the alerts and ``lanewatch check``.

Pure over a :class:`~lanewatch.store.base.Store` and an injected clock. A
window is the last ``window_s`` whole seconds up to ``clock()``, the current
(partial) second included: ``from <= ts < to`` with ``to = floor(now) + 1``.
Lanes mean the *instance lane* for requests, errors and latency (what code
served it) and the *entry lane* for traces. Every method returns plain
JSON-able values: no numpy scalars, no NaN (``None`` instead).

Conventions chosen here (documented in ``docs/api.md``):

* ``error_rate`` is ``None`` when there were no requests (in totals and per
  series point); ``stayed_share`` is ``None`` when there were no traces.
* ``lane=L`` and ``service=S`` follow the lane scope of :mod:`.summary` ("whose
  violation is it"): a trace's edges, lost tags and violations belong to its entry
  lane; hops to the lanes they served or expected; trace counts under ``service=S``
  are the traces that had a hop at ``S``.
* ``violations`` in the summary = ``leak + intrusion + tag_lost``, counted
  from the rollups (exact), not from the bounded list of kept violations.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from lanewatch import lane as L
from lanewatch.config import Settings
from lanewatch.histogram import N_BUCKETS
from lanewatch.query import summary as S
from lanewatch.query.compare import callees_of, compare_verdict, mark_followers, verdict_rows
from lanewatch.query.parts import (
    QS,
    clean,
    cube_quantiles,
    lane_order,
    records,
    series_json,
)
from lanewatch.query.series import SeriesReader, histograms
from lanewatch.query.shared import EDGE_KEYS, SharedReads, consistent, edges_by, hops_by
from lanewatch.stats import Thresholds
from lanewatch.store.base import NumberedCounters, PerCollector
from lanewatch.store.base import StoreReader as Store

if TYPE_CHECKING:
    from lanewatch.rules.reload import Reloader


class LiveView(Protocol):
    """What the running collector knows before it reaches the store (optional)."""

    def instances(self) -> list[dict[str, Any]]:
        """Instances as in the store's ``instances`` table, fresher."""
        ...

    def counters(self, after: int | None = None) -> dict[str, int]:
        """Counts not yet flushed to the store; added to the stored ones. ``after``: the
        newest batch the store has (counts of later batches are included)."""
        ...


class AlertSource(Protocol):
    """Where the alerts come from (the running :class:`~lanewatch.alerts.engine.AlertEngine`)."""

    rules: dict[str, Any]
    evaluations: int
    last_evaluation: dict[str, Any]

    def current(self) -> list[Any]:
        """Pending and firing :class:`~lanewatch.alerts.model.Alert` values."""
        ...

    def recent(self, limit: int = 100, name: str | None = None) -> list[dict[str, Any]]:
        """The newest state changes (history rows; of alert ``name``), newest first."""
        ...

    def health(self) -> dict[str, Any]:
        """Evaluations, failures and notifier counters (``/api/v1/health``, ``/metrics``)."""
        ...


#: See :meth:`Query.instances`.
INSTANCES_REUSED_ABOVE = 2000
INSTANCES_REUSE_S = 2.0


class Query:
    """Read-side queries (see ``docs/design.md``) over ``store``; ``clock`` gives now."""

    def __init__(self, store: Store, settings: Settings, clock: Callable[[], float] = time.time,
                 live: LiveView | None = None, alerts: AlertSource | None = None,
                 rules: Reloader | None = None) -> None:
        self.store, self.settings, self.clock, self.live = store, settings, clock, live
        self.alert_source = alerts
        #: the routing rules in force and their reload (``/api/v1/rules``); None: the settings'
        self.rules = rules
        self._steps = SeriesReader(store)
        #: the store's rollups and instances, each read once per render (:mod:`.shared`)
        self.reads = SharedReads(store)
        self._instances_memo: tuple[float, list[dict[str, Any]]] | None = None

    def _window(self, window_s: int, step_s: int = 1) -> tuple[int, int]:
        if window_s < 1 or step_s < 1:
            raise ValueError("window_s and step_s must be >= 1")
        t1 = math.floor(self.clock()) + 1
        return (t1 - int(window_s)) // step_s * step_s, t1

    def summary(self, window_s: int, service: str | None = None, lane: str | None = None) -> dict[str, Any]:
        """Hop verdicts, tag losses, per-lane traffic and trace counts over the window, the
        lanes found dead now, and what was seen (see :mod:`.summary` for the lane scope); its
        reads are one snapshot of the store (:func:`~lanewatch.query.shared.consistent`)."""
        return consistent(self.store, lambda: self._summary(window_s, service, lane))

    def _summary(self, window_s: int, service: str | None, lane: str | None) -> dict[str, Any]:
        t0, t1 = self._window(window_s)
        out = S.summarize(self.reads, t0, t1, window_s, service, lane, self.settings.trace_wait_s)
        instances = self.instances()
        dead = S.dead_lanes(self.reads, instances, self.clock(), self.dead_after_s, service, lane)
        for d in dead:  # a dead lane keeps its row: "nothing went wrong" is then "nothing went"
            if d["lane"] not in out["lanes"]:
                out["lanes"][d["lane"]] = S.lane_rows(pd.DataFrame({"requests": [], "errors": []}),
                                                      pd.DataFrame({"traces": [], "stayed": []}),
                                                      [d["lane"]], out["covered_s"] or None, None)[d["lane"]]
        out["lanes"] = {k: out["lanes"][k] for k in lane_order(out["lanes"])}
        out.update(dead_lanes=dead, dead_after_s=self.dead_after_s,
                   seen=S.seen(self.reads, t0, t1, instances, self.topology()), counters=self._counters())
        return out

    def topology(self) -> Mapping[str, Sequence[str]]:
        """The declared topology in force (reloaded live)."""
        return self.rules.book.current.topology if self.rules is not None else self.settings.topology

    def rule_changes(self, t0: float, t1: float) -> list[dict[str, Any]]:
        """Rule versions that took effect in [t0, t1) (``rule_changes`` of series and compare:
        the dashboard's annotations)."""
        if self.rules is None:
            return []
        return [{"version": v.version, "since": v.since, "source": v.source, "routing_rules": len(v.rules)}
                for v in self.rules.book.versions()[1:] if t0 <= v.since < t1]

    @property
    def thresholds(self) -> Thresholds:
        """When Compare gives a verdict (the ``compare`` settings)."""
        return Thresholds(**dataclasses.asdict(self.settings.compare))

    @property
    def dead_after_s(self) -> float:
        """How long a live lane may serve nothing before it is dead (``dead_lanes.after_s``)."""
        return float(self.settings.dead_lanes.after_s)

    def series(self, window_s: int, service: str | None = None, lane: str | None = None,
               step_s: int = 1) -> dict[str, Any]:
        """Per-step QPS, error rate and p50/p95/p99 per instance lane; one point per step."""
        t0, t1 = self._window(window_s, step_s)
        lanes = self._series(t0, t1, step_s, {"service": service, "instance_lane": lane},
                             [lane] if lane else [])
        return {"step_s": int(step_s), "from": t0, "to": t1, "lanes": lanes,
                "rule_changes": self.rule_changes(t0, t1)}

    def _series(self, t0: int, t1: int, step_s: int, where: dict[str, str | None],
                always: list[str]) -> dict[str, dict[str, list[Any]]]:
        """Series per instance lane with data in the window, plus the lanes in ``always``."""
        arrays = self._steps.read(t0, t1, step_s, where)
        ts = np.arange(t0, t1, step_s, dtype=np.int64)
        with_data = {name for name, a in arrays.items()
                     if (a["req"] != 0).any() or np.isfinite(a["p50_ms"]).any()}
        return {name: series_json(ts, step_s, arrays.get(name)) for name in lane_order(with_data | set(always))}

    def violations(self, window_s: int, kind: str | None = None, service: str | None = None,
                   lane: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Kept violations, newest first (see the module docstring for the filters)."""
        t0, t1 = self._window(window_s)
        svc = [{c: service} for c in ("service", "caller", "callee")] if service else [{}]
        lanes: list[dict[str, str | None]] = [{}]
        if lane:  # the lane scope of .summary: the trace's entry lane, or a hop serving/expecting it
            hop_kinds = [k for k in L.HOP_VIOLATION_NAMES if kind in (None, k)]
            lanes = [{"entry_lane": lane}]
            lanes += [{c: lane, "kind": k} for c in ("instance_lane", "expected_lane") for k in hop_kinds]
        frames = [self.store.violations(t0, t1, {"kind": kind, **s, **ln}, limit) for s in svc for ln in lanes]
        frames = [f for f in frames if not f.empty]
        if not frames:
            return []
        df = frames[0] if len(frames) == 1 else pd.concat(frames).drop_duplicates()
        return records(df.sort_values("ts", ascending=False, kind="stable").head(limit))

    def edges(self, window_s: int, lane: str | None = None, service: str | None = None) -> list[dict[str, Any]]:
        """Per (caller, callee, lane drawn, lane sent, entry lane): calls, rate (calls/s over the
        seconds the data covers), errors, verdict counts. ``lane`` is the lane the request
        carried (sent, or the trace's entry lane when none was sent); ``lane=L`` keeps the
        edges of traces that entered in L and those that sent L (see :mod:`.summary`); ``service=S``
        those with S as caller or callee."""
        t0, t1 = self._window(window_s)
        df = self.store.rollup("edges", t0, t1, ["caller", "callee", "lane", "entry_lane"])
        df = df[df.calls != 0]
        if service:
            df = df[(df.caller == service) | (df.callee == service)]
        if lane:
            df = df[S.edges_of_lane(df, lane)]
        drawn = S.drawn_lane(df)
        df = df.rename(columns={"lane": "sent_lane"})
        df.insert(2, "lane", drawn)
        first = S.first_second(self.store, "edges", "calls", t0, t1, {})
        df.insert(5, "rate", (df.calls / (t1 - first if first is not None else window_s)).round(3))
        return records(df.sort_values(["caller", "callee", "lane", "sent_lane"], kind="stable"))

    def flows(self, window_s: int, service: str | None = None) -> list[dict[str, Any]]:
        """Requests per (service, expected lane, instance lane, verdict), for a Sankey."""
        t0, t1 = self._window(window_s)
        df = self.store.rollup("hops", t0, t1, ["service", "expected_lane", "instance_lane", "verdict"],
                               where={"service": service})
        return records(df.loc[df.requests != 0, ["service", "expected_lane", "instance_lane", "verdict",
                                                 "requests"]])

    def alerts(self, state: str | None = None, name: str | None = None,
               history: int = 100) -> dict[str, Any]:
        """Current alerts (pending and firing; or only ``state``, only alert ``name``) and the
        newest ``history`` state changes; ``enabled`` False when no rule runs (alerts.enabled off, all disabled)."""
        src = self.alert_source
        if src is None:
            return {"enabled": False, "alerts": [], "history": [], "rules": [], "evaluation": {}}
        current = [a.to_dict() for a in src.current()
                   if (state is None or a.state == state) and (name is None or a.name == name)]
        past = src.recent(history, name=name) if history else []
        return {"enabled": bool(src.rules), "alerts": current, "history": past, "rules": sorted(src.rules),
                "evaluation": {**src.last_evaluation, "count": src.evaluations}}

    def instances(self) -> list[dict[str, Any]]:
        """Every known instance; ``live`` when seen within ``liveness_ttl_s`` and not left.

        With more than :data:`INSTANCES_REUSED_ABOVE` of them the answer (a few hundred ms
        to build for 20,000) is reused for :data:`INSTANCES_REUSE_S` (wall clock): the
        dashboard asks for it several times a second. Do not modify the list."""
        memo = self._instances_memo
        if memo is not None and time.monotonic() < memo[0]:
            return memo[1]
        out = self._instances()
        self._instances_memo = ((time.monotonic() + INSTANCES_REUSE_S, out)
                                if len(out) > INSTANCES_REUSED_ABOVE else None)
        return out

    def _instances(self) -> list[dict[str, Any]]:
        rows = {(r["service"], r["lane"], r["instance"]): r for r in records(self.reads.instances())}
        for r in self.live.instances() if self.live else []:
            key = (r["service"], r["lane"], r["instance"])
            old = rows.get(key)
            if old is not None:  # live rows count the hops not yet in the store: added
                hops = [x for x in (old.get("last_hop"), r.get("last_hop")) if x is not None]
                r = {**r, "first_seen": min(old["first_seen"], r["first_seen"]),
                     "hops": int(old.get("hops") or 0) + int(r.get("hops") or 0),
                     "errors": int(old.get("errors") or 0) + int(r.get("errors") or 0),
                     "last_hop": max(hops) if hops else None}
                if old["last_seen"] > r["last_seen"]:
                    r = {**r, "last_seen": old["last_seen"], "state": old["state"]}
            rows[key] = r  # the engine's rows are plain values already
        cutoff = self.clock() - self.settings.liveness_ttl_s
        out = [{**r, "live": bool(r["last_seen"] >= cutoff and r["state"] != "left")}
               for _, r in sorted(rows.items())]
        return out

    def compare(self, service: str, lane: str, window_s: int, base: str = L.BASE,
                step_s: int = 1) -> dict[str, Any]:
        """Instance lane ``lane`` vs ``base`` for one service: series, totals and a verdict
        (one snapshot of the store)."""
        return consistent(self.store, lambda: self._compare(service, lane, window_s, base, step_s))

    def _compare(self, service: str, lane: str, window_s: int, base: str, step_s: int) -> dict[str, Any]:
        t0, t1 = self._window(window_s)
        hops = self.store.rollup("hops", t0, t1, ["instance_lane"], where={"service": service})
        hists = histograms(self.store, t0, t1, {"service": service}, t1 - t0, 1)
        totals, dense = {}, {}
        for name in (lane, base):
            h = hops[hops.instance_lane == name]
            req, err = int(h.requests.sum()), int(h.errors.sum())
            dense[name] = np.zeros(N_BUCKETS)
            p: list[float | None] = [None, None, None]
            if name in hists:
                cube, bmin, i = hists[name]
                dense[name][bmin:bmin + cube.shape[2]] = cube[0, i]
                q = cube_quantiles(cube[:, i:i + 1], bmin)
                p = [clean(q[c][0, 0]) for c in ("p50_ms", "p95_ms", "p99_ms")]
            totals[name] = {"requests": req, "errors": err,
                            "error_rate": round(err / req, 6) if req else None,
                            "p50_ms": p[0], "p95_ms": p[1], "p99_ms": p[2]}
        s0 = self._window(window_s, step_s)[0]
        both = self._series(s0, t1, step_s, {"service": service}, [lane, base])
        series = {name: both[name] for name in (lane, base)}
        verdict = compare_verdict(totals[lane], totals[base], dense[lane], dense[base], lane, base,
                                  self.thresholds)
        return {"service": service, "lane": lane, "base": base, "window_s": int(window_s),
                "series": series, "totals": totals, "verdict": verdict, "rule_changes": self.rule_changes(s0, t1)}

    def compare_all(self, lane: str | None, window_s: int, base: str = L.BASE) -> list[dict[str, Any]]:
        """``lane`` (None: every lane but ``base``) vs ``base`` on each service, worst first.

        Rows as :func:`lanewatch.query.compare.verdict_rows`; two reads for all services, a third
        (the edges) when a row is worse: a caller worse only with its callee ``follows`` it and is
        ordered after it (:func:`~lanewatch.query.compare.mark_followers`). One snapshot."""
        return consistent(self.store, lambda: self._compare_all(lane, window_s, base))

    def _compare_all(self, lane: str | None, window_s: int, base: str) -> list[dict[str, Any]]:
        t0, t1 = self._window(window_s)
        hops = hops_by(self.reads, t0, t1, ["service", "instance_lane"])
        lat = self.reads.rollup("latency", t0, t1, ["service", "instance_lane", "bucket"])
        lanes = [lane] if lane else [x for x in set(hops.instance_lane) if isinstance(x, str)]
        rows = verdict_rows(hops, lat, lanes, base, self.thresholds)  # plain values
        if any(r["worse"] for r in rows):
            mark_followers(rows, callees_of(edges_by(self.reads, t0, t1, EDGE_KEYS)))
        return rows

    def trace(self, trace_id_hex: str) -> dict[str, Any] | None:
        """A kept trace (lane path, hops) with its violations; None when it was not kept."""
        tid = trace_id_hex.strip().lower()
        found = self.store.trace(tid)
        if found is None:
            return None
        out: dict[str, Any] = clean(dict(found))
        out["violations"] = records(self.store.violations(0, 2**62, {"trace_id": tid}, 1000))
        return out

    def services(self, window_s: int) -> list[str]:
        """Services that served or called anything in the window, sorted."""
        t0, t1 = self._window(window_s)
        hops = self.store.rollup("hops", t0, t1, ["service"])
        edges = self.store.rollup("edges", t0, t1, ["caller", "callee"])
        names = set(hops.service[hops.requests != 0]) | set(edges.caller[edges.calls != 0]) \
            | set(edges.callee[edges.calls != 0])
        return sorted(str(n) for n in names if n is not None)

    def lanes(self, window_s: int) -> list[str]:
        """Instance, expected and entry lanes seen in the window, base first."""
        t0, t1 = self._window(window_s)
        hops = hops_by(self.reads, t0, t1, ["instance_lane", "expected_lane"])
        hops = hops[hops.requests != 0]
        traces = self.reads.rollup("traces", t0, t1, ["entry_lane"])
        return lane_order(set(hops.instance_lane) | set(hops.expected_lane)
                          | set(traces.entry_lane[traces.traces != 0]))

    def collectors(self) -> list[dict[str, Any]]:
        """Every collector that wrote the store: ``collector``, ``as_of`` (its clock at its newest
        batch), ``age_s`` (how long ago), ``counters`` (its own; the summary sums them). One row
        for an embedded store that does not keep them per collector."""
        now = self.clock()
        if isinstance(self.store, PerCollector):
            rows = self.store.collectors()
        else:
            rows = [{"collector": self.settings.collector_name, "as_of": now, "counters": self.store.counters()}]
        return [{**r, "age_s": round(max(0.0, now - float(r["as_of"])), 3) if r["as_of"] else None}
                for r in rows]

    def _counters(self) -> dict[str, int]:
        """Stored plus live counts, each counted once (also while a batch is being written)."""
        stored, seq = (self.store.counters_at() if isinstance(self.store, NumberedCounters)
                       else (self.store.counters(), None))
        out = dict(stored)
        for k, v in (self.live.counters(after=seq) if self.live else {}).items():
            out[k] = out.get(k, 0) + int(v)
        return dict(sorted(out.items()))


__all__ = ["QS", "LiveView", "Query"]
