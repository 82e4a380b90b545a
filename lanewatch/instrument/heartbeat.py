"""Instance heartbeats: the OTLP gauge ``lanewatch.instance.up``.

Every instrumented process reports itself live every few seconds, so a gray
instance that receives no traffic at all is still known to exist (spans alone
cannot tell). The gauge's resource carries ``service.name``,
``service.instance.id`` and ``service.lane``; the value is 1 while serving and
0 exactly once on a graceful stop, which the collector reads as "leaving on
purpose": from then on that instance no longer counts as live, so traffic
that falls back to base is not mistaken for a leak.

Built on the OpenTelemetry metrics SDK with its own ``MeterProvider`` (not the
global one), so the heartbeat period does not depend on how, or whether, the
application exports its own metrics.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from lanewatch import lane as L

_log = logging.getLogger(__name__)


def otlp_metric_exporter(endpoint: str, protocol: str = "http/protobuf", timeout_s: float = 5.0) -> MetricExporter:
    """An OTLP metric exporter to ``endpoint`` (base URL, e.g. ``http://host:4318``).

    ``http/protobuf`` posts to ``{endpoint}/v1/metrics``; ``grpc`` dials the
    host and port (plaintext for ``http://``).
    """
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=endpoint, insecure=not endpoint.startswith("https://"), timeout=timeout_s)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(endpoint=endpoint.rstrip("/") + "/v1/metrics", timeout=timeout_s)


class Heartbeat:
    """Report ``lanewatch.instance.up`` = 1 every ``interval_s``; 0 once on :meth:`stop`.

    The first beat goes out one interval after start. ``stop`` is idempotent
    and thread-safe; it blocks until the final beat is exported (or
    ``timeout_s`` passes).
    """

    def __init__(self, resource: Resource, exporter: MetricExporter, interval_s: float = 2.0) -> None:
        if interval_s <= 0:
            raise ValueError(f"heartbeat interval_s={interval_s}: must be > 0")
        self.resource = resource
        self._value = 1
        self._lock = threading.Lock()
        self._stopped = False
        self._reader = PeriodicExportingMetricReader(exporter, export_interval_millis=interval_s * 1000)
        self._provider = MeterProvider(resource=resource, metric_readers=[self._reader], shutdown_on_exit=False)
        meter = self._provider.get_meter("lanewatch.instrument.heartbeat")
        meter.create_observable_gauge(
            L.HEARTBEAT_METRIC, callbacks=[self._observe], unit="1",
            description="1 while this instance serves, 0 once when it leaves on purpose")

    @property
    def value(self) -> int:
        """The value reported at the next beat: 1 serving, 0 leaving."""
        return self._value

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self._value)]

    def beat_now(self, timeout_s: float = 5.0) -> bool:
        """Export one beat right away (blocking); False if stopped or it failed."""
        if self._stopped:
            return False
        try:
            return self._provider.force_flush(timeout_millis=timeout_s * 1000)
        except Exception:  # noqa: BLE001 - telemetry must not break the app
            _log.debug("heartbeat flush failed", exc_info=True)
            return False

    def stop(self, timeout_s: float = 5.0) -> None:
        """Send the leaving beat (value 0) once and stop the reader thread."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._value = 0
        try:
            self._provider.shutdown(timeout_millis=timeout_s * 1000)
        except Exception:  # noqa: BLE001 - telemetry must not break the app
            _log.warning("heartbeat shutdown failed", exc_info=True)
