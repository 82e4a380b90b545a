"""The --store URL: what users write in flags, env vars and YAML."""

from __future__ import annotations

import pytest

from lanewatch import config
from lanewatch.config import ConfigError
from lanewatch.config.store_url import parse


def test_empty_is_the_embedded_file_under_the_data_dir() -> None:
    url = parse("", "/srv/lw")
    assert (url.kind, url.path, url.shared) == ("duckdb", "/srv/lw/lanewatch.duckdb", False)


def test_duckdb_path() -> None:
    assert parse("duckdb:///var/lib/lw.duckdb").path == "/var/lib/lw.duckdb"


def test_clickhouse_url_with_credentials_and_default_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANEWATCH_CLICKHOUSE_PASSWORD", "from-env")
    url = parse("clickhouse://ch.internal/lanewatch")
    assert (url.kind, url.host, url.port, url.database, url.user, url.password, url.shared) == (
        "clickhouse", "ch.internal", 9000, "lanewatch", "default", "from-env", True)
    url = parse("clickhouse://lw:p%40ss@127.0.0.1:19000/lw_1?secure=1")
    assert (url.user, url.password, url.port, url.secure) == ("lw", "p@ss", 19000, True)
    assert "p@ss" not in url.display() and "p%40ss" not in url.display()


@pytest.mark.parametrize(("bad", "says"), [
    ("mysql://h/db", "unknown scheme"),
    ("clickhouse:///db", "needs a host"),
    ("clickhouse://h:9000/", "database"),
    ("clickhouse://h:9000/lane-watch", "database"),
    ("clickhouse://h:9000/db?compress=1", "unknown URL parameter"),
    ("clickhouse://h:99999/db", "not a URL"),
    ("duckdb://", "file path"),
])
def test_bad_urls_are_refused_naming_the_problem(bad: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse(bad)


def test_the_setting_is_checked_at_load_and_kept_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="unknown scheme"):
        config.load({"store": "postgres://h/db"})
    monkeypatch.setenv("LANEWATCH_STORE", "clickhouse://u:secret@h:9000/lw")
    s = config.load({})
    assert s.store_url.host == "h" and "secret" not in repr(s)


def test_collector_id_defaults_to_the_host_name_and_is_checked() -> None:
    import socket

    assert config.load({}).collector_name == socket.gethostname()
    assert config.load({"collector_id": "lw-2"}).collector_name == "lw-2"
    with pytest.raises(ConfigError, match="collector_id"):
        config.load({"collector_id": "a b"})
