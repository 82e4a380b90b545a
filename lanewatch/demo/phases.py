"""Which scenario is running: one for ``--scenario N``, a cycle for ``--scenario all``.

The write-up's scenarios exclude each other (scenario 3 asks to clear the
settings of 1 and 2: A-gray must not dye there), so ``all`` runs them one
after another, ``phase_s`` seconds each, in one mesh and against one
collector. The collector's rules are the union of every scenario's rules,
which agree with each other (scenario 1 sends no ``x-user-id``, and user 100
is gray in scenarios 2 and 3 alike).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from lanewatch.demo import scenarios as S


class Phases:
    """The current scenario, switched every ``phase_s`` seconds when there are several."""

    def __init__(self, scenario: str, canary: bool = True, phase_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        names = S.SCENARIOS if scenario == "all" else (scenario,)
        loaded = [S.load(n) for n in names]
        self._scenarios = [sc if canary else sc.without_canary() for sc in loaded]
        self.phase_s = phase_s
        self._clock = clock
        self._index = 0
        self._since = clock()
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change of scenario

    def all_scenarios(self) -> list[S.Scenario]:
        return list(self._scenarios)

    def current(self) -> S.Scenario:
        with self._lock:
            return self._scenarios[self._index]

    def passthrough(self) -> tuple[str, ...]:
        """Pass-through headers of every scenario (an instance keeps them across phases)."""
        out: list[str] = []
        for sc in self._scenarios:
            out += [h for h in sc.passthrough if h not in out]
        return tuple(out)

    def ingress_json(self) -> dict[str, Any]:
        """The current ingress rules, as the control server serves them."""
        return self.current().ingress.to_json()

    def restart_clock(self) -> None:
        """Start timing the current phase now (when traffic starts)."""
        with self._lock:
            self._since = self._clock()

    def due(self) -> bool:
        """Whether the current phase is over (never, with a single scenario)."""
        with self._lock:
            return len(self._scenarios) > 1 and self._clock() - self._since >= self.phase_s

    def advance(self) -> tuple[S.Scenario, S.Scenario] | None:
        """Move to the next scenario when the phase is over; returns (old, new) on a change."""
        if not self.due():
            return None
        with self._lock:
            old = self._scenarios[self._index]
            self._index = (self._index + 1) % len(self._scenarios)
            self._since = self._clock()
            self.version += 1
            return old, self._scenarios[self._index]
