"""Outgoing HTTP calls: the OpenTelemetry requests, httpx and urllib3 instrumentations.

They inject through the global propagator, so once the lanewatch propagator is
installed every outgoing call carries ``traceparent``, ``baggage`` (with
``lane``), the lane header and the pass-through headers, and its CLIENT span is
stamped by the span processor. Nothing here rewrites them.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from opentelemetry.trace import TracerProvider

_log = logging.getLogger(__name__)

#: (module, instrumentor class) for each HTTP client lanewatch configures.
CLIENT_INSTRUMENTORS = (
    ("opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
    ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
    ("opentelemetry.instrumentation.urllib3", "URLLib3Instrumentor"),
)


def instrument_clients(tracer_provider: TracerProvider | None = None) -> list[Any]:
    """Instrument every available client not yet instrumented; return the ones done now.

    A client library or instrumentation that is missing is skipped (logged at
    debug level); one already instrumented by someone else is left alone.
    """
    done: list[Any] = []
    for module_name, class_name in CLIENT_INSTRUMENTORS:
        try:
            instrumentor = getattr(importlib.import_module(module_name), class_name)()
            if instrumentor.is_instrumented_by_opentelemetry:
                continue
            instrumentor.instrument(tracer_provider=tracer_provider)
            done.append(instrumentor)
        except Exception:  # noqa: BLE001 - a missing or broken client must not stop setup
            _log.debug("cannot instrument %s", class_name, exc_info=True)
    return done
