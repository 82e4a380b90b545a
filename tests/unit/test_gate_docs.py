"""docs/gate.md is what users paste into Argo Rollouts and Flagger: its examples must be right."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from lanewatch.containment import Containment
from lanewatch.gate_verdict import decide
from lanewatch.stats import Thresholds

DOC = (Path(__file__).resolve().parents[2] / "docs/gate.md").read_text()


def blocks(kind: str) -> list[Any]:
    return [yaml.safe_load(b) for b in re.findall(rf"```{kind}\n(.*?)```", DOC, flags=re.DOTALL)]


def test_the_analysis_template_reads_pass_with_both_conditions() -> None:
    (template,) = [d for d in blocks("yaml") if isinstance(d, dict) and d.get("kind") == "AnalysisTemplate"]
    (metric,) = template["spec"]["metrics"]
    assert metric["provider"]["web"]["jsonPath"] == "{$.pass}"
    assert "/api/v1/gate?lane={{args.lane}}" in metric["provider"]["web"]["url"]
    # with only a successCondition Argo would count pass: null as Failed, not Inconclusive
    assert (metric["successCondition"], metric["failureCondition"]) == ("result == true", "result == false")
    assert {"inconclusiveLimit", "failureLimit", "consecutiveErrorLimit"} <= set(metric)


def test_the_canary_calls_the_gate_as_rollout_and_confirm_promotion_webhooks() -> None:
    (canary,) = [d for d in blocks("yaml") if isinstance(d, dict) and d.get("kind") == "Canary"]
    hooks = canary["spec"]["analysis"]["webhooks"]
    assert {h["type"] for h in hooks} == {"rollout", "confirm-promotion"}
    for h in hooks:
        assert set(h) == {"name", "type", "url", "timeout", "metadata"} and h["url"].endswith("/api/v1/gate")
        assert set(h["metadata"]) <= {"lane", "service", "window"}
        assert all(isinstance(v, str) for v in h["metadata"].values())  # Flagger metadata are strings


def test_every_field_of_the_answer_is_documented() -> None:
    cont = Containment({"leak": 0, "intrusion": 0, "tag_lost": 0}, 5, 0, [], "gray", None)
    answer = decide(cont, [], Thresholds(), 300)
    table = DOC.split("| field | meaning |")[1].split("\n\n")[0]
    documented = set(re.findall(r"`(\w+)(?:\[\])?`", table))
    assert set(answer) <= documented, set(answer) - documented
    for check in answer["checks"]:
        assert set(check) <= documented, set(check) - documented
    assert "`webhook`" in DOC  # what POST adds
