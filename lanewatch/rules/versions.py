"""Routing rules and topology as versions in time: each hop is judged by the version in force
at its span's start.

A :class:`RuleBook` holds the versions since the process started (at most
:data:`MAX_VERSIONS`). Version 1 is what the process started with and also covers every
span from before it; each later version covers spans that start at or after its ``since``
(the clock time it was applied). A span that arrives after a change but started before it
keeps the verdict of the rules it was routed by.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from lanewatch.config.routing import Rule, rule_attributes

#: Versions kept; past it the oldest goes and the next covers the spans before it.
MAX_VERSIONS = 256


@dataclass(frozen=True)
class RuleVersion:
    """One set of routing rules and declared topology, in force from ``since``."""

    version: int
    since: float
    rules: tuple[Rule, ...]
    topology: Mapping[str, tuple[str, ...]]
    #: what applied it: ``start``, ``file`` (the config file changed), ``SIGHUP``, ``api``
    source: str

    @cached_property
    def declared(self) -> frozenset[tuple[str, str]]:
        """(service, lane) pairs of the topology: always live (built once per version: asked
        for every liveness question of the span path)."""
        return frozenset((s, lane) for s, lanes in self.topology.items() for lane in lanes)

    def same_as(self, rules: Sequence[Rule], topology: Mapping[str, Sequence[str]]) -> bool:
        return list(self.rules) == list(rules) and _topology(topology) == dict(self.topology)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "since": self.since, "source": self.source,
                "routing_rules": [rule_dict(r) for r in self.rules],
                "topology": {s: list(lanes) for s, lanes in self.topology.items()}}


def rule_dict(rule: Rule) -> dict[str, Any]:
    """A rule as the YAML/JSON it is written in (``routing_rules:`` and ``PUT /api/v1/rules``
    read it back)."""
    return rule.to_dict()


def _topology(raw: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    return {str(s): tuple(lanes) for s, lanes in raw.items()}


@dataclass(frozen=True)
class Failure:
    """The last reload that was refused (the version in force stayed)."""

    at: float
    source: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "source": self.source, "error": self.error}


class RuleBook:
    """Thread-safe. ``listeners`` are called (outside the lock) with each new version."""

    def __init__(self, rules: Sequence[Rule], topology: Mapping[str, Sequence[str]],
                 clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._versions = [RuleVersion(1, clock(), tuple(rules), _topology(topology), "start")]
        self._since = np.array([-np.inf])  # version 1 also covers spans from before the start
        self.failure: Failure | None = None
        self.listeners: list[Callable[[RuleVersion], None]] = []

    @property
    def current(self) -> RuleVersion:
        return self._versions[-1]

    def versions(self) -> list[RuleVersion]:
        with self._lock:
            return list(self._versions)

    def apply(self, rules: Sequence[Rule], topology: Mapping[str, Sequence[str]], source: str,
              at: float | None = None) -> RuleVersion | None:
        """Put ``rules`` and ``topology`` in force from ``at`` (default now); None when they are
        what is in force already (no new version). Clears a previous failure either way."""
        with self._lock:
            self.failure = None
            cur = self._versions[-1]
            if cur.same_as(rules, topology):
                return None
            since = max(self.clock() if at is None else at, cur.since)
            new = RuleVersion(cur.version + 1, since, tuple(rules), _topology(topology), source)
            self._versions.append(new)
            if len(self._versions) > MAX_VERSIONS:
                del self._versions[0]
            self._since = np.array([-np.inf, *(v.since for v in self._versions[1:])])
        for fn in list(self.listeners):
            fn(new)
        return new

    def fail(self, source: str, error: str) -> None:
        """A reload was refused: the version in force stays; health and the dashboard say why."""
        with self._lock:
            self.failure = Failure(self.clock(), source, error)

    def at(self, t: float) -> RuleVersion:
        """The version in force at time ``t`` (seconds)."""
        with self._lock:
            i = int(np.searchsorted(self._since, t, side="right")) - 1
            return self._versions[max(i, 0)]

    def split(self, t_s: npt.NDArray[np.float64]) -> list[tuple[RuleVersion, npt.NDArray[np.int64] | None]]:
        """Rows of ``t_s`` (span start times, seconds) by the version in force then: a list of
        (version, row indices), or ``[(version, None)]`` when every row has the same one."""
        with self._lock:
            versions, since = list(self._versions), self._since
        if len(versions) == 1 or not len(t_s) or float(t_s.min()) >= versions[-1].since:
            return [(versions[-1], None)]
        which = np.searchsorted(since, t_s, side="right") - 1
        groups = np.unique(which)
        if len(groups) == 1:
            return [(versions[int(groups[0])], None)]
        return [(versions[int(g)], np.flatnonzero(which == g)) for g in groups.tolist()]

    def attribute_keys(self) -> list[str]:
        """Span attribute keys any kept version's rules read (late spans are judged by old rules)."""
        with self._lock:
            return rule_attributes([r for v in self._versions for r in v.rules])

    def state(self) -> dict[str, Any]:
        """``GET /api/v1/rules``: the version in force and the last refused reload."""
        with self._lock:
            cur, failure, n = self._versions[-1], self.failure, len(self._versions)
        return {**cur.to_dict(), "versions": n,
                "last_reload_error": failure.to_dict() if failure is not None else None}

    def history(self) -> list[dict[str, Any]]:
        """``GET /api/v1/rules/history``: every kept version, newest first, with when it ended."""
        versions = self.versions()
        out = []
        for i, v in enumerate(versions):
            d = v.to_dict()
            d["until"] = versions[i + 1].since if i + 1 < len(versions) else None
            out.append(d)
        return out[::-1]
