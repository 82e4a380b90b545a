"""ClickHouse calls from several threads run side by side (a pool of clients), and a batch's
rollup inserts made at once store exactly what one-after-the-other inserts store."""

from __future__ import annotations

import threading
import time

import numpy as np

from lanewatch.config.store_url import parse
from lanewatch.rollups import ROLLUPS
from lanewatch.store.base import Batch
from lanewatch.store.clickhouse import ClickHouseStore
from lanewatch.store.clickhouse_conn import DriverConnection
from lanewatch.store.clickhouse_local import LocalServer
from lanewatch.store.clickhouse_schema import physical_tables
from tests.clickhouse_support import fresh_database
from tests.unit.test_clickhouse_rollup_blocks import random_columns


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


def _contents(server: LocalServer, db: str) -> dict[str, list[list[object]]]:
    con = DriverConnection(parse(server.url(db)))
    try:
        out = {}
        for table in ROLLUPS:
            for p in physical_tables(table):
                keys = ", ".join(p.keys)
                sums = ", ".join(f"sum({m})" for m in p.metrics)
                out[p.name] = con.query(f"SELECT {keys}, {sums} FROM {p.name} GROUP BY {keys} ORDER BY {keys}")
        return out
    finally:
        con.close()


def test_rollup_inserts_at_once_store_what_serial_inserts_store(clickhouse_server: LocalServer) -> None:
    rng = np.random.default_rng(5)
    batches = [Batch(rollups={t: random_columns(t, 300, rng) for t in ROLLUPS}, seq=i + 1, collector="c")
               for i in range(4)]
    dbs = {}
    for threads in (1, 4):
        dbs[threads] = db = fresh_database()
        store = ClickHouseStore(parse(clickhouse_server.url(db)), collector="c", insert_threads=threads)
        try:
            for b in batches:
                store.write(b)
        finally:
            store.close()
    serial, parallel = _contents(clickhouse_server, dbs[1]), _contents(clickhouse_server, dbs[4])
    assert serial == parallel
    assert all(len(v[0]) for v in serial.values())
