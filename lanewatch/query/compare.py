"""Lane vs base: the verdict of :meth:`Query.compare` and the per-service rows of
:meth:`Query.compare_all`. Pure: totals and histograms in, plain dicts out.

One meaning of ``confidence`` everywhere: the confidence that the lane is
worse, ``1 - p`` of the one-sided claim (more errors, or slower by at least
``min_latency_effect``). ``worse`` is exactly ``confidence > 1 - alpha``, so a
"no significant difference" never stands next to a high confidence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from lanewatch import stats
from lanewatch.histogram import N_BUCKETS
from lanewatch.query.parts import clean, cube_quantiles
from lanewatch.stats import Thresholds

DEFAULT_THRESHOLDS = Thresholds()


def pct(value: float) -> str:
    """``31.2%``, ``0.41%``: two decimals under 10%."""
    return f"{100 * value:.2f}%" if value < 0.1 else f"{100 * value:.1f}%"


def confidence_text(confidence: float) -> str:
    """``98.7%``, floored; above 99.9% it reads ``>99.9%`` (a test never gives certainty)."""
    if confidence > 0.999:
        return ">99.9%"
    return f"{math.floor(1000 * confidence) / 10:.1f}%"


def compare_verdict(lane_tot: Mapping[str, Any], base_tot: Mapping[str, Any],
                    hist_lane: npt.NDArray[np.float64], hist_base: npt.NDArray[np.float64],
                    lane: str, base: str, th: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, Any] | None:
    """Is ``lane`` worse than ``base``? None below ``th.min_requests`` on either side.

    ``worse`` when the error rate is higher (one-sided p < ``th.alpha``), or latency is
    stochastically higher by more than ``th.min_latency_effect`` (P(lane slower) >
    0.5 + effect, one-sided p < alpha). ``confidence`` = 1 - the smallest p of the claims
    that hold, else of the two claims tested (then below ``1 - alpha``). ``reason`` is
    ``errors``, ``latency``, ``both`` or None.
    """
    if lane_tot["requests"] < th.min_requests or base_tot["requests"] < th.min_requests:
        return None
    errors = stats.error_test(lane_tot["requests"], lane_tot["errors"], base_tot["requests"],
                              base_tot["errors"])
    latency = stats.latency_test(hist_lane, hist_base, th.min_latency_effect)
    worse_err = errors["lane_rate"] > errors["base_rate"] and errors["p_value"] < th.alpha
    m_lane, m_base = stats.mean_ms(hist_lane), stats.mean_ms(hist_base)
    if latency is not None:
        latency["lane_mean_ms"] = clean(round(m_lane, 3)) if m_lane is not None else None
        latency["base_mean_ms"] = clean(round(m_base, 3)) if m_base is not None else None
    # slower by a margin that matters, as well as stochastically: a test on many samples finds
    # a 0.3 ms difference "significant", and a busy machine makes one instance that much slower
    enough = (m_lane is not None and m_base is not None and m_lane - m_base >= th.min_latency_increase_ms
              and m_lane >= m_base * (1 + th.min_latency_increase))
    worse_lat = bool(latency and latency["p_value"] < th.alpha and enough)
    # a latency difference below the margin is no claim of "slower" at all: its p is 1
    p_err, p_lat = errors["p_value"], (latency["p_value"] if latency and enough else 1.0)
    held = [p for p, ok in ((p_err, worse_err), (p_lat, worse_lat)) if ok]
    p = min(held) if held else min(p_err, p_lat)
    confidence = round(1 - p, 6)
    if held:
        parts = []
        if worse_err:
            parts.append(f"errors {pct(errors['lane_rate'])} vs {pct(errors['base_rate'])}")
        if worse_lat and latency:
            parts.append(f"slower in {latency['prob_slower']:.0%} of pairs, mean {m_lane:.1f} vs "
                         f"{m_base:.1f} ms")
        text = f"{lane} is worse than {base} ({'; '.join(parts)}, confidence {confidence_text(1 - p)})"
    else:
        text = (f"no significant difference (p={p:.2g}; {lane} not shown worse at "
                f"{confidence_text(1 - th.alpha)} confidence)")
    reason = "both" if worse_err and worse_lat else "errors" if worse_err else "latency" if worse_lat else None
    return {"worse": bool(held), "confidence": confidence, "p_value": p, "reason": reason, "text": text,
            "errors": errors, "latency": latency, "alpha": th.alpha,
            "min_latency_effect": th.min_latency_effect}


def may_be_worse(lane_n: npt.NDArray[np.float64], lane_e: npt.NDArray[np.float64],
                 base_n: npt.NDArray[np.float64], base_e: npt.NDArray[np.float64],
                 hist_lane: npt.NDArray[np.float64], hist_base: npt.NDArray[np.float64],
                 th: Thresholds = DEFAULT_THRESHOLDS) -> npt.NDArray[np.bool_]:
    """For many pairs at once (one per row): False where :func:`compare_verdict` surely finds
    the lane not worse, so only the others need it (the alert rule judges hundreds of pairs
    every second). The same z-test, Mann-Whitney and mean margin, vectorised; pairs that
    need Fisher's exact test are always True (judged one by one)."""
    n1, n2 = np.maximum(lane_n, 1), np.maximum(base_n, 1)
    pooled = (lane_e + base_e) / (n1 + n2)
    se = np.sqrt(np.maximum(pooled * (1 - pooled), 0.0) * (1 / n1 + 1 / n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (lane_e / n1 - base_e / n2) / np.where(se > 0, se, 1), 0.0)
    fisher = np.minimum(n1, n2) * np.minimum(pooled, 1 - pooled) < stats.FISHER_BELOW
    p_err = np.array([stats.p_upper(float(x)) for x in z])
    err = fisher | ((lane_e / n1 > base_e / n2) & (p_err < th.alpha))
    a, c = np.maximum(hist_lane, 0.0), np.maximum(hist_base, 0.0)
    m1, m2 = a.sum(axis=1), c.sum(axis=1)
    below = np.cumsum(c, axis=1) - c
    u = np.sum(a * (below + 0.5 * c), axis=1)
    t = a + c
    n = m1 + m2
    with np.errstate(divide="ignore", invalid="ignore"):
        var = m1 * m2 / 12 * ((n + 1) - np.sum(t ** 3 - t, axis=1) / (n * (n - 1)))
        zl = np.where(var > 0, (u - m1 * m2 * (0.5 + th.min_latency_effect)) / np.sqrt(np.where(var > 0, var, 1)),
                      0.0)
        mean1 = a @ stats.MIDS_MS[: a.shape[1]] / np.where(m1 > 0, m1, 1)
        mean2 = c @ stats.MIDS_MS[: c.shape[1]] / np.where(m2 > 0, m2, 1)
    p_lat = np.array([stats.p_upper(float(x)) for x in zl])
    enough = (mean1 - mean2 >= th.min_latency_increase_ms) & (mean1 >= mean2 * (1 + th.min_latency_increase))
    lat = (m1 >= 1) & (m2 >= 1) & (var > 0) & (p_lat < th.alpha) & enough
    return np.asarray(err | lat)


def _pairs(df: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(df["service"].astype(str).tolist(), df["instance_lane"].astype(str).tolist()))


def _histograms(latency: pd.DataFrame) -> tuple[dict[tuple[str, str], int], npt.NDArray[np.float64]]:
    """(row of each (service, lane), dense histograms one row each)."""
    if not len(latency):
        return {}, np.zeros((0, N_BUCKETS))
    codes, uniques = pd.factorize(pd.Series(_pairs(latency)))
    mat = np.zeros((len(uniques), N_BUCKETS))
    b = np.clip(latency["bucket"].to_numpy(dtype=np.int64), 0, N_BUCKETS - 1)
    np.add.at(mat, (codes, b), latency["count"].to_numpy(dtype=np.float64))
    return {tuple(k): i for i, k in enumerate(uniques)}, mat


def _order(row: Mapping[str, Any]) -> tuple[bool, bool, bool, float, str, str]:
    worse, conf = row["worse"], row["confidence"]
    return (worse is None, not worse, bool(row.get("follows")), -float(conf or 0.0), str(row["service"]),
            str(row["lane"]))


def callees_of(edges: pd.DataFrame | Iterable[tuple[Any, Any, Any, Any, float]]
               ) -> dict[tuple[str, str], set[str]]:
    """(caller, lane) -> the services it called in that lane (sent or entry lane), from an
    ``edges`` rollup with ``caller, callee, lane, entry_lane, calls`` (or such tuples)."""
    rows = (zip(edges.caller, edges.callee, edges.lane, edges.entry_lane, edges.calls)
            if isinstance(edges, pd.DataFrame) else edges)
    out: dict[tuple[str, str], set[str]] = {}
    for caller, callee, sent, entry, calls in rows:
        if calls > 0 and caller != callee:
            for ln in {sent, entry}:
                if isinstance(ln, str):
                    out.setdefault((str(caller), ln), set()).add(str(callee))
    return out


_REASONS = {"errors": {"errors"}, "latency": {"latency"}, "both": {"errors", "latency"}}


def mark_followers(rows: list[dict[str, Any]], callees: Mapping[tuple[str, str], set[str]]) -> None:
    """A worse (service, lane) whose reasons a callee in the same lane is worse at too
    ``follows`` that callee (a caller fails and slows with what it calls; the problem starts at
    the callee): marked, said in its text, and ordered after the rows it follows."""
    worse = {(r["service"], r["lane"]): _REASONS.get(r["reason"] or "", set()) for r in rows if r["worse"]}
    for r in rows:
        mine = worse.get((r["service"], r["lane"]))
        if not mine:
            continue
        by = sorted(x for x in callees.get((r["service"], r["lane"]), ()) if mine <= worse.get((x, r["lane"]), set()))
        if by:
            r["follows"] = by[0]
            r["text"] += f" (follows its callee {by[0]}, which is worse too)"
    rows.sort(key=_order)


def sides(hops: pd.DataFrame, latency: pd.DataFrame, lanes: Iterable[str], base: str,
          ) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any], npt.NDArray[np.float64],
                              npt.NDArray[np.float64]]]:
    """``(service, lane, lane totals, base totals, lane histogram, base histogram)`` for each
    (service, lane in ``lanes``) that served anything, sorted by service and lane; totals are
    ``requests, errors, error_rate, p50_ms``.

    ``hops``: ``service, instance_lane, requests, errors`` summed over the window;
    ``latency``: ``service, instance_lane, bucket, count``.
    """
    wanted = set(lanes) - {base}
    req: dict[tuple[str, str], list[int]] = {}
    for key, n, e in zip(_pairs(hops), hops["requests"].tolist(), hops["errors"].tolist()):
        tot = req.setdefault(key, [0, 0])
        tot[0] += int(n)
        tot[1] += int(e)
    slot, mat = _histograms(latency)
    p50 = cube_quantiles(mat[None], 0)["p50_ms"][0] if len(mat) else np.zeros(0)
    empty = np.zeros(N_BUCKETS)

    def side(key: tuple[str, str]) -> tuple[dict[str, Any], npt.NDArray[np.float64]]:
        n, e = req.get(key, (0, 0))
        i = slot.get(key)
        return ({"requests": n, "errors": e, "error_rate": round(e / n, 6) if n else None,
                 "p50_ms": clean(round(float(p50[i]), 3)) if i is not None else None},
                mat[i] if i is not None else empty)

    for (service, name), (n, _) in sorted(req.items()):
        if name not in wanted or n == 0:
            continue
        (a, ha), (b, hb) = side((service, name)), side((service, base))
        yield service, name, a, b, ha, hb


def verdict_rows(hops: pd.DataFrame, latency: pd.DataFrame, lanes: Iterable[str], base: str,
                 th: Thresholds = DEFAULT_THRESHOLDS) -> list[dict[str, Any]]:
    """One row per (service, lane in ``lanes``) that served anything, each lane vs ``base`` on
    that service, worst first (worse, then by confidence; rows without a verdict last).
    ``hops`` and ``latency`` as in :func:`sides`."""
    out: list[dict[str, Any]] = []
    for service, name, a, b, ha, hb in sides(hops, latency, lanes, base):
        v = compare_verdict(a, b, ha, hb, name, base, th)
        short = name if a["requests"] < th.min_requests else base
        row = {"service": service, "lane": name, "base": base, **{f"lane_{k}": x for k, x in a.items()},
               **{f"base_{k}": x for k, x in b.items()}, "worse": None, "confidence": None, "reason": None,
               "text": f"no verdict: {short} served fewer than {th.min_requests} requests on {service}"}
        if v is not None:
            row.update(worse=v["worse"], confidence=v["confidence"], reason=v["reason"], text=v["text"])
        out.append(row)
    out.sort(key=_order)
    return out
