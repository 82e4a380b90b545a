"""Rules imported from Ingress (ingress-nginx canary) and OpenSergo TrafficLane/TrafficRouter
files (tests/testdata/routing/, written as users have them); lanewatch rules import; --config
and {import: FILE} pointing at such files."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lanewatch import config
from lanewatch.config import ConfigError
from lanewatch.rules.imports import RuleImportError, import_files
from lanewatch.rules.model import Rule

DATA = Path(__file__).parents[1] / "testdata" / "routing"
H = "http.request.header."


def expected(rules: list[Rule], service: str, attrs: dict[str, tuple[str, ...]]) -> str:
    """The first matching rule's lane (base when none), as the collector applies them."""
    return next((r.lane for r in rules if r.service == service and r.matches(attrs)), "base")


def nginx_routes_to_canary(header: str | None, cookie: str | None, value: str = "", pattern: str = "",
                           weight: int = 0, total: int = 100) -> bool | None:
    """ingress-nginx's balancer.lua decision (True canary, False primary); None for the weight's
    random draw, which no rule can predict."""
    if header is not None:
        if value:
            if header == value:
                return True
        elif pattern:
            if re.search(pattern, header):
                return True
        elif header == "always":
            return True
        elif header == "never":
            return False
    if cookie is not None:
        if cookie == "always":
            return True
        if cookie == "never":
            return False
    total = max(total, 100)
    return True if weight >= total else False if weight <= 0 else None


def test_the_write_ups_scenario_3_ingress() -> None:
    got = import_files([str(DATA / "ingress-gray.yaml")])
    rules = [r for r, _ in got.rules]
    assert [r.to_dict() for r in rules] == [
        {"service": "spring-cloud-a", "when": {"header": "x-user-id", "equals": "100"}, "lane": "gray"}]
    assert "Ingress default/spring-cloud-a-gray" in got.rules[0][1] and "document 5" in got.rules[0][1]
    assert sum("skipped (not routing)" in n for n in got.notes) == 3  # the Deployment and Services
    assert expected(rules, "spring-cloud-a", {H + "x-user-id": ("100",)}) == "gray"
    assert expected(rules, "spring-cloud-a", {H + "x-user-id": ("101",)}) == "base"


def test_canary_annotations_follow_ingress_nginx_precedence() -> None:
    got = import_files([str(DATA / "ingress-v1-canaries.yaml")])
    rules = [r for r, _ in got.rules]
    assert {r.service for r in rules} == {"cart", "checkout-svc"}
    assert any("canary-weight 10/100" in n and "random" in n for n in got.notes)
    values = (None, "always", "never", "x", "hz-1", "bj-2")
    for header, cookie in itertools.product(values, values):
        attrs = {}
        if header is not None:
            attrs[H + "x-canary"] = (header,)
            attrs[H + "x-region"] = (header,)
        if cookie is not None:
            attrs[H + "cookie"] = (f"session=1; cart_canary={cookie}",)
        cart = nginx_routes_to_canary(header, cookie, weight=10)
        lane = expected(rules, "cart", attrs)
        if cart is None:  # the random 10%: the rules leave it to the request's lane
            assert lane == "base"
        else:
            assert lane == ("gray" if cart else "base"), (header, cookie)
        checkout = nginx_routes_to_canary(header, None, pattern="^(hz|sh)-", weight=1000, total=1000)
        assert expected(rules, "checkout-svc", attrs) == ("canary" if checkout else "base")


def test_services_and_lanes_can_be_named() -> None:
    got = import_files([str(DATA / "ingress-gray.yaml")], {"spring-cloud-a-gray": "A"}, "blue")
    assert [(r.service, r.lane) for r, _ in got.rules] == [("A", "blue")]


def test_opensergo_traffic_router() -> None:
    got = import_files([str(DATA / "opensergo-router.yaml")])
    [(rule, origin)] = got.rules
    assert rule.service == "service-provider" and rule.lane == "v2" and "spec.http[0]" in origin
    assert rule.matches({H + "tag": ("v2",)})
    assert rule.matches({"url.query": "name=xiaoming", "url.path": "/router-test/1"})
    assert not rule.matches({"url.query": "name=xiaoming", "url.path": "/other"})
    assert not rule.matches({H + "tag": ("v1",)})
    assert any("sourceLabels" in n for n in got.notes)
    assert any("by weight" in n for n in got.notes)
    assert any("subset v1 (the catch-all route) is base" in n for n in got.notes)


def test_opensergo_traffic_lane() -> None:
    got = import_files([str(DATA / "opensergo-lane.yaml")])
    a, b = (r for r, _ in got.rules)
    assert (a.service, a.lane, b.service, b.lane) == ("spring-cloud-a", "gray", "spring-cloud-b", "beta")
    assert a.matches({H + "x-user-id": ("12345",), "http.target": "/index?x=1"})
    assert not a.matches({H + "x-user-id": ("12345",), "http.target": "/"})
    assert b.matches({H + "cookie": ("beta=1",), "url.query": "channel=app-ios"})
    assert not b.matches({H + "cookie": ("beta=1",), "url.query": "channel=web"})
    assert any("x-opensergo-traffic" in n for n in got.notes)
    assert any("dyed at tagged instances" in n for n in got.notes)


@pytest.mark.parametrize(("text", "message"), [
    ("a: [1, 2\n", r"bad\.yaml: not YAML"),
    ("- just\n- a list\n", r"bad\.yaml, document 1: not a Kubernetes object"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n", r"bad\.yaml: no Ingress, TrafficLane or TrafficRouter"),
    ("apiVersion: traffic.opensergo.io/v1alpha1\nkind: VirtualWorkloads\nmetadata: {name: w}\n",
     r"VirtualWorkloads default/w \(.*bad\.yaml, document 1\): unsupported OpenSergo kind"),
    (("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: c\n  annotations:\n"
     "    nginx.ingress.kubernetes.io/canary: 'true'\n    nginx.ingress.kubernetes.io/canary-weight: ten\n"
     "spec:\n  defaultBackend: {service: {name: c-gray}}\n"),
     r"Ingress default/c .*canary-weight: expected an integer, got 'ten'"),
    (("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: c}\nspec:\n  rules:\n"
     "  - host: a\n    http: {paths: [{path: /, backend: {}}]}\n"),
     r"Ingress default/c .*: spec.rules\[host a\].http.paths: a backend without a service"),
    (("apiVersion: traffic.opensergo.io/v1alpha1\nkind: TrafficLane\nmetadata: {name: l}\n"
     "spec: {selector: {app: a}, rules: {traffic: {http: {headers: {x: {exact: 1}}}}}}\n"),
     r"TrafficLane default/l .*spec.rules.lane.name: the lane is not named"),
])
def test_unreadable_and_unsupported_documents(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(RuleImportError, match=message):
        import_files([str(bad)])
    with pytest.raises(RuleImportError, match="cannot read"):
        import_files([str(tmp_path / "missing.yaml")])


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lanewatch.cli", "rules", "import", *args],
                          check=False, capture_output=True, text=True, timeout=60)


def test_cli_prints_valid_routing_rules(tmp_path: Path) -> None:
    files = [str(DATA / f) for f in ("ingress-gray.yaml", "ingress-v1-canaries.yaml",
                                     "opensergo-router.yaml", "opensergo-lane.yaml")]
    out = run_cli(*files)
    assert out.returncode == 0, out.stderr
    assert "# Ingress default/spring-cloud-a-gray" in out.stdout and "# note:" in out.stdout
    cfg = tmp_path / "lanewatch.yaml"
    cfg.write_text(out.stdout)
    loaded = config.load(environ={}, config_file=str(cfg)).routing_rules
    assert loaded == [r for r, _ in import_files(files).rules] and len(loaded) == 10
    assert yaml.safe_load(out.stdout)["routing_rules"][0]["service"] == "spring-cloud-a"


def test_cli_reads_standard_input() -> None:
    """``kubectl get ingress -A -o yaml | lanewatch rules import -``"""
    out = subprocess.run([sys.executable, "-m", "lanewatch.cli", "rules", "import", "-"], check=False,
                         input=(DATA / "ingress-v1-canaries.yaml").read_text(), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "# Ingress shop/cart-canary (-, document 1, items[1]): canary-by-cookie" in out.stdout


def test_ingresses_without_a_canary_say_so(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a}\n"
                     "spec: {defaultBackend: {service: {name: a}}}\n")
    got = import_files([str(plain)])
    assert not got.rules and any("no canary Ingress" in n for n in got.notes)


def test_cli_exit_2_names_the_problem(tmp_path: Path) -> None:
    out = run_cli(str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "nope.yaml: cannot read" in out.stderr and not out.stdout
    (tmp_path / "lane.yaml").write_text("apiVersion: traffic.opensergo.io/v1alpha1\nkind: TrafficLane\n"
                                        "metadata: {name: l}\nspec: {selector: {app: a}, rules: "
                                        "{traffic: {http: {headers: {x: {exact: 1}}}}, lane: {name: 'no lane!'}}}\n")
    out = run_cli(str(tmp_path / "lane.yaml"))
    assert out.returncode == 2 and "routing_rules[0]: needs service" in out.stderr
    out = run_cli("--service", "nothing", str(DATA / "ingress-gray.yaml"))
    assert out.returncode == 2 and "K8S_SERVICE=NAME" in out.stderr


def test_config_can_point_at_routing_files(tmp_path: Path) -> None:
    direct = config.load(environ={}, config_file=str(DATA / "ingress-gray.yaml"))
    assert [r.to_dict() for r in direct.routing_rules] == [
        {"service": "spring-cloud-a", "when": {"header": "x-user-id", "equals": "100"}, "lane": "gray"}]
    assert direct.rule_attributes == [H + "x-user-id", H + "x_user_id"]
    cfg = tmp_path / "lanewatch.yaml"
    cfg.write_text("liveness_ttl_s: 30\nrouting_rules:\n"
                   "  - {service: B, match: {x-user-id: '100'}, lane: gray}\n"
                   f"  - import: {DATA / 'ingress-gray.yaml'}\n    services: {{spring-cloud-a-gray: A}}\n"
                   f"  - import: [{DATA / 'opensergo-lane.yaml'}]\n")
    s = config.load(environ={}, config_file=str(cfg))
    assert [(r.service, r.lane) for r in s.routing_rules] == [
        ("B", "gray"), ("A", "gray"), ("spring-cloud-a", "gray"), ("spring-cloud-b", "beta")]
    cfg.write_text(f"routing_rules:\n  - import: {tmp_path / 'missing.yaml'}\n")
    with pytest.raises(ConfigError, match=r"routing_rules=.*\[0\]\.import: .*missing\.yaml: cannot read"):
        config.load(environ={}, config_file=str(cfg))
    cfg.write_text("a: 1\n---\nb: 2\n")
    with pytest.raises(ConfigError, match="2 YAML documents"):
        config.load(environ={}, config_file=str(cfg))


def test_api_bodies_cannot_import_files() -> None:
    """``parse_rules`` without ``allow_import`` (PUT /api/v1/rules) reads no server file."""
    with pytest.raises(ValueError, match=r"\[0\]: expected"):
        config.parse_rules([{"import": str(DATA / "ingress-gray.yaml")}])


def test_a_reload_reads_imported_files_again(tmp_path: Path) -> None:
    """SIGHUP (or any reload) re-derives imported rules; a file given as --config is watched itself."""
    from lanewatch.rules.reload import Reloader
    from lanewatch.rules.versions import RuleBook

    ingress = tmp_path / "ingress.yaml"
    ingress.write_text((DATA / "ingress-gray.yaml").read_text())
    cfg = tmp_path / "lanewatch.yaml"
    cfg.write_text(f"routing_rules:\n  - import: {ingress}\n")
    s = config.load(environ={}, config_file=str(cfg))
    book = RuleBook(s.routing_rules, s.topology)
    assert book.current.rules[0].when == config.parse_rules(
        [{"service": "x", "lane": "gray", "when": {"header": "x-user-id", "equals": "100"}}])[0].when
    ingress.write_text(ingress.read_text().replace("canary-by-header-value: '100'", "canary-by-header-value: '7'"))
    reloader = Reloader(book, str(cfg))
    new = reloader.reload("SIGHUP")
    assert new is not None and new.rules[0].matches({"http.request.header.x-user-id": ("7",)})
    ingress.write_text("not: [yaml")
    assert reloader.reload("SIGHUP") is None  # refused: the rules in force stay
    assert book.current.version == new.version and book.failure is not None
    assert "ingress.yaml: not YAML" in book.failure.error
