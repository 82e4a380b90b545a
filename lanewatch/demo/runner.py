"""Bring the whole demo up, keep it running, bring it down: :class:`Demo`.

Start order (most of it in parallel): the control server (in this process),
then the collector (``lanewatch up``), the proxy, the six instances and the
ingress as child processes; the demo waits until every process has registered
and the collector answers, then starts the traffic. Stop order: traffic,
ingress and mesh (each leaves gracefully), the collector last, so it receives
the goodbyes and the last spans.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lanewatch.demo import faults as F
from lanewatch.demo import scenarios as S
from lanewatch.demo import web
from lanewatch.demo.control import ControlApp, ControlServer
from lanewatch.demo.faults import Switchboard
from lanewatch.demo.launch import INSTANCES, MESH_NAMES, Launcher, NotReady
from lanewatch.demo.phases import Phases
from lanewatch.demo.registry import Registry
from lanewatch.demo.release import RELEASES
from lanewatch.demo.supervisor import Supervisor
from lanewatch.demo.traffic import Traffic
from lanewatch.stop_signals import Flag

log = logging.getLogger(__name__)

#: Two control polls: long enough for every process to see every registered instance.
SETTLE_S = 0.5


class DemoError(RuntimeError):
    """The demo could not start; the message says which part and why."""


@dataclass
class DemoOptions:
    """What ``lanewatch demo`` was asked for (see :mod:`lanewatch.demo.cli` for the flags)."""

    scenario: str = "all"
    canary: bool = True
    rate: float = 20.0
    phase_s: float = 30.0
    host: str = "127.0.0.1"
    port: int = 0
    otlp_http_port: int = 0
    ingress_port: int = 0
    control_port: int = 0
    collector: bool = True
    otlp_endpoint: str = ""  # export to this running collector instead of starting one
    traffic: bool = True
    data_dir: str = ""
    run_file: str = ""
    start_timeout_s: float = 90.0
    log_level: str = "WARNING"
    #: the collector delivers its alerts here too (``lanewatch up --alert-webhook``)
    alert_webhook: tuple[str, ...] = ()
    #: the collector asks for this bearer token (``lanewatch up --auth-token``); the instances
    #: send it (``OTEL_EXPORTER_OTLP_HEADERS``), also to an ``otlp_endpoint`` of the user's
    auth_token: str = ""


def token_env(token: str) -> dict[str, str]:
    """The children's environment for ``token``: the collector reads ``LANEWATCH_AUTH_TOKEN``
    (not a flag: it would show in ``ps``), the instances' OTLP exporters
    ``OTEL_EXPORTER_OTLP_HEADERS`` (value percent-encoded, as the OpenTelemetry SDK reads it)."""
    if not token:
        return {}
    return {"LANEWATCH_AUTH_TOKEN": token,
            "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=" + urllib.parse.quote(f"Bearer {token}")}


class Demo:
    """One demo run. ``start()``, then ``stop()`` (always, also after a failed start).

    The constructor binds the control port and raises ``OSError`` when a port
    given by a flag is taken.
    """

    def __init__(self, opts: DemoOptions) -> None:
        self.opts = opts
        for flag, port in (("--port", opts.port), ("--otlp-http-port", opts.otlp_http_port),
                           ("--ingress-port", opts.ingress_port)):
            if port and not web.port_is_free(port, opts.host):
                raise OSError(f"{flag} {port}: the port is in use")
        self.phases = Phases(opts.scenario, opts.canary, opts.phase_s)
        self.registry = Registry(ttl_s=3.0)
        self.switchboard = Switchboard()
        self.control_app = ControlApp(self.registry, self.switchboard, self.phases.ingress_json,
                                      version=lambda: self.switchboard.version + self.phases.version,
                                      release=self.release)
        self.control = ControlServer(self.control_app, opts.host, opts.control_port)
        self.run_dir = Path(tempfile.mkdtemp(prefix="lanewatch-demo-"))
        self.supervisor = Supervisor(log_dir=self.run_dir)
        self.supervisor.env.update(token_env(opts.auth_token))
        if not opts.auth_token:  # the collector must not ask for a token the instances do not send
            for name in ("LANEWATCH_AUTH_TOKEN", "LANEWATCH_AUTH_TOKEN_FILE"):
                self.supervisor.env.pop(name, None)
        self.traffic: Traffic | None = None
        self._lock = threading.RLock()
        self._actions: queue.Queue[tuple[Callable[[], None], threading.Event]] = queue.Queue()
        self.api_port = opts.port or web.free_port(opts.host)
        self.otlp_port = opts.otlp_http_port or web.free_port(opts.host)
        self.ingress_port = opts.ingress_port or web.free_port(opts.host)
        self.proxy_port = web.free_port(opts.host)
        self.config_path = self.run_dir / "collector.yaml"
        self.collector_ready = self.run_dir / "collector-ready.json"
        if opts.otlp_endpoint:
            opts.collector = False
        self.endpoint = opts.otlp_endpoint or (f"http://{opts.host}:{self.otlp_port}" if opts.collector else "")
        self.started_at = 0.0
        self.launch = Launcher(self.supervisor, opts.host, self.control.url, self.config_path, self.endpoint,
                               self.proxy_port, self.ingress_port, opts.log_level)

    # -- urls ----------------------------------------------------------------------------
    @property
    def dashboard_url(self) -> str:
        return f"http://{self.opts.host}:{self.api_port}/"

    @property
    def login_url(self) -> str:
        """The dashboard, signed in by a one-time ``?token=`` link when a token is set."""
        if not self.opts.auth_token:
            return self.dashboard_url
        return self.dashboard_url + "?" + urllib.parse.urlencode({"token": self.opts.auth_token})

    @property
    def ingress_url(self) -> str:
        return f"http://{self.opts.host}:{self.ingress_port}"

    def info(self) -> dict[str, Any]:
        """What scripts and tests need to talk to this run (also written to ``run_file``)."""
        return {"pid": os.getpid(), "scenario": self.opts.scenario, "canary": self.opts.canary,
                "control_url": self.control.url, "ingress_url": self.ingress_url,
                "dashboard_url": self.dashboard_url if self.opts.collector else "",
                "api_url": f"http://{self.opts.host}:{self.api_port}" if self.opts.collector else "",
                "otlp_url": self.endpoint,
                "config": str(self.config_path), "run_dir": str(self.run_dir),
                "children": self.supervisor.pids(), "startup_s": round(self.started_at, 2)}

    # -- start -----------------------------------------------------------------------------
    def start(self, abort: Flag | None = None) -> None:
        """Start everything and wait until it is ready; raises :class:`DemoError`.

        ``abort`` (e.g. set by SIGTERM) ends the wait early with a :class:`DemoError`.
        """
        t0 = time.monotonic()
        self.control.start()
        self.switchboard.subscribe(self._on_fault)
        doc = S.collector_settings(self.phases.all_scenarios(), self.control.url)
        if self.opts.alert_webhook:
            doc["alert_webhook"] = list(self.opts.alert_webhook)
        self.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))
        with self._lock:
            if self.opts.collector:
                self.launch.collector(self.api_port, self.otlp_port,
                                      self.opts.data_dir or str(self.run_dir / "data"), self.collector_ready)
            self.launch.proxy()
            for svc, lane in INSTANCES:
                self._start_instance(svc, lane)
            self.launch.ingress()
        try:
            self.launch.wait_ready(self.registry, t0 + self.opts.start_timeout_s,
                                   self.collector_ready if self.opts.collector else None, abort)
        except NotReady as e:
            raise DemoError(str(e)) from None
        time.sleep(SETTLE_S)  # every process sees the whole registry before traffic starts
        self.started_at = time.monotonic() - t0
        self.phases.restart_clock()
        if self.opts.traffic:
            self.traffic = Traffic(self.ingress_url, self.phases.current().traffic, self.opts.rate).start()
        if self.opts.run_file:
            Path(self.opts.run_file).write_text(json.dumps(self.info(), indent=2))
        log.info("demo up in %.1f s", self.started_at)

    def _start_instance(self, svc: str, lane: str, name: str = "") -> None:
        self.launch.instance(svc, lane, self.phases.current().dyes(svc, lane), self.phases.passthrough(), name)

    def start_instance(self, svc: str, lane: str, name: str = "") -> None:
        """Start one mesh instance (main thread only; :mod:`.release` calls it)."""
        with self._lock:
            self._start_instance(svc, lane, name)

    def release(self, kind: str) -> dict[str, Any]:
        """Run release ``kind`` (:data:`lanewatch.demo.release.KINDS`) on the main thread and
        wait for it (a control-server thread calls this for ``POST /release/KIND``)."""
        done, out = threading.Event(), {}
        self._actions.put((lambda: out.update(RELEASES[kind](self)), done))
        if threading.current_thread() is threading.main_thread():
            self.run_pending(0.0)
        elif not done.wait(120.0):
            return {"release": kind, "error": "still running"}
        return out

    # -- while running ---------------------------------------------------------------------------
    def _on_fault(self, name: str, on: bool) -> None:
        """Switchboard listener (a control-server thread): C-gray goes down or comes back.

        Processes are started from the main thread only (see the supervisor's
        parent-death signal), so the work is queued for :meth:`tick`; the
        caller waits for it, so ``POST /faults/c_gray_down`` returns when done.
        """
        if name != F.C_GRAY_DOWN:
            return
        done = threading.Event()
        self._actions.put((self._c_gray_down if on else self._c_gray_up, done))
        if threading.current_thread() is threading.main_thread():
            self.run_pending(0.0)
        elif not done.wait(20.0):
            log.warning("c_gray_down=%s still pending", on)

    def _c_gray_down(self) -> None:
        with self._lock:
            self.supervisor.stop("C-gray")

    def _c_gray_up(self) -> None:
        with self._lock:
            if "C-gray" not in self.supervisor.pids():
                self._start_instance("C", "gray")

    def run_pending(self, timeout_s: float) -> None:
        """Run queued process changes (main thread only); waits up to ``timeout_s`` for one."""
        try:
            action, done = self._actions.get(timeout=timeout_s) if timeout_s > 0 else self._actions.get_nowait()
        except queue.Empty:
            return
        try:
            action()
        finally:
            done.set()

    def tick(self) -> str:
        """Advance scenario phases (``--scenario all``); returns a note for the progress line.

        Main thread only: it may restart A-gray.
        """
        if self.phases.due():
            self._next_phase()
        on = [n for n, v in self.switchboard.snapshot().items() if v]
        note = f"scenario {self.phases.current().name}"
        return note + (f" | faults: {', '.join(on)}" if on else "")

    def _next_phase(self) -> None:
        """Switch scenario without a false alarm: no request may meet rules of the wrong phase.

        Pause the traffic until nothing is in flight, switch the ingress rules,
        wait until every process has them; if A-gray's dyeing changes, it
        leaves (gracefully) before the new traffic starts and comes back after.
        """
        if self.traffic is not None:
            self.traffic.pause()
        change = self.phases.advance()
        if change is None:
            return
        old, new = change
        log.info("scenario %s -> %s", old.name, new.name)
        self.registry.wait_all_seen(self.control_app.version(), timeout_s=3.0)
        restart = old.dyes("A", "gray") != new.dyes("A", "gray")
        if restart:
            with self._lock:
                self.supervisor.stop("A-gray")
        if self.traffic is not None:
            self.traffic.set_kinds(new.traffic)
            self.traffic.resume()
        if restart:
            with self._lock:
                self._start_instance("A", "gray")

    # -- stop -----------------------------------------------------------------------------------
    def reap(self) -> list[str]:
        """Forget children that exited on their own; returns a note about each."""
        with self._lock:
            dead = self.supervisor.dead()
            for child in dead:
                self.supervisor.children.pop(child.name, None)
        return [f"{c.name} exited ({c.popen.returncode}): {c.log_tail(5)}" for c in dead]

    def stop(self, keep_run_dir: bool = False) -> None:
        """Stop traffic and every child process, free every port, remove the run directory."""
        if self.traffic is not None:
            self.traffic.stop()
        self.switchboard.unsubscribe_all()
        while not self._actions.empty():  # release anyone waiting on a queued change
            self._actions.get_nowait()[1].set()
        with self._lock:
            self.supervisor.stop_all(timeout_s=8.0, first=MESH_NAMES)
        self.control.stop()
        if self.opts.run_file:
            _remove_if_ours(Path(self.opts.run_file))
        if not keep_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)


def _remove_if_ours(path: Path) -> None:
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass
