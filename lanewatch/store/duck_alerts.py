"""The alert history in DuckDB: one row per alert state change (firing, resolved).

What the alert engine reads back on start (alerts firing before a restart go on firing)
and what ``GET /api/v1/alerts`` lists as history. The newest ``keep`` rows are kept.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import duckdb

#: Columns of table ``alert_events``; ``labels``/``details`` are JSON.
ALERT_EVENT_COLUMNS: tuple[str, ...] = (
    "ts", "fingerprint", "alertname", "state", "labels", "active_at", "fired_at", "resolved_at",
    "value", "threshold", "confidence", "text", "link", "details")

DDL = ("CREATE TABLE IF NOT EXISTS alert_events (seq BIGINT, ts DOUBLE, fingerprint VARCHAR,"
       " alertname VARCHAR, state VARCHAR, labels VARCHAR, active_at DOUBLE, fired_at DOUBLE,"
       " resolved_at DOUBLE, value DOUBLE, threshold DOUBLE, confidence DOUBLE, text VARCHAR,"
       " link VARCHAR, details VARCHAR)")
_JSON = ("labels", "details")


def write(con: duckdb.DuckDBPyConnection, rows: Sequence[dict[str, Any]], keep: int) -> None:
    """Append ``rows`` (dicts with :data:`ALERT_EVENT_COLUMNS`), then keep the newest ``keep``."""
    if not rows:
        return
    top = con.execute("SELECT COALESCE(MAX(seq), 0) FROM alert_events").fetchall()[0][0]
    values = [[top + i + 1] + [json.dumps(r.get(c), default=str) if c in _JSON else r.get(c)
                               for c in ALERT_EVENT_COLUMNS] for i, r in enumerate(rows)]
    con.executemany(f"INSERT INTO alert_events (seq, {', '.join(ALERT_EVENT_COLUMNS)}) VALUES "
                    f"({', '.join('?' * (len(ALERT_EVENT_COLUMNS) + 1))})", values)
    con.execute("DELETE FROM alert_events WHERE seq <= ?", [top + len(rows) - keep])


def read(con: duckdb.DuckDBPyConnection, limit: int, fingerprint: str | None = None,
         name: str | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` events (of one alert when ``fingerprint`` is given, of one alert
    name when ``name`` is), newest first."""
    conds = [(c, v) for c, v in (("fingerprint = ?", fingerprint), ("alertname = ?", name)) if v]
    where = ("WHERE " + " AND ".join(c for c, _ in conds)) if conds else ""
    params: list[Any] = [v for _, v in conds]
    rows = con.execute(f"SELECT {', '.join(ALERT_EVENT_COLUMNS)} FROM alert_events {where} "
                       "ORDER BY seq DESC LIMIT ?", [*params, int(limit)]).fetchall()
    out = []
    for row in rows:
        r = dict(zip(ALERT_EVENT_COLUMNS, row))
        for c in _JSON:
            r[c] = json.loads(r[c]) if isinstance(r[c], str) else {}
        out.append(r)
    return out
