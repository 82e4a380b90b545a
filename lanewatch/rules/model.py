"""Routing rules: a service, the conditions a request must meet, the lane it is then routed to.

Pure and immutable (rules are compared, kept in versions and shared between threads).
Conditions form a small tree: a leaf tests the values of one :class:`~.match.Source`
(``equals``, ``in``, ``prefix``, ``regex``, ``exists``), :class:`Percent` is a stable
hash split of one source's value, and :class:`All` / :class:`AnyOf` / :class:`Not` combine
them. A leaf on a multi-valued source (a header array, a repeated cookie or query parameter)
holds when any value passes. Every node can say which span attribute keys it reads
(:meth:`Condition.keys`), write itself back as the YAML it is read from (``to_dict``), and
list what is wrong with it (``problems``) for :func:`lanewatch.config.routing.check_rules`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lanewatch.rules.match import Attrs, Source, in_share, values

#: the tests of a leaf condition and what each takes
OPS = ("equals", "in", "prefix", "regex", "exists")


class Condition:
    """A node of a rule's ``when`` tree."""

    def test(self, attrs: Attrs) -> bool:
        raise NotImplementedError

    def keys(self) -> Iterator[str]:
        """Span attribute keys this condition reads."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def problems(self, path: str = "when") -> Iterator[tuple[str, str]]:
        """(where, what) for each thing that makes this condition unusable."""
        raise NotImplementedError


def _source_problems(source: Source, path: str) -> Iterator[tuple[str, str]]:
    if source.kind not in ("path", "method") and not source.name.strip():
        yield f"{path}.{source.kind}", "needs a non-empty name"


@dataclass(frozen=True)
class Compare(Condition):
    """``op`` is one of ``equals``, ``in``, ``prefix``, ``regex`` (``re.search``: anchor with
    ``^...$`` for a whole-value match); ``args`` holds its value(s)."""

    source: Source
    op: str
    args: tuple[str, ...]

    def __post_init__(self) -> None:
        # compiled once; not a field, so equality, repr and dataclasses.asdict leave it out
        regex: re.Pattern[str] | None = None
        if self.op == "regex":
            try:
                regex = re.compile(self.args[0])
            except (re.error, IndexError):
                pass  # reported by problems()
        object.__setattr__(self, "_regex", regex)

    def test(self, attrs: Attrs) -> bool:
        got = self.source.read(attrs)
        if not got:
            return False
        op = self.op
        if op == "equals" or op == "in":
            return any(v in self.args for v in got)
        if op == "prefix":
            return any(v.startswith(self.args[0]) for v in got)
        regex: re.Pattern[str] | None = self.__dict__["_regex"]
        return regex is not None and any(regex.search(v) for v in got)

    def keys(self) -> Iterator[str]:
        yield from self.source.keys()

    def to_dict(self) -> dict[str, Any]:
        arg: Any = list(self.args) if self.op == "in" else self.args[0]
        return {**self.source.to_dict(), self.op: arg}

    def problems(self, path: str = "when") -> Iterator[tuple[str, str]]:
        yield from _source_problems(self.source, path)
        if self.op not in OPS[:4]:
            yield f"{path}.{self.op}", f"unknown test (one of {', '.join(OPS)})"
        elif not self.args or (self.op != "in" and len(self.args) != 1):
            yield f"{path}.{self.op}", "needs a value" if self.op != "in" else "needs a non-empty list"
        elif self.op == "regex" and self.__dict__["_regex"] is None:
            try:
                re.compile(self.args[0])
            except re.error as e:
                yield f"{path}.regex", f"invalid regular expression {self.args[0]!r}: {e}"


@dataclass(frozen=True)
class Exists(Condition):
    """The request carries the source (``present``) or does not."""

    source: Source
    present: bool = True

    def test(self, attrs: Attrs) -> bool:
        return bool(self.source.read(attrs)) == self.present

    def keys(self) -> Iterator[str]:
        yield from self.source.keys()

    def to_dict(self) -> dict[str, Any]:
        return {**self.source.to_dict(), "exists": self.present}

    def problems(self, path: str = "when") -> Iterator[tuple[str, str]]:
        yield from _source_problems(self.source, path)


@dataclass(frozen=True)
class Percent(Condition):
    """``percent`` % of the source's values, by a stable hash (:func:`.match.bucket`) of the
    first value with ``salt``; a request without the source is not in the split."""

    source: Source
    percent: float
    salt: str = ""

    def test(self, attrs: Attrs) -> bool:
        got = self.source.read(attrs)
        return bool(got) and in_share(got[0], self.percent, self.salt)

    def keys(self) -> Iterator[str]:
        yield from self.source.keys()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"percent": self.percent, "by": self.source.to_dict()}
        if self.salt:
            out["salt"] = self.salt
        return out

    def problems(self, path: str = "when") -> Iterator[tuple[str, str]]:
        yield from _source_problems(self.source, f"{path}.by")
        if not 0 <= self.percent <= 100:
            yield f"{path}.percent", f"{self.percent} is not in [0, 100]"


@dataclass(frozen=True)
class All(Condition):
    """Every item holds (``all: []`` holds for every request: a catch-all)."""

    items: tuple[Condition, ...]

    def test(self, attrs: Attrs) -> bool:
        return all(c.test(attrs) for c in self.items)

    def keys(self) -> Iterator[str]:
        for c in self.items:
            yield from c.keys()

    def to_dict(self) -> dict[str, Any]:
        return {"all": [c.to_dict() for c in self.items]}

    def problems(self, path: str = "when") -> Iterator[tuple[str, str]]:
        for i, c in enumerate(self.items):
            yield from c.problems(f"{path}.all[{i}]")


@dataclass(frozen=True)
class AnyOf(Condition):
    """At least one item holds."""

    items: tuple[Condition, ...]

    def test(self, attrs: Attrs) -> bool:
        return any(c.test(attrs) for c in self.items)

    def keys(self) -> Iterator[str]:
        for c in self.items:
            yield from c.keys()

    def to_dict(self) -> dict[str, Any]:
        return {"any": [c.to_dict() for c in self.items]}

    def problems(self, path: str = "when") -> Iterator[tuple[str, str]]:
        if not self.items:
            yield f"{path}.any", "needs at least one condition"
        for i, c in enumerate(self.items):
            yield from c.problems(f"{path}.any[{i}]")


@dataclass(frozen=True)
class Not(Condition):
    """The item does not hold."""

    item: Condition

    def test(self, attrs: Attrs) -> bool:
        return not self.item.test(attrs)

    def keys(self) -> Iterator[str]:
        yield from self.item.keys()

    def to_dict(self) -> dict[str, Any]:
        return {"not": self.item.to_dict()}

    def problems(self, path: str = "when") -> Iterator[tuple[str, str]]:
        yield from self.item.problems(f"{path}.not")


@dataclass(frozen=True)
class Rule:
    """A per-service routing rule: on a hop of ``service`` whose attributes meet ``match``
    (every ``{attribute: value}`` equal; the original form, still read) and ``when`` (a
    condition tree), the expected lane is ``lane``. Of a service's rules the first that
    matches decides."""

    service: str
    match: Mapping[str, str]
    lane: str
    when: Condition | None = None

    def matches(self, attributes: Attrs) -> bool:
        """Whether a hop with these attributes (strings or string arrays) meets the rule."""
        for k, v in self.match.items():
            got = attributes.get(k)
            if got != v and (got is None or isinstance(got, str) or v not in values(got)):
                return False
        return self.when is None or self.when.test(attributes)

    def attribute_keys(self) -> Iterator[str]:
        """Span attribute keys the rule reads."""
        yield from self.match
        if self.when is not None:
            yield from self.when.keys()

    def to_dict(self) -> dict[str, Any]:
        """The rule as written in ``routing_rules:`` (read back by ``parse_rules``)."""
        out: dict[str, Any] = {"service": self.service}
        if self.match:
            out["match"] = dict(self.match)
        if self.when is not None:
            out["when"] = self.when.to_dict()
        out["lane"] = self.lane
        return out
