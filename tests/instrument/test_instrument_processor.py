"""LaneSpanProcessor with a real TracerProvider, and the instrumentation options."""

from __future__ import annotations

import pytest
from instrument_helpers import StartProbe
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.context import Context, set_value
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from lanewatch import lane as L
from lanewatch.instrument import LaneSpanProcessor, use_lane
from lanewatch.instrument.options import InstrumentConfigError, options_from_env, resolve
from lanewatch.instrument.propagator import DYED_KEY


@pytest.fixture
def traced() -> tuple[TracerProvider, InMemorySpanExporter, StartProbe]:
    tp = TracerProvider(shutdown_on_exit=False)
    tp.add_span_processor(LaneSpanProcessor(["x-user-id"]))
    probe = StartProbe()
    tp.add_span_processor(probe)
    mem = InMemorySpanExporter()
    tp.add_span_processor(SimpleSpanProcessor(mem))
    return tp, mem, probe


def test_every_span_kind_gets_the_lane_at_start(traced: tuple[TracerProvider, InMemorySpanExporter, StartProbe]) -> None:
    tp, mem, probe = traced
    tracer = tp.get_tracer("t")
    with use_lane("gray", **{"x-user-id": "100"}):
        for kind in SpanKind:
            tracer.start_span(kind.name, kind=kind).end()
    assert len(mem.get_finished_spans()) == len(SpanKind)
    for name, _kind, attrs in probe.at_start:
        assert attrs[L.REQUEST_LANE_ATTR] == "gray", name
        assert attrs["x-user-id"] == "100"
        assert L.DYED_ATTR not in attrs


def test_no_lane_means_no_attribute(traced: tuple[TracerProvider, InMemorySpanExporter, StartProbe]) -> None:
    tp, mem, _ = traced
    tp.get_tracer("t").start_span("plain").end()
    with use_lane("base"):
        tp.get_tracer("t").start_span("base").end()
    for span in mem.get_finished_spans():
        assert L.REQUEST_LANE_ATTR not in (span.attributes or {})


def test_dyed_flag_on_hop_kinds_only(traced: tuple[TracerProvider, InMemorySpanExporter, StartProbe]) -> None:
    tp, _, probe = traced
    tracer = tp.get_tracer("t")
    ctx = set_value(DYED_KEY, True, baggage.set_baggage(L.REQUEST_LANE_ATTR, "gray", Context()))
    for kind in (SpanKind.SERVER, SpanKind.CONSUMER, SpanKind.CLIENT, SpanKind.INTERNAL):
        tracer.start_span(kind.name, context=ctx, kind=kind).end()
    dyed = {name: attrs.get(L.DYED_ATTR) for name, _, attrs in probe.at_start}
    assert dyed == {"SERVER": True, "CONSUMER": True, "CLIENT": None, "INTERNAL": None}


def test_invalid_baggage_lane_is_not_stamped(traced: tuple[TracerProvider, InMemorySpanExporter, StartProbe]) -> None:
    tp, mem, _ = traced
    token = otel_context.attach(baggage.set_baggage(L.REQUEST_LANE_ATTR, "not a lane!", Context()))
    try:
        tp.get_tracer("t").start_span("x").end()
    finally:
        otel_context.detach(token)
    assert L.REQUEST_LANE_ATTR not in (mem.get_finished_spans()[0].attributes or {})


def test_on_start_never_throws() -> None:
    class Broken:
        kind = SpanKind.SERVER

        def set_attribute(self, key: str, value: object) -> None:
            raise RuntimeError("boom")

    ctx = baggage.set_baggage(L.REQUEST_LANE_ATTR, "gray", Context())
    LaneSpanProcessor().on_start(Broken(), ctx)  # type: ignore[arg-type]
    LaneSpanProcessor().on_start(Broken(), object())  # type: ignore[arg-type]


def test_options_from_env() -> None:
    env = {"LANEWATCH_LANE": "gray", "LANEWATCH_DYEING": "true", "OTEL_SERVICE_NAME": "cart",
           "LANEWATCH_PASSTHROUGH_HEADERS": "X-User-Id, x-region ,x-user-id", "LANEWATCH_LANE_HEADER": "X-Env",
           "LANEWATCH_HEARTBEAT_INTERVAL_S": "0.5", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318"}
    opts = resolve(env)
    assert (opts.service_name, opts.lane, opts.dyeing, opts.dye_lane) == ("cart", "gray", True, "gray")
    assert opts.passthrough_headers == ("x-user-id", "x-region") and opts.lane_header == "x-env"
    assert opts.heartbeat_interval_s == 0.5 and opts.resolved_endpoint() == "http://h:4318"
    assert opts.instance_id  # generated
    assert resolve(env, lane="blue", dyeing=False).dye_lane is None


def test_options_from_resource_attributes() -> None:
    opts = options_from_env({"OTEL_RESOURCE_ATTRIBUTES": "service.name=b,service.lane=gray,service.instance.id=i-1"})
    assert (opts.service_name, opts.lane, opts.instance_id, opts.dyeing) == ("b", "gray", "i-1", False)
    assert resolve({}).lane == L.BASE and resolve({}).resolved_endpoint() == "http://localhost:4318"


@pytest.mark.parametrize(("env", "named"), [
    ({"LANEWATCH_LANE": "bad lane"}, "lane"),
    ({"LANEWATCH_DYEING": "maybe"}, "LANEWATCH_DYEING"),
    ({"LANEWATCH_HEARTBEAT_INTERVAL_S": "soon"}, "LANEWATCH_HEARTBEAT_INTERVAL_S"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "protocol"),
    ({"LANEWATCH_PASSTHROUGH_HEADERS": "x user"}, "header"),
    ({"LANEWATCH_PASSTHROUGH_HEADERS": "x-mse-tag"}, "passthrough_headers"),
])
def test_bad_settings_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(InstrumentConfigError, match=named):
        resolve(env)


def _lane_span(tp: TracerProvider, **attrs: object) -> object:
    with use_lane("gray"):
        span = tp.get_tracer("t").start_span("s", attributes=attrs)  # type: ignore[arg-type]
    span.end()
    return span


def test_direct_stamp_matches_set_attribute_under_span_limits() -> None:
    """The fast write is only taken where set_attribute would store the value unchanged."""
    from opentelemetry.sdk.trace import SpanLimits

    plain = TracerProvider(shutdown_on_exit=False)
    plain.add_span_processor(LaneSpanProcessor())
    span = _lane_span(plain, a=1)
    assert dict(span.attributes) == {"a": 1, L.REQUEST_LANE_ATTR: "gray"}  # type: ignore[attr-defined]
    # full attribute map: the SDK's eviction applies (oldest dropped, counted)
    full = TracerProvider(shutdown_on_exit=False, span_limits=SpanLimits(max_span_attributes=1))
    full.add_span_processor(LaneSpanProcessor())
    span = _lane_span(full, a=1)
    assert dict(span.attributes) == {L.REQUEST_LANE_ATTR: "gray"}  # type: ignore[attr-defined]
    assert span.dropped_attributes == 1  # type: ignore[attr-defined]
    # value length limit: the SDK's truncation applies
    short = TracerProvider(shutdown_on_exit=False, span_limits=SpanLimits(max_span_attribute_length=3))
    short.add_span_processor(LaneSpanProcessor())
    assert _lane_span(short).attributes[L.REQUEST_LANE_ATTR] == "gra"  # type: ignore[attr-defined]


def test_stamp_falls_back_to_set_attribute_on_unknown_spans() -> None:
    class Foreign:
        kind = SpanKind.SERVER

        def __init__(self) -> None:
            self.attrs: dict[str, object] = {}

        def set_attribute(self, key: str, value: object) -> None:
            self.attrs[key] = value

    span = Foreign()
    ctx = set_value(DYED_KEY, True, baggage.set_baggage(L.REQUEST_LANE_ATTR, "gray", Context()))
    LaneSpanProcessor().on_start(span, ctx)  # type: ignore[arg-type]
    assert span.attrs == {L.REQUEST_LANE_ATTR: "gray", L.DYED_ATTR: True}
