"""What runs inside the user's services: lanes on every span, with no business code.

One call::

    from lanewatch.instrument import configure
    handle = configure(service_name="cart", lane="gray", endpoint="http://collector:4318", dyeing=True)

or none at all, through ``opentelemetry-instrument`` and ``LANEWATCH_*``
environment variables (see :mod:`lanewatch.instrument.distro`). The parts:

* :class:`LanePropagator` -- lane header (``x-mse-tag``) <-> baggage ``lane``,
  dyeing, pass-through headers;
* :class:`LaneSpanProcessor` -- stamps ``lane`` (and ``lane.dyed``) on spans;
* :class:`Heartbeat` -- the ``lanewatch.instance.up`` gauge;
* :class:`LaneASGIMiddleware`, :class:`LaneWSGIMiddleware`;
* :func:`wrap`, :class:`ContextExecutor`, :func:`use_lane`, :func:`current_lane`
  -- the lane across thread pools and in jobs;
* :func:`inject_headers`, :func:`extract_context`, :func:`producer_span`,
  :func:`consumer_span` -- the lane across message queues;
* :mod:`lanewatch.instrument.testing` -- a recording OTLP receiver and a header
  sink for testing your own lane setup.

Settings and their env vars: :mod:`lanewatch.instrument.options`; the full
guide, with Node.js, Java and Go: ``docs/instrumentation.md``.
"""

from __future__ import annotations

from lanewatch.instrument.context import ContextExecutor, current_lane, use_lane, wrap
from lanewatch.instrument.heartbeat import Heartbeat
from lanewatch.instrument.messaging import (
    consumer_span,
    extract_context,
    inject_headers,
    producer_span,
)
from lanewatch.instrument.middleware import LaneASGIMiddleware, LaneWSGIMiddleware
from lanewatch.instrument.options import InstrumentConfigError, Options
from lanewatch.instrument.processor import LaneSpanProcessor
from lanewatch.instrument.propagator import DYED_KEY, LanePropagator
from lanewatch.instrument.setup import Lanewatch, configure

__all__ = [
    "DYED_KEY",
    "ContextExecutor",
    "Heartbeat",
    "InstrumentConfigError",
    "LaneASGIMiddleware",
    "LanePropagator",
    "LaneSpanProcessor",
    "LaneWSGIMiddleware",
    "Lanewatch",
    "Options",
    "configure",
    "consumer_span",
    "current_lane",
    "extract_context",
    "inject_headers",
    "producer_span",
    "use_lane",
    "wrap",
]
