"""Routing rules from their YAML form (``routing_rules:``, ``PUT /api/v1/rules``), with errors
that name the rule and the key. Pure: importing files is :mod:`.imports`' business.

A rule::

    - service: B
      lane: gray
      match: {x-user-id: "100"}        # the original form: attribute equals value
      when:                            # a condition (below); both given: both must hold
        all:
          - {header: x-user-id, in: ["100", "101"]}
          - {cookie: region, equals: hz}
          - {percent: 10, by: {header: x-user-id}, salt: b-gray}

A condition is ``{SOURCE: NAME, TEST: VALUE}`` with SOURCE one of ``attribute``, ``header``,
``cookie``, ``query`` (``path: true`` and ``method: true`` take no name) and TEST one of
``equals``, ``in`` (a list), ``prefix``, ``regex``, ``exists`` (true/false); or
``{percent: P, by: {SOURCE: NAME}, salt: S}``; or ``{all: [...]}``, ``{any: [...]}``,
``{not: condition}``. A list where a condition is expected means ``all``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lanewatch.rules.match import SOURCES, Source
from lanewatch.rules.model import OPS, All, AnyOf, Compare, Condition, Exists, Not, Percent, Rule

RULE_SHAPE = "{service, lane, match: {attribute: value}} or {service, lane, when: condition}"
_RULE_KEYS = ("service", "lane", "match", "when")
_NAMELESS = ("path", "method")


class RuleSyntaxError(TypeError, ValueError):
    """A rule that cannot be read; the message says where (``when.all[1].header``). A
    TypeError, as ``parse_rules`` has always raised, and a ValueError."""


def _text(v: Any, where: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (str, int, float)):
        return str(v)
    raise RuleSyntaxError(f"{where}: expected a string, got {v!r}")


def parse_condition(raw: Any, path: str = "when") -> Condition:
    """One condition (see the module docstring); :class:`RuleSyntaxError` says where it is wrong."""
    if isinstance(raw, list):
        return All(tuple(parse_condition(c, f"{path}[{i}]") for i, c in enumerate(raw)))
    if not isinstance(raw, Mapping):
        raise RuleSyntaxError(f"{path}: expected a condition mapping, got {raw!r}")
    keys = [str(k) for k in raw]
    for combinator in ("all", "any", "not"):
        if combinator in raw:
            if len(raw) != 1:
                raise RuleSyntaxError(f"{path}: {combinator!r} goes alone, got keys {keys}")
            body = raw[combinator]
            if combinator == "not":
                return Not(parse_condition(body, f"{path}.not"))
            if not isinstance(body, list):
                raise RuleSyntaxError(f"{path}.{combinator}: expected a list of conditions, got {body!r}")
            items = tuple(parse_condition(c, f"{path}.{combinator}[{i}]") for i, c in enumerate(body))
            return All(items) if combinator == "all" else AnyOf(items)
    if "percent" in raw:
        return _percent(raw, path)
    unknown = [k for k in keys if k not in OPS and k not in SOURCES]
    if unknown:
        raise RuleSyntaxError(f"{path}.{unknown[0]}: unknown key (a condition has one source of "
                              f"{', '.join(SOURCES)} and one test of {', '.join(OPS)}; or percent, "
                              "all, any, not)")
    source = _source(raw, path)
    tests = [k for k in keys if k in OPS]
    if len(tests) != 1:
        raise RuleSyntaxError(f"{path}: needs exactly one test of {', '.join(OPS)}, got {tests or 'none'}")
    op = tests[0]
    where = f"{path}.{op}"
    value = raw[op]
    if op == "exists":
        if not isinstance(value, bool):
            raise RuleSyntaxError(f"{where}: expected true or false, got {value!r}")
        return Exists(source, value)
    if op == "in":
        if not isinstance(value, list) or not value:
            raise RuleSyntaxError(f"{where}: expected a non-empty list of values, got {value!r}")
        return Compare(source, op, tuple(_text(v, f"{where}[{i}]") for i, v in enumerate(value)))
    got = Compare(source, op, (_text(value, where),))
    for at, problem in got.problems(path):
        raise RuleSyntaxError(f"{at}: {problem}")
    return got


def _source(raw: Mapping[Any, Any], path: str) -> Source:
    given = [k for k in SOURCES if k in raw]
    if len(given) != 1:
        raise RuleSyntaxError(f"{path}: needs exactly one source of {', '.join(SOURCES)}, got "
                              f"{given or 'none'} (keys {[str(k) for k in raw]})")
    kind = given[0]
    if kind in _NAMELESS:
        if raw[kind] is not True:
            raise RuleSyntaxError(f"{path}.{kind}: write '{kind}: true' (it takes no name)")
        return Source(kind)
    name = _text(raw[kind], f"{path}.{kind}").strip()
    if not name:
        raise RuleSyntaxError(f"{path}.{kind}: needs a non-empty name")
    return Source(kind, name.lower() if kind == "header" else name)


def _percent(raw: Mapping[Any, Any], path: str) -> Percent:
    extra = [str(k) for k in raw if k not in ("percent", "by", "salt")]
    if extra:
        raise RuleSyntaxError(f"{path}.{extra[0]}: unknown key in a percent split (percent, by, salt)")
    p = raw["percent"]
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 100:
        raise RuleSyntaxError(f"{path}.percent: expected a number in [0, 100], got {p!r}")
    by = raw.get("by")
    if not isinstance(by, Mapping):
        raise RuleSyntaxError(f"{path}.by: expected the key to split by, e.g. {{header: x-user-id}}, "
                              f"got {by!r}")
    extra = [str(k) for k in by if k not in SOURCES]
    if extra:
        raise RuleSyntaxError(f"{path}.by.{extra[0]}: unknown source ({', '.join(SOURCES)})")
    salt = raw.get("salt", "")
    return Percent(_source(by, f"{path}.by"), float(p), _text(salt, f"{path}.salt"))


def parse_rule(raw: Any, where: str) -> Rule:
    """One rule from its YAML mapping; ``where`` names it in errors (``[2]``)."""
    if isinstance(raw, Rule):
        return raw
    if not isinstance(raw, Mapping) or not ("match" in raw or "when" in raw):
        raise RuleSyntaxError(f"{where}: expected {RULE_SHAPE}, got {raw!r}")
    who = f"{where} (service {raw.get('service', '?')})"
    unknown = [str(k) for k in raw if k not in _RULE_KEYS]
    if unknown:
        raise RuleSyntaxError(f"{who}.{unknown[0]}: unknown key (a rule has {', '.join(_RULE_KEYS)})")
    match = raw.get("match") or {}
    if not isinstance(match, Mapping):
        raise RuleSyntaxError(f"{who}.match: expected {{attribute: value}}, got {match!r}")
    when = parse_condition(raw["when"], f"{who}.when") if raw.get("when") is not None else None
    return Rule(service=str(raw.get("service", "")), lane=str(raw.get("lane", "")),
                match={str(k): _text(v, f"{who}.match.{k}") for k, v in match.items()}, when=when)


def parse_rule_list(raw: Any) -> list[Any]:
    """The list itself, checked to be one (entries are read by the caller)."""
    if raw is None:
        return []
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
        raise TypeError(f"expected a list of {RULE_SHAPE}")
    return list(raw)
