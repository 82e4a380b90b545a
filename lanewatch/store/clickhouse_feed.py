"""The change feed of a ClickHouse store shared by several processes (:class:`ChangeFeed`).

Every batch with rollups adds one row to table ``writes`` (who, its stamp ``at_ns``, the oldest
``ts`` it touched) after its rollups are inserted; ``maintain`` adds one with ``min_ts = 0``
(anything may have changed). Each reader polls the rows stamped after its newest seen minus
:data:`MARGIN_NS` (a row stamped before its insert finished may become visible after later
ones) and numbers the rows it had not seen in a local :class:`~lanewatch.store.duck_write.ChangeLog`:
versions are local to the reader, and it may report more than changed, never less.
"""

from __future__ import annotations

import threading

from lanewatch.store.clickhouse_conn import Connection
from lanewatch.store.duck_write import ChangeLog

#: How far back each poll looks behind the newest stamp seen (inserts take milliseconds).
MARGIN_NS = 10_000_000_000


class Feed:
    def __init__(self, con: Connection) -> None:
        self._con = con
        self._log = ChangeLog()
        self._seen: dict[tuple[str, int], int] = {}
        self._newest = 0
        self._lock = threading.Lock()
        self.poll(record=False)  # what was written before this reader started is not a change

    def poll(self, record: bool = True) -> None:
        with self._lock:
            since = max(0, self._newest - MARGIN_NS)
            who, stamps, lows = self._con.query(
                f"SELECT collector, at_ns, min_ts FROM writes WHERE at_ns > {since}")
            fresh = [(str(c), int(a), int(m)) for c, a, m in zip(who, stamps, lows)
                     if (str(c), int(a)) not in self._seen]
            for c, a, _ in fresh:
                self._seen[(c, a)] = a
                self._newest = max(self._newest, a)
            if fresh and record:
                self._log.record(min(m for _, _, m in fresh))
            floor = self._newest - MARGIN_NS
            if len(self._seen) > 4096:
                self._seen = {k: a for k, a in self._seen.items() if a > floor}

    def version(self) -> int:
        self.poll()
        return self._log.version

    def changed_since(self, version: int) -> int | None:
        self.poll()
        return self._log.since(version)
