"""One-call setup: :func:`configure` builds everything a service needs for lanes.

* a resource with ``service.name``, ``service.lane`` (instance lane) and
  ``service.instance.id`` (generated when unset);
* a ``TracerProvider`` with the :class:`LaneSpanProcessor` and an OTLP span
  exporter (``http/protobuf`` or ``grpc``) behind a batch processor;
* the :class:`LanePropagator`, composed after the existing global propagators
  (``tracecontext,baggage`` by default), with dyeing and pass-through headers;
* the OpenTelemetry requests, httpx and urllib3 instrumentations (configured,
  not rewritten), so outgoing calls carry the lane;
* the instance :class:`Heartbeat`, and a graceful stop (atexit, and SIGTERM
  when the application has no handler of its own) that sends the leaving beat.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections.abc import Iterable, Mapping
from types import FrameType
from typing import Any

from opentelemetry import trace
from opentelemetry.propagate import set_global_textmap
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from lanewatch import lane as L
from lanewatch.instrument.clients import instrument_clients
from lanewatch.instrument.heartbeat import Heartbeat, otlp_metric_exporter
from lanewatch.instrument.options import Options, resolve, resource_attributes_from_env
from lanewatch.instrument.processor import LaneSpanProcessor
from lanewatch.instrument.propagator import LanePropagator, install

_log = logging.getLogger(__name__)
#: Handles not yet shut down, to warn about a second setup in one process.
_ACTIVE: list[Lanewatch] = []


def build_resource(opts: Options, environ: Mapping[str, str]) -> Resource:
    """SDK defaults + ``OTEL_RESOURCE_ATTRIBUTES`` + the lane attributes (which win)."""
    attrs: dict[str, Any] = dict(resource_attributes_from_env(environ))
    attrs.update({L.SERVICE_NAME_ATTR: opts.service_name, L.INSTANCE_LANE_ATTR: opts.lane,
                  L.INSTANCE_ID_ATTR: opts.instance_id})
    return Resource.create(attrs)


def otlp_span_exporter(opts: Options, timeout_s: float = 10.0) -> SpanExporter:
    """The OTLP span exporter for ``opts`` (env-configured when no endpoint is set)."""
    if opts.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        if not opts.endpoint:
            return GrpcExporter()
        return GrpcExporter(endpoint=opts.endpoint, insecure=not opts.endpoint.startswith("https://"),
                            timeout=timeout_s)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if not opts.endpoint:
        return OTLPSpanExporter()
    return OTLPSpanExporter(endpoint=opts.resolved_endpoint() + "/v1/traces", timeout=timeout_s)


def start_heartbeat(opts: Options, resource: Resource) -> Heartbeat | None:
    """A running heartbeat for ``opts``, or None when ``heartbeat_interval_s`` is 0."""
    if opts.heartbeat_interval_s <= 0:
        return None
    exporter = otlp_metric_exporter(opts.resolved_endpoint(), opts.protocol)
    return Heartbeat(resource, exporter, interval_s=opts.heartbeat_interval_s)


class Lanewatch:
    """What :func:`configure` set up; :meth:`shutdown` undoes it (idempotent)."""

    def __init__(self, options: Options, resource: Resource, tracer_provider: TracerProvider,
                 propagator: LanePropagator, previous_propagator: TextMapPropagator | None,
                 heartbeat: Heartbeat | None, instrumented: Iterable[Any] = ()) -> None:
        self.options = options
        self.resource = resource
        self.tracer_provider = tracer_provider
        self.propagator = propagator
        self.heartbeat = heartbeat
        self._previous_propagator = previous_propagator
        self._instrumented = list(instrumented)
        self._lock = threading.Lock()
        self._done = False
        if _ACTIVE:
            _log.warning("lanewatch is already set up in this process (service %s); a second setup adds "
                         "a second tracer provider and heartbeat", _ACTIVE[0].options.service_name)
        _ACTIVE.append(self)
        atexit.register(self.shutdown)
        if options.handle_sigterm:
            _install_sigterm(self)

    def tracer(self, name: str = "lanewatch.app") -> trace.Tracer:
        """A tracer from this handle's provider."""
        return self.tracer_provider.get_tracer(name)

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        """Export buffered spans now."""
        return self.tracer_provider.force_flush(int(timeout_s * 1000))

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Send the leaving heartbeat, flush and stop exporting, undo the instrumentation."""
        with self._lock:
            if self._done:
                return
            self._done = True
        atexit.unregister(self.shutdown)
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self.heartbeat is not None:
            self.heartbeat.stop(timeout_s)
        try:
            self.tracer_provider.shutdown()
        except Exception:  # noqa: BLE001 - shutdown goes on
            _log.warning("tracer provider shutdown failed", exc_info=True)
        for instrumentor in self._instrumented:
            try:
                instrumentor.uninstrument()
            except Exception:  # noqa: BLE001 - shutdown goes on
                _log.debug("uninstrument failed", exc_info=True)
        if self._previous_propagator is not None:
            set_global_textmap(self._previous_propagator)


def _install_sigterm(handle: Lanewatch) -> None:
    """On SIGTERM, send the leaving beat, then die of SIGTERM as before.

    Only when the application has no SIGTERM handler of its own and only from
    the main thread. The work runs in a helper thread, not inside the signal
    handler, so a lock held by the interrupted code cannot deadlock it.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def stop_then_exit() -> None:
        try:
            handle.shutdown(timeout_s=3.0)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        threading.Thread(target=stop_then_exit, name="lanewatch-sigterm", daemon=False).start()

    signal.signal(signal.SIGTERM, on_sigterm)


def configure(
    service_name: str | None = None,
    lane: str | None = None,
    endpoint: str | None = None,
    *,
    dyeing: bool | None = None,
    passthrough_headers: Iterable[str] | str | None = None,
    lane_header: str | None = None,
    protocol: str | None = None,
    heartbeat_interval_s: float | None = None,
    export_delay_ms: int | None = None,
    instance_id: str | None = None,
    handle_sigterm: bool | None = None,
    instrument_http_clients: bool = True,
    set_global_tracer_provider: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Lanewatch:
    """Set up lanes for this process and return a handle with ``shutdown()``.

    Every argument left as None comes from the environment, else its default
    (see :mod:`lanewatch.instrument.options`): ``lane`` from ``LANEWATCH_LANE``,
    ``dyeing`` from ``LANEWATCH_DYEING`` (default off), ``endpoint`` from
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (base URL, e.g. ``http://127.0.0.1:4318``)...
    Raises :class:`~lanewatch.instrument.options.InstrumentConfigError` naming
    a bad setting. With ``set_global_tracer_provider=False`` the provider is
    only on the handle (instrumentations are still given it).
    """
    env = os.environ if environ is None else environ
    opts = resolve(env, service_name=service_name, lane=lane, endpoint=endpoint, dyeing=dyeing,
                   passthrough_headers=passthrough_headers, lane_header=lane_header, protocol=protocol,
                   heartbeat_interval_s=heartbeat_interval_s, export_delay_ms=export_delay_ms,
                   instance_id=instance_id, handle_sigterm=handle_sigterm)
    if opts.dyeing and opts.lane == L.BASE:
        _log.warning("dyeing is on but the instance lane is base: nothing to dye")
    resource = build_resource(opts, env)
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(LaneSpanProcessor(opts.passthrough_headers))
    provider.add_span_processor(BatchSpanProcessor(otlp_span_exporter(opts),
                                                   schedule_delay_millis=opts.export_delay_ms))
    if set_global_tracer_provider:
        trace.set_tracer_provider(provider)
    propagator = LanePropagator(opts.lane_header, passthrough_headers=opts.passthrough_headers,
                                dye_lane=opts.dye_lane)
    previous = install(propagator)
    instrumented = instrument_clients(provider) if instrument_http_clients else []
    heartbeat = start_heartbeat(opts, resource)
    _log.info("lanewatch: service=%s lane=%s instance=%s dyeing=%s", opts.service_name, opts.lane,
              opts.instance_id, opts.dyeing)
    return Lanewatch(opts, resource, provider, propagator, previous, heartbeat, instrumented)
