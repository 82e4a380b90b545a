"""Stopping on SIGTERM / SIGINT without a lock in the signal handler.

A Python signal handler runs in the main thread between two bytecodes, and a
second signal can run a second handler *inside* the first one. A handler that
calls ``threading.Event.set()`` then waits for the lock the interrupted
``set()`` holds: the process hangs and never stops (seen when a killed demo
sent its children one ``PR_SET_PDEATHSIG`` SIGTERM per exiting thread). So the
handlers here only assign an attribute, and waiting is a short sleep loop in
the main thread (which also runs the handler promptly when the kernel hands the
signal to another thread).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any, Protocol

#: How often :meth:`StopFlag.wait` looks at the flag.
POLL_S = 0.05

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Flag(Protocol):
    """What a loop asks of a stop flag (a :class:`StopFlag` or a :class:`threading.Event`)."""

    def is_set(self) -> bool: ...


class StopFlag:
    """``set`` / ``is_set`` / ``wait`` like :class:`threading.Event`, with a ``set`` safe in a handler."""

    def __init__(self) -> None:
        self._set = False
        self.signum: int | None = None

    def set(self) -> None:
        self._set = True  # one store: nothing a nested handler could wait for

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Until set or ``timeout`` seconds; whether it is set."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self._set:
            left = POLL_S if end is None else min(POLL_S, end - time.monotonic())
            if left <= 0:
                break
            time.sleep(left)
        return self._set

    def handler(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        self._set = True


def stop_on_signals(flag: StopFlag, signals: Iterable[int] = STOP_SIGNALS) -> dict[int, Any]:
    """Make ``signals`` set ``flag``; the handlers they had, for :func:`restore`."""
    return {sig: signal.signal(sig, flag.handler) for sig in signals}


def restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


class Stops:
    """SIGTERM and SIGINT caught from construction on (SIGHUP too, given ``on_hangup``).

    Make one *before* telling anyone the process is ready (a ready file, a log line): a
    supervisor's SIGTERM right after readiness is then a clean stop, not the default
    action's death."""

    def __init__(self, on_hangup: Callable[[], None] | None = None) -> None:
        self.on_hangup = on_hangup
        self._stop, self._hup = StopFlag(), StopFlag()
        stop_on_signals(self._stop)
        if on_hangup is not None:
            stop_on_signals(self._hup, (signal.SIGHUP,))

    def wait(self) -> int | None:
        """Block until SIGTERM or SIGINT (the signal's number); a SIGHUP calls ``on_hangup``.

        ``on_hangup`` runs here in the main thread's loop, not in the handler, so it may
        take locks."""
        while not self._stop.wait(POLL_S * 4):
            if self.on_hangup is not None and self._hup.is_set():
                self._hup.clear()  # a SIGHUP from here on sets it again: one more reload
                self.on_hangup()
        return self._stop.signum

