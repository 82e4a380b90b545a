"""How each of the demo's processes is started, and when they are all ready.

The command lines live here, in one place: ``lanewatch up`` for the
collector, ``python -m lanewatch.demo.{service,proxy,ingress}`` for the rest.
Every child gets the control server's URL; a mesh instance also gets its
lane, dyeing, pass-through headers, the rules file and the OTLP endpoint.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lanewatch.demo import scenarios as S
from lanewatch.demo.registry import Registry
from lanewatch.demo.supervisor import Supervisor
from lanewatch.stop_signals import Flag

#: Every mesh instance, as (service, lane).
INSTANCES = tuple((svc, lane) for svc in S.CHAIN for lane in S.LANES)
#: Children stopped before the collector (so it receives their goodbyes and last spans).
MESH_NAMES = ("ingress", *(f"{s}-{lane}" for s, lane in INSTANCES), "proxy")


class NotReady(RuntimeError):
    """A child did not come up in time or exited; the message names it and shows its log."""


@dataclass
class Launcher:
    """Builds the command lines and starts them under a :class:`Supervisor`."""

    supervisor: Supervisor
    host: str
    control_url: str
    config_path: Path
    endpoint: str  # OTLP/HTTP base URL; empty = not instrumented
    proxy_port: int
    ingress_port: int
    log_level: str = "WARNING"

    def _start(self, name: str, argv: list[str]) -> None:
        self.supervisor.start(name, [sys.executable, *argv, "--control", self.control_url,
                                     "--log-level", self.log_level])

    def collector(self, api_port: int, otlp_port: int, data_dir: str, ready_file: Path) -> None:
        """``lanewatch up`` with the demo's config (no gRPC receiver: the demo exports over HTTP)."""
        self.supervisor.start("collector", [
            sys.executable, "-m", "lanewatch.cli", "up", "--host", self.host, "--port", str(api_port),
            "--otlp-http-port", str(otlp_port), "--otlp-grpc-port", "-1", "--data-dir", data_dir,
            "--config", str(self.config_path), "--ready-file", str(ready_file),
            "--log-level", self.log_level])

    def proxy(self) -> None:
        self._start("proxy", ["-m", "lanewatch.demo.proxy", "--host", self.host, "--port", str(self.proxy_port)])

    def ingress(self) -> None:
        self._start("ingress", ["-m", "lanewatch.demo.ingress", "--host", self.host,
                                "--port", str(self.ingress_port)])

    def instance(self, svc: str, lane: str, dyeing: bool, passthrough: tuple[str, ...], name: str = "") -> None:
        """One mesh instance (child ``name``, default ``svc-lane``); A's calls go through the proxy."""
        argv = ["-m", "lanewatch.demo.service", "--service", svc, "--lane", lane, "--host", self.host,
                "--rules", str(self.config_path)]
        if self.endpoint:
            argv += ["--endpoint", self.endpoint]
        if dyeing:
            argv.append("--dyeing")
        for header in passthrough:
            argv += ["--passthrough", header]
        if svc == "A":
            argv += ["--proxy", f"http://{self.host}:{self.proxy_port}"]
        self._start(name or f"{svc}-{lane}", argv)

    def wait_ready(self, registry: Registry, deadline: float, collector_ready: Path | None,
                   abort: Flag | None = None) -> None:
        """Wait until every child has registered (and the collector wrote its ready file).

        Raises :class:`NotReady` when a child exits, the deadline passes or ``abort`` is set.
        """
        want = {"proxy", "ingress", *(f"{s}-{lane}" for s, lane in INSTANCES)}
        collector_ok = collector_ready is None
        while True:
            have = {i.service if i.role != "service" else f"{i.service}-{i.lane}"
                    for i in registry.live(role=None)}
            collector_ok = collector_ok or (collector_ready is not None and collector_ready.exists())
            if want <= have and collector_ok:
                return
            if abort is not None and abort.is_set():
                raise NotReady("interrupted while starting")
            dead = self.supervisor.dead()
            if dead or time.monotonic() > deadline:
                missing = sorted(want - have) + ([] if collector_ok else ["collector"])
                why = "; ".join(f"{c.name} exited ({c.popen.returncode}):\n{c.log_tail()}" for c in dead)
                raise NotReady(f"not ready: {', '.join(missing)} {why}".strip())
            time.sleep(0.1)
