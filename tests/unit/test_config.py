"""lanewatch.config: sections, env vars, YAML, flags, the routing_rules rename, validation."""

from __future__ import annotations

import dataclasses
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lanewatch import config
from lanewatch.config import ConfigError, Rule, Settings
from lanewatch.stats import Thresholds


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "lanewatch.yaml"
    path.write_text(text)
    return str(path)


def test_sections_have_their_defaults_and_make_thresholds() -> None:
    s = config.load(environ={})
    assert (s.compare.min_requests, s.compare.alpha, s.compare.min_latency_effect) == (30, 0.01, 0.05)
    assert s.dead_lanes.after_s == 60.0
    assert Thresholds(**dataclasses.asdict(s.compare)) == Thresholds()  # same fields, same defaults


def test_yaml_env_and_flags_reach_section_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "compare: {alpha: 0.05, min_requests: 10}\ndead_lanes:\n  after_s: 120\n")
    s = config.load(environ={"LANEWATCH_COMPARE__MIN_REQUESTS": "50"}, config_file=path)
    assert s.compare == config.CompareSettings(min_requests=50, alpha=0.05, min_latency_effect=0.05)
    assert s.dead_lanes.after_s == 120.0 and isinstance(s.dead_lanes.after_s, float)
    s = config.load(environ={"LANEWATCH_DEAD_LANES__AFTER_S": "30"}, flags={"compare.alpha": 0.02})
    assert s.dead_lanes.after_s == 30.0 and s.compare.alpha == 0.02
    s = config.with_overrides(s, compare={"min_requests": 5})
    assert s.compare.min_requests == 5 and s.compare.alpha == 0.02


@pytest.mark.parametrize("text,named", [
    ("compare: {alpa: 0.05}\n", "compare.alpa"),
    ("dead_lanes: {after: 5}\n", "dead_lanes.after"),
    ("compare: 5\n", "compare"),
    ("nonsense: 1\n", "nonsense"),
])
def test_unknown_keys_are_errors_naming_them(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=rf"config=.*{named}"):
        config.load(environ={}, config_file=write(tmp_path, text))


def test_unknown_section_env_var_is_an_error() -> None:
    with pytest.raises(ConfigError, match="compare.alpa"):
        config.load(environ={"LANEWATCH_COMPARE__ALPA": "0.05"})


@pytest.mark.parametrize("text,message", [
    ("compare: {alpha: 2}\n", "compare.alpha=2.0: must be in (0.0, 1.0)"),
    ("compare: {alpha: 0}\n", "compare.alpha=0.0: must be in (0.0, 1.0)"),
    ("compare: {min_requests: 0}\n", "compare.min_requests=0: must be >= 1"),
    ("compare: {min_requests: 2.5}\n", "compare.min_requests=2.5: expected a whole number"),
    ("compare: {min_latency_effect: 0.5}\n", "compare.min_latency_effect=0.5: must be in [0.0, 0.5)"),
    ("dead_lanes: {after_s: 0}\n", "dead_lanes.after_s=0.0: must be > 0"),
    ("dead_lanes: {after_s: soon}\n", "dead_lanes.after_s='soon'"),
    ("port: 70000\n", "port=70000: a port is 0..65535"),
    ("sample_ok_traces: 2\n", "sample_ok_traces=2.0: a share is 0..1"),
    ("routing_rules: [{service: B, match: {}, lane: gray}]\n", "routing_rules[0]: needs service"),
    ("routing_rules: [{service: B, lane: gray}]\n", "routing_rules=.*\\[0\\]: expected"),
    ("routing_rules: {service: B}\n", "routing_rules=.*expected a list"),
    ("topology: {C: [base, 'no spaces']}\n", "topology.C: invalid lane names"),
])
def test_validation_names_the_setting(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        config.load(environ={}, config_file=write(tmp_path, text))
    text = str(e.value)
    assert message in text or re.search(message, text), text  # literal, or a pattern


def test_validate_checks_sections_of_a_built_settings() -> None:
    bad = dataclasses.replace(Settings(), compare=config.CompareSettings(alpha=1.5))
    with pytest.raises(ConfigError, match=r"compare\.alpha=1\.5"):
        bad.validate()


def test_routing_rules_and_the_old_name(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rule = Rule("B", {"x-user-id": "100"}, "gray")
    new = config.load(environ={}, config_file=write(
        tmp_path, "routing_rules:\n  - {service: B, match: {x-user-id: '100'}, lane: gray}\n"))
    assert new.routing_rules == [rule] and new.rule_attributes == ["x-user-id"]
    old = tmp_path / "old.yaml"
    old.write_text("rules:\n  - {service: B, match: {x-user-id: 100}, lane: gray}\n")
    with caplog.at_level(logging.WARNING, logger="lanewatch.config"):
        assert config.load(environ={}, config_file=str(old)).routing_rules == [rule]
        assert config.load(environ={}, config_file=str(old)).routing_rules == [rule]
    warnings = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(warnings) == 1 and "'rules'" in warnings[0] and "'routing_rules'" in warnings[0]
    both = write(tmp_path, "rules: []\nrouting_rules: []\n")
    with pytest.raises(ConfigError, match="both 'rules' and 'routing_rules'"):
        config.load(environ={}, config_file=both)


def test_topology_and_lists(tmp_path: Path) -> None:
    s = config.load(environ={"LANEWATCH_REQUEST_LANE_ATTRIBUTES": "lane, x-mse-tag"},
                    config_file=write(tmp_path, "topology: {C: [base, gray], D: gray}\n"))
    assert s.topology == {"C": ["base", "gray"], "D": ["gray"]}
    assert s.request_lane_attributes == ["lane", "x-mse-tag"]


def test_precedence_yaml_env_flags(tmp_path: Path) -> None:
    path = write(tmp_path, "trace_wait_s: 3\nhost: 0.0.0.0\nport: 9000\n")
    s = config.load(flags={"port": 9100, "host": None}, environ={"LANEWATCH_TRACE_WAIT_S": "4"},
                    config_file=path)
    assert (s.trace_wait_s, s.host, s.port, s.config) == (4.0, "0.0.0.0", 9100, path)


def test_lanewatch_config_lists_sections_dotted(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "lanewatch.cli", "config", "--markdown"],
                         capture_output=True, text=True, check=True).stdout
    assert "| `compare.alpha` | `LANEWATCH_COMPARE__ALPHA` | `0.01` |" in out
    assert "| `dead_lanes.after_s` | `LANEWATCH_DEAD_LANES__AFTER_S` | `60.0` |" in out
    assert "| `routing_rules` | `(YAML only)` |" in out
    assert "`compare` |" not in out  # a section is not a setting of its own


def test_the_default_data_dir_is_ignored_by_git() -> None:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    data_dir = Path(Settings().data_dir)  # ./lanewatch-data, relative to where lanewatch runs
    probe = (data_dir / "lanewatch.duckdb.tmp").as_posix()
    assert subprocess.run(["git", "-C", str(root), "check-ignore", "-q", probe],
                          check=False).returncode == 0
