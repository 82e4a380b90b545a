"""Hop verdicts, column-wise. Pure: liveness comes in as a function.

The rule is :func:`lanewatch.lane.hop_verdict`; this module computes the same
thing for a whole batch with numpy, asking liveness only for hops that are
off their expected lane and not base traffic (the rare rows). Liveness answers
with :class:`lanewatch.lane.Live` (a plain boolean is ``NO``/``YES``): served by base,
``NO`` is a fallback, ``OVERDUE`` uncertain, ``YES`` a leak.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from lanewatch import lane as L
from lanewatch.config import Rule
from lanewatch.rules.match import AttrValue

IsLive = Callable[[Any, Any, float], bool | L.Live]
NOT_A_HOP = -1
#: served by base while the expected lane was ``Live`` (NO, YES, OVERDUE): the verdict
_BY_LIVE: tuple[int, ...] = (L.Verdict.FALLBACK, L.Verdict.LEAK, L.Verdict.UNCERTAIN)


def expected_lanes(service: npt.NDArray[Any], request_lane: npt.NDArray[Any],
                   is_hop: npt.NDArray[np.bool_], extra: Mapping[str, Sequence[AttrValue]],
                   rules: Mapping[Any, Sequence[tuple[Rule, Any]]]) -> npt.NDArray[Any]:
    """The expected lane per span: the first matching rule of the span's service
    (hops only), else the request lane. ``rules`` maps a service (name or code, as
    in ``service``) to its rules, each with the lane value to use (name or code)."""
    expected = np.array(request_lane, copy=True)
    if not rules:
        return expected
    ruled = np.flatnonzero(is_hop & np.isin(service, list(rules)))
    if not len(ruled):
        return expected
    services = service[ruled]
    for svc in dict.fromkeys(services.tolist()):
        rows = ruled[services == svc] if len(rules) > 1 else ruled
        keys = tuple(dict.fromkeys(k for r, _ in rules[svc] for k in r.attribute_keys() if k in extra))
        cols = [_take(extra[k], rows) for k in keys]
        seen: dict[tuple[AttrValue, ...], Any] = {}
        lanes = []
        for values in zip(*cols) if cols else [()] * len(rows):
            lane = seen.get(values, _UNSEEN)
            if lane is _UNSEEN:  # rules are pure: one evaluation per distinct set of values
                attrs = dict(zip(keys, values))
                lane = next((to for rule, to in rules[svc] if rule.matches(attrs)), None)
                if len(seen) < _MAX_SEEN:
                    seen[values] = lane
            lanes.append(lane)
        hit = [j for j, lane in enumerate(lanes) if lane is not None]
        if hit:
            expected[rows[hit]] = [lanes[j] for j in hit]
    return expected


def _take(column: Sequence[AttrValue], rows: npt.NDArray[np.int64]) -> list[AttrValue]:
    take = getattr(column, "take", None)
    return list(take(rows)) if take is not None else [column[i] for i in rows.tolist()]


_UNSEEN = object()
#: distinct attribute value sets remembered per service and batch (beyond: evaluated each time)
_MAX_SEEN = 1 << 16


def hop_verdicts(service: npt.NDArray[Any], instance_lane: npt.NDArray[Any],
                 expected: npt.NDArray[Any], is_hop: npt.NDArray[np.bool_],
                 t_s: npt.NDArray[np.float64], is_live: IsLive, base: Any = L.BASE) -> npt.NDArray[np.int8]:
    """Verdict code per span (:data:`NOT_A_HOP` for non-hops). Lanes and services may be
    names or integer codes (then ``base`` is the code of base and ``is_live`` takes codes).
    Liveness is asked once per (service, lane, whole second): its resolution is a second."""
    v = np.full(len(is_hop), NOT_A_HOP, dtype=np.int8)
    same = instance_lane == expected
    exp_base = expected == base
    v[is_hop & same] = L.Verdict.IN_LANE
    v[is_hop & ~same & exp_base] = L.Verdict.INTRUSION
    off = is_hop & ~same & ~exp_base
    v[off] = L.Verdict.LEAK
    ask = np.flatnonzero(off & (instance_lane == base))  # served by base: fallback unless live
    if len(ask):
        # one liveness question per (service, expected lane, second), not per span
        second = np.floor(t_s[ask]).astype(np.int64)
        cache: dict[tuple[Any, Any, int], int] = {}
        for i, sec in zip(ask.tolist(), second.tolist()):
            key = (service[i], expected[i], sec)
            verdict = cache.get(key)
            if verdict is None:
                verdict = cache[key] = _BY_LIVE[is_live(service[i], expected[i], float(t_s[i]))]
            v[i] = verdict
    return v
