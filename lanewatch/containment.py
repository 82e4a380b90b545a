"""Did the lane stay in its lane? The containment rules of the release gate, read off a summary.

One function, :func:`containment`, shared by ``lanewatch check`` and ``/api/v1/gate`` so the two
cannot disagree. The scope is the summary's (``lane=`` / ``service=``, see ``docs/api.md``):

* a ``leak``, ``intrusion`` or ``tag_lost`` in scope fails;
* a trace in scope that did not stay in lane fails, except under ``service=S`` (a trace that
  left its lane at another service is that service's violation, counted there);
* a dead lane in scope fails;
* otherwise, no finished trace in scope means nothing was checked: not judged (inconclusive);
* a ``lane`` or ``service`` not in ``summary.seen`` is a typo (:class:`UnknownName`), unless the
  collector has seen nothing at all yet (then no name is a typo, and the gate is inconclusive).

Pure and standard-library only (``lanewatch check`` runs anywhere, without numpy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lanewatch import lane as L

TAG_LOST = L.Verdict.TAG_LOST.label
#: The names of the containment checks, in the order they are reported.
CHECK_NAMES = (*L.HOP_VIOLATION_NAMES, TAG_LOST, "traces_violated", "dead_lanes")


class SummaryError(ValueError):
    """The answer is not a lanewatch summary (of this version or newer)."""


class UnknownName(ValueError):
    """A ``lane`` or ``service`` that was not seen in the window: most likely a typo."""

    def __init__(self, param: str, value: str, window_s: Any, known: Sequence[str]) -> None:
        self.param, self.value, self.window_s, self.known = param, value, window_s, list(known)
        super().__init__(self.message())

    def message(self, as_flag: bool = False) -> str:
        """``lane=grey: not seen ...`` (an API parameter) or ``--lane grey: ...`` (a flag)."""
        said = f"--{self.param} {self.value}" if as_flag else f"{self.param}={self.value}"
        return (f"{said}: not seen in the last {self.window_s} s; seen: "
                f"{', '.join(self.known) or 'nothing (is the collector receiving spans?)'}")


def scope_text(lane: str | None, service: str | None, unscoped: str = "the window") -> str:
    """``lane gray at B``, ``lane gray``, ``service B`` or, with neither, ``unscoped``."""
    if lane and service:
        return f"lane {lane} at {service}"
    return f"lane {lane}" if lane else f"service {service}" if service else unscoped


@dataclass(frozen=True)
class Containment:
    """The containment facts of one summary, and what they decide."""

    counts: dict[str, int]  # per violating verdict: leak, intrusion, tag_lost
    traces: int  # finished traces in scope
    traces_violated: int
    dead: list[dict[str, Any]]
    lane: str | None
    service: str | None

    @property
    def failed(self) -> bool:
        """A violation, a trace that left its lane (without ``service``), or a dead lane."""
        return any(self.counts.values()) or bool(self.dead) or (self.traces_violated > 0 and self.service is None)

    @property
    def passed(self) -> bool | None:
        """False when failed; None when nothing was checked (no finished trace); else True."""
        return False if self.failed else None if self.traces == 0 else True

    def checks(self) -> list[dict[str, Any]]:
        """One critical check per rule, as the gate reports them (``name, pass, value, threshold,
        text, critical``); ``traces_violated`` only without ``service``."""
        scope = scope_text(self.lane, self.service)
        judged = self.traces > 0

        def check(name: str, value: int, said: str, ok_said: str) -> dict[str, Any]:
            passed = False if value else True if judged else None
            text = said if value else ok_said if judged else f"not judged: no finished trace in {scope}"
            return {"name": name, "pass": passed, "value": value, "threshold": 0, "text": text, "critical": True}

        out = [check(k, n, f"{n:,} {'tags lost' if k == TAG_LOST else k + ' hops'} in {scope} (must be 0)",
                     f"no {'tag lost' if k == TAG_LOST else k} in {scope}") for k, n in self.counts.items()]
        if self.service is None:
            out.append(check("traces_violated", self.traces_violated,
                             f"{self.traces_violated:,} of {self.traces:,} traces in {scope} left their lane",
                             f"all {self.traces:,} traces in {scope} stayed in lane"))
        where = ", ".join(f"{d.get('lane')} at {d.get('service')}" for d in self.dead)
        out.append(check("dead_lanes", len(self.dead),
                         f"{len(self.dead)} dead lane(s): {where} (live instances, no hop of their lane)",
                         f"no dead lane in {scope}"))
        return out


def containment(summary: Mapping[str, Any], lane: str | None, service: str | None) -> Containment:
    """The containment of ``summary`` (the answer of ``/api/v1/summary`` for this ``lane`` and
    ``service``); raises :class:`SummaryError` if malformed, :class:`UnknownName` on a typo."""
    try:
        counts = {k: int(summary["hops"][k]) for k in L.HOP_VIOLATION_NAMES}
        counts[TAG_LOST] = int(summary["edges"][TAG_LOST])
        seen = summary["seen"]
        dead = [dict(d) for d in summary["dead_lanes"]]
        traces, violated = int(summary["traces"]), int(summary["traces_violated"])
        seen_lanes, seen_services = list(seen["lanes"]), list(seen["services"])
        summary["lanes"].items()
    except (KeyError, TypeError, ValueError, AttributeError):
        raise SummaryError("the summary lacks hops/edges/lanes/seen/dead_lanes: is this a lanewatch API "
                           "(of this version or newer)?") from None
    nothing_seen = not seen_lanes and not seen_services  # a fresh collector: no name is a typo yet
    for param, name, known in (("lane", lane, seen_lanes), ("service", service, seen_services)):
        if name is not None and name not in known and not nothing_seen:
            raise UnknownName(param, name, summary.get("window_s"), known)
    return Containment(counts, traces, violated, dead, lane, service)
