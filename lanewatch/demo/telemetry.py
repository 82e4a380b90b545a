"""A demo instance's view of :mod:`lanewatch.instrument`, or of plain headers without a collector.

With an OTLP endpoint the instance is instrumented for real: the propagator
reads and writes the lane header and baggage, dyeing happens in the
propagator, and outgoing ``requests`` calls carry lane and pass-through
headers by themselves. Without one (``lanewatch demo --no-collector``) the same
decisions are made from the headers directly, so the mesh still routes by lane.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from lanewatch import lane as L

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Telemetry:
    """Lane context for one instance process."""

    def __init__(self, service: str, lane: str, endpoint: str | None, *, dyeing: bool = False,
                 passthrough: Iterable[str] = (), instance_id: str | None = None,
                 heartbeat_interval_s: float = 1.0, export_delay_ms: int = 200) -> None:
        self.service = service
        self.lane = lane
        self.dyeing = dyeing
        self.passthrough = tuple(h.lower() for h in passthrough)
        self.handle: Any = None
        if endpoint:
            from lanewatch.instrument import configure

            self.handle = configure(
                service_name=service, lane=lane, endpoint=endpoint, dyeing=dyeing,
                passthrough_headers=self.passthrough, heartbeat_interval_s=heartbeat_interval_s,
                export_delay_ms=export_delay_ms, instance_id=instance_id, handle_sigterm=False)

    @property
    def enabled(self) -> bool:
        return self.handle is not None

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """The app behind lanewatch's WSGI middleware (a SERVER span per request) when enabled."""
        if not self.enabled:
            return app
        from lanewatch.instrument import LaneWSGIMiddleware

        return LaneWSGIMiddleware(app, tracer_provider=self.handle.tracer_provider)

    def request_lane(self, headers: Mapping[str, str]) -> str:
        """The request lane at this hop, after dyeing."""
        if self.enabled:
            from lanewatch.instrument import current_lane

            return current_lane()
        for name in L.LANE_HEADER_ALIASES:
            value = L.normalize_lane(headers.get(name))
            if value not in (L.BASE, L.INVALID_LANE):
                return value
        return self.lane if self.dyeing else L.BASE

    def attributes(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The pass-through attributes of this request (what per-service rules match on)."""
        out: dict[str, str] = {}
        if self.enabled:
            from opentelemetry import baggage

            for name in self.passthrough:
                value = baggage.get_baggage(name)
                if isinstance(value, str):
                    out[name] = value
            return out
        return {name: headers[name] for name in self.passthrough if name in headers}

    def outgoing_headers(self, headers: Mapping[str, str], lane: str) -> dict[str, str]:
        """Headers to add to a downstream call by hand (none when instrumented: the propagator does it)."""
        if self.enabled:
            return {}
        out = {name: headers[name] for name in self.passthrough if name in headers}
        if lane != L.BASE:
            out[L.DEFAULT_LANE_HEADER] = lane
        return out

    @contextlib.contextmanager
    def calling(self, drop_lane: bool) -> Iterator[None]:
        """Context for a downstream call; ``drop_lane`` loses the lane but keeps the trace."""
        if self.enabled and drop_lane:
            from lanewatch.instrument import use_lane

            with use_lane(L.BASE):
                yield
        else:
            yield

    def trace_id(self) -> str:
        """The current trace id (32 hex digits), or "" when not traced."""
        if not self.enabled:
            return ""
        from opentelemetry import trace

        ctx = trace.get_current_span().get_span_context()
        return f"{ctx.trace_id:032x}" if ctx.is_valid else ""

    def leaving(self) -> None:
        """Say goodbye to the collector now (heartbeat 0), while spans still export."""
        if self.enabled and self.handle.heartbeat is not None:
            self.handle.heartbeat.stop(timeout_s=3.0)

    def shutdown(self) -> None:
        """Flush spans and stop exporting (sends the goodbye too if :meth:`leaving` was skipped)."""
        if self.enabled:
            self.handle.shutdown(timeout_s=3.0)
