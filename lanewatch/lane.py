"""The lane model's vocabulary: lanes, verdicts, attribute and header names.

Pure: no I/O. Every other module takes its names from here, so that the
collector, the instrumentation, the dashboard and the alerts agree. The
semantics are those of ``shared/LANES.md``.

Wire conventions (the defaults; the collector's keys are configurable):

* **request lane**: W3C baggage entry ``lane`` -> span attribute ``lane``.
  The standard ``BaggageSpanProcessor`` copies a baggage entry onto every span
  under the entry's own key, so a service that only uses standard
  OpenTelemetry parts (baggage propagator + baggage span processor) is
  understood with no collector configuration.
* **instance lane**: resource attribute ``service.lane``
  (``OTEL_RESOURCE_ATTRIBUTES=service.lane=gray``).
* **instance id**: resource attribute ``service.instance.id``.
* **heartbeat**: an OTLP gauge ``lanewatch.instance.up`` (1 = serving,
  0 = leaving on purpose), sent every few seconds by each instrumented process.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Final

BASE: Final = "base"

#: Span attribute and baggage key holding the request lane.
REQUEST_LANE_ATTR: Final = "lane"
#: Resource attribute holding the instance lane.
INSTANCE_LANE_ATTR: Final = "service.lane"
INSTANCE_ID_ATTR: Final = "service.instance.id"
SERVICE_NAME_ATTR: Final = "service.name"
#: Set (true) on a SERVER span whose lane was stamped by dyeing, not received.
DYED_ATTR: Final = "lane.dyed"
#: Heartbeat metric name (gauge: 1 serving, 0 leaving).
HEARTBEAT_METRIC: Final = "lanewatch.instance.up"

#: The lane header lanewatch's propagator reads and writes by default.
DEFAULT_LANE_HEADER: Final = "x-mse-tag"
#: Lane header names used by other systems for the same thing; accepted as aliases.
LANE_HEADER_ALIASES: Final = ("x-mse-tag", "x-asm-prefer-tag", "x-opensergo-traffic", "service-lane")

#: Names a lane may take: what fits in a header value and a metric label.
_LANE_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,62}")
#: Lane value given to junk (non-string, too long, odd characters); counted, never raised.
INVALID_LANE: Final = "_invalid"
#: Lane value given once the distinct-lane limit is reached; counted.
OVERFLOW_LANE: Final = "_other"


class Verdict(IntEnum):
    """One verdict per hop (and ``TAG_LOST`` per edge or client span).

    The integer values are stable: they are stored and used as array codes.
    """

    IN_LANE = 0
    FALLBACK = 1
    LEAK = 2
    INTRUSION = 3
    TAG_LOST = 4
    #: gray expected, served by base, and the only gray instance that might have been live
    #: was overdue (silent past about twice its cadence, not yet past the liveness TTL)
    UNCERTAIN = 5

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def is_violation(self) -> bool:
        return self in (Verdict.LEAK, Verdict.INTRUSION, Verdict.TAG_LOST)


#: Hop verdicts, in code order (``TAG_LOST`` is an edge verdict only).
HOP_VERDICTS: Final = tuple(v for v in Verdict if v is not Verdict.TAG_LOST)
VERDICT_NAMES: Final = tuple(v.label for v in Verdict)
#: The violating verdicts (:attr:`Verdict.is_violation`), as codes and as names.
VIOLATIONS: Final = tuple(v for v in Verdict if v.is_violation)
VIOLATION_NAMES: Final = tuple(v.label for v in VIOLATIONS)
#: Hop verdicts that violate, as names (every violation but the edge-only ``tag_lost``).
HOP_VIOLATION_NAMES: Final = tuple(v.label for v in HOP_VERDICTS if v.is_violation)


class Live(IntEnum):
    """What liveness says of a (service, lane) at a time. ``NO``/``YES`` equal ``False``/``True``,
    so a plain boolean answer is a valid one (it never says ``OVERDUE``)."""

    NO = 0
    YES = 1
    #: only an instance that is overdue (past about twice its reporting cadence) but not yet
    #: past the liveness TTL: it probably died without a word
    OVERDUE = 2


class SpanKind(IntEnum):
    """OTLP ``Span.SpanKind`` wire values."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


#: Kinds that are hops (a service receiving a request or a message).
HOP_KINDS: Final = frozenset((SpanKind.SERVER, SpanKind.CONSUMER))
#: Kinds that send a lane to another service.
SEND_KINDS: Final = frozenset((SpanKind.CLIENT, SpanKind.PRODUCER))


def is_valid_lane(value: str) -> bool:
    """True when ``value`` is a usable lane name (``""`` is not: it means base)."""
    return _LANE_RE.fullmatch(value) is not None


def normalize_lane(value: object) -> str:
    """Map a raw attribute or header value to a lane name; never raises.

    Missing or empty means :data:`BASE`; a non-string or malformed value is
    :data:`INVALID_LANE`, which callers count as a drop reason and show.
    """
    if value is None or value == "":
        return BASE
    if not isinstance(value, str):
        return INVALID_LANE
    value = value.strip()
    if value == "":
        return BASE
    return value if is_valid_lane(value) else INVALID_LANE


def hop_verdict(expected: str, instance: str, expected_lane_live: bool | Live) -> Verdict:
    """The reference verdict rule for one hop, straight from LANES.md.

    ``expected_lane_live``: whether the service had a live instance in
    ``expected`` at the hop's time (:class:`Live`; a boolean is ``NO``/``YES``). The
    collector's column-wise classifier must agree with this function on every input
    (tests compare them). Served by base while the expected lane is only ``OVERDUE``
    is ``uncertain``: neither a fallback nor a leak.

    One case LANES.md leaves open: expected lane L (not base) with no live L
    instance, served by another non-base lane M. That is not a fallback
    (fallback means "served by base"), so it is judged a ``leak``.
    """
    if instance == expected:
        return Verdict.IN_LANE
    if expected == BASE:
        return Verdict.INTRUSION
    if instance == BASE:
        live = Live(expected_lane_live)
        if live is Live.NO:
            return Verdict.FALLBACK
        if live is Live.OVERDUE:
            return Verdict.UNCERTAIN
    return Verdict.LEAK


def format_hop(service: str, instance_lane: str, verdict: Verdict, tag_lost: bool = False) -> str:
    """One hop of a lane path: ``B[base, fallback]``; in-lane hops show the lane only."""
    parts = [instance_lane]
    if verdict != Verdict.IN_LANE:
        parts.append(verdict.label)
    if tag_lost:
        parts.append(Verdict.TAG_LOST.label)
    return f"{service}[{', '.join(parts)}]"
