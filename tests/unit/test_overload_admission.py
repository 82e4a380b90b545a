"""Admission by wait time, the memory ceiling and the API pool, without a network."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from lanewatch.collect.admission import Admission
from lanewatch.collect.engine import Engine
from lanewatch.collect.ingest import Overloaded
from lanewatch.collect.memlimit import MIB, MemoryLimit, rss_bytes
from lanewatch.config import ConfigError, Settings
from lanewatch.testing import FakeClock, TraceBuilder
from lanewatch.web.pool import ApiPool


def test_a_request_that_finds_no_slot_within_the_wait_is_refused_retryably() -> None:
    adm = Admission(1, wait_s=0.05)
    with adm.slot():
        assert adm.state()["decodes_running"] == 1
        with pytest.raises(Overloaded) as e, adm.slot():
            pass
    assert e.value.reason == "busy" and e.value.retry_after_s == 1.0
    with adm.slot():  # the slot is free again
        pass
    assert adm.state() == {"decode_slots": 1, "decodes_running": 0, "decodes_waiting": 0,
                           "admission_wait_s": 0.05}


def test_zero_slots_means_one_per_core() -> None:
    assert Admission(0, 1.0).slots >= 1


def test_the_engine_counts_refusals_by_reason() -> None:
    eng = Engine(Settings(max_concurrent_decodes=1, admission_wait_s=0.0), FakeClock())
    tb = TraceBuilder()
    tb.hop("A")
    body = tb.body()
    with eng.admission.slot(), pytest.raises(Overloaded):
        eng.ingest("traces", body, "proto")
    assert eng.ingest("traces", body, "proto").accepted == 1
    assert eng.pending_counters()["requests_refused_busy"] == 1


def test_the_memory_ceiling_refuses_above_the_soft_limit_and_recovers() -> None:
    rss = [10 * MIB]
    clock = FakeClock(0.0)
    mem = MemoryLimit(100, read=lambda: rss[0], clock=clock)
    assert mem.soft_bytes == 80 * MIB  # spike 0 = 20% of the limit
    mem.check()
    rss[0] = 90 * MIB
    mem.check()  # the last sample stands until SAMPLE_S passed
    clock.advance(1.0)
    with pytest.raises(Overloaded) as e:
        mem.check()
    assert "memory_limit_mib 100" in str(e.value) and e.value.retry_after_s == 2.0
    assert mem.state() == {"limit_mib": 100, "soft_limit_mib": 80, "rss_mib": 90, "refusing": True}
    rss[0] = 50 * MIB
    clock.advance(1.0)
    mem.check()
    assert mem.state()["refusing"] is False


def test_memory_freed_after_a_flood_is_reclaimed_instead_of_refusing_forever() -> None:
    """The trial's finding: after a flood, the heap held freed memory and every export was
    refused for minutes. Over the soft limit, memory is reclaimed (at most every RECLAIM_S)
    and the resident set read again before refusing."""
    rss = [90 * MIB]
    freed: list[float] = []
    clock = FakeClock(0.0)

    def free() -> None:  # what gc + malloc_trim do once the flood's objects are garbage
        freed.append(clock())
        rss[0] = 40 * MIB

    mem = MemoryLimit(100, read=lambda: rss[0], clock=clock, free=free)
    mem.check()  # 90 MiB read, reclaimed to 40: accepted
    assert freed == [0.0] and mem.state()["refusing"] is False
    rss[0] = 95 * MIB  # memory really held: reclaiming does not help, so refuse
    freed.clear()
    clock.advance(0.5)
    with pytest.raises(Overloaded):
        mem.check()  # not reclaimed again yet (RECLAIM_S), refused
    assert freed == []


def test_reclaim_runs_for_real() -> None:
    from lanewatch.collect.memlimit import reclaim

    reclaim()  # gc.collect and malloc_trim: must not raise here (glibc) nor elsewhere


def test_the_engine_counts_memory_refusals() -> None:
    eng = Engine(Settings(memory_limit_mib=1), FakeClock())  # this process is far above 1 MiB
    with pytest.raises(Overloaded):
        eng.ingest("traces", b"", "proto")
    assert eng.pending_counters() == {"requests_refused_memory_limit": 1}
    assert eng.overload_state()["memory"]["refusing"] is True


def test_rss_is_read_from_proc() -> None:
    assert rss_bytes() > 10 * MIB


@pytest.mark.parametrize(("limit", "spike"), [(100, 100), (100, 200)])
def test_a_spike_not_below_the_limit_is_named(limit: int, spike: int) -> None:
    with pytest.raises(ConfigError, match="memory_spike_mib"):
        Settings(memory_limit_mib=limit, memory_spike_mib=spike).validate()


def _call(pool: ApiPool, path: str = "/api/v1/summary") -> tuple[str, dict[str, str], bytes]:
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(pool({"PATH_INFO": path}, start_response))
    return got["status"], got["headers"], body


def test_the_api_pool_refuses_beyond_its_backlog_and_after_its_wait() -> None:
    release, entered = threading.Event(), threading.Event()
    counted: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ.get("block"):
            entered.set()
            release.wait(10)
        start_response("200 OK", [])
        return [b"ok"]

    pool = ApiPool(app, workers=1, backlog=0, wait_s=0.05, count=counted.append)
    t = threading.Thread(target=lambda: pool({"PATH_INFO": "/x", "block": 1}, lambda *a: None))
    t.start()
    entered.wait(10)
    status, headers, body = _call(pool)
    assert status.startswith("503") and headers["Retry-After"] == "1" and b"api_backlog" in body
    assert headers["X-Frame-Options"] == "DENY"  # a refusal is an answer like any other
    assert _call(pool, "/api/v1/health/live")[0] == "200 OK"  # liveness bypasses the pool
    pool.backlog = 5
    status, _, body = _call(pool)
    assert status.startswith("503") and b"api_wait_s" in body
    release.set()
    t.join(10)
    assert _call(pool)[0] == "200 OK"
    assert counted == ["api_requests_refused_backlog", "api_requests_refused_wait"]
