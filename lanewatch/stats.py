"""Statistics behind "is gray worse than base?". Pure: numbers in, numbers out.

Tests on counts and on latency histograms (log buckets, aligned): the error-rate
test compares two proportions, the latency test is Mann-Whitney U with ties
within a bucket. Thresholds (how many requests give a verdict, the significance
level, the smallest latency effect worth calling) are a :class:`Thresholds`
value, set from the ``compare`` section of the settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Thresholds:
    """When a comparison gives a verdict, and what counts as worse."""

    #: fewer requests than this on either side gives no verdict
    min_requests: int = 30
    #: significance level of each test
    alpha: float = 0.01
    #: the smallest latency effect, P(lane slower) - 0.5, called worse
    min_latency_effect: float = 0.05


def p_two_sided(z: float) -> float:
    """Two-sided p-value of a standard normal score."""
    return math.erfc(abs(z) / math.sqrt(2))


def error_test(n1: int, e1: int, n2: int, e2: int) -> dict[str, Any]:
    """Two-proportion z-test: ``e1`` errors of ``n1`` requests against ``e2`` of ``n2``."""
    pooled = (e1 + e2) / (n1 + n2)
    se = math.sqrt(max(pooled * (1 - pooled), 0.0) * (1 / n1 + 1 / n2))
    z = (e1 / n1 - e2 / n2) / se if se > 0 else 0.0
    return {"lane_rate": round(e1 / n1, 6), "base_rate": round(e2 / n2, 6), "z": round(z, 3),
            "p_value": p_two_sided(z)}


def latency_test(a: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> dict[str, Any] | None:
    """Mann-Whitney U on two aligned latency histograms (ties within a bucket).

    ``prob_slower`` is P(a sample of ``a`` is slower than one of ``c``), ties counted
    half; None when either side is empty."""
    a, c = np.maximum(a, 0.0), np.maximum(c, 0.0)
    n1, n2 = float(a.sum()), float(c.sum())
    if n1 < 1 or n2 < 1:
        return None
    below = np.cumsum(c) - c
    u = float(np.sum(a * (below + 0.5 * c)))
    t = a + c
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - float(np.sum(t ** 3 - t)) / (n * (n - 1)))
    z = (u - n1 * n2 / 2) / math.sqrt(var) if var > 0 else 0.0
    return {"prob_slower": round(u / (n1 * n2), 4), "z": round(z, 3), "p_value": p_two_sided(z)}
