"""The open spans in DuckDB: what a restart resumes (:class:`~lanewatch.store.base.TraceJournal`).

Table ``open_spans`` holds the rows of every trace not judged yet: each open chunk under its
number (``seq``), the carried rows under ``seq = -1``; ``open_names`` the names their codes
stand for. Both change in the batch's own transaction, so what a store holds after any
commit is exactly the open spans of that flush. ``meta.running`` tells whether the process
that wrote them stopped cleanly.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pandas as pd

from lanewatch.store.base import OpenSpans, Resumed

#: Column -> DuckDB type of the kept span rows (the assembly's columns but the derived ``tkey``).
COLUMNS: dict[str, str] = {
    "thi": "UBIGINT", "tlo": "UBIGINT", "sid": "UBIGINT", "pid": "UBIGINT", "kind": "TINYINT",
    "svc": "INTEGER", "inst": "INTEGER", "req": "INTEGER", "recv": "INTEGER", "exp": "INTEGER",
    "verdict": "TINYINT", "start": "BIGINT", "err": "BOOLEAN", "w": "DOUBLE",
}
DDL = (
    "CREATE TABLE IF NOT EXISTS open_spans (seq BIGINT, "
    + ", ".join(f"{c} {t}" for c, t in COLUMNS.items()) + ")",
    "CREATE TABLE IF NOT EXISTS open_names (code INTEGER PRIMARY KEY, name VARCHAR)",
)
_CARRY = -1


def write(con: duckdb.DuckDBPyConnection, change: OpenSpans) -> None:
    """Apply one change to the kept open spans, inside the caller's transaction."""
    if change.reset:
        con.execute("DELETE FROM open_spans")
        con.execute("DELETE FROM open_names")
    con.execute("DELETE FROM open_spans WHERE seq < ?", [int(change.live_from)])
    parts = [(seq, rows) for seq, rows in change.added]
    if change.carry is not None:
        parts.append((_CARRY, change.carry))
    if parts:
        frame = pd.DataFrame({c: np.concatenate([rows[c] for _, rows in parts]) for c in COLUMNS})
        frame.insert(0, "seq", np.repeat(np.array([s for s, _ in parts], dtype=np.int64),
                                         [len(rows["sid"]) for _, rows in parts]))
        _insert(con, "open_spans", frame)
    if change.names:
        codes = np.arange(change.names_from, change.names_from + len(change.names), dtype=np.int32)
        _insert(con, "open_names", pd.DataFrame({"code": codes, "name": change.names}))


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    con.register("_open_in", frame)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _open_in")
    finally:
        con.unregister("_open_in")


def read(con: duckdb.DuckDBPyConnection, clean: bool) -> Resumed:
    """Every kept open span, with the names of its codes."""
    names: list[str] = []
    for code, name in con.execute("SELECT code, name FROM open_names ORDER BY code").fetchall():
        if code != len(names):  # codes are dense from 0; a gap would misname every row after it
            raise ValueError(f"open_names: code {code} where {len(names)} was expected")
        names.append(str(name))
    frame = con.execute(f"SELECT {', '.join(COLUMNS)} FROM open_spans").df()
    rows: dict[str, Any] | None = None
    if len(frame):
        rows = {c: frame[c].to_numpy() for c in COLUMNS}
        if int(max(rows[k].max() for k in ("svc", "inst", "req", "recv", "exp"))) >= len(names):
            raise ValueError("open_spans: a name code without its name in open_names")
    return Resumed(rows=rows, names=names, clean=clean)
