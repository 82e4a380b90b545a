"""A Kayenta-style judgement: checks, each pass / fail / not judged, into a score 0-100.

Pure. The score is the weighted share of judged checks that passed; a failed
**critical** check makes it 0. ``pass`` at or above ``Thresholds.pass_score``,
``fail`` below ``Thresholds.marginal_score``, ``marginal`` between (the gate then
fails, the alert does not fire). Checks that could not be judged (too little traffic)
are left out; with none judged there is no score and ``pass`` is None (inconclusive).

:func:`judge` is gray vs base on one service: the ``errors`` and ``latency`` checks
of :func:`lanewatch.query.compare.compare_verdict`, scored. The release gate
(``/api/v1/gate``) and the ``GrayWorseThanBase`` alert both read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lanewatch.query.compare import DEFAULT_THRESHOLDS, compare_verdict, confidence_text, pct
from lanewatch.stats import Thresholds


@dataclass(frozen=True)
class Check:
    """One judged question. ``passed`` None: not judged (too little data)."""

    name: str
    passed: bool | None
    value: float | None
    threshold: float | None
    text: str
    critical: bool = False
    weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "pass": self.passed, "value": self.value,
                "threshold": self.threshold, "text": self.text, "critical": self.critical}


def score(checks: Iterable[Check], th: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """``{"score", "classification", "pass"}`` of ``checks`` (all None when none is judged)."""
    judged = [c for c in checks if c.passed is not None]
    if not judged:
        return {"score": None, "classification": None, "pass": None}
    if any(c.critical and not c.passed for c in judged):
        value = 0.0
    else:
        total = sum(c.weight for c in judged)
        value = 100.0 * sum(c.weight for c in judged if c.passed) / total if total > 0 else 100.0
    value = round(value, 1)
    cls = "pass" if value >= th.pass_score else "fail" if value < th.marginal_score else "marginal"
    return {"score": value, "classification": cls, "pass": cls == "pass"}


def judge(lane_tot: Mapping[str, Any], base_tot: Mapping[str, Any],
          hist_lane: npt.NDArray[np.float64], hist_base: npt.NDArray[np.float64],
          lane: str, base: str, service: str, th: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """Gray (``lane``) vs ``base`` on ``service``: ``{"score", "classification", "pass",
    "checks", "text", "confidence", "verdict"}``; ``verdict`` is compare_verdict's (None
    below ``th.min_requests`` on either side, then nothing is judged)."""
    verdict = compare_verdict(lane_tot, base_tot, hist_lane, hist_base, lane, base, th)
    crit = set(th.critical)
    if verdict is None:
        short, n = ((lane, lane_tot["requests"]) if lane_tot["requests"] < th.min_requests
                    else (base, base_tot["requests"]))
        why = f"{short} served {n} requests on {service}, fewer than {th.min_requests}"
        checks = [Check("errors", None, None, None, f"not judged: {why}", "errors" in crit),
                  Check("latency", None, None, None, f"not judged: {why}", "latency" in crit)]
        return {**score(checks, th), "checks": [c.to_dict() for c in checks],
                "text": f"{lane} vs {base} on {service}: not judged, {why}", "confidence": None,
                "verdict": None}
    err, lat = verdict["errors"], verdict["latency"]
    worse_err = verdict["reason"] in ("errors", "both")
    worse_lat = verdict["reason"] in ("latency", "both")
    checks = [
        Check("errors", not worse_err, err["lane_rate"], err["base_rate"],
              f"errors {pct(err['lane_rate'])} vs {pct(err['base_rate'])} on {base} "
              f"({'higher' if worse_err else 'not shown higher'}, p={err['p_value']:.2g}, {err['method']})",
              "errors" in crit),
        Check("latency", not worse_lat if lat else None, lat["prob_slower"] if lat else None,
              0.5 + th.min_latency_effect,
              (f"mean {lat.get('lane_mean_ms') or 0:.1f} ms vs {lat.get('base_mean_ms') or 0:.1f} ms on {base}, "
               f"slower in {lat['prob_slower']:.0%} of pairs "
               f"({'worse' if worse_lat else 'not shown worse'}; the bar: more than "
               f"{0.5 + th.min_latency_effect:.0%} of pairs at p<{th.alpha:.2g}, mean "
               f"+{th.min_latency_increase:.0%} and +{th.min_latency_increase_ms:g} ms; "
               f"p={lat['p_value']:.2g})") if lat
              else "not judged: no latency histogram", "latency" in crit),
    ]
    s = score(checks, th)
    failed = [c.text for c in checks if c.passed is False]
    if failed:
        said = f"{'; '.join(failed)}, confidence {confidence_text(verdict['confidence'])}"
    else:
        said = f"errors and latency not shown worse at {confidence_text(1 - th.alpha)} confidence"
    text = f"{lane} on {service} scores {s['score']:g}/100 vs {base} ({s['classification']}): {said}"
    return {**s, "checks": [c.to_dict() for c in checks], "text": text,
            "confidence": verdict["confidence"], "verdict": verdict}
