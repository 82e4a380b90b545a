"""The ``store`` setting: which store a process writes and reads.

* ``""`` or ``duckdb:///PATH``: the embedded DuckDB file (``""``: ``lanewatch.duckdb`` under
  ``data_dir``), one process (``lanewatch up``).
* ``clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE``: a ClickHouse server over its native
  protocol (port 9000 unless given), shared by any number of ``lanewatch collect`` and
  ``lanewatch serve`` processes. User and password may come from ``LANEWATCH_CLICKHOUSE_USER``
  and ``LANEWATCH_CLICKHOUSE_PASSWORD`` instead (the URL's win); ``?secure=1`` speaks TLS.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from lanewatch.config.fields import ConfigError

CLICKHOUSE_PORT = 9000
_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class StoreURL:
    kind: str  # "duckdb" or "clickhouse"
    path: str = ""  # duckdb: the file
    host: str = ""
    port: int = CLICKHOUSE_PORT
    database: str = ""
    user: str = "default"
    password: str = ""
    secure: bool = False

    @property
    def shared(self) -> bool:
        """Several processes may write and read it at once."""
        return self.kind == "clickhouse"

    def display(self) -> str:
        """For logs and errors: never the password."""
        if self.kind == "duckdb":
            return f"duckdb://{self.path}"
        return f"clickhouse://{self.host}:{self.port}/{self.database}"


def parse(url: str, data_dir: str = "./lanewatch-data") -> StoreURL:
    """The store named by ``url`` (see the module doc); :class:`ConfigError` names what is wrong."""
    text = url.strip()
    if not text:
        return StoreURL("duckdb", path=str(Path(data_dir) / "lanewatch.duckdb"))
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"store: not a URL ({e}); use duckdb:///PATH or clickhouse://HOST:PORT/DATABASE") from None
    scheme = parts.scheme.lower()
    if scheme == "duckdb":
        path = unquote(parts.netloc + parts.path)
        if not path or path == "/":
            raise ConfigError("store: duckdb:///PATH needs a file path (duckdb:///var/lib/lanewatch/lw.duckdb)")
        return StoreURL("duckdb", path=path)
    if scheme != "clickhouse":
        raise ConfigError(f"store: unknown scheme {parts.scheme!r}; use duckdb:///PATH or "
                          "clickhouse://HOST:PORT/DATABASE")
    if not parts.hostname:
        raise ConfigError("store: clickhouse:// needs a host (clickhouse://127.0.0.1:9000/lanewatch)")
    database = parts.path.strip("/")
    if not _DATABASE.match(database):
        raise ConfigError(f"store: clickhouse database {database!r} must be a plain name "
                          "(letters, digits, _), as in clickhouse://HOST:9000/lanewatch")
    query = dict(parse_qsl(parts.query))
    unknown = sorted(set(query) - {"secure"})
    if unknown:
        raise ConfigError(f"store: unknown URL parameter(s) {', '.join(unknown)}; only secure=1 is read")
    return StoreURL("clickhouse", host=parts.hostname, port=port or CLICKHOUSE_PORT, database=database,
                    user=unquote(parts.username) if parts.username else
                    os.environ.get("LANEWATCH_CLICKHOUSE_USER", "default"),
                    password=unquote(parts.password) if parts.password is not None else
                    os.environ.get("LANEWATCH_CLICKHOUSE_PASSWORD", ""),
                    secure=query.get("secure", "0").lower() in ("1", "true", "yes"))


def check(name: str, value: object) -> None:
    parse(str(value))
