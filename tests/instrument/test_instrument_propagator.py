"""LanePropagator on plain header dicts, composed with the real W3C propagators."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context, get_value
from opentelemetry.propagate import get_global_textmap, set_global_textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from lanewatch import lane as L
from lanewatch.instrument.propagator import DYED_KEY, LanePropagator, compose, install, installed

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def stack(**kwargs: object) -> CompositePropagator:
    base = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    return compose(LanePropagator(**kwargs), base)  # type: ignore[arg-type]


def lane_of(ctx: Context) -> object:
    return baggage.get_baggage(L.REQUEST_LANE_ATTR, ctx)


def test_header_maps_to_baggage_and_back() -> None:
    prop = stack()
    ctx = prop.extract({"traceparent": TRACEPARENT, "x-mse-tag": "gray"})
    assert lane_of(ctx) == "gray"
    out: dict[str, str] = {}
    prop.inject(out, ctx)
    assert out["x-mse-tag"] == "gray"
    assert "lane=gray" in out["baggage"]
    assert out["traceparent"].split("-")[1] == TRACEPARENT.split("-")[1]
    assert get_value(DYED_KEY, ctx) is None


@pytest.mark.parametrize("alias", [a for a in L.LANE_HEADER_ALIASES if a != L.DEFAULT_LANE_HEADER])
def test_aliases_accepted_on_extract_default_header_on_inject(alias: str) -> None:
    prop = stack()
    ctx = prop.extract({alias: "gray"})
    assert lane_of(ctx) == "gray"
    out: dict[str, str] = {}
    prop.inject(out, ctx)
    assert out["x-mse-tag"] == "gray" and alias not in out


def test_configured_header_name() -> None:
    prop = stack(lane_header="x-env")
    assert lane_of(prop.extract({"x-env": "blue"})) == "blue"
    out: dict[str, str] = {}
    prop.inject(out, prop.extract({"x-mse-tag": "gray"}))
    assert out["x-env"] == "gray" and "x-mse-tag" not in out


def test_lane_header_beats_baggage_entry() -> None:
    ctx = stack().extract({"baggage": "lane=blue", "x-mse-tag": "gray"})
    assert lane_of(ctx) == "gray"
    assert lane_of(stack().extract({"baggage": "lane=blue"})) == "blue"


@pytest.mark.parametrize("bad", ["", "  ", "gray;drop table", "x" * 200, "-lead", "gr\u00e4y"])
def test_bad_values_are_logged_and_ignored(bad: str, caplog: pytest.LogCaptureFixture) -> None:
    lane = LanePropagator()
    prop = compose(lane, CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]))
    with caplog.at_level(logging.WARNING):
        ctx = prop.extract({"x-mse-tag": bad, "traceparent": TRACEPARENT})
    assert lane_of(ctx) is None
    if bad.strip():
        assert lane.rejected == 1 and "ignoring bad x-mse-tag" in caplog.text


def test_bad_value_then_good_alias() -> None:
    assert lane_of(stack().extract({"x-mse-tag": "b a d", "service-lane": "gray"})) == "gray"


def test_getter_that_raises_is_swallowed() -> None:
    class Boom:
        def get(self, carrier: object, key: str) -> list[str]:
            raise RuntimeError("boom")

        def keys(self, carrier: object) -> list[str]:
            return []

    ctx = LanePropagator(dye_lane="gray").extract({}, Context(), getter=Boom())  # type: ignore[arg-type]
    assert isinstance(ctx, Context)


def test_dyeing_stamps_untagged_requests_only() -> None:
    prop = stack(dye_lane="gray")
    dyed = prop.extract({"traceparent": TRACEPARENT})
    assert lane_of(dyed) == "gray" and get_value(DYED_KEY, dyed) is True
    tagged = prop.extract({"x-mse-tag": "blue"})
    assert lane_of(tagged) == "blue" and get_value(DYED_KEY, tagged) is None
    via_baggage = prop.extract({"baggage": "lane=blue"})
    assert lane_of(via_baggage) == "blue" and get_value(DYED_KEY, via_baggage) is None
    out: dict[str, str] = {}
    prop.inject(out, dyed)
    assert out["x-mse-tag"] == "gray"


def test_dyeing_off_for_base_lane() -> None:
    assert LanePropagator(dye_lane=L.BASE).dye_lane is None
    assert lane_of(stack(dye_lane="base").extract({})) is None


def test_passthrough_headers_round_trip() -> None:
    prop = stack(passthrough_headers=["x-user-id"])
    ctx = prop.extract({"x-user-id": "100", "x-other": "1"})
    assert baggage.get_baggage("x-user-id", ctx) == "100"
    assert baggage.get_baggage("x-other", ctx) is None
    out: dict[str, str] = {}
    prop.inject(out, ctx)
    assert out["x-user-id"] == "100" and "x-user-id=100" in out["baggage"]
    assert "x-mse-tag" not in out
    bad = prop.extract({"x-user-id": "a\nb"})
    assert baggage.get_baggage("x-user-id", bad) is None


def test_fields() -> None:
    assert LanePropagator(passthrough_headers=["x-user-id"]).fields == {"x-mse-tag", "x-user-id"}
    assert {"traceparent", "baggage", "x-mse-tag"} <= stack().fields


def test_install_composes_and_does_not_stack() -> None:
    before = get_global_textmap()
    try:
        first, second = LanePropagator(), LanePropagator(lane_header="x-env")
        install(first)
        install(second)
        glob = get_global_textmap()
        parts = glob._propagators  # type: ignore[attr-defined]
        assert [type(p).__name__ for p in parts] == [
            "TraceContextTextMapPropagator", "W3CBaggagePropagator", "LanePropagator"]
        assert installed() is second
    finally:
        set_global_textmap(before)


def test_extract_reads_any_carrier_shape() -> None:
    """Plain dicts are read directly; list values, other mappings and custom getters go through the getter."""
    from collections import UserDict

    from opentelemetry.propagators.textmap import Getter

    class UpperGetter(Getter[dict[str, str]]):
        def get(self, carrier: dict[str, str], key: str) -> list[str] | None:
            value = carrier.get(key.upper())
            return [value] if value is not None else None

        def keys(self, carrier: dict[str, str]) -> list[str]:
            return list(carrier)

    prop = LanePropagator()
    assert lane_of(prop.extract({"x-mse-tag": " gray "}, Context())) == "gray"
    assert lane_of(prop.extract({"x-mse-tag": ["gray", "blue"]}, Context())) == "gray"
    assert lane_of(prop.extract(UserDict({"x-mse-tag": "gray"}), Context())) == "gray"
    assert lane_of(prop.extract({"X-MSE-TAG": "gray"}, Context(), getter=UpperGetter())) == "gray"
    assert lane_of(prop.extract({"x-mse-tag": "", "service-lane": "blue"}, Context())) == "blue"
    assert lane_of(prop.extract({}, Context())) is None


def test_inject_without_baggage_or_context() -> None:
    prop = LanePropagator()
    out: dict[str, str] = {}
    prop.inject(out, Context())
    prop.inject(out)
    assert out == {}
    prop.inject(out, baggage.set_baggage(L.REQUEST_LANE_ATTR, "gray", Context()))
    assert out == {"x-mse-tag": "gray"}
