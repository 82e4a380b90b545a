"""Admission of export requests: a bounded number of decodes at once, and a bounded wait.

A request that cannot start decoding within ``wait_s`` is refused with
:class:`~lanewatch.collect.ingest.Overloaded` (HTTP 503 + ``Retry-After``, gRPC
``UNAVAILABLE`` + ``RetryInfo``): the sender hears "retry later" within seconds instead
of waiting behind every other request until its own timeout (an SDK exporter gives up
after 10 s and sends the same spans again, which only adds to the load).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from lanewatch.collect.ingest import Overloaded

#: The delay a refused sender is told to wait (``Retry-After``, ``RetryInfo``), seconds.
RETRY_AFTER_S = 1.0


def cores() -> int:
    """The cores this process may run on (its affinity mask, else the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class Admission:
    """At most ``slots`` decodes run at once (0 = one per core); a request waits at most
    ``wait_s`` for a slot. Thread-safe."""

    def __init__(self, slots: int, wait_s: float) -> None:
        self.slots = slots if slots > 0 else cores()
        self.wait_s = wait_s
        self._sem = threading.BoundedSemaphore(self.slots)
        self._lock = threading.Lock()
        self.running = 0
        self.waiting = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a decode slot for the ``with`` body; :class:`Overloaded` after ``wait_s``."""
        got = self._sem.acquire(blocking=False)
        if not got:
            with self._lock:
                self.waiting += 1
            try:
                got = self._sem.acquire(timeout=self.wait_s) if self.wait_s > 0 else False
            finally:
                with self._lock:
                    self.waiting -= 1
        if not got:
            raise Overloaded(f"all {self.slots} decode slots stayed busy for {self.wait_s:g} s "
                             "(admission_wait_s); retry later", retry_after_s=RETRY_AFTER_S, reason="busy")
        with self._lock:
            self.running += 1
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1
            self._sem.release()

    def state(self) -> dict[str, float | int]:
        with self._lock:
            return {"decode_slots": self.slots, "decodes_running": self.running,
                    "decodes_waiting": self.waiting, "admission_wait_s": self.wait_s}
