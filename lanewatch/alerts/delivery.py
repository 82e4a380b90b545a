"""One receiver URL's delivery: a bounded queue, its own thread, retries with backoff.

What both notifiers share (:mod:`.notify`, :mod:`.alertmanager`). ``submit`` only
appends to the queue, so the evaluation thread (and the span path behind it) never
waits for a receiver; a full queue drops the notification and counts it. The thread
POSTs each payload as JSON, in order, and retries as Alertmanager's own notifiers do:
on 5xx, timeouts and connection errors, with exponential backoff (capped, and for a
bounded total time), never on 4xx or any other answer. Each URL has its own worker, so
a slow receiver delays no other. Log lines show the URL redacted
(:func:`lanewatch.config.urls.redact`), never as given.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import requests

import lanewatch
from lanewatch.alerts.model import Alert
from lanewatch.config.urls import redact, scrub

log = logging.getLogger("lanewatch.alerts")

#: The counters of :meth:`DeliveryWorker.stats`, for ``/metrics`` and health.
STATS: Final = ("sent", "failed", "retried", "dropped")
#: lanewatch's own URL for ``externalURL``/``generatorURL``: a string, or read when sending
#: (the dashboard's port may be picked at start-up).
ExternalURL = str | Callable[[], str]
_HEADERS: Final = {"Content-Type": "application/json", "User-Agent": f"lanewatch/{lanewatch.__version__}"}


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Scrubber(logging.Filter):
    """Hides the receivers' secrets in urllib3's debug lines (each names the request's path
    and query); runs only when that logger is enabled for DEBUG."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        for url in list(self.urls):
            msg = scrub(msg, url)
        record.msg, record.args = msg, ()
        return True


_SCRUBBER: Final = _Scrubber()
logging.getLogger("urllib3.connectionpool").addFilter(_SCRUBBER)


@dataclass(frozen=True)
class RetryPolicy:
    """How one notification is attempted: each attempt times out after ``timeout_s``
    (connect, then read); retries wait ``first_backoff_s``, doubling up to ``max_backoff_s``,
    and stop once the next attempt would start more than ``retry_for_s`` after the first."""

    timeout_s: float = 5.0
    retry_for_s: float = 60.0
    first_backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def backoffs(self) -> Iterator[float]:
        delay = self.first_backoff_s
        while True:
            yield delay
            delay = min(delay * 2, self.max_backoff_s)


@dataclass(frozen=True)
class Outcome:
    """One attempt: delivered, or why not and whether another attempt may succeed."""

    ok: bool
    retry: bool = False
    reason: str = ""


class DeliveryWorker:
    """POSTs queued JSON payloads to one URL on its own (daemon) thread, started on the
    first :meth:`submit`. Counters: ``sent`` (2xx), ``failed`` (given up: 4xx, another
    error, or retries exhausted), ``retried`` (attempts after the first), ``dropped``
    (queue full, or still queued at :meth:`close`)."""

    def __init__(self, url: str, what: str, policy: RetryPolicy | None = None, max_queue: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.target = redact(url)
        _SCRUBBER.urls.add(url)
        self.what = what
        self.policy = policy or RetryPolicy()
        self._max_queue = max_queue
        self._clock = clock
        self._queue: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._counts = dict.fromkeys(STATS, 0)
        self._overflowing = False

    def submit(self, payload: Any) -> bool:
        """Queue ``payload`` (JSON-serialisable, not changed afterwards); never blocks.
        False when it was dropped (queue full or closed)."""
        with self._cond:
            if self._closing or len(self._queue) >= self._max_queue:
                self._counts["dropped"] += 1
                if not self._overflowing:
                    log.warning("%s %s: queue full (%d), dropping notifications", self.what, self.target,
                                self._max_queue)
                self._overflowing = True
                return False
            self._overflowing = False
            self._queue.append(payload)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"lanewatch-{self.what}", daemon=True)
                self._thread.start()
            self._cond.notify()
        return True

    def stats(self) -> dict[str, int]:
        """``sent``, ``failed``, ``retried``, ``dropped`` since start, and ``queued`` now."""
        with self._cond:
            return {**self._counts, "queued": len(self._queue)}

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued for at most ``timeout_s``, then stop; what is left is dropped."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            self._stop.set()  # cuts a backoff wait short; an attempt in flight ends at its timeout
            thread.join(min(timeout_s, self.policy.timeout_s) + 0.5)
        with self._cond:
            self._counts["dropped"] += len(self._queue)
            self._queue.clear()

    def _count(self, name: str) -> None:
        with self._cond:
            self._counts[name] += 1

    def _run(self) -> None:
        session = requests.Session()
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        self._cond.wait()
                    if not self._queue or self._stop.is_set():
                        return
                    payload = self._queue.popleft()
                self._deliver(session, json.dumps(payload).encode())
        finally:
            session.close()

    def _deliver(self, session: requests.Session, body: bytes) -> None:
        start = self._clock()
        backoffs = self.policy.backoffs()
        while True:
            outcome = self._attempt(session, body)
            if outcome.ok:
                self._count("sent")
                return
            delay = next(backoffs)
            late = self._clock() - start + delay > self.policy.retry_for_s
            if not outcome.retry or late or self._stop.is_set():
                self._count("failed")
                log.warning("%s %s: notification not delivered (%s%s)", self.what, self.target,
                            outcome.reason, ", gave up retrying" if outcome.retry else ", not retried")
                return
            self._count("retried")
            log.info("%s %s: %s, retrying in %.1f s", self.what, self.target, outcome.reason, delay)
            if self._stop.wait(delay):
                self._count("failed")
                return

    def _attempt(self, session: requests.Session, body: bytes) -> Outcome:
        try:
            resp = session.post(self.url, data=body, headers=_HEADERS, timeout=self.policy.timeout_s)
        except requests.Timeout:
            return Outcome(False, True, f"timeout after {self.policy.timeout_s:g} s")
        except requests.ConnectionError as e:
            return Outcome(False, True, f"connection error: {_short(scrub(str(e), self.url))}")
        except requests.RequestException as e:
            return Outcome(False, False, f"{type(e).__name__}: {_short(scrub(str(e), self.url))}")
        with resp:
            if 200 <= resp.status_code < 300:
                return Outcome(True)
            detail = _short(scrub(resp.text.strip(), self.url))
            reason = f"HTTP {resp.status_code}" + (f": {detail}" if detail else "")
            return Outcome(False, resp.status_code >= 500, reason)


class QueuedNotifier:
    """A :class:`~lanewatch.alerts.model.Notifier` that hands payloads to one
    :class:`DeliveryWorker`. ``kind`` and ``target`` (the redacted URL) name it, e.g. as
    ``/metrics`` labels; :meth:`stats` gives its counters."""

    kind = "notifier"

    def __init__(self, url: str, external_url: ExternalURL = "", policy: RetryPolicy | None = None,
                 max_queue: int = 256) -> None:
        self.worker = DeliveryWorker(url, self.kind, policy, max_queue)
        self._external_url = external_url

    @property
    def target(self) -> str:
        return self.worker.target

    @property
    def external_url(self) -> str:
        url = self._external_url
        return url() if callable(url) else url

    def notify(self, changed: list[Alert], firing: list[Alert]) -> None:
        raise NotImplementedError

    def stats(self) -> dict[str, int]:
        """``sent``, ``failed``, ``retried``, ``dropped`` (counters) and ``queued`` (now)."""
        return self.worker.stats()

    def close(self) -> None:
        """Deliver what is queued (at most 5 s), then stop."""
        self.worker.close()
