"""chDB (a current ClickHouse engine, in-process) behind the store's Connection interface, so
the contract tests run ClickHouseStore's exact SQL on a current engine as well as on 18.16."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence
from typing import Any

from lanewatch.store.clickhouse_conn import lit

_session: Any = None
_lock = threading.Lock()


def session() -> Any:
    """The process's one chDB session (chDB refuses a working directory holding a config.xml)."""
    global _session
    if _session is None:
        import chdb.session

        assert not os.path.exists("config.xml"), "chDB will not start where a config.xml is"
        _session = chdb.session.Session(tempfile.mkdtemp(prefix="lanewatch-chdb-"))
    return _session


class ChdbConnection:
    """:class:`lanewatch.store.clickhouse_conn.Connection` on a chDB database."""

    def __init__(self, database: str) -> None:
        self.database = database
        with _lock:
            session().query(f"CREATE DATABASE IF NOT EXISTS {database}")

    def _run(self, sql: str, fmt: str = "CSV") -> Any:
        with _lock:
            s = session()
            s.query(f"USE {self.database}")
            return s.query(sql, fmt)

    def command(self, sql: str) -> None:
        self._run(sql)

    def query(self, sql: str) -> list[list[Any]]:
        table = self._run(sql, "ArrowTable")
        return [col.to_pylist() for col in table.columns]

    def insert(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> None:
        if not data or not len(data[0]):
            return
        rows = ",".join("(" + ",".join(lit(v) for v in row) + ")" for row in zip(*data))
        self._run(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {rows}")

    def close(self) -> None:
        pass
