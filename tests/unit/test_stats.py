"""lanewatch.stats against plain reference implementations, hand computations and scipy."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from lanewatch import config, stats
from lanewatch.stats import Thresholds


def mann_whitney_reference(x: list[int], y: list[int]) -> tuple[float, float]:
    """U (pairs with x slower, ties half) and the tie-corrected variance, from expanded samples."""
    u = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y)
    n1, n2 = len(x), len(y)
    n = n1 + n2
    ties = [list(x + y).count(v) for v in set(x + y)]
    var = n1 * n2 / 12 * ((n + 1) - sum(t ** 3 - t for t in ties) / (n * (n - 1)))
    return u, var


@pytest.mark.parametrize("seed", range(8))
def test_mann_whitney_on_histograms_equals_the_expanded_samples(seed: int) -> None:
    rng = np.random.default_rng(seed)
    nb = 12
    a = rng.integers(0, 6, nb).astype(float)
    c = rng.integers(0, 6, nb).astype(float)
    a[0], c[-1] = a[0] + 1, c[-1] + 1  # never empty
    x = [b for b in range(nb) for _ in range(int(a[b]))]
    y = [b for b in range(nb) for _ in range(int(c[b]))]
    u, var = mann_whitney_reference(x, y)
    got = stats.latency_test(a, c)
    assert got is not None
    assert got["prob_slower"] == pytest.approx(u / (len(x) * len(y)), abs=5e-5)
    z = (u - len(x) * len(y) / 2) / math.sqrt(var)
    assert got["z"] == pytest.approx(z, abs=1e-3)
    assert got["p_value"] == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-6)
    scipy_stats = pytest.importorskip("scipy.stats")
    ref = scipy_stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic", use_continuity=False)
    assert got["p_value"] == pytest.approx(ref.pvalue, rel=1e-6)


def test_latency_effect_threshold_shifts_the_claim() -> None:
    # lane slower in ~52% of pairs with many samples: significant vs 0.5, not vs 0.55
    a = np.array([0, 52_000, 48_000], dtype=float)
    c = np.array([0, 48_000, 52_000], dtype=float)
    classic = stats.latency_test(c, a)
    shifted = stats.latency_test(c, a, min_effect=0.05)
    assert classic is not None and shifted is not None
    assert classic["p_value"] < 1e-6 and shifted["p_value"] > 0.99
    assert stats.latency_test(np.zeros(3), c) is None


def test_two_proportion_z_against_a_hand_computation() -> None:
    # 60/1000 vs 40/1000: pooled 0.05, se = sqrt(0.05 * 0.95 * 0.002) = 0.0097468, z = 2.05196
    got = stats.error_test(1000, 60, 1000, 40)
    assert got["method"] == "z"
    assert got["z"] == pytest.approx(2.052, abs=1e-3)
    assert got["p_value"] == pytest.approx(0.020085, abs=2e-6)  # one-sided: 1 - Phi(2.05196)
    assert stats.error_test(1000, 40, 1000, 60)["p_value"] == pytest.approx(1 - 0.020085, abs=2e-6)


def test_fisher_is_used_when_few_errors_are_expected() -> None:
    got = stats.error_test(50, 4, 50, 0)
    assert got["method"] == "fisher"
    # P(X >= 4), X ~ Hypergeom(100 requests, 4 errors, 50 drawn) = C(50,4) / C(100,4)
    assert got["p_value"] == pytest.approx(math.comb(50, 4) / math.comb(100, 4), rel=1e-9)
    assert stats.error_test(50, 0, 50, 4)["p_value"] == pytest.approx(1.0)
    assert stats.error_test(100, 0, 100, 0)["p_value"] == pytest.approx(1.0)


@pytest.mark.parametrize("table", [(50, 4, 50, 0), (30, 3, 30000, 40), (31, 2, 40, 1), (200, 9, 5000, 60),
                                   (40, 39, 40, 30), (1000, 0, 30, 0), (12, 12, 40, 0)])
def test_fisher_equals_scipy(table: tuple[int, int, int, int]) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    n1, e1, n2, e2 = table
    _, p = scipy_stats.fisher_exact([[e1, n1 - e1], [e2, n2 - e2]], alternative="greater")
    assert stats.fisher_greater(n1, e1, n2, e2) == pytest.approx(p, rel=1e-9, abs=1e-300)


def test_thresholds_are_the_compare_settings() -> None:
    settings = config.load(environ={"LANEWATCH_COMPARE__ALPHA": "0.05"})
    assert Thresholds(**dataclasses.asdict(settings.compare)) == Thresholds(alpha=0.05)
    assert Thresholds(**dataclasses.asdict(config.Settings().compare)) == Thresholds()


# -- Wilson score interval ------------------------------------------------------------------------

def test_wilson_equals_scipy_on_random_input() -> None:
    from scipy.stats import binomtest  # a test dependency: missing, this fails instead of skipping

    rng = np.random.default_rng(7)
    cases = [(0, 1), (1, 1), (0, 50), (50, 50), (1, 1000), (20, 400)]
    cases += [(int(rng.integers(0, n + 1)), n) for n in rng.integers(1, 100_000, 200).tolist()]
    for k, n in cases:
        ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        lo, hi = stats.wilson(k, n)
        assert lo == pytest.approx(ref.low, rel=1e-9, abs=1e-12), (k, n)
        assert hi == pytest.approx(ref.high, rel=1e-9, abs=1e-12), (k, n)
        assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_other_levels_equal_scipy() -> None:
    from scipy.stats import binomtest, norm

    for level in (0.8, 0.99, 0.999):
        z = float(norm.ppf(0.5 + level / 2))
        ref = binomtest(37, 912).proportion_ci(confidence_level=level, method="wilson")
        assert stats.wilson(37, 912, z) == pytest.approx((ref.low, ref.high), rel=1e-9)


def test_wilson_lower_bound_on_the_issues_leak_cases() -> None:
    # one leaked hop among 1,000 in-lane hops must not fire a 1% leak alert; 20 of 400 must
    lo, _ = stats.wilson(1, 1000)
    assert lo < 0.01 and lo == pytest.approx(0.000177, abs=1e-6)
    lo, _ = stats.wilson(20, 400)
    assert lo > 0.01 and lo == pytest.approx(0.0326, abs=1e-4)


def test_wilson_without_evidence_is_the_whole_range_and_bad_counts_are_refused() -> None:
    assert stats.wilson(0, 0) == (0.0, 1.0)
    for k, n in ((5, 3), (-1, 10)):
        with pytest.raises(ValueError, match="of"):
            stats.wilson(k, n)
