"""dashboards/: the Prometheus rules pass promtool's check and unit tests, and the rules and the
Grafana dashboard only use metrics lanewatch exposes (and valid PromQL)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from lanewatch.metrics import MetricsCollector, MetricsSink
from lanewatch.store.base import Batch

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "dashboards" / "prometheus"
GRAFANA = ROOT / "dashboards" / "grafana" / "lanewatch.json"
DEFAULT_ALERTS = {"LaneLeak", "LaneIntrusion", "LaneTagLost", "DeadLane", "GrayWorseThanBase"}
#: a metric name as PromQL writes it (recording rules' names hold colons)
_NAME = re.compile(r"\b(lanewatch[a-z0-9_:]*)")
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        pytest.fail("promtool is missing: apt-get install -y --no-install-recommends prometheus "
                    "(.ci/run installs it)")
    return found


def run(promtool: str, *args: str, cwd: Path = PROM) -> str:
    done = subprocess.run([promtool, *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def exposed() -> set[str]:
    """Every sample name /metrics writes when each family has data."""
    sink = MetricsSink()
    sink.write(Batch(
        rollups={"hops": {"ts": [1], "res": [1], "service": ["C"], "instance_lane": ["base"],
                          "request_lane": ["gray"], "expected_lane": ["gray"], "verdict": ["leak"],
                          "requests": [1], "errors": [1], "latency_sum_ms": [3.0]},
                 "latency": {"ts": [1], "res": [1], "service": ["C"], "instance_lane": ["base"],
                             "request_lane": ["gray"], "bucket": [40], "count": [1]},
                 "edges": {"ts": [1], "res": [1], "caller": ["B"], "callee": ["C"], "lane": ["gray"],
                           "entry_lane": ["gray"], "calls": [1], "errors": [0], "in_lane": [0],
                           "fallback": [0], "leak": [1], "intrusion": [0], "tag_lost": [1],
                           "tag_lost_inside": [0]},
                 "traces": {"ts": [1], "res": [1], "entry_lane": ["gray"], "traces": [1], "stayed": [0]}},
        counters={"spans_received": 3, "requests_refused_oversize": 1, "unpaired_client_spans": 1}))
    m = MetricsCollector(sink, instances=lambda: [{"service": "C", "lane": "gray", "live": True}],
                         alert_states=lambda: [{"labels": {"alertname": "LaneLeak"}, "state": "firing"}])
    body, _ = m.render()
    return {s.name for f in text_string_to_metric_families(body.decode()) for s in f.samples}


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROM / "lanewatch-alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def test_promtool_checks_the_rules_and_the_example_config(promtool: str) -> None:
    assert "SUCCESS" in run(promtool, "check", "rules", "lanewatch-alerts.yml")
    run(promtool, "check", "config", "prometheus.yml")


def test_promtool_unit_tests_pass_including_the_sparse_case(promtool: str) -> None:
    tests = yaml.safe_load((PROM / "lanewatch-alerts.test.yml").read_text())["tests"]
    names = [t["name"] for t in tests]
    assert any("1 leak among 1000 hops" in n for n in names) and any("20 leaked of 400" in n for n in names)
    assert "SUCCESS" in run(promtool, "test", "rules", "lanewatch-alerts.test.yml")


def test_the_rules_are_lanewatchs_default_alerts_over_exposed_metrics() -> None:
    names = exposed()
    alerts = {r["alert"] for r in rules() if "alert" in r}
    assert alerts == DEFAULT_ALERTS
    recorded = {r["record"] for r in rules() if "record" in r}
    for r in rules():
        for name in _NAME.findall(r["expr"]):
            assert name in names or name in recorded, f"{r.get('alert') or r.get('record')}: {name}"
    assert {r["labels"]["severity"] for r in rules() if r.get("alert") == "LaneIntrusion"} == {"critical"}


def test_grafana_dashboard_is_provisionable_and_uses_only_exposed_metrics(promtool: str,
                                                                         tmp_path: Path) -> None:
    dash = json.loads(GRAFANA.read_text())
    assert dash["uid"] and dash["title"] and dash.get("id") is None and "__inputs" not in dash
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"service", "lane"} <= set(variables)
    names, exprs = exposed(), []
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            exprs.append(target["expr"])
    for v in ("service", "lane"):  # label_values(metric, label) lists label values of a metric
        metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", variables[v]["query"]["query"]).groups()
        exprs.append(f"count by ({label}) ({metric})")
    for expr in exprs:
        for name in _NAME.findall(expr):
            assert name in names, f"{name} is not a metric lanewatch exposes: {expr}"
        for sel in _SELECTOR.findall(expr):
            assert sel.startswith("lanewatch_") or sel in {"by", "without", "on", "ignoring"}, expr
    # every query is valid PromQL: promtool parses it as a recording rule
    plain = [re.sub(r"\$__(rate_interval|range)", "5m", re.sub(r'"\$(service|lane)"', '".*"', e)) for e in exprs]
    doc = {"groups": [{"name": "grafana", "rules": [{"record": f"grafana:q{i}", "expr": e}
                                                     for i, e in enumerate(plain)]}]}
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(doc))
    run(promtool, "check", "rules", "queries.yml", cwd=tmp_path)
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for words in ("stayed in lane", "violations per verdict", "intrusions", "error rate", "p95 latency",
                  "live instances", "alerts"):
        assert words in titles, words
