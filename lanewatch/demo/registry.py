"""The demo's service registry: which instance serves which service in which lane.

The write-up uses Nacos for this. Here every process registers itself over
HTTP with the control server (:mod:`lanewatch.demo.control`) and renews its
entry by polling ``/state`` a few times a second; an entry that is not renewed
for ``ttl_s`` is gone, and a process leaving on purpose deregisters at once.

Pure bookkeeping with an injected clock: no I/O here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from lanewatch import lane as L

#: Roles that are not mesh services: they register for readiness and clean-up only.
MESH_ROLE = "service"


@dataclass(frozen=True)
class Instance:
    """One registered process."""

    id: str
    service: str
    lane: str
    addr: str  # host:port
    role: str = MESH_ROLE
    pid: int = 0

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Instance:
        """Build from a JSON body; raises ``ValueError`` naming a missing or bad field."""
        try:
            inst = cls(id=str(raw["id"]), service=str(raw["service"]),
                       lane=L.normalize_lane(raw.get("lane")), addr=str(raw["addr"]),
                       role=str(raw.get("role", MESH_ROLE)), pid=int(raw.get("pid", 0)))
        except (KeyError, TypeError) as e:
            raise ValueError(f"instance needs id, service, addr (lane, role, pid optional): {e}") from None
        if not inst.id or not inst.service or ":" not in inst.addr:
            raise ValueError(f"instance needs a non-empty id, service and a host:port addr: {raw!r}")
        if inst.lane == L.INVALID_LANE:
            raise ValueError(f"instance {inst.id}: invalid lane {raw.get('lane')!r}")
        return inst

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        """The write-up's name: ``A`` for base, ``Agray`` for gray."""
        return self.service if self.lane == L.BASE else f"{self.service}{self.lane}"


class Registry:
    """Thread-safe registry of live instances with TTL-based expiry."""

    def __init__(self, ttl_s: float = 3.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._clock = clock
        self._lock = threading.Condition()
        self._entries: dict[str, tuple[Instance, float]] = {}
        self._seen: dict[str, int] = {}  # state version each entry has applied

    def register(self, inst: Instance) -> None:
        """Add or replace ``inst``; it is live from now for ``ttl_s``."""
        with self._lock:
            self._entries[inst.id] = (inst, self._clock())
            self._seen.setdefault(inst.id, -1)

    def renew(self, instance_id: str, seen: int = -1) -> bool:
        """Extend an entry's life and note the state ``seen`` (version) it has applied.

        False when the entry is unknown (expired or never registered).
        """
        with self._lock:
            self._expire()
            entry = self._entries.get(instance_id)
            if entry is None:
                return False
            self._entries[instance_id] = (entry[0], self._clock())
            self._seen[instance_id] = max(self._seen.get(instance_id, -1), seen)
            self._lock.notify_all()
            return True

    def deregister(self, instance_id: str) -> bool:
        """Remove an entry now; False when it was not there."""
        with self._lock:
            self._seen.pop(instance_id, None)
            gone = self._entries.pop(instance_id, None) is not None
            self._lock.notify_all()
            return gone

    def wait_all_seen(self, version: int, timeout_s: float) -> bool:
        """Block until every live entry has applied state ``version`` (or a later one).

        Uses the real time for the timeout; False when some entry did not catch up in time.
        """
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                self._expire()
                if all(self._seen.get(key, -1) >= version for key in self._entries):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)

    def live(self, role: str | None = MESH_ROLE) -> list[Instance]:
        """Live instances (of ``role``, or all when None), sorted by service, lane, id."""
        with self._lock:
            self._expire()
            out = [inst for inst, _ in self._entries.values() if role is None or inst.role == role]
        return sorted(out, key=lambda i: (i.service, i.lane, i.id))

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, (_, seen) in self._entries.items() if now - seen > self._ttl]:
            del self._entries[key]
            self._seen.pop(key, None)
