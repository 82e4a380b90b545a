"""Rules from OpenSergo traffic documents (``traffic.opensergo.io/v1alpha1``). Pure.

* ``TrafficRouter`` (an Istio VirtualService with a ``fallback`` per destination): each
  ``spec.http`` entry with a ``match`` and one destination subset becomes a rule of the
  router's service (``metadata.labels.app``, else the first label of ``spec.hosts[0]``)
  to the lane named like the subset; the subset of the catch-all entry (no ``match``) is
  base. ``match`` blocks are alternatives (any), the fields inside one all hold:
  ``headers`` and ``queryParams`` (``{name: StringMatch}``), ``withoutHeaders``, ``uri``
  and ``method``. A StringMatch is ``exact``, ``prefix`` or ``regex`` (whole value, as
  Istio's RE2 matches). A weighted split over several subsets is random per request: no
  rule, a note.
* ``TrafficLane``: traffic of ``spec.selector.app`` matching ``spec.rules.traffic.http``
  (``headers``, ``queryParams``, ``cookies``, ``uri``, ``method``) enters lane
  ``spec.rules.lane.name``. A lane given only by ``workload`` (dye at tagged instances,
  scenario 1) needs no rule; ``traceIdBaggage`` names the header that carries the lane, which
  belongs in ``request_lane_attributes``.

A field lanewatch cannot check (``sourceLabels``, ``port``, ``authority``, ...) drops the
entry it is in, with a note: a rule that checks less than the router does would be wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lanewatch.rules.ingress import Derived
from lanewatch.rules.match import Source
from lanewatch.rules.model import All, AnyOf, Compare, Condition, Not, Rule

KINDS = ("TrafficRouter", "TrafficLane")
_STRING_MATCH = ("exact", "prefix", "regex")


class Unsupported(ValueError):
    """A field lanewatch cannot check; the entry is dropped with a note."""


def string_match(source: Source, raw: Any, where: str) -> Condition:
    """An Istio/OpenSergo StringMatch (``{exact|prefix|regex: value}``) on ``source``."""
    if not isinstance(raw, Mapping):
        if isinstance(raw, (str, int, float)) and not isinstance(raw, bool):
            return Compare(source, "equals", (str(raw),))  # a bare value: exact
        raise ValueError(f"{where}: expected a StringMatch {{exact|prefix|regex: value}}, got {raw!r}")
    ops = [k for k in raw if k in _STRING_MATCH]
    other = [str(k) for k in raw if k not in _STRING_MATCH]
    if other:
        raise Unsupported(f"{where}.{other[0]}")
    if len(ops) != 1:
        raise ValueError(f"{where}: a StringMatch has exactly one of exact, prefix, regex; got {raw!r}")
    value = str(raw[ops[0]])
    if ops[0] == "exact":
        return Compare(source, "equals", (value,))
    if ops[0] == "prefix":
        return Compare(source, "prefix", (value,))
    return Compare(source, "regex", (f"^(?:{value})$",))


def _named(kind: str, raw: Any, where: str) -> list[Condition]:
    """``{name: StringMatch}``, or a list of such one-entry maps (also the flattened
    ``- X-User-Id:\\n  exact: 1`` the TrafficLane spec shows)."""
    items: list[tuple[str, Any]] = []
    if isinstance(raw, Mapping):
        items = [(str(k), v) for k, v in raw.items()]
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                raise TypeError(f"{where}[{i}]: expected {{name: StringMatch}}, got {item!r}")
            names = [k for k in item if k not in _STRING_MATCH]
            if len(names) == 1 and item[names[0]] is None:  # the flattened form
                items.append((str(names[0]), {k: v for k, v in item.items() if k in _STRING_MATCH}))
            else:
                items += [(str(k), v) for k, v in item.items()]
    elif raw is not None:
        raise ValueError(f"{where}: expected {{name: StringMatch}}, got {raw!r}")
    return [string_match(Source(kind, name.lower() if kind == "header" else name), v, f"{where}.{name}")
            for name, v in items]


def http_match(raw: Any, where: str, cookies: bool = False) -> Condition:
    """One HTTPMatchRequest as an ``all`` of its fields."""
    if not isinstance(raw, Mapping):
        raise TypeError(f"{where}: expected a match mapping, got {raw!r}")
    conds: list[Condition] = []
    for key, value in raw.items():
        at = f"{where}.{key}"
        if key == "headers":
            conds += _named("header", value, at)
        elif key == "queryParams":
            conds += _named("query", value, at)
        elif key == "cookies" and cookies:
            conds += _named("cookie", value, at)
        elif key == "withoutHeaders":
            conds += [Not(c) for c in _named("header", value, at)]
        elif key == "uri":
            conds.append(string_match(Source("path"), value, at))
        elif key == "method":
            conds.append(string_match(Source("method"), value, at))
        elif key == "name" or (key == "ignoreUriCase" and not value):
            continue
        else:
            raise Unsupported(at)
    return conds[0] if len(conds) == 1 else All(tuple(conds))


def _service(doc: Mapping[str, Any], services: Mapping[str, str]) -> str:
    labels = (doc.get("metadata") or {}).get("labels") or {}
    spec = doc.get("spec") or {}
    name = str(labels.get("app") or "")
    if not name:
        selector = spec.get("selector") or {}
        name = str(selector.get("app") or "") if isinstance(selector, Mapping) else ""
    if not name and spec.get("hosts"):
        name = str(spec["hosts"][0]).split(".")[0]
    if not name:
        raise ValueError("names no service: set metadata.labels.app, spec.selector.app or spec.hosts")
    return services.get(name, name)


def from_traffic_router(doc: Mapping[str, Any], origin: str, services: Mapping[str, str]) -> Derived:
    service = _service(doc, services)
    http = (doc.get("spec") or {}).get("http") or []
    if not isinstance(http, list):
        raise TypeError("spec.http: expected a list")
    subsets = [_subsets(e, f"spec.http[{i}]") for i, e in enumerate(http)]
    default = next((s[0] for e, s in zip(http, subsets) if not e.get("match") and len(s) == 1), None)
    rules: list[tuple[Rule, str]] = []
    notes: list[str] = []
    for i, (entry, subset) in enumerate(zip(http, subsets)):
        where = f"spec.http[{i}]"
        if not entry.get("match"):
            continue
        if len(subset) != 1:
            notes.append(f"{origin}: {where} splits over subsets {subset} by weight, at random per "
                         "request: no rule can say which request goes where (a later entry's rule "
                         "may then claim requests this one took)")
            continue
        lane = "base" if subset[0] in (default, "base", "") else subset[0]
        matches = entry["match"] if isinstance(entry["match"], list) else [entry["match"]]
        try:
            blocks = [http_match(m, f"{where}.match[{j}]") for j, m in enumerate(matches)]
        except Unsupported as e:
            notes.append(f"{origin}: {where} dropped: lanewatch cannot check {e} on spans (a later "
                         "entry's rule may then claim requests this one took)")
            continue
        cond = blocks[0] if len(blocks) == 1 else AnyOf(tuple(blocks))
        rules.append((Rule(service=service, match={}, lane=lane, when=cond), f"{origin}: {where}"))
    if default is not None:
        notes.append(f"{origin}: subset {default} (the catch-all route) is base")
    return rules, notes


def _subsets(entry: Any, where: str) -> list[str]:
    if not isinstance(entry, Mapping):
        raise TypeError(f"{where}: expected a mapping, got {entry!r}")
    route = entry.get("route") or []
    out = []
    for j, r in enumerate(route):
        dest = (r or {}).get("destination") if isinstance(r, Mapping) else None
        if not isinstance(dest, Mapping):
            raise TypeError(f"{where}.route[{j}]: expected {{destination: {{host, subset}}}}, got {r!r}")
        subset = str(dest.get("subset") or "")
        if subset not in out and (r.get("weight") is None or r.get("weight") != 0):
            out.append(subset)
    return out


def from_traffic_lane(doc: Mapping[str, Any], origin: str, services: Mapping[str, str]) -> Derived:
    service = _service(doc, services)
    raw = (doc.get("spec") or {}).get("rules")
    entries = raw if isinstance(raw, list) else [raw] if isinstance(raw, Mapping) else None
    if not entries:
        raise ValueError("spec.rules: expected the lane's rules (traffic, lane)")
    rules: list[tuple[Rule, str]] = []
    notes: list[str] = []
    for i, r in enumerate(entries):
        where = "spec.rules" + (f"[{i}]" if isinstance(raw, list) else "")
        if not isinstance(r, Mapping):
            raise TypeError(f"{where}: expected a mapping, got {r!r}")
        lane = str(((r.get("lane") or {}).get("name")) or "")
        if not lane:
            raise ValueError(f"{where}.lane.name: the lane is not named")
        if r.get("traceIdBaggage"):
            notes.append(f"{origin}: the lane travels in {r['traceIdBaggage']!r}: list it in "
                         "request_lane_attributes")
        http = ((r.get("traffic") or {}).get("http"))
        if not http:
            if r.get("workload"):
                notes.append(f"{origin}: {where}: lane {lane} is dyed at tagged instances (workload), "
                             "which lanewatch follows without a rule")
            continue
        try:
            cond = http_match(http, f"{where}.traffic.http", cookies=True)
        except Unsupported as e:
            notes.append(f"{origin}: {where} dropped: lanewatch cannot check {e} on spans")
            continue
        rules.append((Rule(service=service, match={}, lane=lane, when=cond), f"{origin}: {where}"))
    return rules, notes
