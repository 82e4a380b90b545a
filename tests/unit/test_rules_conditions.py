"""Routing rule conditions (lanewatch/rules): every source and test, all/any/not, percentage
splits, the old {service, match, lane} form, parse and check errors, the YAML round trip."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from scipy.stats import binom

from lanewatch import config
from lanewatch.config import ConfigError
from lanewatch.config.routing import check_rules, parse_rules, rule_attributes
from lanewatch.rules.match import bucket, in_share
from lanewatch.rules.model import Rule

H = "http.request.header."


def rule(when: Any, lane: str = "gray", service: str = "B") -> Rule:
    [r] = parse_rules([{"service": service, "when": when, "lane": lane}])
    check_rules("routing_rules", [r])
    return r


def test_the_original_form_is_unchanged() -> None:
    [r] = parse_rules([{"service": "B", "match": {"x-user-id": 100}, "lane": "gray"}])
    assert r == Rule("B", {"x-user-id": "100"}, "gray") and r.when is None
    assert r.matches({"x-user-id": "100"}) and not r.matches({"x-user-id": "101"})
    assert not r.matches({}) and not r.matches({"x-user-id": ""})
    assert r.matches({"x-user-id": ("101", "100")})  # an array: any element
    assert r.to_dict() == {"service": "B", "match": {"x-user-id": "100"}, "lane": "gray"}
    assert rule_attributes([r]) == ["x-user-id"]
    assert parse_rules([{**r.to_dict(), "when": None}]) == [r]  # dataclasses.asdict's form


def test_a_captured_header_is_a_string_array_under_either_spelling() -> None:
    r = rule({"header": "X-User-Id", "equals": "100"})
    assert r.matches({H + "x-user-id": ("100",)})
    assert r.matches({H + "x-user-id": ["101", "100"]})  # the header sent twice
    assert r.matches({H + "x_user_id": ("100",)})  # semantic conventions before 1.21
    assert r.matches({H + "x-user-id": "100"})  # an SDK that records a plain string
    assert not r.matches({H + "x-user-id": ("101",)}) and not r.matches({H + "x-user-id": ()})
    assert not r.matches({"x-user-id": "100"})  # a plain attribute is not the header
    assert rule_attributes([r]) == [H + "x-user-id", H + "x_user_id"]


@pytest.mark.parametrize(("when", "yes", "no"), [
    ({"header": "x-user-id", "in": [100, "101"]}, ("101",), ("102",)),
    ({"header": "x-user-id", "prefix": "10"}, ("1007",), ("7100",)),
    ({"header": "x-user-id", "regex": "^1[0-9]{2}$"}, ("150",), ("1500",)),
    ({"header": "x-user-id", "regex": "99"}, ("1990",), ("1909",)),  # searched, not anchored
    ({"header": "x-user-id", "exists": True}, ("",), ()),
    ({"header": "x-user-id", "exists": False}, (), ("1",)),
    ({"not": {"header": "x-user-id", "equals": "100"}}, ("101",), ("100",)),
])
def test_header_tests(when: dict[str, Any], yes: tuple[str, ...], no: tuple[str, ...]) -> None:
    r = rule(when)
    assert r.matches({H + "x-user-id": yes})
    assert not r.matches({H + "x-user-id": no})


def test_cookies_come_from_the_captured_cookie_header() -> None:
    r = rule({"cookie": "canary", "equals": "always"})
    assert r.matches({H + "cookie": ("session=abc; canary=always; theme=dark",)})
    assert r.matches({H + "cookie": ("session=abc", "canary=always")})  # two Cookie headers
    assert not r.matches({H + "cookie": ("session=abc; xcanary=always; canary=never",)})
    assert not r.matches({H + "cookie": ("canary",)}) and not r.matches({})
    assert rule_attributes([r]) == [H + "cookie"]


def test_query_parameters_from_url_query_then_the_older_attributes() -> None:
    r = rule({"query": "user", "equals": "li lei"})
    assert r.matches({"url.query": "a=1&user=li+lei"})
    assert r.matches({"url.query": "user=li%20lei&user=x"})
    assert r.matches({"http.target": "/a/b?user=li%20lei#top"})
    assert r.matches({"http.url": "https://shop.example/a?x=&user=li+lei"})
    assert r.matches({"url.full": "https://shop.example/a?user=li+lei"})
    assert not r.matches({"http.target": "/a/user=li+lei"}) and not r.matches({"url.query": "user=x"})
    # url.query is the span's own: the older attributes are not read when it is set
    assert not r.matches({"url.query": "x=1", "http.target": "/a?user=li+lei"})
    assert set(rule_attributes([r])) == {"url.query", "http.target", "url.full", "http.url"}


def test_path_method_and_plain_attributes() -> None:
    assert rule({"path": True, "prefix": "/api/"}).matches({"http.target": "/api/cart?x=1"})
    assert rule({"path": True, "equals": "/index"}).matches({"url.path": "/index"})
    assert not rule({"path": True, "equals": "/index"}).matches({"http.target": "/index2"})
    assert rule({"method": True, "in": ["POST", "PUT"]}).matches({"http.method": "PUT"})
    assert rule({"method": True, "equals": "GET"}).matches({"http.request.method": "GET"})
    r = rule({"attribute": "rpc.service", "equals": "CartService"})
    assert r.matches({"rpc.service": "CartService"}) and not r.matches({"rpc.service": "Cart"})


def test_all_any_and_a_list_as_all() -> None:
    both = rule({"all": [{"header": "x-user-id", "equals": "100"}, {"cookie": "region", "equals": "hz"}]})
    attrs = {H + "x-user-id": ("100",), H + "cookie": ("region=hz",)}
    assert both.matches(attrs) and not both.matches({H + "x-user-id": ("100",)})
    either = rule({"any": [{"header": "x-user-id", "equals": "100"}, {"cookie": "region", "equals": "hz"}]})
    assert either.matches({H + "cookie": ("region=hz",)}) and not either.matches({})
    assert rule([{"header": "x-user-id", "equals": "100"}, {"cookie": "region", "equals": "hz"}]) == both
    assert rule({"all": []}).matches({})  # the catch-all
    mixed = parse_rules([{"service": "B", "match": {"tenant": "t1"}, "when": {"header": "x", "equals": "1"},
                          "lane": "gray"}])[0]
    assert mixed.matches({"tenant": "t1", H + "x": ("1",)}) and not mixed.matches({H + "x": ("1",)})


def test_percent_split_is_stable_and_matches_its_share() -> None:
    r = rule({"percent": 10, "by": {"header": "x-user-id"}})
    n = 20_000
    hit = sum(r.matches({H + "x-user-id": (f"user-{i}",)}) for i in range(n))
    low, high = binom.interval(0.999, n, 0.10)
    assert low <= hit <= high, (hit, low, high)
    assert not r.matches({})  # no key: not in the split
    # raising the share only adds users; a salt reshuffles them
    five = {i for i in range(2000) if in_share(f"user-{i}", 5)}
    ten = {i for i in range(2000) if in_share(f"user-{i}", 10)}
    assert five < ten
    salted = {i for i in range(2000) if in_share(f"user-{i}", 10, "b-gray")}
    assert salted != ten and abs(len(salted) - 200) < 60
    assert not any(in_share(f"u{i}", 0) for i in range(500)) and all(in_share(f"u{i}", 100) for i in range(500))


def test_percent_buckets_are_the_documented_hash_in_every_process() -> None:
    # int(sha256(b"user-42").hexdigest()[:16], 16) % 10000, fixed here: a changed hash moves users
    assert (bucket("user-42"), bucket("100"), bucket("101")) == (5129, 5397, 1154)
    assert int(hashlib.sha256(b"user-42").hexdigest()[:16], 16) % 10_000 == 5129
    expected = [bucket(f"user-{i}", "s") for i in range(5)]
    code = "from lanewatch.rules.match import bucket; print([bucket(f'user-{i}', 's') for i in range(5)])"
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        assert out.strip() == str(expected)


@pytest.mark.parametrize(("raw", "message"), [
    ({"service": "B", "lane": "gray", "when": {"heder": "x", "equals": "1"}},
     r"\[0\] \(service B\)\.when\.heder: unknown key"),
    ({"service": "B", "lane": "gray", "when": {"header": "x", "cookie": "y", "equals": "1"}},
     r"\[0\] \(service B\)\.when: needs exactly one source"),
    ({"service": "B", "lane": "gray", "when": {"header": "x", "equals": "1", "flavour": 2}},
     r"\[0\] \(service B\)\.when\.flavour: unknown key"),
    ({"service": "B", "lane": "gray", "when": {"header": "x"}}, r"when: needs exactly one test"),
    ({"service": "B", "lane": "gray", "when": {"all": [{"cookie": "", "equals": "1"}]}},
     r"when\.all\[0\]\.cookie: needs a non-empty name"),
    ({"service": "B", "lane": "gray", "when": {"any": [{"header": "x", "regex": "("}]}},
     r"when\.any\[0\]\.regex: invalid regular expression"),
    ({"service": "B", "lane": "gray", "when": {"percent": 120, "by": {"header": "x"}}},
     r"when\.percent: expected a number in \[0, 100\]"),
    ({"service": "B", "lane": "gray", "when": {"percent": 10}}, r"when\.by: expected the key"),
    ({"service": "B", "lane": "gray", "when": {"header": "x", "in": []}}, r"when\.in: expected a non-empty"),
    ({"service": "B", "lane": "gray", "when": {"path": "/x", "equals": "/"}}, r"when\.path: write 'path: true'"),
    ({"service": "B", "lane": "gray", "when": {"not": {"header": "x", "exists": "yes"}}},
     r"when\.not\.exists: expected true or false"),
    ({"service": "B", "lane": "gray", "when": {"all": [], "any": []}}, r"'all' goes alone"),
    ({"service": "B", "lane": "gray", "match": {}, "when": {"header": "x", "equals": "1"}, "weight": 1},
     r"\[0\] \(service B\)\.weight: unknown key"),
])
def test_parse_errors_name_the_rule_and_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rules([raw])


def test_check_rules_names_the_rule_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"routing_rules\[1\]: needs service"):
        check_rules("routing_rules", [Rule("B", {"a": "1"}, "gray"), Rule("B", {}, "gray")])
    with pytest.raises(ConfigError, match=r"routing_rules\[0\] \(service B\)\.when\.any: needs at least"):
        check_rules("routing_rules", parse_rules([{"service": "B", "lane": "gray", "when": {"any": []}}]))
    cfg = tmp_path / "lw.yaml"
    cfg.write_text("routing_rules:\n  - service: B\n    lane: gray\n    when: {header: x-user-id, regx: '1'}\n")
    with pytest.raises(ConfigError, match=r"routing_rules=.*\[0\] \(service B\)\.when\.regx: unknown key"):
        config.load(environ={}, config_file=str(cfg))


def test_yaml_round_trip_and_settings() -> None:
    raw = [
        {"service": "B", "match": {"x-user-id": "100"}, "lane": "gray"},
        {"service": "C", "when": {"any": [{"header": "x-user-id", "in": ["100", "101"]},
                                          {"not": {"cookie": "canary", "equals": "never"}}]}, "lane": "gray"},
        {"service": "A", "when": {"all": [{"percent": 12.5, "by": {"query": "uid"}, "salt": "s1"},
                                          {"path": True, "prefix": "/api"},
                                          {"attribute": "tenant", "exists": True}]}, "lane": "blue"},
        {"service": "A", "when": {"all": []}, "lane": "gray"},
    ]
    rules = parse_rules(raw)
    text = yaml.safe_dump([r.to_dict() for r in rules])
    assert parse_rules(yaml.safe_load(text)) == rules
    assert next(r.to_dict() for r in rules) == raw[0]
    s = config.with_overrides(config.load(environ={}), routing_rules=rules)
    assert s.rule_attributes == sorted({"x-user-id", H + "x-user-id", H + "x_user_id", H + "cookie",
                                        "url.query", "http.target", "url.full", "http.url", "url.path",
                                        "tenant"})
