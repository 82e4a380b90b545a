"""ClickHouseStore on the real 18.16 server: schema versions, restarts, NULL keys, another
process's writes seen within 2 s, bounded records, partitions dropped by maintain."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from clickhouse_driver import Client

from lanewatch import config
from lanewatch.config.store_url import parse
from lanewatch.store import clickhouse_journal as J
from lanewatch.store import clickhouse_schema as S
from lanewatch.store import open_store
from lanewatch.store.base import Batch, OpenSpans
from lanewatch.store.clickhouse import ClickHouseStore
from lanewatch.store.clickhouse_local import LocalServer
from lanewatch.testing import FakeClock
from tests.clickhouse_support import fresh_database

T0 = 1_800_000_000


def store(server: LocalServer, database: str, **kw: object) -> ClickHouseStore:
    return ClickHouseStore(parse(server.url(database)), **kw)  # type: ignore[arg-type]


def edges(ts: list[int], entry: list[str | None], calls: list[int]) -> dict[str, list[object]]:
    n = len(ts)
    cols: dict[str, list[object]] = {"ts": list(ts), "caller": ["A"] * n, "callee": ["B"] * n,
                                     "lane": ["gray"] * n, "entry_lane": list(entry), "calls": list(calls)}
    from lanewatch.rollups import ROLLUPS
    for m in ROLLUPS["edges"][1]:
        cols.setdefault(m, [0] * n)
    return cols


def test_start_is_idempotent_and_a_newer_schema_is_refused(clickhouse_server: LocalServer) -> None:
    db = fresh_database()
    store(clickhouse_server, db).close()
    store(clickhouse_server, db).close()  # tables exist: nothing breaks, nothing doubles
    client = Client(clickhouse_server.host, port=clickhouse_server.tcp_port, database=db)
    assert client.execute("SELECT count(), max(version) FROM schema_version") == [(1, S.SCHEMA_VERSION)]
    client.execute("INSERT INTO schema_version (version, at_ns) VALUES", [(99, 0)])
    with pytest.raises(RuntimeError, match="schema version 99"):
        store(clickhouse_server, db)


def test_a_version_1_database_is_migrated_and_keeps_its_rows(clickhouse_server: LocalServer) -> None:
    """1 -> 2 (the verdict ``uncertain``): edge tables are rebuilt, so the new column is summed
    by merges too; liveness rows gain ``cadence`` (NULL before)."""
    db = fresh_database()
    Client(clickhouse_server.host, port=clickhouse_server.tcp_port).execute(f"CREATE DATABASE {db}")
    client = Client(clickhouse_server.host, port=clickhouse_server.tcp_port, database=db)
    edge_tables = {p.name for p in S.physical_tables("edges")}
    for stmt in S.ddl():  # a version-1 database: no uncertain column, no cadence
        if any(f" {t} (" in stmt for t in edge_tables) or " liveness (" in stmt:
            stmt = stmt.replace(", uncertain Int64", "").replace(", uncertain", "")
            stmt = stmt.replace(", cadence Nullable(Float64)", "")
        client.execute(stmt)
    client.execute("INSERT INTO schema_version (version, at_ns) VALUES", [(1, 0)])
    client.execute("INSERT INTO r_edges_s (ts, res, caller, callee, lane, entry_lane, calls, leak) VALUES",
                   [(T0, 1, "A", "B", "gray", "gray", 3, 1)])
    client.execute("INSERT INTO liveness (collector, service, lane, instance, intervals, has_left, ver) VALUES",
                   [("c1", "B", "gray", "b-1", "[[1.0, 2.0]]", 0, 1)])
    s = store(clickhouse_server, db)
    try:
        assert client.execute("SELECT max(version) FROM schema_version") == [(S.SCHEMA_VERSION,)]
        got = s.rollup("edges", T0, T0 + 1, ["caller"])
        assert (int(got.calls.iloc[0]), int(got.leak.iloc[0]), int(got.uncertain.iloc[0])) == (3, 1, 0)
        s.write(Batch(rollups={"edges": {**edges([T0], ["gray"], [1]), "uncertain": [2]}}))
        client.execute("OPTIMIZE TABLE r_edges_s FINAL")  # merged rows sum the new column
        got = s.rollup("edges", T0, T0 + 1, ["caller"])
        assert (int(got.calls.iloc[0]), int(got.uncertain.iloc[0])) == (4, 2)
        rows, _ = s.peer_liveness("c2")
        assert rows[0]["cadence"] is None and rows[0]["intervals"] == "[[1.0, 2.0]]"
    finally:
        s.close()
    store(clickhouse_server, db).close()  # current now: opens without another migration
    assert client.execute("SELECT count() FROM schema_version") == [(S.SCHEMA_VERSION,)]


def test_a_version_2_journal_resumes_and_new_chunks_join_it(clickhouse_server: LocalServer) -> None:
    """2 -> 3 (the journal as a row per chunk): the open spans a schema-2 collector kept, a row
    per span, still come back at its restart (weight 1: schema 2 kept none), with what the new
    process journals under the same epoch; and dead rows of both tables are dropped."""
    db = fresh_database()
    Client(clickhouse_server.host, port=clickhouse_server.tcp_port).execute(f"CREATE DATABASE {db}")
    client = Client(clickhouse_server.host, port=clickhouse_server.tcp_port, database=db)
    for stmt in S.ddl():
        if " open_chunks (" not in stmt:
            client.execute(stmt)
    client.execute("INSERT INTO schema_version (version, at_ns) VALUES", [(2, 0)])
    cols = ["collector", "epoch", "seq", "gen", "at", *S.JOURNAL_TYPES]
    old = [("c1", 77, 3, 0, T0, 1, 2, 100 + i, 0, 1, 0, 0, 1, 1, 0, 0, T0 * 10**9, 0) for i in range(3)]
    client.execute(f"INSERT INTO open_spans ({', '.join(cols)}) VALUES", old)
    client.execute("INSERT INTO open_names (collector, epoch, code, name) VALUES",
                   [("c1", 77, 0, "svc-a"), ("c1", 77, 1, "gray")])
    client.execute("INSERT INTO journal (collector, epoch, live_from, carry_gen, running, ver) VALUES",
                   [("c1", 77, 3, 0, 0, 1)])
    clock = FakeClock(T0 + 60.0)
    s = store(clickhouse_server, db, collector="c1", clock=clock)
    try:
        assert client.execute("SELECT max(version) FROM schema_version") == [(S.SCHEMA_VERSION,)]
        got = s.open_spans()
        assert got.clean and got.names == ["svc-a", "gray"] and got.rows is not None
        assert sorted(got.rows["sid"].tolist()) == [100, 101, 102] and set(got.rows["w"].tolist()) == {1.0}
        new = {c: np.zeros(1, dtype=t) for c, t in J.PACKED}
        new.update(sid=np.asarray([555], dtype=np.uint64), w=np.asarray([8.0]))
        s.write(Batch(open_spans=OpenSpans(added=[(4, new)], live_from=3)))
        got = s.open_spans()
        assert got.rows is not None and sorted(got.rows["sid"].tolist()) == [100, 101, 102, 555]
        assert sorted(got.rows["w"].tolist()) == [1.0, 1.0, 1.0, 8.0]
        clock.advance(3600.0)  # a long trace: its partitions are old, its rows live: kept
        s.maintain(clock())
        kept = s.open_spans().rows
        assert kept is not None and sorted(kept["sid"].tolist()) == [100, 101, 102, 555]
        s.write(Batch(open_spans=OpenSpans(live_from=5)))  # both tables' rows are judged
        assert s.open_spans().rows is None
        clock.advance(120.0)
        s.maintain(clock())
        for table in ("open_spans", "open_chunks"):
            assert client.execute(f"SELECT count() FROM {table}") == [(0,)], table
    finally:
        s.close()


def test_null_keys_read_back_as_null(clickhouse_server: LocalServer) -> None:
    s = store(clickhouse_server, fresh_database())
    s.write(Batch(rollups={"edges": edges([T0, T0, T0 + 1], [None, "gray", None], [1, 2, 4])}))
    f = s.rollup("edges", T0, T0 + 10, ["entry_lane"])
    got = {(None if v is None else v): int(c) for v, c in zip(f["entry_lane"], f["calls"])}
    assert got == {None: 5, "gray": 2}
    assert int(s.rollup("edges", T0, T0 + 10, [], where={"entry_lane": "gray"})["calls"].iloc[0]) == 2
    s.close()


def test_another_process_write_is_seen_within_2s(clickhouse_server: LocalServer) -> None:
    db = fresh_database()
    reader = store(clickhouse_server, db, collector="serve")
    v0 = reader.version()
    code = ("import sys; from lanewatch.config.store_url import parse; from lanewatch.store.base import Batch;"
            "from lanewatch.store.clickhouse import ClickHouseStore;"
            f"from tests.integration.test_store_clickhouse import edges;"
            f"s = ClickHouseStore(parse({clickhouse_server.url(db)!r}), collector='other');"
            f"s.write(Batch(rollups={{'edges': edges([{T0}], ['gray'], [7])}}, counters={{'x': 2}}, seq=1,"
            " collector='other', as_of=5.0)); s.close()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    written = time.monotonic()
    while reader.changed_since(v0) is None:
        assert time.monotonic() - written < 2.0, "the other process's write was not seen within 2 s"
        time.sleep(0.05)
    assert reader.changed_since(v0) == T0
    assert int(reader.rollup("edges", T0, T0 + 1, [])["calls"].iloc[0]) == 7
    assert reader.counters() == {"x": 2}
    assert reader.counters_at() == ({"x": 2}, 0)  # batch numbers are per process
    assert reader.collectors() == [{"collector": "other", "as_of": 5.0, "counters": {"x": 2}}]
    reader.close()


def test_records_bounded_and_maintain_drops_partitions(clickhouse_server: LocalServer) -> None:
    db = fresh_database()
    s = store(clickhouse_server, db, max_violations=5, retention_s=86400, downsample_after_s=600)
    for day in range(3):
        s.write(Batch(violations=[{"ts": T0 + day * 86400 + i, "kind": "leak", "service": "A"} for i in range(4)],
                      rollups={"edges": edges([T0 + day * 86400 + i for i in range(3)], ["gray"] * 3, [1, 1, 1])}))
    got = s.violations(0, T0 + 10 * 86400, limit=100)
    assert list(got["ts"]) == sorted([T0 + 2 * 86400 + i for i in range(4)] + [T0 + 86400 + 3], reverse=True)
    client = Client(clickhouse_server.host, port=clickhouse_server.tcp_port, database=db)

    def parts(table: str) -> int:
        return int(client.execute("SELECT count(DISTINCT partition) FROM system.parts WHERE active AND "
                                  f"database = '{db}' AND table = '{table}'")[0][0])

    assert parts("r_edges_s") == 3 and parts("r_edges_m") >= 2
    s.maintain(T0 + 2 * 86400 + 100)  # keep_from = T0 + 86400 + 100: day 0 goes
    assert parts("r_edges_s") == 1  # per-second hours an hour behind the downsampling cut go
    assert int(s.rollup("edges", 0, T0 + 10 * 86400, [])["calls"].iloc[0]) == 3
    assert np.all(s.violations(0, T0 + 10 * 86400)["ts"] >= T0 + 86400 + 100)
    s.close()


def test_open_store_makes_a_clickhouse_store(clickhouse_server: LocalServer) -> None:
    settings = config.load(environ={}, flags={"store": clickhouse_server.url(fresh_database())})
    s = open_store(settings)
    assert isinstance(s, ClickHouseStore) and s.collector == settings.collector_name
    s.close()
