"""The rollup schema is derived from the lane model: one violation definition, named edge columns."""

from __future__ import annotations

from lanewatch import lane as L
from lanewatch import rollups as R


def test_violations_are_exactly_the_lane_models() -> None:
    assert set(L.VIOLATION_NAMES) == {"leak", "intrusion", "tag_lost"}
    assert set(L.HOP_VIOLATION_NAMES) == {"leak", "intrusion"}
    assert all(L.Verdict[n.upper()].is_violation for n in L.VIOLATION_NAMES)


def test_edge_columns_follow_the_hop_verdicts() -> None:
    assert R.EDGE_METRICS[:2] == ("calls", "errors") and R.EDGE_METRICS[-2:] == ("tag_lost", "tag_lost_inside")
    for v in L.HOP_VERDICTS:
        assert R.EDGE_METRICS[R.EDGE_VERDICT[v]] == v.label
    assert R.EDGE_VERDICT[L.Verdict.TAG_LOST] == -1
    assert R.ROLLUPS["edges"][1] == (*R.EDGE_METRICS, R.WEIGHTED)
