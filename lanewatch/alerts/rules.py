"""The alert rules: evidence in, the conditions that hold out. Pure.

Each rule reads an :class:`Evidence` (window sums of the span path's batches, the live
instances) and returns one :class:`Finding` per label set whose condition holds now; a
label set that is not returned does not hold (``docs/alerts.md`` has every rule).
Evidence-gated shares (leaks, lost tags) use the Wilson 95% lower bound, i.e. the score
test of "the share exceeds the threshold" at 97.5% one-sided: one leaked hop among 1,000
never fires, 20 of 400 does.
"""

from __future__ import annotations

import math

from lanewatch import lane as L
from lanewatch import stats
from lanewatch.alerts.evidence import Evidence, Finding, Rule, link
from lanewatch.alerts.worse import gray_worse_than_base
from lanewatch.config import Settings
from lanewatch.query.compare import pct
from lanewatch.query.summary import find_dead_lanes


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
            link("/violations", ev.window_s, service=svc, lane=lane, kind="leak"),
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
            f"{ev.window_s} s", link("/violations", ev.window_s, service=svc, kind="intrusion"),
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
                link("/violations", ev.window_s, service=callee, lane=lane, kind="tag_lost"),
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
                link("/violations", ev.window_s, service=caller, lane=lane, kind="tag_lost"),
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
            f"{d['service']} has {d['live_instances']} live {d['lane']} "
            f"instance{'s' * (d['live_instances'] != 1)} that served no hop for {d['idle_s']} s, "
            f"while in the last {after:g} s {d['service']} served {d['service_requests']:,} hops in "
            f"other lanes: nothing reaches {d['lane']}", link("/lanes", int(after), service=d["service"], lane=d["lane"]),
            {k: d[k] for k in ("live_instances", "idle_s", "service_requests", "last_hop_ts")}))
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
            link("/", ev.window_s, lane=lane),
            {"traces": int(k), "all_traces": int(n), "low": round(lo, 6), "high": round(hi, 6)}))
    return out


#: Every rule by alert name (the order alerts are listed in).
RULES: dict[str, Rule] = {
    "LaneLeak": lane_leak, "LaneIntrusion": lane_intrusion, "LaneTagLost": lane_tag_lost,
    "DeadLane": dead_lane, "GrayWorseThanBase": gray_worse_than_base, "GrayShareDrift": gray_share_drift,
}
