"""The ``GrayWorseThanBase`` rule: the lane's scorecard against base, for every service at once.

Hundreds of (service, lane) pairs are judged every second, so: the significance level
is shared among the pairs of one evaluation (Bonferroni), all pairs are screened at once
in numpy (:func:`~lanewatch.query.compare.may_be_worse`) and only the few that may fail
are judged one by one, and a caller that fails only with a callee of the same lane is
left out (the alert belongs where the failure starts).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lanewatch import lane as L
from lanewatch import scorecard, stats
from lanewatch.alerts.evidence import Evidence, Finding, link
from lanewatch.config import Settings
from lanewatch.histogram import N_BUCKETS
from lanewatch.query.compare import callees_of, may_be_worse


def gray_worse_than_base(ev: Evidence, s: Settings) -> list[Finding]:
    """Per (service, lane): the scorecard of the lane vs base fails at the Bonferroni level."""
    req: dict[tuple[str, str], list[float]] = {}
    for (svc, inst, _exp, _v), (n, e) in ev.hops.items():
        t = req.setdefault((svc, inst), [0.0, 0.0])
        t[0] += n
        t[1] += e
    loose = stats.Thresholds(**dataclasses.asdict(s.compare))
    pairs = [(svc, ln) for (svc, ln), (n, _) in sorted(req.items())
             if ln != L.BASE and n >= loose.min_requests and req.get((svc, L.BASE), [0])[0] >= loose.min_requests]
    if not pairs:
        return []
    strict = dataclasses.replace(loose, alpha=loose.alpha / len(pairs))
    empty = np.zeros(N_BUCKETS)
    lane_t = np.array([req[p] for p in pairs])
    base_t = np.array([req[(p[0], L.BASE)] for p in pairs])
    screen = may_be_worse(lane_t[:, 0], lane_t[:, 1], base_t[:, 0], base_t[:, 1],
                          np.array([ev.latency.get(p, empty) for p in pairs]),
                          np.array([ev.latency.get((p[0], L.BASE), empty) for p in pairs]), loose)
    out: list[Finding] = []
    #: checks each pair fails at the Bonferroni level (alerts) and at the pair's own (callees)
    failing: dict[tuple[str, str], set[str]] = {}
    worse: dict[tuple[str, str], set[str]] = {}
    for (svc, ln), maybe in zip(pairs, screen.tolist()):
        if not maybe:  # surely not worse, even at the pair's own level: the scorecard passes
            continue
        a, b = req[(svc, ln)], req[(svc, L.BASE)]
        sides = ({"requests": int(a[0]), "errors": int(a[1])}, {"requests": int(b[0]), "errors": int(b[1])},
                 ev.latency.get((svc, ln), empty), ev.latency.get((svc, L.BASE), empty), ln, L.BASE, svc)
        worse[(svc, ln)] = _failed(scorecard.judge(*sides, loose))
        if not worse[(svc, ln)]:
            continue
        j = scorecard.judge(*sides, strict)
        if j["classification"] != "fail":
            continue
        failing[(svc, ln)] = _failed(j)
        out.append(Finding(
            {"alertname": "GrayWorseThanBase", "service": svc, "lane": ln, "severity": "critical"},
            float(j["score"]), strict.marginal_score, j["confidence"], j["text"],
            link("/compare", ev.window_s, service=svc, lane=ln),
            {"score": j["score"], "classification": j["classification"], "checks": j["checks"],
             "alpha": strict.alpha, "pairs_judged": len(pairs)}))
    return inhibit_callers(out, failing, worse, ev)


def _failed(judged: dict[str, object]) -> set[str]:
    checks = judged["checks"]
    assert isinstance(checks, list)
    return {c["name"] for c in checks if c["pass"] is False}


def inhibit_callers(found: list[Finding], failing: dict[tuple[str, str], set[str]],
                    worse: dict[tuple[str, str], set[str]], ev: Evidence) -> list[Finding]:
    """Leave out a service whose lane fails only what a callee in the same lane is worse at
    too: a caller of a failing (or slow) service fails (or is slow) with it, and the alert
    belongs where it starts (as an Alertmanager inhibition rule would do). The callee counts
    as worse at its pair's own significance level (``worse``), so that a caller whose
    evidence happens to be stronger for a second is still explained by it. The callee's alert
    names the callers it explains."""
    callees = callees_of((*key, row[0]) for key, row in ev.edges.items())
    out = []
    explains: dict[tuple[str, str], list[str]] = {}
    for f in found:
        key = (f.labels["service"], f.labels["lane"])
        by = sorted(x for x in callees.get(key, ()) if failing[key] <= worse.get((x, key[1]), set()))
        if by:
            explains.setdefault((by[0], key[1]), []).append(key[0])
        else:
            out.append(f)
    for f in out:
        callers = sorted(explains.get((f.labels["service"], f.labels["lane"]), ()))
        if callers:
            f.details["explains"] = callers
            f.text += f" (its callers {', '.join(callers)} fail with it: not alerted)"
    return out
