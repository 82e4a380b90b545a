"""The fault switchboard: named faults the demo can switch on and off while it runs.

Each fault names what it breaks and what lanewatch should say about it. The
switchboard is pure state with change listeners; the control server exposes
it over HTTP (``GET /faults``, ``POST /faults/{name}``) and the mesh processes
read it from ``/state``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fault:
    """A switchable fault: what it does and the verdict it should produce."""

    name: str
    description: str
    #: What lanewatch reports while it is on: a violation kind, or a plain-words effect.
    expect: str


B_GRAY_DROPS_TAG: Final = "b_gray_drops_tag"
PROXY_STRIPS_TAG: Final = "proxy_strips_tag"
C_GRAY_DOWN: Final = "c_gray_down"
BASE_TO_B_GRAY: Final = "base_to_b_gray"
B_GRAY_ERRORS: Final = "b_gray_errors"
B_GRAY_SLOW: Final = "b_gray_slow"
DEAD_LANE: Final = "dead_lane"
GRAY_TO_C_BASE: Final = "gray_to_c_base"

FAULTS: Final[tuple[Fault, ...]] = (
    Fault(B_GRAY_DROPS_TAG, "B-gray drops the lane tag on its calls to C (context lost inside a service; "
          "the trace context survives)", "tag_lost inside B"),
    Fault(PROXY_STRIPS_TAG, "the proxy between A and B strips the lane header and routes what is left "
          "(tag lost in transit): gray requests continue in base", "tag_lost on the edge A -> B"),
    Fault(C_GRAY_DOWN, "C-gray is stopped gracefully (its heartbeat says 0): gray traffic falls back to "
          "C-base", "fallback at C, no violation"),
    Fault(BASE_TO_B_GRAY, "A's balancer ignores lanes for base traffic: about half of it reaches B-gray",
          "intrusion at B"),
    Fault(B_GRAY_ERRORS, "B-gray fails 30% of its requests", "gray worse than base: B error rate"),
    Fault(B_GRAY_SLOW, "B-gray answers 200 ms slower", "gray worse than base: B latency"),
    Fault(DEAD_LANE, "the ingress sends nothing to the gray lane and drops lane headers at the edge: "
          "gray instances are live but idle", "dead lane: live gray instances with no traffic (shown after dead_lanes.after_s)"),
    Fault(GRAY_TO_C_BASE, "B's balancer sends gray calls to C-base (the lane tag kept) while C-gray is live",
          "leak at C"),
)
FAULT_NAMES: Final = tuple(f.name for f in FAULTS)
BY_NAME: Final = {f.name: f for f in FAULTS}

#: Share of B-gray requests failed by ``b_gray_errors``, and delay added by ``b_gray_slow``.
ERROR_SHARE: Final = 0.3
SLOW_S: Final = 0.2

Listener = Callable[[str, bool], None]


class Switchboard:
    """Thread-safe on/off state of every fault, all off at start."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._on = dict.fromkeys(FAULT_NAMES, False)
        self._listeners: list[Listener] = []
        self.version = 0  # bumped on every change

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(name, on)`` after each change (never while holding the lock)."""
        self._listeners.append(listener)

    def unsubscribe_all(self) -> None:
        self._listeners.clear()

    def set(self, name: str, on: bool) -> bool:
        """Switch ``name``; returns True when the state changed. ``KeyError`` for an unknown fault."""
        if name not in BY_NAME:
            raise KeyError(name)
        with self._lock:
            changed = self._on[name] != on
            self._on[name] = on
            self.version += changed
        if changed:
            log.info("fault %s %s", name, "on" if on else "off")
            for listener in self._listeners:
                try:
                    listener(name, on)
                except Exception:  # a listener must not break the switchboard
                    log.exception("fault listener failed for %s=%s", name, on)
        return changed

    def snapshot(self) -> dict[str, bool]:
        """``{name: on}`` for every fault."""
        with self._lock:
            return dict(self._on)

    def info(self) -> list[dict[str, object]]:
        """Every fault with its state, description and expected verdict (for the dashboard)."""
        on = self.snapshot()
        return [{"name": f.name, "on": on[f.name], "description": f.description, "expect": f.expect}
                for f in FAULTS]
