"""Per-lane views of the golden traces: what ``lane=`` and ``service=`` filters count.

Each golden trace goes through the real engine into a real DuckDB store and is read
back through :class:`~lanewatch.query.Query`, as the API, the dashboard and
``lanewatch check`` read it. The expected counts under ``expect.views`` in each
``tests/testdata/golden/*.yaml`` were derived by hand from LANES.md ("Whose violation
is it?"): a view for lane L counts every violation of a trace that entered in L, plus
every hop that served or expected L, and does not blame base for gray's losses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lanewatch import config
from lanewatch.query import Query
from lanewatch.store.duck import DuckStore
from lanewatch.testing import FakeClock, TraceBuilder
from tests.unit.test_golden import GOLDEN, build, deliver, make_pipeline

CASES = [(p, key) for p in GOLDEN for key in yaml.safe_load(p.read_text())["expect"]["views"]]


def _run(path: Path) -> tuple[Query, DuckStore]:
    case = yaml.safe_load(path.read_text())
    clock = FakeClock()
    engine = make_pipeline(case, clock)
    store = DuckStore(":memory:", clock=clock)
    tb = TraceBuilder(t0=clock())
    build(tb, case["trace"])
    deliver(engine, tb, "one_per_request_shuffled")
    store.write(engine.flush())
    clock.advance(3.0)
    store.write(engine.flush())
    return Query(store, config.load(environ={}), clock=clock, live=None), store


def _view(key: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in key.split(","))


@pytest.mark.parametrize(("path", "key"), CASES, ids=[f"{p.stem}[{k}]" for p, k in CASES])
def test_lane_view_counts_what_lanes_md_says(path: Path, key: str) -> None:
    want: dict[str, Any] = yaml.safe_load(path.read_text())["expect"]["views"][key]
    view = _view(key)
    q, store = _run(path)
    try:
        s = q.summary(60, service=view.get("service"), lane=view["lane"])
        got = {"violations": s["violations"], "traces": s["traces"], "traces_violated": s["traces_violated"]}
        assert got == {k: want[k] for k in got}
        assert s["lanes"][view["lane"]]["traces"] == want["traces"]
        edges = q.edges(60, lane=view["lane"], service=view.get("service"))
        assert sorted({f"{e['caller']}>{e['callee']}@{e['lane']}" for e in edges}) == sorted(want["edges"])
        # the violation records agree with the counts: every counted violation is listed
        listed = q.violations(60, lane=view["lane"], service=view.get("service"))
        assert (len(listed) > 0) == (want["violations"] > 0)
    finally:
        store.close()


def test_every_golden_trace_has_a_gray_and_a_base_view() -> None:
    for path in GOLDEN:
        views = yaml.safe_load(path.read_text())["expect"]["views"]
        lanes = {_view(k)["lane"] for k in views}
        assert "base" in lanes and lanes - {"base"}, path.stem
