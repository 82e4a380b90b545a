"""Plain ASGI and WSGI middleware: a SERVER span per request, with its lane.

Both wrap the standard OpenTelemetry ASGI/WSGI middleware (they do not
rewrite it). The lane work itself is done by the global propagator, which
that middleware calls before it starts the SERVER span; so the lane (or the
dyed lane) is in the context the span starts in, and the span processor
stamps it at ``on_start``. If no lanewatch propagator is installed yet (the
service did not call :func:`lanewatch.instrument.configure`), the middleware
installs one built from the environment (``LANEWATCH_*``), composed with the
existing propagators.

Frameworks that already have an OpenTelemetry instrumentation (Flask, Django,
FastAPI...) need no lanewatch middleware: the same propagator does the work.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as OtelASGI
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as OtelWSGI
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from lanewatch.instrument.options import options_from_env
from lanewatch.instrument.propagator import LanePropagator, install, installed

_log = logging.getLogger(__name__)

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Any], Callable[..., Any]], Any]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def ensure_propagator(propagator: LanePropagator | None = None) -> LanePropagator:
    """Return the installed lanewatch propagator, installing ``propagator`` (or one from env) if none is."""
    current = installed()
    if propagator is not None and propagator is not current:
        install(propagator)
        return propagator
    if current is not None:
        return current
    opts = options_from_env(os.environ)
    created = LanePropagator(opts.lane_header, passthrough_headers=opts.passthrough_headers, dye_lane=opts.dye_lane)
    _log.info("no lanewatch propagator installed; installing one from the environment")
    install(created)
    return created


class LaneASGIMiddleware:
    """ASGI middleware: ``http`` and ``websocket`` scopes get a SERVER span with the lane.

    Other scope types (``lifespan``...) pass straight through to ``app``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        excluded_urls: str | None = None,
        propagator: LanePropagator | None = None,
    ) -> None:
        self.app = app
        self.propagator = ensure_propagator(propagator)
        self.traced = OtelASGI(app, excluded_urls=excluded_urls, tracer_provider=tracer_provider,
                               meter_provider=meter_provider)

    async def __call__(self, scope: Scope, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        await self.traced(scope, receive, send)


class LaneWSGIMiddleware:
    """WSGI middleware: every request gets a SERVER span with the lane."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        propagator: LanePropagator | None = None,
    ) -> None:
        self.app = app
        self.propagator = ensure_propagator(propagator)
        self.traced = OtelWSGI(app, tracer_provider=tracer_provider, meter_provider=meter_provider)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self.traced(environ, start_response)  # type: ignore[no-any-return]
