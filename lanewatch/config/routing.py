"""Per-service routing rules (the write-up's scenario 3) and the declared topology.

The rule model lives in :mod:`lanewatch.rules` (``docs/rules.md``); this module is the
settings' seam to it. YAML::

    routing_rules:               # (formerly ``rules:``, still read with a warning)
      - service: B
        match: {x-user-id: "100"}
        lane: gray
      - service: C
        when: {header: x-user-id, in: ["100", "101"]}
        lane: gray
      - import: ingress-gray.yaml   # rules derived from Ingress / OpenSergo documents
    topology:                    # declared services and lanes, always live
      C: [base, gray]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lanewatch import lane as L
from lanewatch.config.fields import ConfigError
from lanewatch.rules.model import Condition, Rule
from lanewatch.rules.parse import RULE_SHAPE, parse_rule, parse_rule_list

__all__ = [
    "Condition",
    "Rule",
    "check_rules",
    "check_topology",
    "parse_rules",
    "parse_topology",
    "rule_attributes",
]


def parse_rules(raw: Any, *, allow_import: bool = False) -> list[Rule]:
    """A YAML list of rules (``docs/rules.md``; or :class:`Rule` values) as rules; TypeError or
    ValueError names the rule and the key that is malformed.

    With ``allow_import`` (the config file), an entry ``{import: FILE}`` stands for the rules
    derived from that file's Ingress / TrafficLane / TrafficRouter documents, in its place."""
    out: list[Rule] = []
    for i, r in enumerate(parse_rule_list(raw)):
        if allow_import and isinstance(r, dict) and "import" in r:
            from lanewatch.rules.imports import import_entry

            out += import_entry(r, f"[{i}]")
        else:
            out.append(parse_rule(r, f"[{i}]"))
    return out


def parse_config_rules(raw: Any) -> list[Rule]:
    """``routing_rules:`` of the config file: :func:`parse_rules` with ``{import: FILE}``."""
    return parse_rules(raw, allow_import=True)


def check_rules(name: str, rules: Sequence[Rule]) -> None:
    """Raise :class:`ConfigError` naming the rule (``routing_rules[2] (service B)``) and the key."""
    for i, r in enumerate(rules):
        who = f"{name}[{i}] (service {r.service or '?'})"
        if not r.service or not L.is_valid_lane(r.lane) or not (r.match or r.when is not None):
            raise ConfigError(f"{name}[{i}]: needs service, a non-empty match or when and a valid lane "
                              f"({RULE_SHAPE}): {r.to_dict()}")
        for k in r.match:
            if not k:
                raise ConfigError(f"{who}.match: an attribute key is empty")
        if r.when is not None:
            for where, problem in r.when.problems():
                raise ConfigError(f"{who}.{where}: {problem}")


def rule_attributes(rules: Sequence[Rule]) -> list[str]:
    """Span attribute keys the rules read (every key any condition reads), in a stable order."""
    return sorted({k for r in rules for k in r.attribute_keys()})


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
