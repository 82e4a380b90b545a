"""A mesh process's side of the control server: register, poll ``/state``, leave.

Polling ``/state`` a few times a second both renews the registration and
refreshes the process's view of live instances, faults and ingress rules, so
a lane-aware balancer sees a stopped instance within one poll interval. A
process whose parent has gone (it was re-parented), or whose control server
is gone for ``orphan_after_s``, stops itself: the demo that started it has
died without cleaning up, and its ``PR_SET_PDEATHSIG`` may not have arrived.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from lanewatch import lane as L
from lanewatch.demo import web
from lanewatch.demo.registry import Instance
from lanewatch.stop_signals import StopFlag, stop_on_signals

log = logging.getLogger(__name__)


def _terminate_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


class ControlClient:
    """The latest ``/state`` seen by this process, kept fresh by a daemon thread."""

    def __init__(self, url: str, me: Instance | None = None, interval_s: float = 0.2,
                 orphan_after_s: float = 15.0, on_orphan: Callable[[], None] = _terminate_self) -> None:
        self.url = url.rstrip("/")
        self.me = me
        self._interval = interval_s
        self._orphan_after = orphan_after_s
        self._on_orphan = on_orphan
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"instances": [], "faults": {}, "ingress": {}}
        self._instances: list[Instance] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-control-poll", daemon=True)
        self._last_ok = time.monotonic()
        self._parent = os.getppid()

    # -- lifecycle -----------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> ControlClient:
        """Register (when ``me`` is set), fetch the first state, then keep polling."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.me is not None:
                    web.post_json(f"{self.url}/registry", self.me.to_json())
                self.refresh()
                break
            except OSError as e:
                if time.monotonic() > deadline:
                    raise OSError(f"control server {self.url} unreachable: {e}") from e
                time.sleep(0.2)
        self._thread.start()
        return self

    def leave(self) -> None:
        """Deregister now and stop polling (callers stop picking this instance)."""
        self._stop.set()
        if self.me is not None:
            try:
                web.request("DELETE", f"{self.url}/registry/{self.me.id}", timeout=1.0)
            except OSError as e:
                log.warning("could not deregister %s: %s", self.me.id, e)

    def stop(self) -> None:
        self._stop.set()

    # -- views ---------------------------------------------------------------------
    def instances(self) -> list[Instance]:
        """Live mesh instances as of the last poll."""
        with self._lock:
            return list(self._instances)

    def fault(self, name: str) -> bool:
        """Whether fault ``name`` is on."""
        with self._lock:
            return bool(self._state.get("faults", {}).get(name, False))

    def ingress(self) -> dict[str, Any]:
        """The current ingress rules (JSON form of :class:`~lanewatch.demo.scenarios.IngressRules`)."""
        with self._lock:
            return dict(self._state.get("ingress") or {})

    # -- polling -------------------------------------------------------------------
    def refresh(self) -> None:
        """Fetch ``/state`` once (renewing this process's registration)."""
        with self._lock:
            seen = int(self._state.get("version", -1))
        query = f"?instance={self.me.id}&seen={seen}" if self.me is not None else ""
        state = web.get_json(f"{self.url}/state{query}", timeout=2.0)
        instances = [Instance.from_json(raw) for raw in state.get("instances", [])]
        with self._lock:
            self._state = state
            self._instances = instances
        self._last_ok = time.monotonic()
        if self.me is not None and not state.get("known", True) and not self._stop.is_set():
            web.post_json(f"{self.url}/registry", self.me.to_json())

    def refresh_quietly(self) -> None:
        """:meth:`refresh`, ignoring a failure (the last view stays)."""
        try:
            self.refresh()
        except (OSError, ValueError) as e:
            log.debug("refresh failed: %s", e)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            if os.getppid() != self._parent:
                log.error("parent process %d gone: stopping", self._parent)
                self._stop.set()
                self._on_orphan()
                return
            try:
                self.refresh()
            except (OSError, ValueError) as e:
                if time.monotonic() - self._last_ok > self._orphan_after:
                    log.error("control server gone for %.0f s (%s): stopping", self._orphan_after, e)
                    self._stop.set()
                    self._on_orphan()
                    return


#: A demo process that was told to stop is gone within this, whatever its goodbyes wait for
#: (a control server or collector that died with the demo, an exporter retrying into it).
LEAVE_DEADLINE_S = 8.0


def leave_by_deadline(deadline_s: float = LEAVE_DEADLINE_S) -> None:
    """Start the clock on a graceful leave: past ``deadline_s`` the process exits anyway."""
    t = threading.Timer(deadline_s, os._exit, args=(0,))
    t.daemon = True
    t.start()


def serve_role(role: str, host: str, port: int, control_url: str,
               make_app: Callable[[ControlClient], Callable[..., Iterable[bytes]]]) -> int:
    """Serve a non-mesh process (proxy, ingress) registered as ``role`` until SIGTERM or SIGINT."""
    stop = StopFlag()
    stop_on_signals(stop)
    server = web.make_server(host, port, lambda e, s: [])
    bound = int(server.server_address[1])
    me = Instance(id=f"{role}-{bound}", service=role, lane=L.BASE, addr=f"{host}:{bound}", role=role,
                  pid=os.getpid())
    control = ControlClient(control_url, me)
    server.set_app(make_app(control))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    control.start()
    log.info("%s serving at %s", role, me.addr)
    stop.wait()
    leave_by_deadline()
    server.shutdown()
    server.server_close()
    control.leave()
    return 0


def role_main(role: str, description: str, make_app: Callable[[ControlClient], Callable[..., Iterable[bytes]]],
              argv: list[str] | None = None) -> int:
    """The command line of a non-mesh process: ``--host --port --control --log-level``."""
    p = argparse.ArgumentParser(prog=f"lanewatch.demo.{role}", description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--control", required=True)
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level, format=f"%(asctime)s {role} %(levelname)s %(message)s")
    return serve_role(role, args.host, args.port, args.control, make_app)
