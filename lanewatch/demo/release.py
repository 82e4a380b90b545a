"""Releases under traffic, for ``lanewatch demo release rolling|promote|crash`` (issue 13).

Each runs on the demo's main thread (processes are started from it only) and returns what it
did. What lanewatch should say of each, with the demo's routing behaving:

* ``rolling``: every gray instance in turn leaves gracefully (goodbye, deregister) and comes
  back; gray traffic falls back to base meanwhile. Fallbacks, no leak, no intrusion, no alert.
* ``promote``: gray becomes base. Per service, a new base instance of the gray build starts,
  the old base instance leaves, then the gray instance leaves; base traffic never meets a gray
  instance. No intrusion; gray traffic then falls back to base (no gray lane is left).
* ``crash``: ``kill -9`` of C-gray (no goodbye), back after the liveness TTL: gray hops at C
  served by base are ``uncertain`` while C-gray is overdue, fallbacks once it is past the TTL;
  no leak alert.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any, Protocol

from lanewatch import lane as L
from lanewatch.demo import scenarios as S
from lanewatch.demo.registry import Registry
from lanewatch.demo.supervisor import Supervisor

KINDS = ("rolling", "promote", "crash")
#: How long a restarted instance may take to register.
READY_S = 30.0
#: The demo collector's liveness TTL (collector.yaml) and a margin: a crashed C-gray is back
#: only after it is gone for lanewatch.
CRASH_DOWN_S = 5.0


class Mesh(Protocol):
    """What a release needs of the running demo (:class:`lanewatch.demo.runner.Demo`)."""

    registry: Registry
    supervisor: Supervisor

    def start_instance(self, svc: str, lane: str, name: str = "") -> None: ...


def _ids(reg: Registry, svc: str, lane: str) -> set[str]:
    return {i.id for i in reg.live() if i.service == svc and i.lane == lane}


def _wait_new(reg: Registry, svc: str, lane: str, old: set[str], timeout_s: float = READY_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not _ids(reg, svc, lane) - old:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{svc}-{lane} did not register again within {timeout_s:g} s")
        time.sleep(0.05)


def _wait_gone(reg: Registry, ids: set[str], timeout_s: float = READY_S) -> None:
    deadline = time.monotonic() + timeout_s
    while {i.id for i in reg.live()} & ids and time.monotonic() < deadline:
        time.sleep(0.05)


def rolling(mesh: Mesh, pause_s: float = 1.0) -> dict[str, Any]:
    """Restart every gray instance, one at a time: graceful leave, then back."""
    done = []
    for svc in S.CHAIN:
        name = f"{svc}-gray"
        if name not in mesh.supervisor.pids():
            continue
        old = _ids(mesh.registry, svc, "gray")
        mesh.supervisor.stop(name, timeout_s=8.0)  # SIGTERM: goodbye, deregister, flush
        time.sleep(pause_s)
        mesh.start_instance(svc, "gray")
        _wait_new(mesh.registry, svc, "gray", old)
        done.append(name)
    return {"release": "rolling", "restarted": done}


def promote(mesh: Mesh) -> dict[str, Any]:
    """Gray becomes base: a new base instance per service, then the old base and the gray leave."""
    done = []
    for svc in S.CHAIN:
        gray, base = f"{svc}-gray", f"{svc}-{L.BASE}"
        if gray not in mesh.supervisor.pids():
            continue
        old = _ids(mesh.registry, svc, L.BASE)
        mesh.start_instance(svc, L.BASE, name=f"{base}~")
        _wait_new(mesh.registry, svc, L.BASE, old)
        mesh.supervisor.stop(base, timeout_s=8.0)
        mesh.supervisor.children[base] = mesh.supervisor.children.pop(f"{base}~")
        gray_ids = _ids(mesh.registry, svc, "gray")
        mesh.supervisor.stop(gray, timeout_s=8.0)
        _wait_gone(mesh.registry, gray_ids)
        done.append(svc)
    return {"release": "promote", "promoted": done}


def crash(mesh: Mesh, down_s: float = CRASH_DOWN_S,
          kill: Callable[[int, int], None] = os.killpg) -> dict[str, Any]:
    """``kill -9`` C-gray (its process group: no goodbye), then start it again after ``down_s``."""
    child = mesh.supervisor.children.pop("C-gray", None)
    if child is None:
        return {"release": "crash", "killed": None}
    old = _ids(mesh.registry, "C", "gray")
    try:
        kill(child.popen.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.popen.wait(5)
    time.sleep(down_s)
    mesh.start_instance("C", "gray")
    _wait_new(mesh.registry, "C", "gray", old)
    return {"release": "crash", "killed": "C-gray", "down_s": down_s}


RELEASES: dict[str, Callable[[Mesh], dict[str, Any]]] = {"rolling": rolling, "promote": promote,
                                                         "crash": crash}
