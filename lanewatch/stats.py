"""Statistics behind "is gray worse than base?". Pure: numbers in, numbers out.

Every test here is **one-sided**: its ``p_value`` is the p-value of the claim
"the lane is worse" (more errors, or slower), so ``1 - p_value`` is the
confidence in that claim and nothing else. The error-rate test is a
two-proportion z-test, or Fisher's exact test when fewer than
``FISHER_BELOW`` errors (or successes) are expected in a cell; the latency
test is Mann-Whitney U on aligned log-bucket histograms (ties within a
bucket). Thresholds (how many requests give a verdict, the significance
level, the smallest latency effect worth calling) are a :class:`Thresholds`
value, set from the ``compare`` section of the settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lanewatch.histogram import N_BUCKETS, bucket_mid_ms

#: Fisher's exact test replaces the z-test when an expected cell count is below this.
FISHER_BELOW = 10.0


@dataclass(frozen=True)
class Thresholds:
    """When a comparison gives a verdict, and what counts as worse."""

    #: fewer requests than this on either side gives no verdict
    min_requests: int = 30
    #: significance level of each test
    alpha: float = 0.01
    #: the smallest latency effect, P(lane slower) - 0.5, called worse
    min_latency_effect: float = 0.05
    #: and the smallest rise of the mean latency called worse: relative and in ms (both must hold)
    min_latency_increase: float = 0.1
    min_latency_increase_ms: float = 1.0
    #: a score (0-100) at or above this passes
    pass_score: float = 75.0
    #: a score below this fails; between the two it is marginal
    marginal_score: float = 50.0
    #: checks whose failure alone fails the judgement (score 0)
    critical: tuple[str, ...] = ("errors", "latency")

    def __post_init__(self) -> None:
        object.__setattr__(self, "critical", tuple(self.critical))  # a list from the settings


def p_two_sided(z: float) -> float:
    """Two-sided p-value of a standard normal score."""
    return math.erfc(abs(z) / math.sqrt(2))


def p_upper(z: float) -> float:
    """One-sided p-value P(Z >= z) of a standard normal score."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def _log_choose(n: npt.NDArray[np.float64] | float, k: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    lg = np.vectorize(math.lgamma, otypes=[np.float64])
    return np.asarray(lg(np.asarray(n, dtype=np.float64) + 1) - lg(k + 1) - lg(n - k + 1))


def fisher_greater(n1: int, e1: int, n2: int, e2: int) -> float:
    """One-sided Fisher's exact test: P(at least ``e1`` of the ``e1 + e2`` errors fall in the
    ``n1`` lane requests), margins fixed (hypergeometric upper tail).

    Equals ``scipy.stats.fisher_exact([[e1, n1 - e1], [e2, n2 - e2]], "greater")``."""
    n, k = n1 + n2, e1 + e2
    lo, hi = max(0, n1 - (n - k)), min(n1, k)
    if e1 <= lo:
        return 1.0
    x = np.arange(e1, hi + 1, dtype=np.float64)
    logp = _log_choose(k, x) + _log_choose(n - k, n1 - x) - float(_log_choose(n, np.array([n1]))[0])
    top = float(logp.max())
    return float(min(1.0, math.exp(top) * float(np.exp(logp - top).sum())))


def error_test(n1: int, e1: int, n2: int, e2: int) -> dict[str, Any]:
    """Does the lane (``e1`` errors of ``n1`` requests) have more errors than base (``e2`` of ``n2``)?

    ``p_value`` is one-sided; ``method`` says which test gave it: ``fisher`` when an
    expected cell count is below :data:`FISHER_BELOW`, else ``z``. ``z`` (the
    two-proportion score) is reported either way."""
    pooled = (e1 + e2) / (n1 + n2)
    se = math.sqrt(max(pooled * (1 - pooled), 0.0) * (1 / n1 + 1 / n2))
    z = (e1 / n1 - e2 / n2) / se if se > 0 else 0.0
    expected = min(n1, n2) * min(pooled, 1 - pooled)
    if expected < FISHER_BELOW:
        method, p = "fisher", fisher_greater(n1, e1, n2, e2)
    else:
        method, p = "z", p_upper(z) if se > 0 else 1.0
    return {"lane_rate": round(e1 / n1, 6), "base_rate": round(e2 / n2, 6), "z": round(z, 3),
            "p_value": p, "method": method}


def latency_test(a: npt.NDArray[np.float64], c: npt.NDArray[np.float64],
                 min_effect: float = 0.0) -> dict[str, Any] | None:
    """Mann-Whitney U on two aligned latency histograms (ties within a bucket).

    ``prob_slower`` is P(a sample of ``a`` is slower than one of ``c``), ties counted
    half. ``p_value`` is one-sided for the claim ``prob_slower > 0.5 + min_effect``
    (normal approximation with the tie-corrected variance; ``min_effect = 0`` is the
    classic test). None when either side is empty."""
    a, c = np.maximum(a, 0.0), np.maximum(c, 0.0)
    n1, n2 = float(a.sum()), float(c.sum())
    if n1 < 1 or n2 < 1:
        return None
    below = np.cumsum(c) - c
    u = float(np.sum(a * (below + 0.5 * c)))
    t = a + c
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - float(np.sum(t ** 3 - t)) / (n * (n - 1)))
    z = (u - n1 * n2 * (0.5 + min_effect)) / math.sqrt(var) if var > 0 else 0.0
    return {"prob_slower": round(u / (n1 * n2), 4), "z": round(z, 3),
            "p_value": p_upper(z) if var > 0 else 1.0, "min_effect": min_effect}


#: Two-sided 95% normal quantile.
Z95 = 1.959963984540054


def wilson(k: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k`` of ``n`` (95% by default); (0, 1) when
    ``n`` is 0. Its lower bound is what "the share is above x" alerts test: it stays low
    on sparse evidence (1 of 1,000 gives 0.0002) and rises with it (20 of 400 gives 0.033).
    The bounds are exactly 0 for ``k = 0`` and 1 for ``k = n`` (never a rounding error past
    the observed share); ``k`` outside ``0..n`` raises ValueError."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"wilson: k={k} of n={n}: k must be between 0 and n")
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    lo = 0.0 if k == 0 else max(0.0, min(p, centre - half))
    hi = 1.0 if k == n else min(1.0, max(p, centre + half))
    return lo, hi


def mean_ms(hist: npt.NDArray[np.float64]) -> float | None:
    """Mean latency of a log-bucket histogram (each bucket at its geometric middle)."""
    h = np.maximum(hist, 0)
    n = float(h.sum())
    if n <= 0:
        return None
    return float(np.dot(h, MIDS_MS[: len(h)]) / n)


#: The latency each histogram bucket stands for (its geometric middle), in ms.
MIDS_MS = np.array([bucket_mid_ms(b) for b in range(N_BUCKETS)])
