"""A tiny A -> B -> C mesh made of real OpenTelemetry SDK parts, exporting real OTLP.

Each (service, lane) instance has its own ``TracerProvider`` with the
resource attributes lanewatch reads (``service.name``, ``service.lane``,
``service.instance.id``), an OTLP/HTTP span exporter behind a
``SimpleSpanProcessor`` (every span is sent when it ends), and a lanewatch
:class:`~lanewatch.instrument.Heartbeat`. Calls are simulated in-process:
a CLIENT span on the caller and a SERVER span on the callee whose parent is
that CLIENT span, carrying the request lane as the ``lane`` attribute.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from lanewatch.instrument.heartbeat import Heartbeat, otlp_metric_exporter


@dataclass
class Instance:
    service: str
    lane: str
    provider: TracerProvider
    heartbeat: Heartbeat

    @property
    def tracer(self) -> trace.Tracer:
        return self.provider.get_tracer("lanewatch.tests.mesh")


@dataclass
class Mesh:
    """Instances by (service, lane); :meth:`call` sends one trace along a path."""

    endpoint: str
    instances: dict[tuple[str, str], Instance] = field(default_factory=dict)

    def add(self, service: str, lane: str) -> Instance:
        resource = Resource.create({"service.name": service, "service.lane": lane,
                                    "service.instance.id": f"{service}-{lane}-1"})
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=self.endpoint.rstrip("/") + "/v1/traces", timeout=5)))
        beat = Heartbeat(resource, otlp_metric_exporter(self.endpoint), interval_s=2.0)
        inst = Instance(service, lane, provider, beat)
        self.instances[(service, lane)] = inst
        return inst

    def beat(self) -> None:
        """Export one heartbeat from every instance now."""
        for inst in self.instances.values():
            inst.heartbeat.beat_now()

    def call(self, hops: Iterable[tuple[str, str]], request_lane: str) -> str:
        """One trace through ``hops`` = [(service, instance lane), ...]; returns the trace id (hex).

        Every hop receives ``request_lane`` (the tag travels on, as LANES.md says).
        """
        path = list(hops)
        attrs = {"lane": request_lane} if request_lane != "base" else {}
        parent_ctx = None
        opened = []
        trace_id = ""
        for i, (svc, lane) in enumerate(path):
            tracer = self.instances[(svc, lane)].tracer
            server = tracer.start_span(f"GET /{svc}", kind=SpanKind.SERVER, context=parent_ctx,
                                       attributes=attrs)
            trace_id = trace_id or format(server.get_span_context().trace_id, "032x")
            opened.append(server)
            if i + 1 < len(path):
                client = tracer.start_span(f"call {path[i + 1][0]}", kind=SpanKind.CLIENT,
                                           context=trace.set_span_in_context(server),
                                           attributes=attrs)
                opened.append(client)
                parent_ctx = trace.set_span_in_context(client)
        for span in reversed(opened):
            span.end()
        return trace_id

    def shutdown(self) -> None:
        for inst in self.instances.values():
            inst.heartbeat.stop(timeout_s=2)
            inst.provider.shutdown()
