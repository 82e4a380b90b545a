"""The lane propagator: lane header <-> W3C baggage entry ``lane``.

It composes with ``tracecontext`` and ``baggage`` (see :func:`install`), it
never replaces them, and it must come *after* them: on extract it then sees
the baggage already read from the request and can tell whether the request
carried a lane at all.

**Where dyeing happens.** Every OpenTelemetry server (and consumer)
instrumentation calls the global propagator's ``extract`` on the incoming
headers and then starts its SERVER span with the returned context. Dyeing is
done here, in ``extract``: a request that arrives with no lane (no lane header,
no ``lane`` baggage entry) gets the instance's lane put into its baggage and a
context flag (:data:`DYED_KEY`, not propagated) saying so. The SERVER span is
therefore started in a context that already holds the lane, so the span
processor stamps ``lane`` and ``lane.dyed`` at ``on_start``, and outgoing calls
carry the lane by the ordinary baggage and lane-header injection. An incoming
tag always wins over dyeing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from opentelemetry import baggage
from opentelemetry.context import Context, create_key, get_current, set_value
from opentelemetry.propagate import get_global_textmap, set_global_textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from lanewatch import lane as L

_log = logging.getLogger(__name__)

#: Context flag set by dyeing: the request lane was stamped here, not received.
DYED_KEY = create_key("lanewatch-dyed")
#: Longest pass-through header value carried (longer ones are logged and skipped).
MAX_PASSTHROUGH_VALUE = 256


class LanePropagator(TextMapPropagator):
    """Map the lane header (and aliases) to the baggage entry ``lane`` and back.

    ``passthrough_headers`` are business headers (e.g. ``x-user-id``) carried
    as baggage entries under their own name and re-emitted as headers.
    ``dye_lane``: when set, requests arriving without a lane get this lane
    (see the module docstring). Bad values are logged and skipped; nothing
    here raises on input.
    """

    def __init__(
        self,
        lane_header: str = L.DEFAULT_LANE_HEADER,
        aliases: Iterable[str] = L.LANE_HEADER_ALIASES,
        passthrough_headers: Iterable[str] = (),
        dye_lane: str | None = None,
    ) -> None:
        self.lane_header = lane_header.lower()
        self._read = (self.lane_header, *[a.lower() for a in aliases if a.lower() != self.lane_header])
        self.passthrough_headers = tuple(h.lower() for h in passthrough_headers)
        self.dye_lane = dye_lane if dye_lane and dye_lane != L.BASE else None
        self.rejected = 0  # bad values seen, for tests and diagnostics

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        """Read the lane header and pass-through headers into baggage; dye if configured."""
        ctx = get_current() if context is None else context
        try:
            lane = self._first_valid(carrier, getter, self._read)
            if lane is not None and _baggage(ctx).get(L.REQUEST_LANE_ATTR) != lane:
                ctx = baggage.set_baggage(L.REQUEST_LANE_ATTR, lane, ctx)
            for name in self.passthrough_headers:
                value = self._passthrough_value(carrier, getter, name)
                if value is not None:
                    ctx = baggage.set_baggage(name, value, ctx)
            if self.dye_lane is not None and not valid_lane(_baggage(ctx).get(L.REQUEST_LANE_ATTR)):
                ctx = baggage.set_baggage(L.REQUEST_LANE_ATTR, self.dye_lane, ctx)
                ctx = set_value(DYED_KEY, True, ctx)
        except Exception:  # noqa: BLE001 - a propagator must never break the request
            _log.debug("lane extract failed", exc_info=True)
        return ctx

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        """Write the request lane (if valid) and the pass-through entries as headers."""
        try:
            entries = _baggage(get_current() if context is None else context)
            lane = entries.get(L.REQUEST_LANE_ATTR)
            if lane is not None and (lane in _KNOWN_VALID or valid_lane(lane)):
                setter.set(carrier, self.lane_header, lane)  # type: ignore[arg-type]
            if self.passthrough_headers:
                for name in self.passthrough_headers:
                    value = entries.get(name)
                    if isinstance(value, str) and _safe_header_value(value):
                        setter.set(carrier, name, value)
        except Exception:  # noqa: BLE001 - never break the outgoing call
            _log.debug("lane inject failed", exc_info=True)

    @property
    def fields(self) -> set[str]:
        """The headers ``inject`` may set."""
        return {self.lane_header, *self.passthrough_headers}

    def _first_valid(self, carrier: CarrierT, getter: Getter[CarrierT], names: Iterable[str]) -> str | None:
        plain = getter is default_getter and type(carrier) is dict  # the common case, read directly
        for name in names:
            raw = carrier.get(name) if plain else None  # type: ignore[attr-defined]
            if not isinstance(raw, str):
                if plain and raw is None:
                    continue
                values = getter.get(carrier, name)
                if not values:
                    continue
                raw = values[0]
            value = raw.strip()
            if value in _KNOWN_VALID or valid_lane(value):
                return value
            if value:  # an empty header means no lane, not a bad one
                self._reject(name, value)
        return None

    def _passthrough_value(self, carrier: CarrierT, getter: Getter[CarrierT], name: str) -> str | None:
        values = getter.get(carrier, name)
        if not values:
            return None
        value = values[0].strip()
        if value and _safe_header_value(value):
            return value
        self._reject(name, value)
        return None

    def _reject(self, name: str, value: str) -> None:
        self.rejected += 1
        if self.rejected <= 10 or self.rejected % 1000 == 0:
            _log.warning("ignoring bad %s header value %r (%d bad values so far)", name, value[:80], self.rejected)


_KNOWN_VALID: set[str] = set()
#: The context key the SDK keeps baggage under (read directly: one dict lookup, not four calls).
_BAGGAGE_KEY: str | None = getattr(baggage, "_BAGGAGE_KEY", None)
_NO_ENTRIES: Mapping[str, object] = MappingProxyType({})


def _baggage(ctx: Context) -> Mapping[str, object]:
    """The baggage entries of ``ctx`` (``baggage.get_all``, minus the wrapping when the key is known)."""
    if _BAGGAGE_KEY is not None:
        entries = ctx.get(_BAGGAGE_KEY)
        if entries is None:
            return _NO_ENTRIES
        if isinstance(entries, dict):
            return entries
    return baggage.get_all(ctx)


def valid_lane(value: object) -> bool:
    """:func:`lanewatch.lane.is_valid_lane` for any value, remembering up to 1024 valid names."""
    if value in _KNOWN_VALID:
        return True
    if not isinstance(value, str) or not L.is_valid_lane(value):
        return False
    if len(_KNOWN_VALID) < 1024:
        _KNOWN_VALID.add(value)
    return True


def _safe_header_value(value: str) -> bool:
    return len(value) <= MAX_PASSTHROUGH_VALUE and value.isprintable() and value.isascii()


def compose(propagator: LanePropagator, base: TextMapPropagator | None = None) -> CompositePropagator:
    """``base`` (default: the current global propagator) followed by ``propagator``.

    A lanewatch propagator already inside ``base`` is replaced, so composing
    twice does not stack two of them.
    """
    base = get_global_textmap() if base is None else base
    parts: list[TextMapPropagator] = []
    for p in getattr(base, "_propagators", [base]):
        if not isinstance(p, LanePropagator):
            parts.append(p)
    return CompositePropagator([*parts, propagator])


def install(propagator: LanePropagator) -> TextMapPropagator:
    """Make ``compose(propagator)`` the global propagator; return the previous one."""
    previous = get_global_textmap()
    set_global_textmap(compose(propagator, previous))
    return previous


def installed() -> LanePropagator | None:
    """The lanewatch propagator inside the global propagator, if any."""
    glob = get_global_textmap()
    for p in getattr(glob, "_propagators", [glob]):
        if isinstance(p, LanePropagator):
            return p
    return None
