"""The alert rules: evidence in, the conditions that hold out. Pure.

Each rule reads an :class:`Evidence` (window sums of the span path's batches, the live
instances) and returns one :class:`Finding` per label set whose condition holds now; a
label set that is not returned does not hold (``docs/alerts.md`` has every rule).
Evidence-gated shares (leaks, lost tags) use the Wilson 95% lower bound, i.e. the score
test of "the share exceeds the threshold" at 97.5% one-sided: one leaked hop among 1,000
never fires, 20 of 400 does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import numpy as np
import numpy.typing as npt

from lanewatch import lane as L
from lanewatch import scorecard, stats
from lanewatch.config import Settings
from lanewatch.histogram import N_BUCKETS
from lanewatch.query.compare import pct
from lanewatch.query.summary import find_dead_lanes


@dataclass
class Evidence:
    """What the rules see: window sums (keys and one row of sums per key) and instances."""

    now: float
    window_s: int
    #: (service, instance_lane, expected_lane, verdict) -> (requests, errors)
    hops: dict[tuple[str, ...], tuple[float, ...]]
    #: (service, instance_lane) -> latency histogram (:data:`~lanewatch.histogram.N_BUCKETS`)
    latency: dict[tuple[str, ...], npt.NDArray[np.float64]]
    #: (caller, callee, lane sent, entry_lane) -> (calls, tag_lost, tag_lost_inside)
    edges: dict[tuple[str, ...], tuple[float, ...]]
    #: entry_lane -> finished traces
    traces: dict[str, float]
    #: the engine's instance rows (``live``, ``first_seen``, ``last_hop``...)
    instances: list[dict[str, Any]] = field(default_factory=list)
    #: hops per (service, instance lane) and the expected lanes, over ``dead_lanes.after_s``
    dead_served: dict[tuple[str, str], int] = field(default_factory=dict)
    dead_wanted: set[str] = field(default_factory=set)


@dataclass
class Finding:
    """A condition that holds: the alert's identity and the evidence of this evaluation."""

    labels: dict[str, str]
    value: float
    threshold: float
    confidence: float | None
    text: str
    link: str
    details: dict[str, Any] = field(default_factory=dict)


Rule = Callable[[Evidence, Settings], list[Finding]]


def _link(path: str, window_s: int, **params: str) -> str:
    return path + "?" + urlencode({"window": str(window_s), **params})


def share_confidence(k: float, n: float, threshold: float) -> float:
    """Confidence that the true share exceeds ``threshold`` (score test; > 0.975 exactly when
    the Wilson 95% lower bound is above it)."""
    if n <= 0 or not 0 < threshold < 1:
        return 0.0
    z = (k / n - threshold) / math.sqrt(threshold * (1 - threshold) / n)
    return round(1 - stats.p_upper(z), 6)


def _share_finding(k: float, n: float, threshold: float, min_n: int) -> tuple[float, float] | None:
    """(share, lower bound) when ``k`` of ``n`` is evidence of a share above ``threshold``."""
    if n < min_n or k <= 0:
        return None
    lo, _ = stats.wilson(k, n)
    return (k / n, lo) if lo > threshold else None


def lane_leak(ev: Evidence, s: Settings) -> list[Finding]:
    """Per (service, lane): hops that expected the lane and were served by another live lane's code."""
    a = s.alerts
    tot: dict[tuple[str, str], list[float]] = {}
    for (svc, _inst, exp, verdict), (n, _e) in ev.hops.items():
        if exp == L.BASE:
            continue
        t = tot.setdefault((svc, exp), [0.0, 0.0])
        t[0] += n
        if verdict == L.Verdict.LEAK.label:
            t[1] += n
    out = []
    for (svc, lane), (n, k) in sorted(tot.items()):
        hit = _share_finding(k, n, a.leak_threshold, a.leak_min_hops)
        if hit is None:
            continue
        share, lo = hit
        out.append(Finding(
            {"alertname": "LaneLeak", "service": svc, "lane": lane, "severity": "warning"},
            round(share, 6), a.leak_threshold, share_confidence(k, n, a.leak_threshold),
            f"{svc} served {int(k):,} of {int(n):,} {lane} hops ({pct(share)}) outside {lane} while "
            f"{lane} was live: the leaked share is at least {pct(lo)} (95%), above {pct(a.leak_threshold)}",
            _link("/violations", ev.window_s, service=svc, lane=lane, kind="leak"),
            {"leaked": int(k), "hops": int(n), "lower_bound": round(lo, 6)}))
    return out


def lane_intrusion(ev: Evidence, s: Settings) -> list[Finding]:
    """Per service: base traffic served by non-base code."""
    per: dict[str, dict[str, float]] = {}
    for (svc, inst, _exp, verdict), (n, _e) in ev.hops.items():
        if verdict == L.Verdict.INTRUSION.label and n > 0:
            lanes = per.setdefault(svc, {})
            lanes[inst] = lanes.get(inst, 0.0) + n
    out = []
    for svc, lanes in sorted(per.items()):
        k = sum(lanes.values())
        if k < s.alerts.intrusion_min:
            continue
        where = ", ".join(f"{int(n):,} by {ln}" for ln, n in sorted(lanes.items()))
        out.append(Finding(
            {"alertname": "LaneIntrusion", "service": svc, "severity": "critical"},
            k, s.alerts.intrusion_min, None,
            f"{svc}: {int(k):,} base hops were served by unreleased code ({where}) in the last "
            f"{ev.window_s} s", _link("/violations", ev.window_s, service=svc, kind="intrusion"),
            {"intrusions": int(k), "by_lane": {ln: int(n) for ln, n in lanes.items()}}))
    return out


def lane_tag_lost(ev: Evidence, s: Settings) -> list[Finding]:
    """Per edge (lost in transit) and per calling service (lost inside it), per entry lane."""
    a = s.alerts
    transit: dict[tuple[str, str, str], list[float]] = {}
    inside: dict[tuple[str, str], list[float]] = {}
    for (caller, callee, _sent, entry), (calls, lost, lost_inside) in ev.edges.items():
        if entry in (L.BASE, "None", "nan", ""):
            continue
        t = transit.setdefault((caller, callee, entry), [0.0, 0.0])
        t[0] += calls
        t[1] += lost - lost_inside
        i = inside.setdefault((caller, entry), [0.0, 0.0])
        i[0] += calls
        i[1] += lost_inside
    out = []
    for (caller, callee, lane), (n, k) in sorted(transit.items()):
        hit = _share_finding(k, n, a.tag_lost_threshold, a.tag_lost_min_calls)
        if hit:
            out.append(Finding(
                {"alertname": "LaneTagLost", "caller": caller, "callee": callee, "lane": lane,
                 "where": "transit", "severity": "warning"},
                round(hit[0], 6), a.tag_lost_threshold, share_confidence(k, n, a.tag_lost_threshold),
                f"{int(k):,} of {int(n):,} {lane} calls {caller} -> {callee} ({pct(hit[0])}) lost the lane "
                f"in transit (a proxy or gateway dropped the header): at least {pct(hit[1])} (95%)",
                _link("/violations", ev.window_s, service=callee, lane=lane, kind="tag_lost"),
                {"lost": int(k), "calls": int(n), "lower_bound": round(hit[1], 6)}))
    for (caller, lane), (n, k) in sorted(inside.items()):
        hit = _share_finding(k, n, a.tag_lost_threshold, a.tag_lost_min_calls)
        if hit:
            out.append(Finding(
                {"alertname": "LaneTagLost", "service": caller, "lane": lane, "where": "inside",
                 "severity": "warning"},
                round(hit[0], 6), a.tag_lost_threshold, share_confidence(k, n, a.tag_lost_threshold),
                f"{caller} lost the {lane} lane inside the service on {int(k):,} of {int(n):,} outgoing "
                f"calls ({pct(hit[0])}; context lost across a thread pool, callback or queue): at least "
                f"{pct(hit[1])} (95%)",
                _link("/violations", ev.window_s, service=caller, lane=lane, kind="tag_lost"),
                {"lost": int(k), "calls": int(n), "lower_bound": round(hit[1], 6)}))
    return out


def dead_lane(ev: Evidence, s: Settings) -> list[Finding]:
    """Per (service, lane): live instances that served nothing while the service served traffic."""
    after = s.dead_lanes.after_s
    out = []
    for d in find_dead_lanes(ev.instances, ev.now, after, ev.dead_wanted, ev.dead_served):
        out.append(Finding(
            {"alertname": "DeadLane", "service": d["service"], "lane": d["lane"], "severity": "warning"},
            float(d["idle_s"]), after, None,
            f"{d['service']} has {d['live_instances']} live {d['lane']} instance(s) that served no hop "
            f"for {d['idle_s']} s while {d['service']} served {d['service_requests']:,} hops: nothing "
            f"reaches {d['lane']}", _link("/lanes", int(after), service=d["service"], lane=d["lane"]),
            {k: d[k] for k in ("live_instances", "idle_s", "service_requests", "last_hop_ts")}))
    return out


def gray_worse_than_base(ev: Evidence, s: Settings) -> list[Finding]:
    """Per (service, lane): the scorecard of the lane vs base fails. The significance level is
    shared among the pairs judged in one evaluation (Bonferroni), so 300 pairs judged every
    second do not raise false alarms at 300 times the rate of one."""
    req: dict[tuple[str, str], list[float]] = {}
    for (svc, inst, _exp, _v), (n, e) in ev.hops.items():
        t = req.setdefault((svc, inst), [0.0, 0.0])
        t[0] += n
        t[1] += e
    th = stats.Thresholds(**dataclasses.asdict(s.compare))
    pairs = [(svc, ln) for (svc, ln), (n, _) in sorted(req.items())
             if ln != L.BASE and n >= th.min_requests and req.get((svc, L.BASE), [0])[0] >= th.min_requests]
    if not pairs:
        return []
    th = dataclasses.replace(th, alpha=th.alpha / len(pairs))
    empty = np.zeros(N_BUCKETS)
    out: list[Finding] = []
    failing: dict[tuple[str, str], set[str]] = {}
    for svc, ln in pairs:
        a, b = req[(svc, ln)], req[(svc, L.BASE)]
        j = scorecard.judge({"requests": int(a[0]), "errors": int(a[1])},
                            {"requests": int(b[0]), "errors": int(b[1])},
                            ev.latency.get((svc, ln), empty), ev.latency.get((svc, L.BASE), empty),
                            ln, L.BASE, svc, th)
        if j["classification"] != "fail":
            continue
        failing[(svc, ln)] = {c["name"] for c in j["checks"] if c["pass"] is False}
        out.append(Finding(
            {"alertname": "GrayWorseThanBase", "service": svc, "lane": ln, "severity": "critical"},
            float(j["score"]), th.marginal_score, j["confidence"], j["text"],
            _link("/compare", ev.window_s, service=svc, lane=ln),
            {"score": j["score"], "classification": j["classification"], "checks": j["checks"],
             "alpha": th.alpha, "pairs_judged": len(pairs)}))
    return _inhibit_callers(out, failing, ev)


def _inhibit_callers(found: list[Finding], failing: dict[tuple[str, str], set[str]],
                     ev: Evidence) -> list[Finding]:
    """Leave out a service whose lane fails only what a callee in the same lane fails too: a
    caller of a failing (or slow) service fails (or is slow) with it, and the alert belongs
    where it starts (as an Alertmanager inhibition rule would do). The callee's alert names
    the callers it explains."""
    callees: dict[tuple[str, str], set[str]] = {}
    for (caller, callee, sent, entry), row in ev.edges.items():
        if row[0] > 0 and caller != callee:
            for ln in {sent, entry}:
                callees.setdefault((caller, ln), set()).add(callee)
    out = []
    for f in found:
        key = (f.labels["service"], f.labels["lane"])
        by = sorted(x for x in callees.get(key, ()) if failing[key] <= failing.get((x, key[1]), set()))
        if not by:
            out.append(f)
            continue
        for g in found:
            if (g.labels["service"], g.labels["lane"]) == (by[0], key[1]):
                g.details.setdefault("explains", []).append(key[0])
    for f in out:
        if f.details.get("explains"):
            f.text += f" (its callers {', '.join(sorted(f.details['explains']))} fail with it: not alerted)"
    return out


def gray_share_drift(ev: Evidence, s: Settings) -> list[Finding]:
    """Per lane with a target share: the 95% interval of its entry share excludes target ± tolerance."""
    n = sum(v for v in ev.traces.values() if v > 0)
    out = []
    for lane, target in sorted(s.lanes.items()):
        k = max(0.0, ev.traces.get(lane, 0.0))
        if n <= 0:
            continue
        lo, hi = stats.wilson(k, n)
        low, high = target.target_share - target.tolerance, target.target_share + target.tolerance
        if not (hi < low or lo > high):  # the interval meets target ± tolerance: no drift shown
            continue
        side = "below" if hi < low else "above"
        out.append(Finding(
            {"alertname": "GrayShareDrift", "lane": lane, "severity": "warning"},
            round(k / n, 6), target.target_share, None,
            f"{lane} got {pct(k / n)} of {int(n):,} traces (95% interval {pct(lo)}-{pct(hi)}), {side} the "
            f"target {pct(target.target_share)} ± {pct(target.tolerance)}",
            _link("/", ev.window_s, lane=lane),
            {"traces": int(k), "all_traces": int(n), "low": round(lo, 6), "high": round(hi, 6)}))
    return out


#: Every rule by alert name (the order alerts are listed in).
RULES: dict[str, Rule] = {
    "LaneLeak": lane_leak, "LaneIntrusion": lane_intrusion, "LaneTagLost": lane_tag_lost,
    "DeadLane": dead_lane, "GrayWorseThanBase": gray_worse_than_base, "GrayShareDrift": gray_share_drift,
}
