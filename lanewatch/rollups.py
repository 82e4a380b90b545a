"""The rollup schema the lane model defines: tables, their keys and their summed metrics.

Pure. The collector fills these tables (``collect.aggregate``), the stores keep them
(``store``), the read side sums them (``query``). Every row is *mergeable*: metrics are
summed by key, so a row may be written in pieces (late spans, several collectors,
downsampling) and a correction is a row with negative counts. Counts are sampling-weighted
(a span standing for 4 counts 4; ``collect.weights``) and stay integers.

Edge metrics are derived from :mod:`lanewatch.lane`: one column per hop verdict, so a new
verdict kind adds its column here without any other change.
"""

from __future__ import annotations

from typing import Final

from lanewatch import lane as L

#: Hop verdict labels, in code order (``Verdict`` values of :data:`lane.HOP_VERDICTS`).
HOP_VERDICT_LABELS: Final = tuple(v.label for v in L.HOP_VERDICTS)
#: Edge metrics: calls, errors, one count per hop verdict of the callee, tag losses, and of
#: those the ones lost inside the caller (its context lost the lane before the call left).
EDGE_METRICS: Final = ("calls", "errors", *HOP_VERDICT_LABELS, L.Verdict.TAG_LOST.label, "tag_lost_inside")

#: Of a row's spans (hops) or traces (edges, traces, trace_services), how many stood for
#: other than one (a sampling weight, ``collect.weights``): the row's other metrics are
#: then estimates, and the read side says so (``estimated``). Unweighted, not extrapolated.
WEIGHTED: Final = "weighted"

#: table -> (key columns, summed metric columns). Column types: keys are strings except
#: ``ts``/``res``/``bucket`` (integers); metrics are integers except ``latency_sum_ms`` (float).
ROLLUPS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    # one row per (second, service, instance lane, request lane, expected lane, verdict)
    "hops": (("ts", "res", "service", "instance_lane", "request_lane", "expected_lane", "verdict"),
             ("requests", "errors", "latency_sum_ms", WEIGHTED)),
    # log-bucket latency histogram of hops (see lanewatch.histogram)
    "latency": (("ts", "res", "service", "instance_lane", "request_lane", "bucket"), ("count",)),
    # per edge caller -> callee, by the lane the caller sent (``lane``) and the entry lane of
    # its trace; verdict counts of the callee hop (ts = start of the client span)
    "edges": (("ts", "res", "caller", "callee", "lane", "entry_lane"), (*EDGE_METRICS, WEIGHTED)),
    # finalised traces by entry lane (ts = start of the entry hop)
    "traces": (("ts", "res", "entry_lane"), ("traces", "stayed", WEIGHTED)),
    # finalised traces once per service that served a hop of them, by entry lane
    # (ts = start of the trace's entry hop): trace counts under a service filter
    "trace_services": (("ts", "res", "service", "entry_lane"), ("traces", "stayed", WEIGHTED)),
}


def edge_column(name: str) -> int:
    """Index of edge metric ``name`` in :data:`EDGE_METRICS` (and in edge value matrices)."""
    return EDGE_METRICS.index(name)


EDGE_CALLS: Final = edge_column("calls")
EDGE_ERRORS: Final = edge_column("errors")
EDGE_TAG_LOST: Final = edge_column(L.Verdict.TAG_LOST.label)
EDGE_TAG_LOST_INSIDE: Final = edge_column("tag_lost_inside")
#: Edge column of each verdict code, ``EDGE_VERDICT[code]`` (-1 for verdicts that are not hop verdicts).
EDGE_VERDICT: Final = tuple(edge_column(L.Verdict(c).label) if L.Verdict(c) in L.HOP_VERDICTS else -1
                            for c in range(max(L.Verdict) + 1))
