"""The process memory ceiling (``memory_limit_mib``), in the manner of the OpenTelemetry
Collector's ``memory_limiter``: above a soft limit (the limit less ``memory_spike_mib``)
new export requests are refused with a retryable error until the resident set falls
below it again, so that the collector sheds load before the kernel kills it.

The resident set size is read from ``/proc/self/statm`` (one small read), at most every
:data:`SAMPLE_S` seconds; between samples the last reading stands. Each episode above the
soft limit is logged once when it begins and once when it ends. While above it, memory is
reclaimed at most every :data:`RECLAIM_S` (a full garbage collection, then glibc's
``malloc_trim`` so that freed memory goes back to the kernel): without it the resident set
of a CPython process stays at its peak after a flood has passed, and the ceiling would go on
refusing every export although nothing is held any more.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import threading
import time
from collections.abc import Callable

from lanewatch.collect.ingest import Overloaded

log = logging.getLogger(__name__)
MIB = 1 << 20
#: How often the resident set size is sampled, seconds.
SAMPLE_S = 0.1
#: The delay a refused sender is told to wait, seconds.
RETRY_AFTER_S = 2.0
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: While above the soft limit, memory is reclaimed at most this often, seconds.
RECLAIM_S = 1.0


def reclaim() -> None:
    """Collect garbage and hand freed heap memory back to the kernel (glibc; elsewhere only
    the collection)."""
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_bytes() -> int:
    """This process's resident set size in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


class MemoryLimit:
    """``check()`` raises :class:`Overloaded` while the resident set is above the soft
    limit. ``limit_mib`` 0 switches it off; ``spike_mib`` 0 means 20% of the limit."""

    def __init__(self, limit_mib: int, spike_mib: int = 0,
                 read: Callable[[], int] = rss_bytes, clock: Callable[[], float] = time.monotonic,
                 free: Callable[[], None] = reclaim) -> None:
        self.limit_mib = limit_mib
        self.spike_mib = spike_mib if spike_mib > 0 else limit_mib // 5
        self.soft_bytes = max(limit_mib - self.spike_mib, 1) * MIB
        self._read, self._clock, self._free = read, clock, free
        self._lock = threading.Lock()
        self._sampled_at = self._freed_at = -1e18
        self.rss = 0
        self.over = False

    @property
    def enabled(self) -> bool:
        return self.limit_mib > 0

    def sample(self) -> int:
        """The resident set size, read afresh if the last reading is older than SAMPLE_S."""
        now = self._clock()
        with self._lock:
            if now - self._sampled_at < SAMPLE_S:
                return self.rss
            self._sampled_at = now
            self.rss = self._read()
            if self.rss > self.soft_bytes and now - self._freed_at >= RECLAIM_S:
                self._freed_at = now
                self._free()
                self.rss = self._read()
            over = self.rss > self.soft_bytes
            if over != self.over:
                self.over = over
                if over:
                    log.warning("memory limit: resident set %d MiB is above the soft limit of %d MiB "
                                "(memory_limit_mib %d less memory_spike_mib %d): refusing new export "
                                "requests with retryable errors", self.rss // MIB, self.soft_bytes // MIB,
                                self.limit_mib, self.spike_mib)
                else:
                    log.warning("memory limit: resident set %d MiB is below the soft limit of %d MiB "
                                "again: accepting export requests", self.rss // MIB, self.soft_bytes // MIB)
            return self.rss

    def check(self) -> None:
        if not self.enabled:
            return
        self.sample()
        if self.over:
            raise Overloaded(f"lanewatch's memory ({self.rss // MIB} MiB) is above its soft limit of "
                             f"{self.soft_bytes // MIB} MiB (memory_limit_mib {self.limit_mib}); "
                             "retry later", retry_after_s=RETRY_AFTER_S)

    def state(self) -> dict[str, object]:
        if not self.enabled:
            return {"limit_mib": 0}
        self.sample()
        return {"limit_mib": self.limit_mib, "soft_limit_mib": self.soft_bytes // MIB,
                "rss_mib": self.rss // MIB, "refusing": self.over}
