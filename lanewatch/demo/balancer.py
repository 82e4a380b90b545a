"""Lane-aware load balancing with fallback, as the write-up's agent does it.

A call in lane L goes to a live L instance of the callee if there is one, else
to a base instance (fallback); the tag travels on either way, so a later hop
can return to L. A per-service rule (scenario 3) picks the lane first: the
caller applies the callee's rules to the request's pass-through attributes.

Pure apart from a round-robin counter: the instance list comes from a callable
(the :class:`~lanewatch.demo.client.ControlClient`'s latest view).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TypeVar

from lanewatch import lane as L
from lanewatch.config import Rule
from lanewatch.demo.registry import Instance

R = TypeVar("R")


class NoInstance(LookupError):
    """The callee has no live instance to take the call."""


def target_lane(service: str, request_lane: str, attributes: Mapping[str, str],
                rules: Sequence[Rule]) -> str:
    """The lane a call to ``service`` should go to: the first matching rule's lane, else the request lane.

    The same rule the collector uses for a hop's expected lane.
    """
    for rule in rules:
        if rule.service == service and rule.matches(attributes):
            return rule.lane
    return request_lane


def candidates(instances: Sequence[Instance], service: str, lane: str,
               exclude: Collection[str] = ()) -> list[Instance]:
    """Live instances of ``service`` in ``lane``, else in base (fallback), else none."""
    mine = [i for i in instances if i.service == service and i.id not in exclude]
    same = [i for i in mine if i.lane == lane]
    return same or [i for i in mine if i.lane == L.BASE]


class Balancer:
    """Round-robin over the lane-aware candidates.

    ``instances`` returns the latest registry view; ``refresh`` fetches a new
    one now (used while waiting out an instance that stopped answering).
    """

    def __init__(self, instances: Callable[[], Sequence[Instance]], rules: Sequence[Rule] = (),
                 refresh: Callable[[], None] = lambda: None) -> None:
        self._instances = instances
        self._refresh = refresh
        self.rules = tuple(rules)
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def lane_for(self, service: str, request_lane: str, attributes: Mapping[str, str]) -> str:
        """See :func:`target_lane`, with this balancer's rules."""
        return target_lane(service, request_lane, attributes, self.rules)

    def choose(self, service: str, lane: str, *, exclude: Collection[str] = (),
               lane_blind: bool = False) -> Instance | None:
        """Pick an instance of ``service`` for a call in ``lane``; None when the service has none.

        ``lane_blind`` is the broken balancer of the ``base_to_b_gray`` fault:
        plain round-robin over every instance, whatever its lane.
        """
        live = self._instances()
        if lane_blind:
            pool = [i for i in live if i.service == service and i.id not in exclude]
        else:
            pool = candidates(live, service, lane, exclude)
        if not pool:
            return None
        with self._lock:
            n = next(self._counter)
        return pool[n % len(pool)]

    def call(self, service: str, lane: str, send: Callable[[Instance], R], *,
             retry_on: tuple[type[BaseException], ...], lane_blind: bool = False,
             wait_s: float = 2.0) -> R:
        """``send`` to a chosen instance; when it refuses the connection, choose again.

        An instance leaving gracefully stops accepting, says goodbye to the
        collector, then deregisters. So a refused call waits (refreshing the
        registry view) until the instance is deregistered before it falls
        back: the fallback then happens after the goodbye and is judged a
        fallback, not a leak. An instance that never deregisters (a crash)
        is given up on after ``wait_s``. Raises :class:`NoInstance`.
        """
        exclude: set[str] = set()
        deadline = time.monotonic() + wait_s
        while True:
            inst = self.choose(service, lane, exclude=exclude, lane_blind=lane_blind)
            if inst is None:
                raise NoInstance(f"no live instance of {service} for lane {lane}")
            try:
                return send(inst)
            except retry_on:
                while time.monotonic() < deadline:
                    self._refresh()
                    if all(i.id != inst.id for i in self._instances()):
                        break
                    time.sleep(0.05)
                else:
                    exclude.add(inst.id)
