"""Warm plotly up before the first page: build and serialise one figure of each kind.

plotly builds a trace type's validators, and imports their modules, the first time a figure
of that type is made: in a fresh ``lanewatch serve`` the first Overview paid ~90 ms for it (a
line trace 70 ms, a bar chart 18 ms, against 1-2 ms each after). :func:`warm_up` pays that at
start, on made-up data of a few points: no store read, nothing kept but plotly's own classes.
"""

from __future__ import annotations

import threading
import time

from lanewatch.dashboard import figures as F
from lanewatch.dashboard.flowfig import sankey_figure

_T = 1_800_000_000.0
_COLOURS = {"base": "#1f77b4", "gray": "#ff7f0e"}
_once = threading.Lock()
_warmed = False


def _lane(k: float) -> dict[str, list[float]]:
    return {"ts": [_T, _T + 1, _T + 2], "qps": [k, k + 1, k], "error_rate": [0.0, 0.01, 0.0],
            "p50_ms": [k, k, k], "p95_ms": [2 * k, 2 * k, 2 * k], "p99_ms": [3 * k, 3 * k, 3 * k]}


def warm_up() -> float:
    """Build and serialise each figure kind the pages draw, once per process (later calls
    return at once); returns the seconds it took."""
    global _warmed
    with _once:
        if _warmed:
            return 0.0
        _warmed = True
        return _build()


def _build() -> float:
    started = time.perf_counter()
    lanes = {"base": _lane(5.0), "gray": _lane(1.0)}
    change = [{"since": _T + 1, "version": 2, "source": "file", "routing_rules": 1}]
    series = {"lanes": lanes, "to": _T + 3, "rule_changes": change}
    compare = {"service": "A", "lane": "gray", "base": "base", "series": lanes, "rule_changes": change}
    flows = [{"expected_lane": "gray", "instance_lane": "gray", "verdict": "in_lane", "requests": 3},
             {"expected_lane": "gray", "instance_lane": "base", "verdict": "leak", "requests": 1}]
    figs = [F.lane_series_figure(series, metric, colours=_COLOURS, hops=True) for metric in ("qps", "error_rate")]
    figs += [F.compare_figure(compare, metric, colours=_COLOURS) for metric in ("qps", "latency")]
    figs += [F.verdict_figure({"in_lane": 3, "leak": 1}, 1), F.empty_figure("warming up"),
             sankey_figure(flows, colours=_COLOURS)]
    for fig in figs:
        fig.to_json()  # as Dash sends a callback's figure (plotly.io's JSON encoder)
    return time.perf_counter() - started
