"""What the alert rules read and return: :class:`Evidence` in, :class:`Finding` out. Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import numpy as np
import numpy.typing as npt

from lanewatch.config import Settings


@dataclass
class Evidence:
    """What the rules see: window sums (keys and one row of sums per key) and instances."""

    now: float
    window_s: int
    #: (service, instance_lane, expected_lane, verdict) -> (requests, errors)
    hops: dict[tuple[str, ...], tuple[float, ...]]
    #: (service, instance_lane) -> latency histogram (:data:`~lanewatch.histogram.N_BUCKETS`)
    latency: dict[tuple[str, ...], npt.NDArray[np.float64]]
    #: (caller, callee, lane sent, entry_lane) -> (calls, tag_lost, tag_lost_inside)
    edges: dict[tuple[str, ...], tuple[float, ...]]
    #: entry_lane -> finished traces
    traces: dict[str, float]
    #: the engine's instance rows (``live``, ``first_seen``, ``last_hop``...)
    instances: list[dict[str, Any]] = field(default_factory=list)
    #: hops per (service, instance lane) and the expected lanes, over ``dead_lanes.after_s``
    dead_served: dict[tuple[str, str], int] = field(default_factory=dict)
    dead_wanted: set[str] = field(default_factory=set)


@dataclass
class Finding:
    """A condition that holds: the alert's identity and the evidence of this evaluation."""

    labels: dict[str, str]
    value: float
    threshold: float
    confidence: float | None
    text: str
    link: str
    details: dict[str, Any] = field(default_factory=dict)


Rule = Callable[[Evidence, Settings], list[Finding]]


def link(path: str, window_s: int, **params: str) -> str:
    """The dashboard path that explains an alert: ``/violations?window=60&service=B``."""
    return path + "?" + urlencode({"window": str(window_s), **params})


