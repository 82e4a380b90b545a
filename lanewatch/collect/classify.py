"""Hop verdicts, column-wise. Pure: liveness comes in as a function.

The rule is :func:`lanewatch.lane.hop_verdict`; this module computes the same
thing for a whole batch with numpy, asking liveness only for hops that are
off their expected lane and not base traffic (the rare rows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from lanewatch import lane as L
from lanewatch.config import Rule

IsLive = Callable[[str, str, float], bool]
NOT_A_HOP = -1


def expected_lanes(service: npt.NDArray[np.object_], request_lane: Sequence[str],
                   is_hop: npt.NDArray[np.bool_], extra: Mapping[str, Sequence[str]],
                   rules: Sequence[Rule]) -> npt.NDArray[np.object_]:
    """The expected lane per span: the first matching rule of the span's service
    (hops only), else the request lane."""
    expected = np.asarray(request_lane, dtype=object)
    if not rules:
        return expected
    by_service: dict[str, list[Rule]] = {}
    for r in rules:
        by_service.setdefault(r.service, []).append(r)
    ruled = np.flatnonzero(is_hop & np.isin(service, list(by_service)))
    for i in ruled:
        attrs = {k: v[i] for k, v in extra.items()}
        for rule in by_service[service[i]]:
            if rule.matches(attrs):
                expected[i] = rule.lane
                break
    return expected


def hop_verdicts(service: npt.NDArray[np.object_], instance_lane: npt.NDArray[np.object_],
                 expected: npt.NDArray[np.object_], is_hop: npt.NDArray[np.bool_],
                 t_s: npt.NDArray[np.float64], is_live: IsLive) -> npt.NDArray[np.int8]:
    """Verdict code per span (:data:`NOT_A_HOP` for non-hops)."""
    v = np.full(len(is_hop), NOT_A_HOP, dtype=np.int8)
    same = instance_lane == expected
    exp_base = expected == L.BASE
    v[is_hop & same] = L.Verdict.IN_LANE
    v[is_hop & ~same & exp_base] = L.Verdict.INTRUSION
    for i in np.flatnonzero(is_hop & ~same & ~exp_base):
        served_by_base = instance_lane[i] == L.BASE
        live = is_live(service[i], expected[i], float(t_s[i])) if served_by_base else True
        v[i] = L.Verdict.FALLBACK if served_by_base and not live else L.Verdict.LEAK
    return v
