"""The lane span processor: stamp the request lane onto every span at start."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from opentelemetry import baggage
from opentelemetry.context import Context, get_value
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind

from lanewatch import lane as L
from lanewatch.instrument.propagator import DYED_KEY, valid_lane

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

    The instance lane is not a span attribute: it is the resource attribute
    ``service.lane`` set by :func:`lanewatch.instrument.configure`.
    """

    def __init__(self, passthrough_keys: Iterable[str] = ()) -> None:
        self._passthrough = tuple(passthrough_keys)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            lane = baggage.get_baggage(L.REQUEST_LANE_ATTR, parent_context)
            if lane is not None and valid_lane(lane):
                span.set_attribute(L.REQUEST_LANE_ATTR, lane)  # type: ignore[arg-type]
                if span.kind in _HOP_KINDS and get_value(DYED_KEY, parent_context):
                    span.set_attribute(L.DYED_ATTR, True)
            if self._passthrough:
                entries = baggage.get_all(parent_context)
                for key in self._passthrough:
                    value = entries.get(key)
                    if isinstance(value, str):
                        span.set_attribute(key, value)
        except Exception:  # noqa: BLE001 - a hook must never break the traced code
            _log.debug("lane on_start failed", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing to do at end."""

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered."""
        return True
