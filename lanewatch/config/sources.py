"""Where settings come from: defaults, a YAML file, environment variables, flags.

Generic over :class:`~lanewatch.config.settings.Settings`: every key is resolved
through the fields' metadata (:mod:`.fields`), sections included, so no setting
is special-cased here.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import yaml

from lanewatch.config.fields import ConfigError, default_of, leaves, section_of
from lanewatch.config.settings import Settings

log = logging.getLogger("lanewatch.config")
ENV_PREFIX = "LANEWATCH_"
_FIELDS = {f.name: f for f in fields(Settings)}
_LEAVES = dict(leaves(Settings))
_warned: set[tuple[str, str]] = set()


def env_name(name: str) -> str:
    """``trace_wait_s`` -> ``LANEWATCH_TRACE_WAIT_S``; ``compare.alpha`` -> ``LANEWATCH_COMPARE__ALPHA``."""
    return ENV_PREFIX + name.upper().replace(".", "__")


def describe() -> list[tuple[str, str, Any, str]]:
    """(setting, env var, default, doc) for every setting, sections' as ``section.key``:
    for docs and ``lanewatch config``."""
    return [(name, env_name(name) if f.metadata["env"] else "(YAML only)", default_of(f), f.metadata["doc"])
            for name, f in leaves(Settings)]


def _short(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 80 else text[:77] + "..."


def _by_type(raw: Any, default: Any) -> Any:
    if isinstance(default, bool):
        return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on")
    if isinstance(default, list):
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        return [str(x).strip() for x in items if str(x).strip()]
    if isinstance(default, (int, float)) and isinstance(raw, bool):
        raise TypeError("expected a number")
    if isinstance(default, int) and isinstance(raw, float) and not raw.is_integer():
        raise ValueError("expected a whole number")
    if isinstance(default, str) and not isinstance(raw, (str, int, float)):
        raise TypeError("expected a string")
    return type(default)(raw)


def _coerce(name: str, raw: Any) -> Any:
    f = _LEAVES[name]
    try:
        parse = f.metadata["parse"]
        return parse(raw) if parse is not None else _by_type(raw, default_of(f))
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}={_short(raw)}: {e}") from None


def _put(values: dict[str, Any], name: str, raw: Any) -> None:
    """Set ``name`` (a top-level setting, ``section.key``, or a whole section from a mapping)."""
    top, _, key = name.partition(".")
    f = _FIELDS.get(top)
    cls = section_of(f) if f is not None else None
    if f is None or (key and cls is None):
        raise ConfigError(f"unknown setting {name}")
    if cls is None:
        values[top] = _coerce(top, raw)
        return
    if not key:
        if isinstance(raw, cls):
            raw = {g.name: getattr(raw, g.name) for g in fields(cls)}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{top}={_short(raw)}: a section is a mapping of key: value")
        for k, v in raw.items():
            _put(values, f"{top}.{k}", v)
        return
    if f"{top}.{key}" not in _LEAVES:
        known = ", ".join(g.name for g in fields(cls))
        raise ConfigError(f"unknown setting {top}.{key} (section {top} has: {known})")
    values.setdefault(top, {})[key] = _coerce(f"{top}.{key}", raw)


def _renamed(doc: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The YAML document with old key names replaced by their new ones (warned once per file)."""
    out = dict(doc)
    for new, f in _FIELDS.items():
        for old in f.metadata.get("old_names", ()):
            if old not in out:
                continue
            if new in out:
                raise ConfigError(f"config={path}: both {old!r} and {new!r} given; {old!r} is the old "
                                  f"name of {new!r}, keep only {new!r}")
            if (path, old) not in _warned:
                _warned.add((path, old))
                log.warning("config=%s: %r is deprecated, rename it to %r", path, old, new)
            out[new] = out.pop(old)
    return out


def _yaml(path: str) -> dict[str, Any]:
    """The settings file; a file of Kubernetes / OpenSergo documents (Ingress, TrafficLane,
    TrafficRouter: ``docs/rules.md``) stands for ``routing_rules: [{import: path}]``."""
    try:
        with open(path, encoding="utf-8") as f:  # a stream: YAML errors name the file
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"config={path}: {e}") from None
    if any(_is_manifest(d) for d in docs):
        return {"routing_rules": [{"import": path}]}
    if len(docs) > 1:
        raise ConfigError(f"config={path}: {len(docs)} YAML documents: settings are one document "
                          "(or the file holds Ingress / TrafficLane / TrafficRouter documents)")
    doc = docs[0] if docs else {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"config={path}: the top level must be a mapping")
    return _renamed(doc, path)


def _is_manifest(doc: Any) -> bool:
    return isinstance(doc, Mapping) and "apiVersion" in doc and "kind" in doc


def _from_env(values: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, f in _LEAVES.items():
        key = env_name(name)
        if f.metadata["env"] and key in environ and name != "config":
            _put(values, name, environ[key])
    sections = {env_name(n) + "__": n for n, f in _FIELDS.items() if section_of(f) is not None}
    for key in environ:
        for prefix, sec in sections.items():
            if key.startswith(prefix) and f"{sec}.{key[len(prefix):].lower()}" not in _LEAVES:
                raise ConfigError(f"{key}: unknown setting {sec}.{key[len(prefix):].lower()}")


def _build(values: Mapping[str, Any]) -> Settings:
    kwargs = {}
    for name, value in values.items():
        cls = section_of(_FIELDS[name])
        kwargs[name] = cls(**value) if cls is not None else value
    return Settings(**kwargs)


def load(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
         config_file: str | None = None) -> Settings:
    """Build and validate Settings from defaults, YAML, env and flags (in that order).

    ``flags`` are top-level settings (``section.key`` is accepted too); None values are unset."""
    environ = os.environ if environ is None else environ
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    values: dict[str, Any] = {}
    path = flags.get("config") or config_file or environ.get(env_name("config"), "")
    if path:
        path = str(path)
        for k, v in _yaml(path).items():
            try:
                _put(values, k, v)
            except ConfigError as e:
                raise ConfigError(f"config={path}: {e}") from None
        values["config"] = path
    _from_env(values, environ)
    for k, v in flags.items():
        if k != "config":
            _put(values, k, v)
    return _build(values).validate()


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """``settings`` with some values replaced, validated. A section may be given as a mapping
    of the keys to change: ``with_overrides(s, compare={"alpha": 0.05})``."""
    for name, value in changes.items():
        f = _FIELDS.get(name)
        cls = section_of(f) if f is not None else None
        if cls is not None and isinstance(value, Mapping):
            changes[name] = dataclasses.replace(getattr(settings, name), **value)
    return dataclasses.replace(settings, **changes).validate()
