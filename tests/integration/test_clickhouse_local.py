"""The private clickhouse-server of lanewatch.store.clickhouse_local: starts, answers, stops."""

from __future__ import annotations

from pathlib import Path

from clickhouse_driver import Client

from lanewatch.store.clickhouse_local import LocalServer, start, write_config


def test_session_server_answers_native_and_http(clickhouse_server: LocalServer) -> None:
    assert clickhouse_server.ping()
    client = Client(clickhouse_server.host, port=clickhouse_server.tcp_port)
    assert client.execute("SELECT 1 + 1") == [(2,)]
    assert clickhouse_server.url("db").endswith(f":{clickhouse_server.tcp_port}/db")


def test_config_points_everything_at_the_directory(tmp_path: Path) -> None:
    text = write_config(tmp_path, 1111, 2222, 3333).read_text()
    assert "/var/lib/clickhouse" not in text and "/var/log/clickhouse-server" not in text
    assert "<tcp_port>1111</tcp_port>" in text and "<http_port>2222</http_port>" in text
    assert "<interserver_http_port>3333</interserver_http_port>" in text
    assert "<listen_host>::1</listen_host>" not in text
    assert (tmp_path / "users.xml").exists()


def test_stop_ends_the_process_and_removes_its_files() -> None:
    server = start()
    directory = server.directory
    proc = server.process
    assert proc is not None and server.ping()
    server.stop()
    assert proc.poll() is not None and not server.ping(0.2)
    assert not directory.exists()
    server.stop()  # idempotent
