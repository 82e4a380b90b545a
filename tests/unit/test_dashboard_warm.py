"""plotly is warmed up when the dashboard is mounted (lanewatch.dashboard.warm): the validators
of every trace type the pages draw exist before the first page asks for a figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys, flask, plotly.validator_cache as v
from lanewatch.config import Settings
from lanewatch.dashboard.app import create_dash
from lanewatch.dashboard.warm import warm_up
from lanewatch.query import Query
from lanewatch.store.duck import DuckStore
before = sorted({k[0] for k in v.ValidatorCache._cache})
create_dash(flask.Flask("t"), Query(DuckStore(sys.argv[1]), Settings()), Settings())
after = sorted({k[0] for k in v.ValidatorCache._cache})
print(json.dumps({"before": before, "after": after, "again": warm_up()}))
"""


def test_mounting_the_dashboard_builds_the_figures_validators(tmp_path: Path) -> None:
    """In a fresh process (plotly's validators are per process)."""
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "lw.duckdb")],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    for kind in ("scatter", "scatter.line", "bar", "bar.marker", "sankey", "sankey.link", "layout.shape",
                 "layout.annotation"):
        assert kind not in got["before"] and kind in got["after"], (kind, got)
    assert got["again"] == 0.0  # once per process: a second dashboard does not pay it again
