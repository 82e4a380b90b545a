"""All of lanewatch's settings in one place: default, env var, YAML file, flags.

Precedence, lowest first: the defaults below, the YAML file (``--config`` or
``LANEWATCH_CONFIG``), environment variables, command-line flags. Every
setting is documented here and listed by ``lanewatch config``; ``validate()``
runs at start-up and names the setting that is wrong.

YAML layout (every key optional)::

    host: 127.0.0.1
    otlp_http_port: 4318
    liveness_ttl_s: 10
    request_lane_attributes: [lane, x-mse-tag]
    rules:                       # per-service routing rules (scenario 3)
      - service: B
        match: {x-user-id: "100"}
        lane: gray
    topology:                    # declared services and lanes, always live
      C: [base, gray]
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from lanewatch import lane as L


class ConfigError(ValueError):
    """A setting is missing, malformed or out of range; the message names it."""


@dataclass(frozen=True)
class Rule:
    """A per-service routing rule: when every ``match`` attribute equals its
    value on a hop of ``service``, the hop's expected lane is ``lane``."""

    service: str
    match: Mapping[str, str]
    lane: str

    def matches(self, attributes: Mapping[str, str]) -> bool:
        return all(attributes.get(k) == v for k, v in self.match.items())


def _setting(default: Any, doc: str, env: bool = True) -> Any:
    if isinstance(default, (list, dict, tuple)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc, "env": env})
    return field(default=default, metadata={"doc": doc, "env": env})


@dataclass(frozen=True)
class Settings:
    """Typed settings. Env var for field ``x`` is ``LANEWATCH_X``."""

    host: str = _setting("127.0.0.1", "Address every listener binds to.")
    otlp_http_port: int = _setting(4318, "OTLP/HTTP receiver port (0 = pick a free port).")
    otlp_grpc_port: int = _setting(4317, "OTLP/gRPC receiver port (0 = pick a free port, -1 = off).")
    port: int = _setting(8050, "Query API and dashboard port (0 = pick a free port).")
    data_dir: str = _setting("./lanewatch-data", "Directory of the embedded store (DuckDB file).")
    config: str = _setting("", "YAML file with settings, rules and topology.")

    max_body_bytes: int = _setting(16 * 1024 * 1024, "Largest OTLP request body, after decompression (413 beyond).")
    max_lanes: int = _setting(64, "Distinct lanes tracked; further lanes count as '_other' and are shown.")
    max_services: int = _setting(2000, "Distinct services tracked; further ones count as '_other'.")

    request_lane_attributes: list[str] = _setting(  # noqa: RUF009 -- _setting returns a dataclasses.field
        [L.REQUEST_LANE_ATTR], "Span attribute keys read for the request lane, first non-empty wins "
        "(aliases such as x-mse-tag may be listed).")
    instance_lane_attributes: list[str] = _setting(  # noqa: RUF009 -- _setting returns a dataclasses.field
        [L.INSTANCE_LANE_ATTR], "Resource attribute keys read for the instance lane, first non-empty wins.")

    liveness_ttl_s: float = _setting(10.0, "An instance is live this long after its last telemetry.")
    trace_wait_s: float = _setting(6.0, "A trace is final this long after its last span arrived.")
    closed_trace_keep_s: float = _setting(60.0, "Finalised traces are kept this long to place late spans.")
    max_pending_spans: int = _setting(2_000_000, "Spans held for trace assembly; beyond, oldest traces are "
                                      "finalised early and counted.")
    max_violations_kept: int = _setting(100_000, "Violating traces kept in the store (oldest dropped first).")
    sample_ok_traces: float = _setting(0.01, "Share of in-lane traces kept for drill-down.")
    flush_interval_s: float = _setting(0.5, "How often rollups are written to the store.")
    retention_s: int = _setting(7 * 86400, "History kept in the store.")
    downsample_after_s: int = _setting(3600, "Per-second rollups older than this are merged to per-minute.")
    trace_url_template: str = _setting("", "Link to the user's trace UI, e.g. http://jaeger:16686/trace/{trace_id}.")
    demo_control_url: str = _setting("", "Set by `lanewatch demo`: its fault switchboard, shown in the dashboard.")

    rules: list[Rule] = _setting([], "Per-service routing rules (YAML only).", env=False)  # noqa: RUF009
    topology: dict[str, list[str]] = _setting({}, "Declared services -> lanes, always live (YAML only).", env=False)  # noqa: RUF009

    def validate(self) -> Settings:
        """Raise :class:`ConfigError` naming the first bad setting; return self."""
        for name in ("otlp_http_port", "port"):
            v = getattr(self, name)
            if not 0 <= v <= 65535:
                raise ConfigError(f"{name}={v}: a port is 0..65535")
        if not -1 <= self.otlp_grpc_port <= 65535:
            raise ConfigError(f"otlp_grpc_port={self.otlp_grpc_port}: a port is 0..65535, or -1 for off")
        positive = ("max_body_bytes", "max_lanes", "max_services", "liveness_ttl_s", "trace_wait_s",
                    "max_pending_spans", "max_violations_kept", "flush_interval_s", "retention_s",
                    "downsample_after_s", "closed_trace_keep_s")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)}: must be > 0")
        if not 0.0 <= self.sample_ok_traces <= 1.0:
            raise ConfigError(f"sample_ok_traces={self.sample_ok_traces}: a share is 0..1")
        if not self.request_lane_attributes or not self.instance_lane_attributes:
            raise ConfigError("request_lane_attributes and instance_lane_attributes need at least one key")
        for i, r in enumerate(self.rules):
            if not L.is_valid_lane(r.lane) or not r.service or not r.match:
                raise ConfigError(f"rules[{i}]: needs service, a non-empty match and a valid lane: {r}")
        for svc, lanes in self.topology.items():
            bad = [x for x in lanes if not L.is_valid_lane(x)]
            if bad:
                raise ConfigError(f"topology.{svc}: invalid lane names {bad}")
        return self

    @property
    def rule_attributes(self) -> list[str]:
        """Span attribute keys the rules read, in a stable order."""
        return sorted({k for r in self.rules for k in r.match})

    @property
    def db_path(self) -> Path:
        return Path(self.data_dir) / "lanewatch.duckdb"


def env_name(name: str) -> str:
    return "LANEWATCH_" + name.upper()


def describe() -> list[tuple[str, str, Any, str]]:
    """(setting, env var, default, doc) for every setting: for docs and ``lanewatch config``."""
    out = []
    for f in fields(Settings):
        factory: Any = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else factory()
        out.append((f.name, env_name(f.name) if f.metadata["env"] else "(YAML only)", default, f.metadata["doc"]))
    return out


def _coerce(name: str, raw: Any, target: Any) -> Any:
    try:
        if name == "rules":
            return [_rule(i, r) for i, r in enumerate(raw or [])]
        if name == "topology":
            if not isinstance(raw, Mapping):
                raise TypeError("a mapping of service -> [lanes]")
            return {str(k): [str(x) for x in v] for k, v in raw.items()}
        if isinstance(target, list):
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return [str(x).strip() for x in items if str(x).strip()]
        if isinstance(target, bool):
            return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on")
        return type(target)(raw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}={raw!r}: {e}") from None


def _rule(i: int, raw: Any) -> Rule:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("match"), Mapping):
        raise ConfigError(f"rules[{i}]: expected {{service, match: {{attr: value}}, lane}}, got {raw!r}")
    return Rule(service=str(raw.get("service", "")), lane=str(raw.get("lane", "")),
                match={str(k): str(v) for k, v in raw["match"].items()})


def load(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
         config_file: str | None = None) -> Settings:
    """Build and validate Settings from defaults, YAML, env and flags (in that order)."""
    environ = os.environ if environ is None else environ
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    defaults = {f[0]: f[2] for f in describe()}
    values: dict[str, Any] = {}
    path = flags.get("config") or config_file or environ.get(env_name("config"), "")
    if path:
        try:
            doc = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"config={path}: {e}") from None
        if not isinstance(doc, Mapping):
            raise ConfigError(f"config={path}: the top level must be a mapping")
        unknown = set(doc) - set(defaults)
        if unknown:
            raise ConfigError(f"config={path}: unknown settings {sorted(unknown)}")
        values.update({k: _coerce(k, v, defaults[k]) for k, v in doc.items()})
        values["config"] = str(path)
    for f in fields(Settings):
        key = env_name(f.name)
        if f.metadata["env"] and key in environ and f.name != "config":
            values[f.name] = _coerce(key, environ[key], defaults[f.name])
    for k, v in flags.items():
        if k not in defaults:
            raise ConfigError(f"unknown setting {k}")
        values[k] = _coerce(k, v, defaults[k])
    return Settings(**values).validate()


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes).validate()

