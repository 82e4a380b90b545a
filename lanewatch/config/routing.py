"""Per-service routing rules (the write-up's scenario 3) and the declared topology.

YAML::

    routing_rules:               # (formerly ``rules:``, still read with a warning)
      - service: B
        match: {x-user-id: "100"}
        lane: gray
    topology:                    # declared services and lanes, always live
      C: [base, gray]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lanewatch import lane as L
from lanewatch.config.fields import ConfigError


@dataclass(frozen=True)
class Rule:
    """A per-service routing rule: when every ``match`` attribute equals its
    value on a hop of ``service``, the hop's expected lane is ``lane``."""

    service: str
    match: Mapping[str, str]
    lane: str

    def matches(self, attributes: Mapping[str, str]) -> bool:
        return all(attributes.get(k) == v for k, v in self.match.items())


_RULE_SHAPE = "{service, match: {attr: value}, lane}"


def parse_rules(raw: Any) -> list[Rule]:
    """A YAML list of ``{service, match: {attr: value}, lane}`` (or :class:`Rule` values) as rules;
    TypeError names the rule that is malformed."""
    if raw is None:
        return []
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
        raise TypeError(f"expected a list of {_RULE_SHAPE}")
    return [_rule(i, r) for i, r in enumerate(raw)]


def _rule(i: int, raw: Any) -> Rule:
    if isinstance(raw, Rule):
        return raw
    if not isinstance(raw, Mapping) or not isinstance(raw.get("match"), Mapping):
        raise TypeError(f"[{i}]: expected {_RULE_SHAPE}, got {raw!r}")
    return Rule(service=str(raw.get("service", "")), lane=str(raw.get("lane", "")),
                match={str(k): str(v) for k, v in raw["match"].items()})


def check_rules(name: str, rules: Sequence[Rule]) -> None:
    for i, r in enumerate(rules):
        if not L.is_valid_lane(r.lane) or not r.service or not r.match:
            raise ConfigError(f"{name}[{i}]: needs service, a non-empty match and a valid lane: {r}")


def rule_attributes(rules: Sequence[Rule]) -> list[str]:
    """Span attribute keys the rules read, in a stable order."""
    return sorted({k for r in rules for k in r.match})


def parse_topology(raw: Any) -> dict[str, list[str]]:
    """``{service: [lanes]}`` (a single lane may be written without the list)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise TypeError("expected a mapping of service -> [lanes]")
    return {str(k): [str(v)] if isinstance(v, str) else [str(x) for x in v or ()] for k, v in raw.items()}


def check_topology(name: str, topology: Mapping[str, Sequence[str]]) -> None:
    for svc, lanes in topology.items():
        bad = [x for x in lanes if not L.is_valid_lane(x)]
        if bad:
            raise ConfigError(f"{name}.{svc}: invalid lane names {bad}")
