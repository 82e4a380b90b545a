"""How :class:`~lanewatch.store.clickhouse.ClickHouseStore` talks to ClickHouse: a tiny
connection interface (statements as finished SQL text, results as columns, inserts from
columns), and its implementation on ``clickhouse-driver`` (the native protocol).

Every statement the store runs is complete SQL text built by :func:`lit` (no driver-side
parameter substitution), so another engine behind the same interface (chDB in the contract
tests) runs exactly the same SQL.
"""

from __future__ import annotations

import logging
import math
import queue
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from lanewatch.config.store_url import StoreURL

# The driver logs each failed connection attempt with its traceback before raising; lanewatch
# says what failed once, in its own words (``cannot start: ... (store ...)``, a failed flush).
logging.getLogger("clickhouse_driver").setLevel(logging.ERROR)

T = TypeVar("T")
#: One column of an insert.
Columnar = Sequence[Any] | npt.NDArray[Any]


class Connection(Protocol):
    """One ClickHouse session bound to the store's database; safe to call from any thread."""

    def command(self, sql: str) -> None:
        """Run a statement with no result (DDL, ALTER, INSERT ... SELECT)."""
        ...

    def query(self, sql: str) -> list[list[Any]]:
        """Run a SELECT; its result as one list per selected column (empty lists when no row)."""
        ...

    def insert(self, table: str, columns: Sequence[str], data: Sequence[Columnar]) -> None:
        """Insert rows given as columns (``data[i]`` holds column ``columns[i]``: a sequence or a
        numpy array), in one block."""
        ...

    def close(self) -> None: ...


def lit(value: Any) -> str:
    """``value`` as a ClickHouse literal: NULL, integers, floats (no NaN: NULL), quoted strings."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return "NULL" if math.isnan(value) else repr(value)
    if hasattr(value, "item"):  # numpy scalars
        return lit(value.item())
    text = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\x00", "\\0")
    return f"'{text}'"


class DriverConnection:
    """:class:`Connection` on ``clickhouse_driver.Client``: a pool of ``pool`` clients (a client
    is not thread-safe; each call takes a free one, so calls from several threads run side by
    side on the server). Clients connect on first use. The database is created if missing.

    An insert whose columns are all numpy arrays goes through a client in the driver's numpy
    mode, which writes a numeric column as one buffer instead of packing Python values (the
    journal: a row per open span, about 3x cheaper to send)."""

    def __init__(self, url: StoreURL, *, connect_timeout: float = 10.0, pool: int = 4) -> None:
        from clickhouse_driver import Client

        if pool < 1:
            raise ValueError("pool must be >= 1")

        def client(database: str) -> Client:
            return Client(url.host, port=url.port, user=url.user, password=url.password,
                          database=database, secure=url.secure, connect_timeout=connect_timeout)

        boot = client("default")
        try:
            boot.execute(f"CREATE DATABASE IF NOT EXISTS {url.database}")
        finally:
            boot.disconnect()
        self._clients = [client(url.database) for _ in range(pool)]
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for c in self._clients:
            self._free.put(c)
        self._numpy = Client(url.host, port=url.port, user=url.user, password=url.password,
                             database=url.database, secure=url.secure, connect_timeout=connect_timeout,
                             settings={"use_numpy": True})
        self._numpy_free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._numpy_free.put(self._numpy)

    def _call(self, fn: Callable[[Any], T], free: queue.SimpleQueue[Any] | None = None) -> T:
        free = free if free is not None else self._free
        c = free.get()
        try:
            return fn(c)
        finally:
            free.put(c)

    def command(self, sql: str) -> None:
        self._call(lambda c: c.execute(sql))

    def query(self, sql: str) -> list[list[Any]]:
        data, types = self._call(lambda c: c.execute(sql, columnar=True, with_column_types=True))
        if not data:
            return [[] for _ in types]
        return [list(c) for c in data]

    def insert(self, table: str, columns: Sequence[str], data: Sequence[Columnar]) -> None:
        if not data or not len(data[0]):
            return
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES"
        if all(isinstance(c, np.ndarray) for c in data):
            arrays = list(data)
            self._call(lambda c: c.execute(sql, arrays, columnar=True), self._numpy_free)
            return
        rows = [list(c) for c in data]
        self._call(lambda c: c.execute(sql, rows, columnar=True))

    def close(self) -> None:
        for c in [*self._clients, self._numpy]:
            c.disconnect()
