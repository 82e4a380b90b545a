"""Zero-code setup through ``opentelemetry-instrument``: the distro and configurator.

``pyproject.toml`` registers both under the name ``lanewatch``::

    LANEWATCH_LANE=gray LANEWATCH_DYEING=true OTEL_SERVICE_NAME=cart \\
    OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 \\
    OTEL_PYTHON_DISTRO=lanewatch OTEL_PYTHON_CONFIGURATOR=lanewatch \\
    opentelemetry-instrument python app.py

(``OTEL_PYTHON_DISTRO`` / ``OTEL_PYTHON_CONFIGURATOR`` pick lanewatch when
``opentelemetry-distro`` is installed too; otherwise whichever entry point is
found first wins.) The distro only sets environment defaults; the configurator
builds the providers with the standard SDK machinery and adds lanewatch's
parts: resource attributes, span processor, propagator, heartbeat, graceful
stop. The HTTP client instrumentations are then loaded by
``opentelemetry-instrument`` itself, with the provider built here.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _initialize_components, _OTelSDKConfigurator
from opentelemetry.sdk.trace import TracerProvider

from lanewatch import lane as L
from lanewatch.instrument.options import resolve
from lanewatch.instrument.processor import LaneSpanProcessor
from lanewatch.instrument.propagator import LanePropagator, install
from lanewatch.instrument.setup import Lanewatch, start_heartbeat

_log = logging.getLogger(__name__)

#: Environment defaults set by the distro (an explicit value always wins).
DISTRO_DEFAULTS = {
    "OTEL_TRACES_EXPORTER": "otlp",
    # The heartbeat has its own reader; application metrics and logs are opt-in.
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
}


class LanewatchDistro(BaseDistro):  # type: ignore[misc]
    """Sets environment defaults for lanewatch (see :data:`DISTRO_DEFAULTS`)."""

    def _configure(self, **kwargs: Any) -> None:
        for key, value in DISTRO_DEFAULTS.items():
            os.environ.setdefault(key, value)
        os.environ.setdefault("OTEL_BSP_SCHEDULE_DELAY", os.environ.get("LANEWATCH_EXPORT_DELAY_MS", "1000"))


class LanewatchConfigurator(_OTelSDKConfigurator):
    """Builds the SDK from the environment plus lanewatch's lane parts.

    The handle is kept on :attr:`handle` (one per process).
    """

    handle: Lanewatch | None = None

    def _configure(self, **kwargs: Any) -> None:
        opts = resolve(os.environ)
        attrs = {L.SERVICE_NAME_ATTR: opts.service_name, L.INSTANCE_LANE_ATTR: opts.lane,
                 L.INSTANCE_ID_ATTR: opts.instance_id}
        processors = [LaneSpanProcessor(opts.passthrough_headers), *(kwargs.pop("span_processors", None) or ())]
        _initialize_components(resource_attributes=attrs, span_processors=processors, **kwargs)
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            _log.warning("lanewatch: no SDK tracer provider was set up; lanes are not stamped")
            return
        propagator = LanePropagator(opts.lane_header, passthrough_headers=opts.passthrough_headers,
                                    dye_lane=opts.dye_lane)
        install(propagator)
        heartbeat = start_heartbeat(opts, provider.resource)
        LanewatchConfigurator.handle = Lanewatch(opts, provider.resource, provider, propagator, None, heartbeat)
        _log.info("lanewatch (zero-code): service=%s lane=%s instance=%s dyeing=%s",
                  opts.service_name, opts.lane, opts.instance_id, opts.dyeing)
