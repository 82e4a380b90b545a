"""What both receivers do around the sink: count refusals, log failures without flooding."""

from __future__ import annotations

import logging
import time

from lanewatch.collect.ingest import Sink

#: A traceback is logged at most this often; the rest go to debug.
LOG_EVERY_S = 10.0


class SinkGuard:
    """Wraps the sink's ``count_drop`` (which must never break an answer) and rate-limits
    the error log of failures inside lanewatch, so a broken sink cannot flood the log."""

    def __init__(self, sink: Sink, logger: logging.Logger, what: str) -> None:
        self.sink, self.logger, self.what = sink, logger, what
        self._last_log = 0.0

    def count_drop(self, reason: str) -> None:
        try:
            self.sink.count_drop(reason, 1)
        except Exception:
            self.logger.debug("sink.count_drop(%r) failed", reason, exc_info=True)

    def log_internal(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S:
            self._last_log = now
            self.logger.error("%s failed inside lanewatch", self.what, exc_info=exc)
        else:
            self.logger.debug("%s failed inside lanewatch: %r", self.what, exc)
