"""Fixtures for the instrumentation tests: a recording OTLP receiver, a header sink, a configured service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from instrument_helpers import Configured, Sink
from opentelemetry.propagate import get_global_textmap, set_global_textmap

from lanewatch.instrument import Lanewatch, configure
from lanewatch.instrument.testing import OTLPRecorder


@pytest.fixture
def recorder() -> Iterator[OTLPRecorder]:
    with OTLPRecorder() as rec:
        yield rec


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.stop()


@pytest.fixture
def lanewatch(recorder: OTLPRecorder) -> Iterator[Callable[..., Configured]]:
    """``lanewatch(lane="gray", dyeing=True, ...)`` -> a configured process exporting to ``recorder``.

    The tracer provider is not made global (each test gets a fresh one); the
    propagator is, and is restored afterwards.
    """
    before = get_global_textmap()
    made: list[Lanewatch] = []

    def make(**kwargs: Any) -> Configured:
        args: dict[str, Any] = {"service_name": "svc", "endpoint": recorder.url, "heartbeat_interval_s": 0,
                                "export_delay_ms": 50, "handle_sigterm": False,
                                "set_global_tracer_provider": False, "environ": {}}
        args.update(kwargs)
        handle = configure(**args)
        made.append(handle)
        return Configured(handle)

    yield make
    for handle in made:
        handle.shutdown()
    set_global_textmap(before)
