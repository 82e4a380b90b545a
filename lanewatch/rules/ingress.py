"""Rules from Kubernetes Ingress objects with ingress-nginx canary annotations. Pure.

ingress-nginx routes a request to the canary Ingress's backend when (in this order, the
first that decides wins; ``rootfs/etc/nginx/lua/balancer.lua``):

1. header ``canary-by-header`` is present and: equals ``canary-by-header-value`` (when set);
   else matches the PCRE ``canary-by-header-pattern`` (when set, searched, not anchored);
   else is ``always`` (canary) or ``never`` (**not** canary, stop). Any other value: go on.
2. cookie ``canary-by-cookie`` is ``always`` (canary) or ``never`` (not canary, stop).
3. a random draw: ``math.random(total) <= canary-weight``, ``total`` being
   ``canary-weight-total`` when above 100, else 100.

Steps 1 and 2 become rules of the canary backend's service, in that order (``never`` as a
rule to ``base``, so it wins over later ones). Step 3 is random per request: a weight of
``total`` or more becomes a catch-all rule (``when: {all: []}``); a weight in between cannot
say which requests it picked, so it yields no rule and a note (those hops are judged by
their lane tag: dye at the gray entry, scenario 1).

Which lanewatch service and lane the canary backend is: the annotations ``lanewatch/service``
and ``lanewatch/lane`` on the canary Ingress, else the ``services`` mapping given (Kubernetes
Service name -> ``service.name``), else the name shared with the primary Ingress's backend for
the same host and path (``spring-cloud-a-base`` / ``spring-cloud-a-gray`` ->
``spring-cloud-a``), else the backend name less a ``-<lane>`` suffix. The lane: the
annotation, else the one given, else ``gray``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from lanewatch.rules.match import Source
from lanewatch.rules.model import All, Compare, Condition, Rule

PREFIX = "nginx.ingress.kubernetes.io/"
SERVICE_ANNOTATION = "lanewatch/service"
LANE_ANNOTATION = "lanewatch/lane"
DEFAULT_LANE = "gray"

#: (rule, where it came from) and notes, as every importer returns them
Derived = tuple[list[tuple[Rule, str]], list[str]]


def annotations_of(doc: Mapping[str, Any]) -> dict[str, str]:
    raw = (doc.get("metadata") or {}).get("annotations") or {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def is_canary(doc: Mapping[str, Any]) -> bool:
    return annotations_of(doc).get(PREFIX + "canary", "").strip().lower() == "true"


def backends(doc: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(host, path, Service name) of every backend, networking.k8s.io/v1 and v1beta1 alike."""
    spec = doc.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise TypeError("spec: expected a mapping")
    for default in (spec.get("defaultBackend"), spec.get("backend")):
        if isinstance(default, Mapping) and _service_of(default):
            yield "*", "*", _service_of(default)
    for rule in spec.get("rules") or ():
        if not isinstance(rule, Mapping):
            raise TypeError(f"spec.rules: expected mappings, got {rule!r}")
        host = str(rule.get("host") or "*")
        for p in (rule.get("http") or {}).get("paths") or ():
            name = _service_of((p or {}).get("backend") or {})
            if not name:
                raise ValueError(f"spec.rules[host {host}].http.paths: a backend without a service: {p!r}")
            yield host, str(p.get("path") or "/"), name


def _checked_backends(doc: Mapping[str, Any], origin: str) -> list[tuple[str, str, str]]:
    try:
        return list(backends(doc))
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"{origin}: {e}") from None


def _service_of(backend: Mapping[str, Any]) -> str:
    svc = backend.get("service")
    if isinstance(svc, Mapping):
        return str(svc.get("name") or "")
    return str(backend.get("serviceName") or "")


def _common_prefix(a: str, b: str) -> str:
    out = []
    for x, y in zip(a.split("-"), b.split("-")):
        if x != y:
            break
        out.append(x)
    return "-".join(out)


def service_and_lane(canary: Mapping[str, Any], backend: str, primary: str | None,
                     services: Mapping[str, str], lane: str | None) -> tuple[str, str, str]:
    """(service, lane, how the service was found) for a canary backend."""
    ann = annotations_of(canary)
    lane_name = ann.get(LANE_ANNOTATION) or lane or DEFAULT_LANE
    if ann.get(SERVICE_ANNOTATION):
        return ann[SERVICE_ANNOTATION], lane_name, f"annotation {SERVICE_ANNOTATION}"
    if backend in services:
        return services[backend], lane_name, "--service mapping"
    if primary and primary != backend:
        common = _common_prefix(primary, backend)
        if common:
            return common, lane_name, f"shared with the primary backend {primary}"
    if backend.endswith("-" + lane_name):
        return backend[: -len(lane_name) - 1], lane_name, f"backend name less -{lane_name}"
    return backend, lane_name, "the backend Service's name (set lanewatch/service or --service)"


def canary_rules(doc: Mapping[str, Any], service: str, lane: str, origin: str) -> Derived:
    """The rules (and notes) one canary Ingress's annotations give for ``service``."""
    ann = {k[len(PREFIX):]: v for k, v in annotations_of(doc).items() if k.startswith(PREFIX)}
    rules: list[tuple[Rule, str]] = []
    notes: list[str] = []

    def rule(cond: Condition, to: str, why: str) -> None:
        rules.append((Rule(service=service, match={}, lane=to, when=cond), f"{origin}: {why}"))

    header = ann.get("canary-by-header", "").strip()
    if header:
        h = Source("header", header.lower())
        value, pattern = ann.get("canary-by-header-value", ""), ann.get("canary-by-header-pattern", "")
        if value:
            rule(Compare(h, "equals", (value,)), lane, f"canary-by-header {header} = {value}")
        elif pattern:
            rule(Compare(h, "regex", (pattern,)), lane, f"canary-by-header {header} ~ {pattern}")
        else:
            rule(Compare(h, "equals", ("always",)), lane, f"canary-by-header {header} = always")
            rule(Compare(h, "equals", ("never",)), "base", f"canary-by-header {header} = never")
    cookie = ann.get("canary-by-cookie", "").strip()
    if cookie:
        c = Source("cookie", cookie)
        rule(Compare(c, "equals", ("always",)), lane, f"canary-by-cookie {cookie} = always")
        rule(Compare(c, "equals", ("never",)), "base", f"canary-by-cookie {cookie} = never")
    weight, total = _number(ann, "canary-weight", 0), _number(ann, "canary-weight-total", 100)
    total = max(100, total)
    if weight >= total:
        rule(All(()), lane, f"canary-weight {weight}/{total}: every other request")
    elif weight > 0:
        notes.append(f"{origin}: canary-weight {weight}/{total} sends a random {100 * weight / total:g}% "
                     f"of the other requests to {service} [{lane}] (drawn per request): no rule can "
                     "say which; those hops are judged by their lane tag (dye at the gray entry)")
    if not rules and weight <= 0:
        notes.append(f"{origin}: a canary Ingress with no header, cookie or weight: routes nothing")
    return rules, notes


def _number(ann: Mapping[str, str], key: str, default: int) -> int:
    raw = ann.get(key, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"annotation {PREFIX}{key}: expected an integer, got {raw!r}") from None


def from_ingresses(docs: list[tuple[Mapping[str, Any], str]], services: Mapping[str, str],
                   lane: str | None) -> Derived:
    """Rules of every canary Ingress among ``docs`` ((document, origin) pairs); the primary
    Ingresses name the services."""
    found = [(doc, origin, _checked_backends(doc, origin)) for doc, origin in docs]
    primary: dict[tuple[str, str], str] = {}
    for doc, _, paths in found:
        if not is_canary(doc):
            for host, path, name in paths:
                primary.setdefault((host, path), name)
    rules: list[tuple[Rule, str]] = []
    notes: list[str] = []
    for doc, origin, paths in found:
        if not is_canary(doc):
            continue
        seen: set[str] = set()
        for host, path, backend in paths:
            if backend in seen:
                continue
            seen.add(backend)
            service, lane_name, how = service_and_lane(doc, backend, primary.get((host, path)),
                                                       services, lane)
            try:
                got, more = canary_rules(doc, service, lane_name, origin)
            except ValueError as e:
                raise ValueError(f"{origin}: {e}") from None
            notes += more
            notes.append(f"{origin}: backend {backend} is service {service} [{lane_name}] ({how})")
            rules += [r for r in got if r[0] not in [x for x, _ in rules]]
        if not seen:
            raise ValueError(f"{origin}: a canary Ingress without a backend")
    if not any(is_canary(doc) for doc, _, _ in found):
        notes.append(f"{docs[0][1]}: no canary Ingress (nginx.ingress.kubernetes.io/canary: \"true\") "
                     "among the Ingresses: nothing to derive")
    return rules, notes
