"""Start and stop the demo's child processes, leaving nothing behind.

Every child runs in its own process group (``start_new_session``), so stopping
it stops whatever it started too: SIGTERM to the group, then SIGKILL after a
timeout. On Linux the children also get SIGTERM if the demo process itself
dies (``PR_SET_PDEATHSIG``); besides, mesh processes stop by themselves when
the control server has been gone for a while.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
try:  # resolved here, in the parent: the child only calls it
    _prctl = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM when the forking thread dies.

    Only a call into libc, nothing that takes a Python-level lock. The fork
    must come from a thread that lives as long as the demo (the main thread).
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One started process."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path | None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the child's output (empty when it was not captured)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Supervisor:
    """The set of children of one demo run, by name."""

    def __init__(self, log_dir: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.children: dict[str, Child] = {}

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
        """Start ``argv`` as child ``name`` (its output goes to ``log_dir/name.log``)."""
        if name in self.children and self.children[name].alive():
            raise RuntimeError(f"{name} is already running (pid {self.children[name].pid})")
        log_path: Path | None = None
        out: IO[bytes] | int | None = None
        if self.log_dir is not None:
            log_path = self.log_dir / f"{name}.log"
            out = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            popen = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT if out else None,
                env={**self.env, **(env or {})}, start_new_session=True,
                preexec_fn=_die_with_parent)  # noqa: PLW1509 - see _die_with_parent
        finally:
            if out is not None and not isinstance(out, int):
                out.close()
        child = self.children[name] = Child(name, popen, log_path)
        log.debug("started %s pid %d: %s", name, popen.pid, " ".join(argv))
        return child

    def pids(self) -> dict[str, int]:
        """Pids of the children still running."""
        return {n: c.pid for n, c in self.children.items() if c.alive()}

    def dead(self) -> list[Child]:
        """Children that exited on their own (not stopped by :meth:`stop`)."""
        return [c for c in self.children.values() if not c.alive()]

    def stop(self, name: str, timeout_s: float = 5.0) -> None:
        """Stop one child: SIGTERM to its group, SIGKILL after ``timeout_s``; forget it."""
        child = self.children.pop(name, None)
        if child is not None:
            _stop_group([child], timeout_s)

    def stop_all(self, timeout_s: float = 5.0, first: Sequence[str] = ()) -> None:
        """Stop every child (``first`` before the others, e.g. traffic sources before sinks)."""
        early = [self.children.pop(n) for n in first if n in self.children]
        if early:
            _stop_group(early, timeout_s)
        rest = list(self.children.values())
        self.children.clear()
        _stop_group(rest, timeout_s)


def _signal_group(child: Child, sig: int) -> None:
    try:
        os.killpg(child.pid, sig)  # the child leads its own session and group
    except ProcessLookupError:
        pass
    except PermissionError:
        child.popen.send_signal(sig)


def _stop_group(children: Sequence[Child], timeout_s: float) -> None:
    for c in children:
        if c.alive():
            _signal_group(c, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for c in children:
        try:
            c.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) did not stop in %.0f s: killing it", c.name, c.pid, timeout_s)
            _signal_group(c, signal.SIGKILL)
            c.popen.wait(5.0)
        # whatever it left in its group goes too
        _signal_group(c, signal.SIGKILL)
