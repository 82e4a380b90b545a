"""An insert of numpy columns (the driver's numpy mode, as the journal sends its open spans)
stores exactly what the same rows as Python lists store, at the edges of every journal type."""

from __future__ import annotations

import numpy as np

from lanewatch.config.store_url import parse
from lanewatch.store.clickhouse_conn import DriverConnection
from lanewatch.store.clickhouse_local import LocalServer
from lanewatch.store.clickhouse_schema import JOURNAL_TYPES
from tests.clickhouse_support import fresh_database

EDGES = {"UInt64": [0, 1, 2**63, 2**64 - 1], "Int64": [-(2**63), -1, 0, 2**63 - 1],
         "Int32": [-(2**31), -1, 0, 2**31 - 1], "Int8": [-128, -1, 0, 127], "UInt8": [0, 1, 1, 0]}


def test_numpy_columns_store_what_lists_store(clickhouse_server: LocalServer) -> None:
    con = DriverConnection(parse(clickhouse_server.url(fresh_database())))
    try:
        cols = ", ".join(f"{c} {t}" for c, t in JOURNAL_TYPES.items())
        for table in ("as_lists", "as_arrays"):
            con.command(f"CREATE TABLE {table} (name String, row Int64, {cols}) ENGINE = MergeTree ORDER BY row")
        names = ["name", "row", *JOURNAL_TYPES]
        values = {c: EDGES[t] for c, t in JOURNAL_TYPES.items()}
        text = ["c1", "", "x'y", "\u00e9\\0"]
        con.insert("as_lists", names, [text, [0, 1, 2, 3], *values.values()])
        arrays = [np.array(text, dtype=object), np.arange(4, dtype=np.int64)]
        for c, t in JOURNAL_TYPES.items():
            dtype = {"UInt64": np.uint64, "Int64": np.int64, "Int32": np.int32, "Int8": np.int8, "UInt8": np.bool_}[t]
            arrays.append(np.array(values[c], dtype=dtype))
        con.insert("as_arrays", names, arrays)
        got = [con.query(f"SELECT {', '.join(names)} FROM {t} ORDER BY row") for t in ("as_lists", "as_arrays")]
        assert got[0] == got[1]
        assert got[0][0] == text and got[0][names.index("thi")] == EDGES["UInt64"]
    finally:
        con.close()
