"""Fixtures shared by every test directory (each directory's own conftest adds its own)."""

from tests.clickhouse_support import clickhouse_server

__all__ = ["clickhouse_server"]
