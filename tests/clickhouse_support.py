"""Shared ClickHouse test support: one private 18.16 server per test session
(:mod:`lanewatch.store.clickhouse_local`) and a fresh database name per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from lanewatch.store.clickhouse_local import LocalServer, start

_names = itertools.count(1)


def fresh_database(prefix: str = "t") -> str:
    """A database name no other test of this session (or process) uses."""
    return f"{prefix}_{os.getpid()}_{next(_names)}"


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[LocalServer]:
    """The real Debian clickhouse-server on free loopback ports, for the whole session."""
    server = start()
    try:
        yield server
    finally:
        server.stop()
