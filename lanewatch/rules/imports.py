"""Rules derived from the routing configuration users already have: YAML files (one or many
documents each, ``kind: List`` expanded) holding Kubernetes Ingress objects with ingress-nginx
canary annotations (:mod:`.ingress`) and OpenSergo ``TrafficLane`` / ``TrafficRouter``
documents (:mod:`.opensergo`).

Other Kubernetes objects in the same files (Deployments, Services, ...) are skipped with a
note. :class:`RuleImportError` (exit 2 in ``lanewatch rules import``) names the file and
document for what cannot be read: an unreadable file, bad YAML, a document that is not a
Kubernetes object, a malformed Ingress / TrafficLane / TrafficRouter, an OpenSergo kind
lanewatch does not read, or files that hold no routing document at all.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lanewatch.rules import ingress, opensergo
from lanewatch.rules.model import Rule


class RuleImportError(ValueError):
    """A file or document that cannot be imported; the message names it."""


@dataclass
class Imported:
    """Derived rules, each with where it came from, and notes on what gave no rule."""

    rules: list[tuple[Rule, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def documents(path: str) -> Iterator[tuple[Mapping[str, Any], str]]:
    """(document, origin) for every non-empty document of the file (``-``: standard input)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise RuleImportError(f"{path}: cannot read: {e}") from None
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        raise RuleImportError(f"{path}: not YAML: {e}") from None
    for n, doc in enumerate(docs, 1):
        if doc is None:
            continue
        where = f"{path}, document {n}"
        if not isinstance(doc, Mapping) or not doc.get("kind") or not doc.get("apiVersion"):
            raise RuleImportError(f"{where}: not a Kubernetes object (needs apiVersion and kind), got "
                                  f"{_short(doc)}")
        if doc["kind"] == "List":
            for j, item in enumerate(doc.get("items") or ()):
                if not isinstance(item, Mapping) or not item.get("kind"):
                    raise RuleImportError(f"{where}, items[{j}]: not a Kubernetes object")
                yield item, f"{where}, items[{j}]"
        else:
            yield doc, where


def _short(doc: Any) -> str:
    text = repr(doc)
    return text if len(text) <= 80 else text[:77] + "..."


def _name(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or '?'}"


def import_files(paths: Sequence[str], services: Mapping[str, str] | None = None,
                 lane: str | None = None) -> Imported:
    """The rules the files' routing documents give, in file and document order (a file's
    Ingresses together, as ingress-nginx pairs canary and primary ones)."""
    services = services or {}
    out = Imported()
    for path in paths:
        ingresses: list[tuple[Mapping[str, Any], str]] = []
        found = 0
        for doc, where in documents(path):
            kind, api = str(doc["kind"]), str(doc["apiVersion"])
            origin = f"{doc['kind']} {_name(doc)} ({where})"
            if kind == "Ingress" and api.split("/")[0] in ("networking.k8s.io", "extensions"):
                ingresses.append((doc, origin))
                found += 1
            elif api.startswith("traffic.opensergo.io/"):
                if kind not in opensergo.KINDS:
                    raise RuleImportError(f"{origin}: unsupported OpenSergo kind {kind!r} (lanewatch "
                                          f"reads {', '.join(opensergo.KINDS)})")
                read = opensergo.from_traffic_router if kind == "TrafficRouter" else opensergo.from_traffic_lane
                _add(out, origin, lambda d=doc, o=origin, f=read: f(d, o, services))
                found += 1
            else:
                out.notes.append(f"{origin}: skipped (not routing)")
        if ingresses:
            _add(out, "", lambda i=ingresses: ingress.from_ingresses(i, services, lane))
        if not found:
            raise RuleImportError(f"{path}: no Ingress, TrafficLane or TrafficRouter document")
    return out


def _add(out: Imported, origin: str, derive: Any) -> None:
    try:
        rules, notes = derive()
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise RuleImportError(f"{origin}: {e}" if origin else str(e)) from None
    out.rules += rules
    out.notes += notes


def import_entry(raw: Mapping[str, Any], where: str) -> list[Rule]:
    """``routing_rules:`` entry ``{import: FILE | [FILES], services: {k8s: name}, lane: L}``."""
    unknown = [str(k) for k in raw if k not in ("import", "services", "lane")]
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown key (an import has import, services, lane)")
    files = raw["import"]
    paths = [files] if isinstance(files, str) else files
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise ValueError(f"{where}.import: expected a file or a list of files, got {files!r}")
    services = raw.get("services") or {}
    if not isinstance(services, Mapping):
        raise TypeError(f"{where}.services: expected {{kubernetes service: service.name}}")
    try:
        got = import_files(paths, {str(k): str(v) for k, v in services.items()},
                           str(raw["lane"]) if raw.get("lane") else None)
    except RuleImportError as e:
        raise ValueError(f"{where}.import: {e}") from None
    return [r for r, _ in got.rules]


def is_manifest(doc: Any) -> bool:
    """Whether a YAML document is a Kubernetes object (so ``--config`` holds routing documents
    rather than settings)."""
    return isinstance(doc, Mapping) and "apiVersion" in doc and "kind" in doc


def to_yaml(imported: Imported, title: str) -> str:
    """``routing_rules:`` with the derived rules, each under a comment saying where it came
    from; the notes as comments at the top."""
    lines = [f"# {title}"]
    lines += [f"# note: {n}" for n in imported.notes]
    lines.append("routing_rules:" + ("" if imported.rules else " []"))
    for rule, origin in imported.rules:
        lines.append(f"# {origin}")
        lines.append(yaml.safe_dump([rule.to_dict()], sort_keys=False, default_flow_style=None,
                                    allow_unicode=True, width=100).rstrip())
    return "\n".join(lines) + "\n"
