"""Per-instance and per-value state stays bounded: the instance registry's caps, cut ids,
and the name cache keeping only short values (issue 11, finding 4)."""

from __future__ import annotations

from collections import Counter

from lanewatch import lane as L
from lanewatch.collect.liveness import OVERFLOW_INSTANCE, Liveness, cut_id
from lanewatch.collect.names import CACHED_MAX_LEN, Names
from lanewatch.testing import FakeClock


def test_instances_beyond_the_lane_cap_fold_into_other_and_keep_the_lane_live() -> None:
    clock, counters = FakeClock(), Counter[str]()
    lv = Liveness(10, clock=clock, max_per_lane=2, max_total=100, counters=counters)
    for i in range(5):
        lv.observe("A", "gray", f"a-{i}")
    assert sorted(r["instance"] for r in lv.rows()) == ["_other", "a-0", "a-1"]
    assert counters["instances_over_limit"] == 3
    lv.observe("A", "gray", "a-0", up=False)
    lv.observe("A", "gray", "a-1", up=False)
    assert lv.is_live("A", "gray", clock())  # a-2..a-4 are live, as _other
    lv.served("A", "gray", "a-4", 7, 1, clock())
    assert next(r for r in lv.rows() if r["instance"] == OVERFLOW_INSTANCE)["hops"] == 7


def test_the_total_cap_holds_across_lanes() -> None:
    counters = Counter[str]()
    lv = Liveness(10, clock=FakeClock(), max_per_lane=100, max_total=3, counters=counters)
    for s in "ABCDE":
        lv.observe(s, "base", f"{s}-1")
    assert len(lv.rows()) == 5 and counters["instances_over_limit"] == 2  # 3 + D/_other, E/_other


def test_long_ids_are_cut_keeping_distinct_ids_distinct() -> None:
    counters = Counter[str]()
    lv = Liveness(10, clock=FakeClock(), max_id_chars=64, counters=counters)
    long_a, long_b = "x" * 10_000 + "a", "x" * 10_000 + "b"
    lv.observe("A", "base", long_a)
    lv.observe("A", "base", long_b)
    lv.observe("A", "base", long_a)
    ids = [r["instance"] for r in lv.rows()]
    assert len(ids) == 2 and all(len(i) == 64 for i in ids) and ids[0] != ids[1]
    assert cut_id(long_a, 64) in ids and counters["instance_ids_truncated"] == 3
    assert cut_id("short", 64) == "short"


def test_long_raw_values_are_not_cached_but_still_counted() -> None:
    counters = Counter[str]()
    names = Names(64, L.normalize_lane, L.OVERFLOW_LANE, "lane", counters)
    junk = [f"{i:04d}" + "x" * 100_000 for i in range(30)]
    assert names.map(junk + junk) == [L.BASE] * 60
    assert len(names) == 0 and counters["invalid_lane_values"] == 60
    short = "y" * (CACHED_MAX_LEN - 1) + "!"
    assert names.map([short, short]) == [L.BASE, L.BASE] and len(names) == 1
    assert counters["invalid_lane_values"] == 62


def test_cut_service_names_are_counted() -> None:
    counters = Counter[str]()
    names = Names(10, lambda raw: str(raw).strip()[:32] or "unknown_service", "_other", "service", counters)
    assert names.map(["s" * 40, "s" * 40, "t" * 1000]) == ["s" * 32, "s" * 32, "t" * 32]
    assert counters["service_names_truncated"] == 3
