"""Each hop is judged by the routing rules and topology in force at its span's start: a change
applies from its moment only, spans from before it keep their verdicts even when they arrive
after it (issue 13, "Live rules")."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from lanewatch import config
from lanewatch.collect.engine import Engine
from lanewatch.rules.versions import MAX_VERSIONS, RuleBook
from lanewatch.testing import FakeClock, TraceBuilder

T0 = 1_800_000_000.0
RULE = {"service": "B", "match": {"x-user-id": "100"}, "lane": "gray"}


def _engine(**flags: object) -> tuple[Engine, FakeClock]:
    clock = FakeClock(T0 + 10)
    return Engine(config.load(environ={}, flags=flags), clock=clock), clock


def _hop_at(engine: Engine, start_s: float, attributes: dict[str, str]) -> None:
    """A B hop served by base with no lane sent (scenario 3: the rule decides the lane)."""
    tb = TraceBuilder(t0=start_s)
    tb.hop("B", attributes=attributes)
    assert engine.ingest("traces", tb.body(), "proto").accepted == 1


def _verdicts(engine: Engine) -> Counter[tuple[str, str]]:
    """(expected lane, verdict) -> hops, of the next batch."""
    hops = engine.flush().rollups["hops"]
    out: Counter[tuple[str, str]] = Counter()
    for exp, v, n in zip(hops["expected_lane"], hops["verdict"], hops["requests"]):
        out[(exp, v)] += int(n)
    return out


def test_a_rule_switched_off_changes_verdicts_from_that_moment_only() -> None:
    eng, clock = _engine(routing_rules=[RULE], topology={"B": ["base", "gray"]})
    user = {"x-user-id": "100"}
    _hop_at(eng, T0 + 1, user)  # before the change: gray expected, served by base, gray live
    assert _verdicts(eng) == {("gray", "leak"): 1}
    clock.advance(10)  # T0 + 20
    assert eng.rulebook.apply([], {"B": ["base", "gray"]}, "test") is not None
    _hop_at(eng, T0 + 5, user)  # arrives after the change, started before it: the old rules
    _hop_at(eng, T0 + 21, user)  # after it: no rule, base expected, base served
    assert _verdicts(eng) == {("gray", "leak"): 1, ("base", "in_lane"): 1}
    clock.advance(10)  # T0 + 30: switched on again
    eng.rulebook.apply([config.parse_rules([RULE])[0]], {"B": ["base", "gray"]}, "test")
    _hop_at(eng, T0 + 25, user)  # between: rule off
    _hop_at(eng, T0 + 31, user)  # after: rule on
    _hop_at(eng, T0 + 2, user)  # long before: the first version
    assert _verdicts(eng) == {("base", "in_lane"): 1, ("gray", "leak"): 2}


def test_a_new_rule_reading_a_new_attribute_is_read_by_the_decoders() -> None:
    eng, _ = _engine(routing_rules=[RULE], topology={"B": ["base", "gray"]})
    assert eng.keys.extra == ("x-user-id",)
    eng.rulebook.apply(config.parse_rules([{"service": "B", "match": {"tenant": "t1"}, "lane": "gray"}]),
                       {"B": ["base", "gray"]}, "test")
    # old versions are kept: a late span from before the change needs x-user-id still
    assert set(eng.keys.extra) == {"x-user-id", "tenant"}
    _hop_at(eng, T0 + 11, {"tenant": "t1"})
    _hop_at(eng, T0 + 11, {"x-user-id": "100"})  # the old rule is not in force any more
    _hop_at(eng, T0 + 9, {"x-user-id": "100"})  # but was for this one
    assert _verdicts(eng) == {("gray", "leak"): 2, ("base", "in_lane"): 1}


def test_topology_in_time_declares_liveness_for_its_version_only() -> None:
    """Gray expected (sent), served by base: a leak while gray is declared live, a fallback
    after the declaration is removed."""
    eng, _ = _engine(topology={"B": ["gray"]})

    def gray_request_served_by_base(start_s: float) -> None:
        tb = TraceBuilder(t0=start_s)
        tb.hop("B", request_lane="gray")
        eng.ingest("traces", tb.body(), "proto")

    gray_request_served_by_base(T0 + 5)
    eng.rulebook.apply([], {}, "test")
    gray_request_served_by_base(T0 + 6)  # before the change
    gray_request_served_by_base(T0 + 11)  # after
    assert _verdicts(eng) == {("gray", "leak"): 2, ("gray", "fallback"): 1}


def test_unchanged_rules_make_no_version_and_versions_are_bounded() -> None:
    clock = FakeClock(T0)
    book = RuleBook([], {}, clock)
    assert book.apply([], {}, "file") is None and book.current.version == 1
    rules = config.parse_rules([RULE])
    for i in range(MAX_VERSIONS + 10):
        clock.advance(1)
        assert book.apply(rules if i % 2 == 0 else [], {}, "file") is not None
    versions = book.versions()
    assert len(versions) == MAX_VERSIONS and versions[-1].version == MAX_VERSIONS + 11
    # the oldest kept version now also covers everything before it
    assert book.at(0.0) is versions[0] and book.at(clock()) is versions[-1]
    history = book.history()
    assert history[0]["until"] is None and history[1]["until"] == history[0]["since"]


def test_split_groups_rows_by_version_like_a_plain_lookup() -> None:
    """The vectorised grouping against ``at()`` per row, on random times and versions."""
    rng = np.random.default_rng(3)
    clock = FakeClock(T0)
    book = RuleBook([], {}, clock)
    rules = config.parse_rules([RULE])
    for i in range(12):
        clock.advance(float(rng.uniform(0.1, 5)))
        book.apply(rules if i % 2 == 0 else [], {"B": [f"l{i}"]}, "file")
    t = rng.uniform(T0 - 10, clock() + 10, 3000)
    got: dict[int, int] = {}
    for version, rows in book.split(t):
        idx = np.arange(len(t)) if rows is None else rows
        for i in idx.tolist():
            got[i] = version.version
    assert got == {i: book.at(float(x)).version for i, x in enumerate(t)}


@pytest.mark.parametrize("t_offset", [0.0, 100.0])
def test_split_is_one_group_when_every_span_is_after_the_newest_change(t_offset: float) -> None:
    clock = FakeClock(T0)
    book = RuleBook([], {}, clock)
    book.apply(config.parse_rules([RULE]), {}, "file")
    (version, rows), = book.split(np.array([T0 + t_offset, T0 + t_offset + 1]))
    assert rows is None and version.version == 2
