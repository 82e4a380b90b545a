"""Which lanes each service has live instances in, at any second.

Evidence is any telemetry from an instance (spans, metrics) and its
heartbeat gauge: an instance is live from its first sign of life until
``ttl`` seconds after its last, or exactly until it said it is leaving
(heartbeat 0). A span is evidence from its start (a resource's spans of one request:
from the earliest start to the newest end). Each instance keeps a short list of live
intervals, so the question "was a gray C live at t?" is answered for the hop's own time,
not for the moment its span happened to arrive. Declared topology lanes are always live.
The clock is injected.

**Cadence and overdue.** Each instance's reporting cadence is learned from its heartbeats:
the longest of its last :data:`CADENCE_GAPS` gaps between heartbeats (gaps longer than the
TTL are a death and a return, not a cadence). Only heartbeats teach it: spans and logs come
when traffic comes, so an idle, healthy instance would look overdue. Once silent past
``overdue_factor`` (2) times its cadence an instance is *overdue*: until the TTL it is
neither surely live nor gone (:attr:`lanewatch.lane.Live.OVERDUE`), and a gray hop served by
base then is ``uncertain``. A silence that long splits the instance's live intervals, so a
span that arrives late is judged by what was known of that moment. An instance whose cadence
is not learned yet (fewer than two heartbeats) is live until the TTL, as before.

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

from lanewatch.lane import Live

#: Intervals kept per instance; older ones are forgotten.
MAX_INTERVALS = 32
#: Heartbeat gaps remembered per instance; its cadence is the longest of them.
CADENCE_GAPS = 4
#: Silent for this many cadences: overdue.
OVERDUE_FACTOR = 2.0
#: Gaps shorter than this are one report seen twice, not a cadence.
_MIN_GAP_S = 0.05
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
    last_beat: float | None = None  # time of the newest heartbeat
    gaps: list[float] = field(default_factory=list)  # the last CADENCE_GAPS heartbeat gaps
    slow: list[float] = field(default_factory=list)  # overdue gaps since the last normal one

    @property
    def cadence(self) -> float | None:
        """Learned reporting cadence in seconds (``None``: fewer than two heartbeats yet)."""
        return max(self.gaps) if self.gaps else None

    def beat(self, t: float, ttl: float, factor: float) -> None:
        """A heartbeat at ``t``: learn the cadence from the gap since the previous one. A gap
        that was overdue is a silence, not a cadence, unless the next one is too (then the
        instance reports more slowly now, and those gaps are its cadence)."""
        gap = None if self.last_beat is None else t - self.last_beat
        if gap is not None and _MIN_GAP_S <= gap <= ttl:
            cadence = self.cadence
            if cadence is not None and gap > factor * cadence:
                self.slow.append(gap)
                if len(self.slow) >= 2:
                    self.gaps, self.slow = self.slow[-CADENCE_GAPS:], []
            else:
                self.gaps.append(gap)
                del self.gaps[:-CADENCE_GAPS]
                self.slow.clear()
        if self.last_beat is None or t > self.last_beat:
            self.last_beat = t

    def row(self) -> dict[str, Any]:
        """The store's ``instances`` row; ``hops``/``errors`` since the last row taken."""
        return {"service": self.service, "lane": self.lane, "instance": self.instance,
                "first_seen": self.first_seen, "last_seen": self.last_seen,
                "state": "left" if self.left else "up", "hops": self.hops, "errors": self.errors,
                "last_hop": self.last_hop}


def overdue_after(cadence: float | None, ttl: float, factor: float = OVERDUE_FACTOR) -> float:
    """Seconds of silence after which an instance of this ``cadence`` is overdue (``ttl`` when
    not learned: never overdue before it is gone)."""
    return ttl if cadence is None else min(ttl, factor * cadence)


def live_at(intervals: Sequence[Sequence[float]], left: bool, t: float, ttl: float) -> bool:
    """Is an instance with these live ``intervals`` live at ``t``? An interval counts until
    ``ttl`` after its end (or until the next interval starts), the last one not after a goodbye.
    Overdue counts as live here (:func:`state_at` tells them apart)."""
    return state_at(intervals, left, t, ttl, ttl) is not Live.NO


def state_at(intervals: Sequence[Sequence[float]], left: bool, t: float, ttl: float,
             overdue_s: float) -> Live:
    """What these live ``intervals`` say of ``t``: ``YES`` within an interval or up to
    ``overdue_s`` after it, ``OVERDUE`` after that until ``ttl`` (or the next interval),
    ``NO`` otherwise; the last interval ends at once after a goodbye."""
    n = len(intervals)
    got = Live.NO
    for i, (start, end) in enumerate(intervals):
        if t < start:
            break
        if i < n - 1:
            grace = min(ttl, intervals[i + 1][0] - end)
        else:
            grace = 0.0 if left else ttl
        if t <= end + grace:
            if t <= end + overdue_s:
                return Live.YES
            got = Live.OVERDUE
    return got


#: What another collector said of one instance: intervals, left, cadence.
Peer = tuple[list[list[float]], bool, "float | None"]


class Liveness:
    """Instance registry with per-instance live intervals."""

    def __init__(self, ttl_s: float, topology: Mapping[str, Sequence[str]] | None = None,
                 clock: Callable[[], float] = time.time, *, max_per_lane: int = 1000,
                 max_total: int = 20_000, max_id_chars: int = 256,
                 counters: Counter[str] | None = None, overdue_factor: float = OVERDUE_FACTOR) -> None:
        self.ttl = ttl_s
        self.overdue_factor = overdue_factor
        self.clock = clock
        self.max_per_lane, self.max_total, self.max_id_chars = max_per_lane, max_total, max_id_chars
        self.counters: Counter[str] = Counter() if counters is None else counters
        self.declared = {(s, lane) for s, lanes in (topology or {}).items() for lane in lanes}
        self._by_key: dict[tuple[str, str, str], Instance] = {}
        self._by_lane: dict[tuple[str, str], list[Instance]] = {}
        #: other collectors' liveness: (service, lane) -> (collector, instance) ->
        #: (intervals, left, cadence)
        self._peers_by_lane: dict[tuple[str, str], dict[tuple[str, str], Peer]] = {}

    def observe(self, service: str, lane: str, instance: str, t: float | None = None,
                up: bool = True, revive: bool = True, count: bool = True, *,
                since: float | None = None, beat: bool = False) -> None:
        """Record a sign of life (``up``) or a goodbye (``not up``) at time ``t`` (default now).

        ``revive=False`` (span evidence): an instance that said goodbye is not brought back
        by spans of requests it was still finishing; only a heartbeat revives it. ``count``:
        whether a cut id or an instance over the limits is counted (once per resource of a
        request: a heartbeat request observes its resource twice). ``since``: the evidence
        covers ``since``..``t`` (a span from its start). ``beat``: a heartbeat (teaches the
        cadence)."""
        now = self.clock()
        t = now if not t else min(t, now)
        since = t if since is None or not since else min(since, t)
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
                inst = self._by_key[key] = Instance(service, lane, key[2], since, t, intervals=[[since, t]])
                peers.append(inst)
                if beat:
                    inst.beat(t, self.ttl, self.overdue_factor)
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
            inst.intervals.append([since, t])
        elif not inst.left and since <= last[1] + overdue_after(inst.cadence, self.ttl, self.overdue_factor):
            last[1] = max(last[1], t)
            if since < last[0]:  # late evidence (a span exported seconds after it ran)
                if len(inst.intervals) == 1 or since > inst.intervals[-2][1]:
                    last[0] = since
                elif t >= last[0]:  # one span across the silence before this interval
                    prev = inst.intervals[-2]
                    prev[1] = max(prev[1], last[1])
                    inst.intervals.pop()
        elif t > last[1]:  # silent past overdue (or the TTL): a fresh interval
            inst.intervals.append([since, t])
        del inst.intervals[:-MAX_INTERVALS]
        if beat:  # after: the silence it ends is judged by the cadence known before it
            inst.beat(t, self.ttl, self.overdue_factor)
        inst.first_seen = min(inst.first_seen, since)
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
        """Did ``service`` have a live instance in ``lane`` at time ``t``, overdue or not?"""
        return self.state(service, lane, t) is not Live.NO

    def state(self, service: str, lane: str, t: float) -> Live:
        """What was known at ``t`` of ``service``'s instances in ``lane`` (its own evidence or,
        with several collectors, any peer's: :meth:`merge_peers`): ``YES`` when one was live
        and not overdue, ``OVERDUE`` when the only ones were overdue, else ``NO``."""
        if (service, lane) in self.declared:
            return Live.YES
        got = Live.NO
        ttl, factor = self.ttl, self.overdue_factor
        for inst in self._by_lane.get((service, lane), ()):
            s = state_at(inst.intervals, inst.left, t, ttl, overdue_after(inst.cadence, ttl, factor))
            if s is Live.YES:
                return s
            got = got or s
        for intervals, left, cadence in self._peers_by_lane.get((service, lane), {}).values():
            s = state_at(intervals, left, t, ttl, overdue_after(cadence, ttl, factor))
            if s is Live.YES:
                return s
            got = got or s
        return got

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
                            "left": inst.left, "cadence": inst.cadence})
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
                raw = r.get("cadence")  # absent from a collector of before cadences: not learned
                cadence = None if raw is None else float(raw)
                if cadence is not None and not cadence > 0:
                    cadence = None
            except (KeyError, TypeError, ValueError):
                self.counters["peer_liveness_unreadable"] += 1
                continue
            if not intervals:
                continue
            peers = self._peers_by_lane.setdefault(key, {})
            if who not in peers and len(peers) >= self.max_per_lane:
                self.counters["instances_over_limit"] += 1
                continue
            peers[who] = (intervals, left, cadence)
            taken += 1
        return taken

    def peer_rows(self) -> list[dict[str, Any]]:
        """Instances known only from other collectors, as ``instances`` rows (no hop counts)."""
        out = []
        for (service, lane), peers in self._peers_by_lane.items():
            for (_, instance), (intervals, left, _cadence) in peers.items():
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
            for who, (intervals, _, _) in list(peers.items()):
                if intervals[-1][1] < t:
                    del peers[who]
            if not peers:
                del self._peers_by_lane[lane_key]
        for key, inst in list(self._by_key.items()):
            if inst.last_seen < t:
                del self._by_key[key]
                self._by_lane[(inst.service, inst.lane)].remove(inst)
