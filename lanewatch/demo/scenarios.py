"""The write-up's three scenarios as data: ingress rules, dyeing, rules, traffic.

Each scenario lives in ``lanewatch/demo/scenarioN.yaml``; the collector's
settings for the demo live in ``collector.yaml``. Pure: parsing and routing
decisions only, no I/O beyond reading those files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from lanewatch import lane as L
from lanewatch.config import Rule

HERE: Final = Path(__file__).resolve().parent
SCENARIOS: Final = ("1", "2", "3")
ENTRY_SERVICE: Final = "A"
CHAIN: Final = ("A", "B", "C")
LANES: Final = (L.BASE, "gray")


@dataclass(frozen=True)
class Canary:
    """One nginx-style canary rule in front of A: by header, by header value, or by weight."""

    lane: str = "gray"
    header: str = ""  # canary-by-header
    value: str = ""  # canary-by-header-value; empty means nginx's "always"
    weight: float = 0.0  # canary-weight, percent

    def matches(self, headers: Mapping[str, str]) -> bool:
        """True when the header rule selects this request (weight is decided by the caller)."""
        if not self.header:
            return False
        got = headers.get(self.header.lower())
        return got == (self.value or "always")


@dataclass(frozen=True)
class IngressRules:
    """Host routing plus canary rules, like the write-up's Ingress objects."""

    hosts: Mapping[str, str] = field(default_factory=dict)  # host -> lane of the A backend
    default: str = L.BASE
    canary: tuple[Canary, ...] = ()

    def route(self, host: str, headers: Mapping[str, str], roll: float) -> str:
        """The lane of the A instance this request goes to; ``roll`` is uniform in [0, 1).

        Precedence as in ingress-nginx: the host's own backend; for the base
        backend, a canary header rule, then the canary weights.
        """
        lane = self.hosts.get(host.split(":")[0].lower(), self.default)
        if lane != L.BASE:
            return lane
        for c in self.canary:
            if c.matches(headers):
                return c.lane
        edge = 0.0
        for c in self.canary:
            edge += c.weight / 100.0
            if c.weight > 0 and roll < edge:
                return c.lane
        return L.BASE

    def entry_rules(self) -> list[Rule]:
        """Rules for A that mirror the canary-by-header-value rules.

        With such a canary on, the ingress decides A's lane from a business
        header: that is a routing rule for A, and the collector must know it.
        Header rules on a lane header need none (the request carries the lane).
        """
        lane_headers = set(L.LANE_HEADER_ALIASES)
        return [Rule(service=ENTRY_SERVICE, match={c.header.lower(): c.value}, lane=c.lane)
                for c in self.canary if c.header and c.value and c.header.lower() not in lane_headers]

    def to_json(self) -> dict[str, Any]:
        return {"hosts": dict(self.hosts), "default": self.default,
                "canary": [dataclasses.asdict(c) for c in self.canary]}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> IngressRules:
        return cls(hosts={str(k).lower(): str(v) for k, v in (raw.get("hosts") or {}).items()},
                   default=str(raw.get("default", L.BASE)),
                   canary=tuple(Canary(lane=str(c.get("lane", "gray")), header=str(c.get("header", "")),
                                       value=str(c.get("value", "")), weight=float(c.get("weight", 0)))
                                for c in raw.get("canary") or ()))


@dataclass(frozen=True)
class RequestKind:
    """One kind of request the traffic generator sends, with the answers it expects."""

    name: str
    host: str
    headers: Mapping[str, str] = field(default_factory=dict)
    weight: float = 1.0
    expect: tuple[str, ...] = ()  # lane paths, e.g. "A[gray] -> B[gray] -> C[base]"
    expect_without_canary: tuple[str, ...] = ()  # when the ingress canary is off; empty = same


@dataclass(frozen=True)
class Scenario:
    """Everything one scenario sets up."""

    name: str
    title: str
    dyeing: frozenset[str]  # instance labels with dyeing on, e.g. "A-gray"
    passthrough: tuple[str, ...]
    ingress: IngressRules
    rules: tuple[Rule, ...]
    traffic: tuple[RequestKind, ...]
    canary: bool = True

    def without_canary(self) -> Scenario:
        """The same scenario with the ingress canary removed (scenario 3's second half)."""
        kinds = tuple(dataclasses.replace(k, expect=k.expect_without_canary or k.expect)
                      for k in self.traffic)
        return dataclasses.replace(self, ingress=dataclasses.replace(self.ingress, canary=()),
                                   traffic=kinds, canary=False)

    def collector_rules(self) -> list[Rule]:
        """The per-service rules the collector needs: the scenario's own plus A's from the ingress."""
        return [*self.rules, *self.ingress.entry_rules()]

    def dyes(self, service: str, lane: str) -> bool:
        return f"{service}-{lane}" in self.dyeing


def _strs(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    return (str(raw),) if isinstance(raw, str) else tuple(str(x) for x in raw)


def load(name: str, directory: Path = HERE) -> Scenario:
    """Read ``scenario{name}.yaml``; ``ValueError`` names what is wrong."""
    if name not in SCENARIOS:
        raise ValueError(f"scenario {name!r}: choose one of {', '.join(SCENARIOS)}")
    doc = yaml.safe_load((directory / f"scenario{name}.yaml").read_text())
    kinds = [RequestKind(name=str(raw["name"]), host=str(raw["host"]),
                         headers={str(k).lower(): str(v) for k, v in (raw.get("headers") or {}).items()},
                         weight=float(raw.get("weight", 1)), expect=_strs(raw.get("expect")),
                         expect_without_canary=_strs(raw.get("expect_without_canary")))
             for raw in doc.get("traffic") or ()]
    rules = tuple(Rule(service=str(r["service"]), lane=str(r["lane"]),
                       match={str(k).lower(): str(v) for k, v in r["match"].items()})
                  for r in doc.get("routing_rules") or ())
    return Scenario(name=name, title=str(doc.get("title", "")), dyeing=frozenset(_strs(doc.get("dyeing"))),
                    passthrough=tuple(h.lower() for h in _strs(doc.get("passthrough"))),
                    ingress=IngressRules.from_json(doc.get("ingress") or {}), rules=rules,
                    traffic=tuple(kinds))


def collector_settings(scenarios: Sequence[Scenario], control_url: str,
                       directory: Path = HERE) -> dict[str, Any]:
    """The YAML document the demo starts the collector with (``lanewatch.config`` format)."""
    doc: dict[str, Any] = yaml.safe_load((directory / "collector.yaml").read_text()) or {}
    seen: list[Rule] = []
    for sc in scenarios:
        for rule in sc.collector_rules():
            if rule not in seen:
                seen.append(rule)
    doc["routing_rules"] = [{"service": r.service, "match": dict(r.match), "lane": r.lane} for r in seen]
    if control_url:
        doc["demo_control_url"] = control_url
    return doc
