"""ClickHouse calls from several threads run side by side (a pool of clients)."""

from __future__ import annotations

import threading
import time

from lanewatch.config.store_url import parse
from lanewatch.store.clickhouse_conn import DriverConnection
from lanewatch.store.clickhouse_local import LocalServer
from tests.clickhouse_support import fresh_database


def _two_sleeps(con: DriverConnection) -> float:
    ts = [threading.Thread(target=con.query, args=("SELECT sleep(0.4)",)) for _ in range(2)]
    t = time.perf_counter()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    return time.perf_counter() - t


def test_queries_from_two_threads_overlap(clickhouse_server: LocalServer) -> None:
    url = parse(clickhouse_server.url(fresh_database()))
    pooled, single = DriverConnection(url, pool=2), DriverConnection(url, pool=1)
    try:
        assert _two_sleeps(pooled) < 0.75
        assert _two_sleeps(single) >= 0.8
    finally:
        pooled.close()
        single.close()
