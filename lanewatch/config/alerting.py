"""What the alert settings are made of: the alert names, per-alert durations, lane targets.

YAML::

    alerts:
      disabled: [GrayShareDrift]       # alert names switched off
      for_s: {GrayWorseThanBase: 10}   # pending this long before firing (per alert)
      keep_firing_for_s: {LaneLeak: 30}
    lanes:                             # GrayShareDrift: the share of traffic each lane should get
      gray: {target_share: 0.02, tolerance: 0.01}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from lanewatch import lane as L
from lanewatch.config.fields import ConfigError

#: Every alert lanewatch evaluates (``docs/alerts.md``).
ALERT_NAMES: Final = ("LaneLeak", "LaneIntrusion", "LaneTagLost", "DeadLane", "GrayWorseThanBase",
                      "GrayShareDrift")
#: Seconds an alert's condition must hold before it fires, unless ``alerts.for_s`` says otherwise:
#: the lane rules are evidence-gated already; a judgement of gray vs base waits a little.
DEFAULT_FOR_S: Final = {"GrayWorseThanBase": 5.0}


def _name(setting: str, name: object) -> str:
    if name not in ALERT_NAMES:
        raise ConfigError(f"{setting}: unknown alert {name!r} (known: {', '.join(ALERT_NAMES)})")
    return str(name)


def parse_names(raw: Any) -> list[str]:
    """A list of alert names (or one comma-separated string)."""
    items = [x.strip() for x in raw.split(",") if x.strip()] if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise ConfigError(f"alerts.disabled={raw!r}: a list of alert names")
    return [_name("alerts.disabled", x) for x in items]


def parse_seconds(raw: Any) -> dict[str, float]:
    """``{AlertName: seconds}``; seconds >= 0."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{raw!r}: a mapping of alert name to seconds, e.g. {{LaneLeak: 10}}")
    out = {}
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ConfigError(f"{k}={v!r}: seconds must be a number >= 0")
        out[_name("alerts", k)] = float(v)
    return out


@dataclass(frozen=True)
class LaneTarget:
    """The share of entry traffic a lane should get (the write-up: a steady 2% into gray)."""

    target_share: float
    tolerance: float


def parse_lanes(raw: Any) -> dict[str, LaneTarget]:
    """``{lane: {target_share, tolerance}}``."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"lanes={raw!r}: a mapping of lane to {{target_share, tolerance}}")
    out = {}
    for lane, spec in raw.items():
        if isinstance(spec, LaneTarget):
            out[str(lane)] = spec
            continue
        if not isinstance(spec, Mapping) or "target_share" not in spec or set(spec) - {"target_share",
                                                                                         "tolerance"}:
            raise ConfigError(f"lanes.{lane}={spec!r}: expected {{target_share: 0.02, tolerance: 0.01}}")
        try:
            target, tol = float(spec["target_share"]), float(spec.get("tolerance", 0.0))
        except (TypeError, ValueError):
            raise ConfigError(f"lanes.{lane}={spec!r}: target_share and tolerance are numbers") from None
        if not 0 < target < 1 or not 0 <= tol < 1:
            raise ConfigError(f"lanes.{lane}: target_share is in (0, 1), tolerance in [0, 1)")
        if L.normalize_lane(lane) != lane or lane == L.BASE:
            raise ConfigError(f"lanes.{lane}: not a lane name other than {L.BASE!r}")
        out[str(lane)] = LaneTarget(target, tol)
    return out
