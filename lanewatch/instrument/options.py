"""Settings of the instrumentation side, in one place: default, env var, check.

These are read inside the *user's* services (``configure()`` and the
``opentelemetry-instrument`` distro), not by the collector, so they live here
rather than in :mod:`lanewatch.config`. Explicit ``configure()`` arguments win
over environment variables, which win over the defaults below.

=============================  ===================================  ==================
setting                        env var                              default
=============================  ===================================  ==================
service_name                   ``OTEL_SERVICE_NAME``                ``unknown_service``
lane (instance lane)           ``LANEWATCH_LANE``, else             ``base``
                               ``service.lane`` in
                               ``OTEL_RESOURCE_ATTRIBUTES``
instance_id                    ``LANEWATCH_INSTANCE_ID``, else      a random UUID
                               ``service.instance.id`` in
                               ``OTEL_RESOURCE_ATTRIBUTES``
endpoint                       ``OTEL_EXPORTER_OTLP_ENDPOINT``      ``http://localhost:4318``
                                                                    (grpc: ``:4317``)
protocol                       ``OTEL_EXPORTER_OTLP_PROTOCOL``      ``http/protobuf``
dyeing                         ``LANEWATCH_DYEING``                 ``false``
passthrough_headers            ``LANEWATCH_PASSTHROUGH_HEADERS``    none (comma list)
lane_header                    ``LANEWATCH_LANE_HEADER``            ``x-mse-tag``
heartbeat_interval_s           ``LANEWATCH_HEARTBEAT_INTERVAL_S``   ``2.0`` (0 = off)
export_delay_ms                ``LANEWATCH_EXPORT_DELAY_MS``        ``1000``
handle_sigterm                 ``LANEWATCH_HANDLE_SIGTERM``         ``true``
=============================  ===================================  ==================
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from lanewatch import lane as L

PROTOCOLS = ("http/protobuf", "grpc")
_HEADER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class InstrumentConfigError(ValueError):
    """An instrumentation setting is malformed; the message names the setting."""


@dataclass(frozen=True)
class Options:
    """Everything ``configure()`` needs, resolved and validated."""

    service_name: str = "unknown_service"
    lane: str = L.BASE
    instance_id: str = ""
    endpoint: str = ""
    protocol: str = "http/protobuf"
    dyeing: bool = False
    passthrough_headers: tuple[str, ...] = ()
    lane_header: str = L.DEFAULT_LANE_HEADER
    heartbeat_interval_s: float = 2.0
    export_delay_ms: int = 1000
    handle_sigterm: bool = True

    @property
    def dye_lane(self) -> str | None:
        """The lane stamped onto untagged requests, or None when dyeing is off (or lane is base)."""
        return self.lane if self.dyeing and self.lane != L.BASE else None

    def resolved_endpoint(self) -> str:
        """The OTLP base endpoint: the configured one or the protocol's default."""
        if self.endpoint:
            return self.endpoint.rstrip("/")
        return "http://localhost:4317" if self.protocol == "grpc" else "http://localhost:4318"

    def validate(self) -> Options:
        """Raise :class:`InstrumentConfigError` naming the first bad setting; return self."""
        if not L.is_valid_lane(self.lane):
            raise InstrumentConfigError(f"lane={self.lane!r}: not a valid lane name (LANEWATCH_LANE)")
        if self.protocol not in PROTOCOLS:
            raise InstrumentConfigError(f"protocol={self.protocol!r}: one of {PROTOCOLS}")
        for name in (self.lane_header, *self.passthrough_headers):
            if not name or not set(name) <= _HEADER_CHARS:
                raise InstrumentConfigError(
                    f"header {name!r}: lower-case letters, digits, '-', '_', '.' only "
                    "(LANEWATCH_LANE_HEADER / LANEWATCH_PASSTHROUGH_HEADERS)")
        if self.lane_header in self.passthrough_headers or L.REQUEST_LANE_ATTR in self.passthrough_headers:
            raise InstrumentConfigError("passthrough_headers must not repeat the lane header or 'lane'")
        if self.heartbeat_interval_s < 0:
            raise InstrumentConfigError(f"heartbeat_interval_s={self.heartbeat_interval_s}: must be >= 0")
        if self.export_delay_ms <= 0:
            raise InstrumentConfigError(f"export_delay_ms={self.export_delay_ms}: must be > 0")
        if not self.service_name:
            raise InstrumentConfigError("service_name: must not be empty (OTEL_SERVICE_NAME)")
        return self


def resource_attributes_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Parse ``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k2=v2``); malformed pairs are skipped."""
    out: dict[str, str] = {}
    for pair in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise InstrumentConfigError(f"{name}={raw!r}: expected true or false")


def _number(name: str, raw: str, kind: type[Any]) -> Any:
    try:
        return kind(raw.strip())
    except ValueError:
        raise InstrumentConfigError(f"{name}={raw!r}: expected a {kind.__name__}") from None


def header_list(raw: str | Iterable[str]) -> tuple[str, ...]:
    """Normalise a comma list or sequence of header names: stripped, lower-case, unique."""
    items = raw.split(",") if isinstance(raw, str) else raw
    out: list[str] = []
    for item in items:
        name = item.strip().lower()
        if name and name not in out:
            out.append(name)
    return tuple(out)


def options_from_env(environ: Mapping[str, str]) -> Options:
    """Options from environment variables alone (not yet validated)."""
    res = resource_attributes_from_env(environ)
    opts = Options()
    env = environ.get
    changes: dict[str, Any] = {
        "service_name": env("OTEL_SERVICE_NAME") or res.get(L.SERVICE_NAME_ATTR) or opts.service_name,
        "lane": env("LANEWATCH_LANE") or res.get(L.INSTANCE_LANE_ATTR) or L.BASE,
        "instance_id": env("LANEWATCH_INSTANCE_ID") or res.get(L.INSTANCE_ID_ATTR) or "",
        "endpoint": env("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
        "protocol": env("OTEL_EXPORTER_OTLP_PROTOCOL") or opts.protocol,
    }
    if "LANEWATCH_DYEING" in environ:
        changes["dyeing"] = _flag("LANEWATCH_DYEING", environ["LANEWATCH_DYEING"])
    if "LANEWATCH_PASSTHROUGH_HEADERS" in environ:
        changes["passthrough_headers"] = header_list(environ["LANEWATCH_PASSTHROUGH_HEADERS"])
    if env("LANEWATCH_LANE_HEADER"):
        changes["lane_header"] = environ["LANEWATCH_LANE_HEADER"].strip().lower()
    if env("LANEWATCH_HEARTBEAT_INTERVAL_S"):
        changes["heartbeat_interval_s"] = _number(
            "LANEWATCH_HEARTBEAT_INTERVAL_S", environ["LANEWATCH_HEARTBEAT_INTERVAL_S"], float)
    if env("LANEWATCH_EXPORT_DELAY_MS"):
        changes["export_delay_ms"] = _number("LANEWATCH_EXPORT_DELAY_MS", environ["LANEWATCH_EXPORT_DELAY_MS"], int)
    if "LANEWATCH_HANDLE_SIGTERM" in environ:
        changes["handle_sigterm"] = _flag("LANEWATCH_HANDLE_SIGTERM", environ["LANEWATCH_HANDLE_SIGTERM"])
    return replace(opts, **changes)


def resolve(environ: Mapping[str, str], **explicit: Any) -> Options:
    """Env options overridden by the explicit (non-None) arguments, with an instance id, validated."""
    opts = options_from_env(environ)
    changes = {k: v for k, v in explicit.items() if v is not None}
    if "passthrough_headers" in changes:
        changes["passthrough_headers"] = header_list(changes["passthrough_headers"])
    if "lane_header" in changes:
        changes["lane_header"] = str(changes["lane_header"]).strip().lower()
    opts = replace(opts, **changes)
    if not opts.instance_id:
        opts = replace(opts, instance_id=str(uuid.uuid4()))
    return opts.validate()
