"""Which lanes each service has live instances in, at any second.

Evidence is any telemetry from an instance (spans, metrics) and its
heartbeat gauge: an instance is live from its first sign of life until
``ttl`` seconds after its last, or exactly until it said it is leaving
(heartbeat 0). Each instance keeps a short list of live intervals, so the
question "was a gray C live at t?" is answered for the hop's own time, not
for the moment its span happened to arrive. Declared topology lanes are
always live. The clock is injected.

Bounded whatever the senders do: an instance id longer than ``max_id_chars`` is cut
(keeping a hash of the whole id, so distinct ids stay distinct) and counted as
``instance_ids_truncated``; a (service, lane) tracks at most ``max_per_lane`` instances and
the registry at most ``max_total``; evidence of an instance beyond either is folded into
that (service, lane)'s :data:`OVERFLOW_INSTANCE` entry, so the lane's liveness stays right,
and counted per occurrence as ``instances_over_limit``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Intervals kept per instance; older ones are forgotten.
MAX_INTERVALS = 32
#: The instance id that stands for every instance of a (service, lane) beyond the limits.
OVERFLOW_INSTANCE = "_other"


def cut_id(value: str, limit: int) -> str:
    """``value`` if at most ``limit`` (>= 32) characters, else its start, ``~`` and 16 hex
    digits of a hash of the whole (``limit`` characters in all)."""
    if len(value) <= limit:
        return value
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{value[:limit - 17]}~{digest}"


@dataclass
class Instance:
    service: str
    lane: str
    instance: str
    first_seen: float
    last_seen: float
    left: bool = False  # said it is leaving (heartbeat 0) and has not come back
    intervals: list[list[float]] = field(default_factory=list)  # [start, end], end inclusive
    dirty: bool = True
    shared: bool = False  # its liveness row is current in the store (SharedLiveness)
    hops: int = 0  # hops served since the last row was taken for the store
    errors: int = 0
    last_hop: float | None = None  # span start of the newest hop served

    def row(self) -> dict[str, Any]:
        """The store's ``instances`` row; ``hops``/``errors`` since the last row taken."""
        return {"service": self.service, "lane": self.lane, "instance": self.instance,
                "first_seen": self.first_seen, "last_seen": self.last_seen,
                "state": "left" if self.left else "up", "hops": self.hops, "errors": self.errors,
                "last_hop": self.last_hop}


def live_at(intervals: Sequence[Sequence[float]], left: bool, t: float, ttl: float) -> bool:
    """Is an instance with these live ``intervals`` live at ``t``? An interval counts until
    ``ttl`` after its end (or until the next interval starts), the last one not after a goodbye."""
    n = len(intervals)
    for i, (start, end) in enumerate(intervals):
        if i < n - 1:
            grace = min(ttl, intervals[i + 1][0] - end)
        else:
            grace = 0.0 if left else ttl
        if start <= t <= end + grace:
            return True
    return False


class Liveness:
    """Instance registry with per-instance live intervals."""

    def __init__(self, ttl_s: float, topology: Mapping[str, Sequence[str]] | None = None,
                 clock: Callable[[], float] = time.time, *, max_per_lane: int = 1000,
                 max_total: int = 20_000, max_id_chars: int = 256,
                 counters: Counter[str] | None = None) -> None:
        self.ttl = ttl_s
        self.clock = clock
        self.max_per_lane, self.max_total, self.max_id_chars = max_per_lane, max_total, max_id_chars
        self.counters: Counter[str] = Counter() if counters is None else counters
        self.declared = {(s, lane) for s, lanes in (topology or {}).items() for lane in lanes}
        self._by_key: dict[tuple[str, str, str], Instance] = {}
        self._by_lane: dict[tuple[str, str], list[Instance]] = {}
        #: other collectors' liveness: (service, lane) -> (collector, instance) -> (intervals, left)
        self._peers_by_lane: dict[tuple[str, str], dict[tuple[str, str], tuple[list[list[float]], bool]]] = {}

    def observe(self, service: str, lane: str, instance: str, t: float | None = None,
                up: bool = True, revive: bool = True, count: bool = True) -> None:
        """Record a sign of life (``up``) or a goodbye (``not up``) at time ``t`` (default now).

        ``revive=False`` (span evidence): an instance that said goodbye is not brought back
        by spans of requests it was still finishing; only a heartbeat revives it. ``count``:
        whether a cut id or an instance over the limits is counted (once per resource of a
        request: a heartbeat request observes its resource twice)."""
        now = self.clock()
        t = now if not t else min(t, now)
        key = self._key(service, lane, instance, count)
        inst = self._by_key.get(key)
        if inst is None:
            if not up:
                return
            peers = self._by_lane.setdefault((service, lane), [])
            if len(peers) >= self.max_per_lane or len(self._by_key) >= self.max_total:
                if count:
                    self.counters["instances_over_limit"] += 1
                key = (service, lane, OVERFLOW_INSTANCE)
                inst = self._by_key.get(key)
            if inst is None:
                inst = self._by_key[key] = Instance(service, lane, key[2], t, t, intervals=[[t, t]])
                peers.append(inst)
                return
        inst.dirty = True
        inst.shared = False
        if not up:
            if not inst.left:
                inst.left = True
                inst.intervals[-1][1] = max(inst.intervals[-1][1], t)
                inst.last_seen = max(inst.last_seen, t)
            return
        last = inst.intervals[-1]
        if inst.left and not revive:
            return
        if inst.left and t > last[1]:
            # came back after saying goodbye: a fresh interval
            inst.left = False
            inst.intervals.append([t, t])
        elif not inst.left and t <= last[1] + self.ttl:
            last[1] = max(last[1], t)
            if t < last[0] and (len(inst.intervals) == 1 or t > inst.intervals[-2][1]):
                last[0] = t  # late evidence (a span exported seconds after it ran)
        elif t > last[1]:
            inst.intervals.append([t, t])
        del inst.intervals[:-MAX_INTERVALS]
        inst.first_seen = min(inst.first_seen, t)
        inst.last_seen = max(inst.last_seen, t)

    def served(self, service: str, lane: str, instance: str, hops: int, errors: int, last_hop: float) -> None:
        """Count ``hops`` (``errors`` of them failed) served by a known instance, the newest
        starting at ``last_hop``."""
        key = self._key(service, lane, instance, count=False)
        inst = self._by_key.get(key) or self._by_key.get((service, lane, OVERFLOW_INSTANCE))
        if inst is None or hops <= 0:
            return
        inst.hops += hops
        inst.errors += errors
        inst.last_hop = last_hop if inst.last_hop is None else max(inst.last_hop, last_hop)
        inst.dirty = True

    def _key(self, service: str, lane: str, instance: str, count: bool = True) -> tuple[str, str, str]:
        if len(instance) > self.max_id_chars:
            instance = cut_id(instance, self.max_id_chars)
            if count:
                self.counters["instance_ids_truncated"] += 1
        return service, lane, instance

    def is_live(self, service: str, lane: str, t: float) -> bool:
        """Did ``service`` have a live instance in ``lane`` at time ``t``? (Its own evidence or,
        with several collectors, any peer's: :meth:`merge_peers`.)"""
        if (service, lane) in self.declared:
            return True
        for inst in self._by_lane.get((service, lane), ()):
            if live_at(inst.intervals, inst.left, t, self.ttl):
                return True
        for intervals, left in self._peers_by_lane.get((service, lane), {}).values():
            if live_at(intervals, left, t, self.ttl):
                return True
        return False

    # ---- several collectors: liveness shared through the store ---------------------------
    def take_shared(self, collector: str) -> list[dict[str, Any]]:
        """Liveness rows (:data:`lanewatch.store.base.LIVENESS_COLUMNS`) of the instances whose
        liveness changed since the last call, for the other collectors."""
        out = []
        for inst in self._by_key.values():
            if not inst.shared:
                inst.shared = True
                out.append({"collector": collector, "service": inst.service, "lane": inst.lane,
                            "instance": inst.instance, "intervals": json.dumps(inst.intervals),
                            "left": inst.left})
        return out

    def merge_peers(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Take other collectors' liveness rows (each replaces what that collector said of that
        instance before); rows that do not parse are skipped and counted
        (``peer_liveness_unreadable``). Returns the rows taken."""
        taken = 0
        for r in rows:
            try:
                intervals = [[float(a), float(b)] for a, b in json.loads(str(r["intervals"]))][-MAX_INTERVALS:]
                key = (str(r["service"]), str(r["lane"]))
                who = (str(r["collector"]), str(r["instance"]))
                left = bool(r["left"])
            except (KeyError, TypeError, ValueError):
                self.counters["peer_liveness_unreadable"] += 1
                continue
            if not intervals:
                continue
            peers = self._peers_by_lane.setdefault(key, {})
            if who not in peers and len(peers) >= self.max_per_lane:
                self.counters["instances_over_limit"] += 1
                continue
            peers[who] = (intervals, left)
            taken += 1
        return taken

    def peer_rows(self) -> list[dict[str, Any]]:
        """Instances known only from other collectors, as ``instances`` rows (no hop counts)."""
        out = []
        for (service, lane), peers in self._peers_by_lane.items():
            for (_, instance), (intervals, left) in peers.items():
                if (service, lane, instance) in self._by_key:
                    continue
                out.append({"service": service, "lane": lane, "instance": instance,
                            "first_seen": intervals[0][0], "last_seen": intervals[-1][1],
                            "state": "left" if left else "up", "hops": 0, "errors": 0, "last_hop": None})
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Rows of every instance tracked."""
        return [inst.row() for inst in self._by_key.values()]

    def take_changes(self) -> list[dict[str, Any]]:
        """Rows of instances changed since the last call (for the store)."""
        out = []
        for inst in self._by_key.values():
            if inst.dirty:
                inst.dirty = False
                out.append(inst.row())
                inst.hops = inst.errors = 0
        return out

    def forget_before(self, t: float) -> None:
        """Drop instances not seen since ``t`` (bounded memory), peers' too."""
        for lane_key, peers in list(self._peers_by_lane.items()):
            for who, (intervals, _) in list(peers.items()):
                if intervals[-1][1] < t:
                    del peers[who]
            if not peers:
                del self._peers_by_lane[lane_key]
        for key, inst in list(self._by_key.items()):
            if inst.last_seen < t:
                del self._by_key[key]
                self._by_lane[(inst.service, inst.lane)].remove(inst)
