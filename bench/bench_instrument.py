"""Cost of lanewatch's span processor and propagator over the plain OpenTelemetry SDK.

Several workloads, each timed with and without lanewatch in many short,
interleaved rounds. Each round is timed in CPU time of the benchmarking thread
(``time.thread_time_ns``), so time spent descheduled on a busy machine does not
count, and the median round is reported:

* ``bare span``: start and end one INTERNAL span, no attributes, in a context
  that carries a lane (the worst case: the lane is the span's only attribute);
* ``HTTP server span``: the same with the ten attributes the OpenTelemetry
  WSGI middleware sets;
* ``request hop``: what one service does per request: extract the incoming
  headers (``traceparent``, ``baggage``, ``x-mse-tag``), start a SERVER span,
  start a CLIENT child, inject the outgoing headers, end both; ``base``: the
  same for a request without a lane;
* ``WSGI request``: a request through the real OpenTelemetry WSGI middleware
  whose app makes one (simulated, no network) outgoing call.

Every setup has a resource and a ``BatchSpanProcessor`` with an exporter that
drops everything, as a real service would. The contrib ``BaggageSpanProcessor``
copying ``lane`` (the standard way, without the lane header) is measured as a
reference. The target is an overhead of at most 10 % (ratio <= 1.10).

    python bench/bench_instrument.py [--rounds 80] [--n 500]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from wsgiref.util import setup_testing_defaults

from opentelemetry import baggage, context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.processor.baggage import BaggageSpanProcessor
from opentelemetry.propagate import set_global_textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from lanewatch.instrument import LanePropagator, LaneSpanProcessor

_log = logging.getLogger("bench_instrument")

#: What the OpenTelemetry WSGI middleware and requests instrumentation put on their spans.
SERVER_ATTRS: dict[str, AttributeValue] = {"http.method": "GET", "http.server_name": "localhost", "http.scheme": "http",
                "net.host.name": "127.0.0.1:8000", "http.host": "127.0.0.1:8000", "net.host.port": 8000,
                "http.url": "http://127.0.0.1:8000/order", "net.peer.ip": "127.0.0.1",
                "http.user_agent": "python-requests/2.32", "http.flavor": "1.1"}
CLIENT_ATTRS: dict[str, AttributeValue] = {"http.method": "GET", "http.url": "http://127.0.0.1:8001/stock",
                "user_agent.original": "python-requests/2.32"}
INCOMING = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "baggage": "lane=gray", "x-mse-tag": "gray"}


class DropExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@dataclass
class Setup:
    name: str
    tracer: Tracer
    propagator: TextMapPropagator
    provider: TracerProvider


def make_setup(name: str) -> Setup:
    """``plain`` SDK, ``lanewatch`` (its processor and propagator) or ``stock-baggage``
    (the contrib BaggageSpanProcessor copying ``lane``: the standard way, for reference)."""
    resource = Resource.create({"service.name": "bench", "service.lane": "gray", "service.instance.id": "b-1"})
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    parts: list[TextMapPropagator] = [TraceContextTextMapPropagator(), W3CBaggagePropagator()]
    if name == "lanewatch":
        provider.add_span_processor(LaneSpanProcessor())
        parts.append(LanePropagator())
    elif name == "stock-baggage":
        provider.add_span_processor(BaggageSpanProcessor(lambda key: key == "lane"))
    provider.add_span_processor(BatchSpanProcessor(DropExporter(), max_queue_size=1 << 16))
    return Setup(name, provider.get_tracer("bench"), CompositePropagator(parts), provider)


def span_workload(setup: Setup, n: int) -> float:
    tracer = setup.tracer
    token = context.attach(baggage.set_baggage("lane", "gray"))
    try:
        t0 = time.thread_time_ns()
        for _ in range(n):
            tracer.start_span("work").end()
        return (time.thread_time_ns() - t0) / n
    finally:
        context.detach(token)


def http_span_workload(setup: Setup, n: int) -> float:
    """One SERVER span with the attributes the OpenTelemetry WSGI middleware sets."""
    tracer = setup.tracer
    token = context.attach(baggage.set_baggage("lane", "gray"))
    try:
        t0 = time.thread_time_ns()
        for _ in range(n):
            span = tracer.start_span("GET /order", kind=SpanKind.SERVER, attributes=SERVER_ATTRS)
            span.set_attribute("http.status_code", 200)
            span.end()
        return (time.thread_time_ns() - t0) / n
    finally:
        context.detach(token)


def hop_workload(setup: Setup, n: int, incoming: dict[str, str] = INCOMING) -> float:
    """Extract, SERVER span, CLIENT child, inject, end both: the spans and headers of one request."""
    tracer, prop = setup.tracer, setup.propagator
    t0 = time.thread_time_ns()
    for _ in range(n):
        ctx = prop.extract(incoming)
        server = tracer.start_span("GET /order", context=ctx, kind=SpanKind.SERVER, attributes=SERVER_ATTRS)
        token = context.attach(set_span_in_context(server, ctx))
        client = tracer.start_span("GET", kind=SpanKind.CLIENT, attributes=CLIENT_ATTRS)
        out: dict[str, str] = {}
        prop.inject(out, set_span_in_context(client))
        client.set_attribute("http.status_code", 200)
        client.end()
        context.detach(token)
        server.set_attribute("http.status_code", 200)
        server.end()
    return (time.thread_time_ns() - t0) / n


def base_hop_workload(setup: Setup, n: int) -> float:
    """The same hop for base traffic (no lane): most requests during a gray release."""
    return hop_workload(setup, n, {"traceparent": INCOMING["traceparent"]})


def wsgi_workload(setup: Setup, n: int) -> float:
    """A request through the real OpenTelemetry WSGI middleware whose app makes one (simulated) call.

    The outgoing call is what the requests instrumentation does, without the
    network: a CLIENT span and an inject into the request headers.
    """
    tracer, prop = setup.tracer, setup.propagator

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes=CLIENT_ATTRS) as client:
            out: dict[str, str] = {}
            prop.inject(out)
            client.set_attribute("http.status_code", 200)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = OpenTelemetryMiddleware(app, tracer_provider=setup.provider)
    environ: dict[str, Any] = {"PATH_INFO": "/order", "HTTP_TRACEPARENT": INCOMING["traceparent"],
                               "HTTP_BAGGAGE": INCOMING["baggage"], "HTTP_X_MSE_TAG": INCOMING["x-mse-tag"],
                               "HTTP_USER_AGENT": "python-requests/2.32"}
    setup_testing_defaults(environ)
    set_global_textmap(prop)  # the middleware extracts with the global propagator

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
        return lambda data: None

    t0 = time.thread_time_ns()
    for _ in range(n):
        body = middleware(dict(environ), start_response)
        for _chunk in body:
            pass
        body.close()
    return (time.thread_time_ns() - t0) / n


def measure(workload: Callable[[Setup, int], float], setups: list[Setup], rounds: int, n: int) -> dict[str, float]:
    """Median ns/op per setup over ``rounds`` interleaved rounds (after a warm-up)."""
    for s in setups:
        workload(s, n * 4)
    samples: dict[str, list[float]] = {s.name: [] for s in setups}
    for r in range(rounds):
        for s in setups if r % 2 == 0 else reversed(setups):
            samples[s.name].append(workload(s, n))
            s.provider.force_flush()
    return {name: statistics.median(v) for name, v in samples.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=80)
    parser.add_argument("--n", type=int, default=500, help="operations per round")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    setups = [make_setup("plain"), make_setup("lanewatch"), make_setup("stock-baggage")]
    _log.info("%-22s %10s %10s %8s %14s %8s", "workload (us per op)", "plain", "lanewatch", "ratio",
              "stock-baggage", "ratio")
    ratios = {}
    for label, workload in (("bare span start/end", span_workload), ("HTTP server span", http_span_workload),
                            ("request hop", hop_workload), ("request hop, base", base_hop_workload),
                            ("WSGI request", wsgi_workload)):
        res = measure(workload, setups, args.rounds, args.n)
        ratios[label] = res["lanewatch"] / res["plain"]
        _log.info("%-22s %10.2f %10.2f %8.3f %14.2f %8.3f", label, res["plain"] / 1000, res["lanewatch"] / 1000,
                  ratios[label], res["stock-baggage"] / 1000, res["stock-baggage"] / res["plain"])
    for label, ratio in ratios.items():
        _log.info("%-22s overhead %+5.1f %% (target <= 10 %%): %s", label, (ratio - 1) * 100,
                  "OK" if ratio <= 1.10 else "OVER")
    for s in setups:
        s.provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
