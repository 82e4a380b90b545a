"""classify.expected_lanes with rules (bulk, one evaluation per distinct set of values, bulk reads
of the decoded columns) against the plain first-matching-rule per hop, on random hops."""

from __future__ import annotations

import random

import numpy as np
import pytest

from lanewatch.collect import classify
from lanewatch.collect.decode import AttributeStrings
from lanewatch.config.routing import parse_rules, rule_attributes
from lanewatch.rules.model import Rule

H = "http.request.header."
RULES = parse_rules([
    {"service": "A", "lane": "gray", "when": {"header": "x-user-id", "in": ["1", "2"]}},
    {"service": "A", "lane": "base", "when": {"cookie": "canary", "equals": "never"}},
    {"service": "A", "lane": "gray", "when": {"percent": 40, "by": {"header": "x-user-id"}}},
    {"service": "B", "lane": "blue", "match": {"tenant": "t1"}},
    {"service": "B", "lane": "gray", "when": {"not": {"header": "x-user-id", "exists": True}}},
])


def encoded(v: str | tuple[str, ...]) -> bytes:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue

    if isinstance(v, str):
        return AnyValue(string_value=v).SerializeToString()
    return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=x) for x in v])).SerializeToString()


@pytest.mark.parametrize(("seed", "shuffled"), [(1, False), (2, True), (3, False)])
def test_bulk_expected_lanes_agree_with_the_plain_rule(seed: int, shuffled: bool) -> None:
    rng = random.Random(seed)
    n = 3000
    service = np.array([rng.choice("ABC") for _ in range(n)], dtype=object)
    request = np.array([rng.choice(["base", "gray"]) for _ in range(n)], dtype=object)
    is_hop = np.array([rng.random() < 0.8 for _ in range(n)])
    plain: dict[str, list[str | tuple[str, ...]]] = {k: [""] * n for k in rule_attributes(RULES)}
    for i in range(n):
        if rng.random() < 0.9:
            plain[H + "x-user-id"][i] = (str(rng.randrange(30)),)
        if rng.random() < 0.3:
            plain[H + "cookie"][i] = (f"a=1; canary={rng.choice(['always', 'never'])}",)
        if rng.random() < 0.3:
            plain["tenant"][i] = rng.choice(["t1", "t2"])
    extra = {}
    for k, col in plain.items():
        at = np.array([i for i in range(n) if col[i] != ""], dtype=np.int64)
        if shuffled:  # attr_at in no particular order: the lookups still agree
            at = at[np.random.default_rng(seed).permutation(len(at))]
        extra[k] = AttributeStrings(at, [encoded(col[i]) for i in at.tolist()], n)
    compiled: dict[str, list[tuple[Rule, str]]] = {}
    for r in RULES:
        compiled.setdefault(r.service, []).append((r, r.lane))
    got = classify.expected_lanes(service, request, is_hop, extra, compiled)
    want = [next((r.lane for r in RULES if r.service == service[i] and r.matches(
        {k: col[i] for k, col in plain.items()})), request[i]) if is_hop[i] else request[i] for i in range(n)]
    assert got.tolist() == want
    assert {"gray", "base", "blue"} <= set(got.tolist())
