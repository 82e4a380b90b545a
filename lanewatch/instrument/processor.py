"""The lane span processor: stamp the request lane onto every span at start."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from opentelemetry import baggage
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context, get_current
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind

from lanewatch import lane as L
from lanewatch.instrument.propagator import _BAGGAGE_KEY, _KNOWN_VALID, DYED_KEY, valid_lane

_log = logging.getLogger(__name__)
_HOP_KINDS = (SpanKind.SERVER, SpanKind.CONSUMER)


class LaneSpanProcessor(SpanProcessor):
    """Copy the request lane (baggage ``lane``) and pass-through entries onto spans.

    Contract: ``on_start`` reads the parent context's baggage and sets
    attributes, nothing more; it never throws and never blocks. It stamps
    every span kind (SERVER, CLIENT, INTERNAL, PRODUCER, CONSUMER):

    * ``lane`` = the baggage entry ``lane`` when it is a valid lane name
      (absent means base, so nothing is stamped);
    * each configured pass-through key (e.g. ``x-user-id``) found in baggage,
      under the same key;
    * ``lane.dyed`` = true on SERVER and CONSUMER spans whose lane was stamped
      by dyeing (see :mod:`lanewatch.instrument.propagator`).

    Cost: the values are a checked lane name, ``True`` and short printable
    strings, which the SDK's attribute validation would store unchanged, so
    on an SDK span just started (not ended, attributes mutable, not full,
    value within the length limit) they are written straight into its
    attribute map, skipping ``Span.set_attribute``'s two locks and validation
    (about 2.5 us of a 12 us span on OpenTelemetry SDK 1.45). Any other case,
    or an SDK whose span internals differ, takes ``set_attribute``; baggage is
    read from the context directly for the same reason.

    The instance lane is not a span attribute: it is the resource attribute
    ``service.lane`` set by :func:`lanewatch.instrument.configure`.
    """

    def __init__(self, passthrough_keys: Iterable[str] = ()) -> None:
        self._passthrough = tuple(passthrough_keys)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            ctx = get_current() if parent_context is None else parent_context
            entries: Any = ctx.get(_BAGGAGE_KEY) if _BAGGAGE_KEY is not None else baggage.get_all(ctx)
            if not entries:
                return
            lane = entries.get(L.REQUEST_LANE_ATTR)
            if lane is not None and (lane in _KNOWN_VALID or valid_lane(lane)):
                _stamp(span, L.REQUEST_LANE_ATTR, lane)
                if ctx.get(DYED_KEY) and span.kind in _HOP_KINDS:
                    _stamp(span, L.DYED_ATTR, True)
            if self._passthrough:
                for key in self._passthrough:
                    value = entries.get(key)
                    if isinstance(value, str):
                        _stamp(span, key, value)
        except Exception:  # noqa: BLE001 - a hook must never break the traced code
            _log.debug("lane on_start failed", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing to do at end."""

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered."""
        return True


def _stamp(span: Span, key: str, value: str | bool) -> None:
    """``span.set_attribute(key, value)`` for a span in ``on_start`` and a value needing no cleaning.

    No lock is taken on the direct path: in ``on_start`` the span has not yet
    been returned to any caller, so only the starting thread can see it, and
    the write is one dict store.
    """
    attrs = getattr(span, "_attributes", None)
    if type(attrs) is BoundedAttributes and not attrs._immutable and getattr(span, "_end_time", 0) is None:
        stored = attrs._dict
        if (attrs.maxlen is None or len(stored) < attrs.maxlen) and (
                value is True or attrs.max_value_len is None or len(value) <= attrs.max_value_len):  # type: ignore[arg-type]
            stored[key] = value
            return
    span.set_attribute(key, value)
