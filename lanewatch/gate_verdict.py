"""What the release gate decides: containment plus gray vs base, scored (``/api/v1/gate``).

The checks, all scored together by :func:`lanewatch.scorecard.score`:

1. the containment checks of :mod:`lanewatch.containment` (the rules of ``lanewatch check``,
   the same function): ``leak``, ``intrusion``, ``tag_lost``, ``traces_violated`` (not under
   ``service=``), ``dead_lanes``; all critical, each must be 0;
2. gray vs base per service (:func:`lanewatch.scorecard.judge`): ``errors:S`` and
   ``latency:S`` for the requested lane vs ``base`` on each service ``S`` where that lane's
   instances served traffic (only ``S`` under ``service=S``). Without ``lane=`` every lane but
   base is compared and the names carry it: ``errors:S[gray]``. ``lane=base`` compares nothing.
   Critical as the ``compare.critical`` setting says (both by default).

``pass`` is False when the score is below ``compare.pass_score`` (a failed critical check
scores 0, so any violation or dead lane fails, however little traffic there was). Otherwise it
is None (**inconclusive**, and ``score`` is None too) when no finished trace was in scope (as
``lanewatch check`` exits 3), when the requested lane served no request in scope (its code was
not exercised: e.g. every gray request fell back to base), or when lanes were there to compare
and none had enough requests (``compare.min_requests`` on both sides) to be judged; else True.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lanewatch import lane as L
from lanewatch.containment import Containment, containment, scope_text
from lanewatch.query import Query
from lanewatch.query.compare import callees_of, sides
from lanewatch.scorecard import Check, judge, score
from lanewatch.stats import Thresholds


def judgements(query: Query, t0: int, t1: int, lane: str | None, service: str | None,
               th: Thresholds) -> list[dict[str, Any]]:
    """:func:`~lanewatch.scorecard.judge` of each (service, lane) vs base in ``t0 <= ts < t1``,
    with ``service`` and ``lane`` added; sorted by service and lane."""
    if lane == L.BASE:
        return []
    where = {"service": service}
    hops = query.store.rollup("hops", t0, t1, ["service", "instance_lane"], where=where)
    lat = query.store.rollup("latency", t0, t1, ["service", "instance_lane", "bucket"], where=where)
    lanes = [lane] if lane else sorted({x for x in hops.instance_lane if isinstance(x, str)} - {L.BASE})
    judged = [{"service": svc, "lane": name, **judge(a, b, ha, hb, name, L.BASE, svc, th)}
              for svc, name, a, b, ha, hb in sides(hops, lat, lanes, L.BASE)]
    if any(j["pass"] is False for j in judged):
        explain_callers(judged, callees_of(query.store.rollup("edges", t0, t1,
                                                             ["caller", "callee", "lane", "entry_lane"])))
    return judged


def _failed(j: dict[str, Any]) -> set[str]:
    return {c["name"] for c in j["checks"] if c["pass"] is False}


def explain_callers(judged: list[dict[str, Any]], callees: dict[tuple[str, str], set[str]]) -> None:
    """Mark a failing (service, lane) whose failed checks a callee in the same lane fails too
    (``follows``: the callee): the caller fails with it, the failure starts at the callee (as
    the GrayWorseThanBase alert does, which leaves such callers out). The caller's checks
    still count; their text says whom they follow."""
    failing = {(j["service"], j["lane"]): _failed(j) for j in judged if j["pass"] is False}
    for j in judged:
        mine = failing.get((j["service"], j["lane"]))
        if not mine:
            continue
        by = sorted(x for x in callees.get((j["service"], j["lane"]), ())
                    if mine <= failing.get((x, j["lane"]), set()))
        if by:
            j["follows"] = by[0]
            for c in j["checks"]:
                if c["pass"] is False:
                    c["text"] += f" (follows its callee {by[0]}, which fails the same)"


def comparison_checks(judged: Sequence[dict[str, Any]], lane: str | None) -> list[dict[str, Any]]:
    """The checks of each judgement, named ``errors:S`` (``errors:S[L]`` without a ``lane``)."""
    out = []
    for j in judged:
        suffix = j["service"] if lane else f"{j['service']}[{j['lane']}]"
        for c in j["checks"]:
            out.append({**c, "name": f"{c['name']}:{suffix}", "text": f"{j['lane']} on {j['service']}: {c['text']}",
                        "service": j["service"], "lane": j["lane"]})
    return out


def _text(verdict: str, head: str, cont: Containment, checks: list[dict[str, Any]],
          judged: Sequence[dict[str, Any]], s: dict[str, Any]) -> str:
    if verdict == "inconclusive":
        if cont.passed is None:
            why = f"no finished trace in {scope_text(cont.lane, cont.service)}, nothing was checked"
        elif not judged:
            where = f" at {cont.service}" if cont.service else ""
            why = (f"no {cont.lane} instance served a request{where}: the {cont.lane} code was not "
                   f"exercised (its traffic fell back to base or never came), nothing to judge")
        else:
            why = "too little traffic to compare with base: " + "; ".join(j["text"] for j in judged)
        return f"INCONCLUSIVE ({head}): {why}"
    if verdict == "fail":
        failed = "; ".join(c["text"] for c in checks if c["pass"] is False)
        return f"FAIL ({head}): score {s['score']:g}/100 ({s['classification']}): {failed}"
    compared = [f"{j['lane']} on {j['service']}" for j in judged if j["pass"] is not None]
    said = f"; not shown worse than base: {', '.join(compared)}" if compared else ""
    stayed = (f"nothing at {cont.service} left its lane ({cont.traces:,} traces passed it)" if cont.service
              else f"all {cont.traces:,} traces stayed in lane")
    return f"PASS ({head}): score {s['score']:g}/100: {stayed}{said}"


def decide(cont: Containment, judged: Sequence[dict[str, Any]], th: Thresholds, window_s: int,
           ) -> dict[str, Any]:
    """The gate's answer from the containment facts and the judgements (pure)."""
    lane = cont.lane
    checks = cont.checks() + comparison_checks(judged, lane)
    s = score([Check(c["name"], c["pass"], c["value"], c["threshold"], c["text"], bool(c["critical"]))
               for c in checks], th)
    # a lane that served nothing in scope was not exercised: "nothing went wrong" is then only
    # "nothing ran" (its traffic fell back to base, or never came), not a pass
    unexercised = lane not in (None, L.BASE) and not judged
    too_little = unexercised or (bool(judged) and all(j["pass"] is None for j in judged))
    if s["pass"] is False:
        verdict, passed = "fail", False
    elif cont.passed is None or too_little or s["pass"] is None:
        verdict, passed = "inconclusive", None
    else:
        verdict, passed = "pass", True
    head = f"{scope_text(lane, cont.service, 'all lanes')}, last {window_s} s"
    return {"pass": passed, "score": s["score"] if passed is not None else None,
            "classification": s["classification"] if passed is not None else "inconclusive",
            "text": _text(verdict, head, cont, checks, judged, s), "window_s": int(window_s),
            "lane": lane, "service": cont.service, "base": L.BASE, "traces": cont.traces,
            "checks": checks,
            "comparisons": [{k: j[k] for k in ("service", "lane", "pass", "score", "classification", "text",
                                               "confidence")} for j in judged]}


def evaluate(query: Query, window_s: int, lane: str | None = None, service: str | None = None,
             ) -> dict[str, Any]:
    """The gate over the last ``window_s`` seconds; raises
    :class:`~lanewatch.containment.UnknownName` on a lane or service not seen (a typo)."""
    summary = query.summary(window_s, service=service, lane=lane)
    cont = containment(summary, lane, service)
    th = query.thresholds
    out = decide(cont, judgements(query, summary["from"], summary["to"], lane, service, th), th, window_s)
    out.update({"from": summary["from"], "to": summary["to"]})
    return out
