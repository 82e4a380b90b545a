"""Gray vs base for one service: the verdict of :meth:`lanewatch.query.Query.compare`."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from lanewatch import stats
from lanewatch.stats import Thresholds

DEFAULT_THRESHOLDS = Thresholds()


def compare_verdict(lane_tot: dict[str, Any], base_tot: dict[str, Any], hist_lane: npt.NDArray[np.float64],
                    hist_base: npt.NDArray[np.float64], lane: str, base: str,
                    th: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, Any] | None:
    """Is ``lane`` worse than ``base``? None below ``th.min_requests`` on either side.

    ``worse`` when the error rate is higher with p < ``th.alpha``, or latency is
    stochastically higher (P(lane slower) > 0.5 + ``th.min_latency_effect``, p < alpha).
    ``confidence`` is 1 - the p-value behind the claim (or of the closest test when none holds).
    """
    if lane_tot["requests"] < th.min_requests or base_tot["requests"] < th.min_requests:
        return None
    errors = stats.error_test(lane_tot["requests"], lane_tot["errors"], base_tot["requests"],
                              base_tot["errors"])
    latency = stats.latency_test(hist_lane, hist_base)
    worse_err = errors["lane_rate"] > errors["base_rate"] and errors["p_value"] < th.alpha
    worse_lat = bool(latency and latency["prob_slower"] > 0.5 + th.min_latency_effect
                     and latency["p_value"] < th.alpha)
    claims = ([errors["p_value"]] if worse_err else []) + ([latency["p_value"]] if worse_lat and latency else [])
    p = min(claims) if claims else min([errors["p_value"]] + ([latency["p_value"]] if latency else []))
    reasons = []
    if worse_err:
        reasons.append(f"error rate {errors['lane_rate']:.2%} vs {errors['base_rate']:.2%}")
    if worse_lat and latency:
        reasons.append(f"slower than {base} in {latency['prob_slower']:.0%} of pairs")
    text = (f"{lane} is worse than {base}: " + "; ".join(reasons) if reasons
            else f"no significant difference between {lane} and {base}")
    return {"worse": bool(claims), "confidence": round(1 - p, 6), "text": text,
            "errors": errors, "latency": latency, "alpha": th.alpha}
