"""One contract, every store: DuckDB (a file), ClickHouse 18.16 (the real Debian server, a
fresh database per test) and the same ClickHouse SQL on chDB (a current engine in-process).

Identical batches, made by the real Engine from the golden traces (heartbeats, journal and
liveness sharing on) plus random rollups with corrections, go to every backend; then every
read the API makes, and the Query layer over it, must give the same answer as DuckDB's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from lanewatch.config import Settings
from lanewatch.config.store_url import parse
from lanewatch.dashboard import cache
from lanewatch.query import Query
from lanewatch.query.shared import CONSISTENT_TRIES
from lanewatch.rollups import ROLLUPS
from lanewatch.store import clickhouse_journal as J
from lanewatch.store.base import (
    AlertHistory,
    Batch,
    ChangeFeed,
    NumberedCounters,
    PerCollector,
    SharedLiveness,
    Store,
    TraceJournal,
)
from lanewatch.store.clickhouse import ClickHouseStore
from lanewatch.store.clickhouse_local import LocalServer
from lanewatch.store.duck import DuckStore
from lanewatch.testing import FakeClock, TraceBuilder
from tests.clickhouse_support import fresh_database
from tests.integration.chdb_support import ChdbConnection
from tests.unit.test_golden import GOLDEN, build
from tests.unit.test_shared_liveness import engine, heartbeats
from tests.unit.test_store_duck import random_rollups

T0 = 1_800_000_000  # FakeClock's start
KEEP = 40  # small bound on kept records, so that the bound is exercised
Make = Callable[..., Store]


@pytest.fixture(params=["duckdb", "clickhouse-18.16", "chdb"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Make]:
    """A factory of stores on one fresh backend database (several: several processes)."""
    opened: list[Store] = []
    kind = request.param
    database = fresh_database("contract")
    duck: list[DuckStore] = []

    def factory(collector: str = "c1", **kw: Any) -> Store:
        kw = {"retention_s": 7 * 86400, "downsample_after_s": 3600, "max_violations": KEEP, **kw}
        store: Store
        if kind == "duckdb":
            if duck:  # one process holds a DuckDB file: "another process" is the same store
                return duck[0]
            d = DuckStore(tmp_path / "lw.duckdb", clock=lambda: T0, **kw)
            duck.append(d)
            store = d
        elif kind == "chdb":
            store = ClickHouseStore(connection=ChdbConnection(database), collector=collector,
                                    clock=lambda: T0, **kw)
        else:
            server: LocalServer = request.getfixturevalue("clickhouse_server")
            store = ClickHouseStore(parse(server.url(database)), collector=collector, clock=lambda: T0, **kw)
        opened.append(store)
        return store

    factory.kind = kind  # type: ignore[attr-defined]
    yield factory
    for s in opened:
        s.close()


def golden_batches() -> list[Batch]:
    """Batches of the real Engine: every golden case on its own engine (collector c1 or c2)."""
    out: list[Batch] = []
    for i, path in enumerate(GOLDEN):
        case = yaml.safe_load(path.read_text())
        clock = FakeClock(T0 + 10.0 * i)
        e = engine(case, clock, f"c{1 + zlib.crc32(path.name.encode()) % 2}", sharing=True)
        e.journaling = True
        for _, body in heartbeats(case):
            e.ingest("metrics", body, "proto")
        tb = TraceBuilder(t0=clock())
        build(tb, case["trace"])
        e.ingest("traces", tb.body(tb.spans), "proto")
        clock.advance(0.5)
        out.append(e.flush())
        clock.advance(3.0)
        out.append(e.flush())
    return out


def random_batches(seed: int) -> list[Batch]:
    rng = np.random.default_rng(seed)
    out = []
    for k, start in enumerate((T0 - 7200, T0 - 3000, T0 - 100, T0)):
        rollups = random_rollups(rng, start + int(rng.integers(0, 50)), 90)
        if k:  # corrections (negative rows) only in the oldest, outside the Query windows
            for table, cols in rollups.items():
                for m in ROLLUPS[table][1]:
                    cols[m] = np.abs(cols[m])
            rollups["hops"]["errors"] = rollups["hops"]["requests"] // 3  # errors within requests
            rollups["edges"]["errors"] = rollups["edges"]["calls"] // 3
            rollups["traces"]["stayed"] = np.minimum(rollups["traces"]["stayed"], rollups["traces"]["traces"])
        out.append(Batch(rollups=rollups,
                         counters={"dropped": int(rng.integers(1, 9))}, seq=k + 1, collector="c1",
                         as_of=float(start)))
    return out


BATCHES = golden_batches()


def fill(store: Store) -> None:
    for b in random_batches(7) + BATCHES:
        store.write(b)


# ---- comparison ---------------------------------------------------------------------------
def norm_value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return round(float(v), 6)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, dict):
        return {str(k): norm_value(x) for k, x in sorted(v.items())}
    if isinstance(v, (list, tuple)):
        return [norm_value(x) for x in v]
    return v


def rows(frame: pd.DataFrame, metrics: tuple[str, ...] = (), keyed: bool = True) -> list[tuple[Any, ...]]:
    """Rows as sorted tuples; with metrics, rows whose metrics are all zero are left out (a
    store may or may not have merged a correction away)."""
    recs = [tuple(norm_value(v) for v in r) for r in frame.itertuples(index=False)]
    if metrics and keyed:
        idx = [list(frame.columns).index(m) for m in metrics]
        recs = [r for r in recs if any(r[i] for i in idx)]
    return sorted(recs, key=repr)


def reads(store: Store) -> dict[str, Any]:
    """Every read of the API on a filled store."""
    out: dict[str, Any] = {}
    lo, hi = T0 - 8000, T0 + 400
    for table, (keys, metrics) in ROLLUPS.items():
        names = [k for k in keys if k not in ("ts", "res")]
        keysets = [[], ["ts"], names, ["ts", *names], names[:1], ["ts", names[-1]]]
        for ks in keysets:
            for bucket in (1, 10, 60, 300):
                if bucket != 1 and "ts" not in ks:
                    continue
                for t0, t1 in ((lo, hi), (T0 - 3030, T0 + 95), (T0 + 7, T0 + 61)):
                    f = store.rollup(table, t0, t1, ks, bucket_s=bucket)
                    assert list(f.columns) == [*ks, *metrics]
                    out[f"{table}{ks}@{bucket}[{t0},{t1})"] = rows(f, metrics, bool(ks))
        for col in names[:2]:
            for value in ("A", "gray", "base", None):
                f = store.rollup(table, lo, hi, ["ts"], where={col: value}, bucket_s=60)
                out[f"{table} {col}={value}"] = rows(f, metrics)
    for where in (None, {"kind": "leak"}, {"service": "B"}):
        out[f"violations {where}"] = rows(store.violations(lo, hi, where, limit=25), keyed=False)
    for where in (None, {"entry_lane": "gray"}, {"lane_path": "A"}):
        out[f"traces {where}"] = rows(store.traces(lo, hi, where, limit=25), keyed=False)
    out["violations all"] = [r[1:] for r in rows(store.violations(lo, hi, limit=1000), keyed=False)]
    tids = sorted({r[0] for r in rows(store.traces(lo, hi, limit=1000), keyed=False)}, key=repr)
    out["trace"] = [norm_value(store.trace(str(t))) for t in tids] + [store.trace("00" * 16)]
    out["instances"] = rows(store.instances())
    out["counters"] = norm_value(store.counters())
    assert isinstance(store, NumberedCounters)
    out["counters_at"] = norm_value(store.counters_at())
    assert isinstance(store, PerCollector)
    out["collectors"] = norm_value(store.collectors())
    assert isinstance(store, SharedLiveness)
    for who in ("c1", "c2", "nobody"):
        live, as_of = store.peer_liveness(who)
        out[f"peer_liveness {who}"] = (sorted(map(repr, map(norm_value, live))), norm_value(as_of))
    names, cells = store.latency_cells(T0 - 3030, T0 + 95, step_s=10)  # type: ignore[attr-defined]
    summed: dict[tuple[int, str, int], int] = {}
    for t, ln, b, c in zip(cells["ts"], cells["lane"], cells["bucket"], cells["count"]):
        key = (int(t), names[int(ln)], int(b))
        summed[key] = summed.get(key, 0) + int(c)
    out["latency_cells"] = sorted((k, v) for k, v in summed.items() if v)
    return out


def query_reads(store: Store) -> dict[str, Any]:
    q = Query(store, Settings(), clock=lambda: T0 + 150)
    out: dict[str, Any] = {}
    for w in (60, 300, 3600):
        out[f"summary {w}"] = q.summary(w)
        out[f"summary {w} A"] = q.summary(w, service="A")
        out[f"edges {w}"] = q.edges(w)
        out[f"series {w}"] = q.series(w, step_s=max(1, w // 60))
        out[f"violations {w}"] = q.violations(w)
        out[f"services {w}"] = q.services(w)
        out[f"lanes {w}"] = q.lanes(w)
        for lane in q.lanes(w):
            out[f"compare_all {lane} {w}"] = q.compare_all(lane, w)
    out["instances"] = q.instances()
    out["traces"] = [q.trace(t) for t in sorted({v["trace_id"] for v in q.violations(3600)})]
    return json.loads(json.dumps(out, default=str, sort_keys=True), parse_float=lambda s: round(float(s), 6))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What DuckDB answers, once per module."""
    d = DuckStore(tmp_path_factory.mktemp("ref") / "ref.duckdb", clock=lambda: T0, retention_s=7 * 86400,
                  downsample_after_s=3600, max_violations=KEEP)
    fill(d)
    out = {"reads": reads(d), "query": query_reads(d)}
    d.maintain(T0 + 4000)
    out["after_maintain"] = reads(d)
    d.maintain(T0 + 7 * 86400 - 3000)
    out["after_retention"] = reads(d)
    d.close()
    return out


def diff(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    return [k for k in want if got.get(k) != want[k]]


def test_every_read_matches_duckdb(make: Make, reference: dict[str, Any]) -> None:
    store = make()
    fill(store)
    got = reads(store)
    assert got["violations all"] and got["instances"] and got["counters"]  # the data is there
    assert diff(got, reference["reads"]) == []
    assert diff(query_reads(store), reference["query"]) == []


def test_downsampled_and_retained_reads_match(make: Make, reference: dict[str, Any]) -> None:
    store = make()
    fill(store)
    store.maintain(T0 + 4000)
    got = reads(store)
    assert diff(got, reference["after_maintain"]) == []
    store.maintain(T0 + 7 * 86400 - 3000)
    got = reads(store)
    assert diff(got, reference["after_retention"]) == []
    gone = store.rollup("hops", T0 - 8000, T0 - 3000, [])  # before keep_from = T0 - 3000
    kept = store.rollup("hops", T0 - 3000, T0 + 400, [])
    assert int(gone["requests"].iloc[0]) == 0 and int(kept["requests"].iloc[0]) > 0


def test_change_feed_sees_other_writers(make: Make) -> None:
    reader = make("serve")
    assert isinstance(reader, ChangeFeed)
    v0 = reader.version()
    assert reader.changed_since(v0) is None
    writer = make("c2")
    b = random_batches(3)[2]
    writer.write(b)
    v1 = reader.version()
    assert v1 > v0
    since = reader.changed_since(v0)
    assert since is not None and since <= int(np.min(b.rollups["hops"]["ts"]))
    assert reader.changed_since(v1) is None
    f = reader.rollup("hops", T0 - 200, T0 + 100, [])
    assert int(f["requests"].iloc[0]) == int(np.sum(b.rollups["hops"]["requests"]))
    reader.maintain(T0 + 10)
    assert reader.changed_since(v1) == 0


def _tag_lost_traces(ts: int, n: int) -> Batch:
    """A flush that judged ``n`` gray traces whose tag was lost on A -> B: their edges and
    their trace counts land in one batch."""
    edges = {"ts": [ts], "caller": ["A"], "callee": ["B"], "lane": [""], "entry_lane": ["gray"],
             "calls": [n], "errors": [0], "in_lane": [0], "fallback": [0], "leak": [0], "intrusion": [0],
             "tag_lost": [n], "tag_lost_inside": [0]}
    return Batch(rollups={"edges": edges, "traces": {"ts": [ts], "entry_lane": ["gray"], "traces": [n],
                                                     "stayed": [0]}})


class Racing:
    """The store ``lanewatch serve`` reads, with another writer committing a flush right after
    each of the first ``races`` reads of ``table``: between two of one summary's reads."""

    def __init__(self, store: Store, writer: Store, races: int, table: str = "edges") -> None:
        self.store, self.writer, self.left, self.table = store, writer, races, table
        self.landed = 0

    def rollup(self, table: str, *args: Any, **kw: Any) -> pd.DataFrame:
        out = self.store.rollup(table, *args, **kw)
        if table == self.table and self.left:
            self.left -= 1
            self.landed += 3
            self.writer.write(_tag_lost_traces(T0 + 10 + self.left, 3))
        return out

    def version(self) -> int:
        assert isinstance(self.store, ChangeFeed)
        return self.store.version()

    def changed_since(self, version: int) -> int | None:
        assert isinstance(self.store, ChangeFeed)
        return self.store.changed_since(version)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.mark.parametrize("through", ["api", "dashboard"])
def test_a_summary_read_while_a_flush_lands_agrees_with_itself(make: Make, through: str) -> None:
    """The summary reads edges, then traces: a flush landing between the two gave "3 traces
    violated, 0 tag_lost" (CI: test_sigterm_loses_no_open_trace..., edges 0 == 100). Its reads
    are one snapshot: read again when the change feed moved."""
    reader, writer = make("serve"), make("c2")
    racing = Racing(reader, writer, races=1)
    q = Query(racing, Settings(), clock=lambda: T0 + 60.0)  # type: ignore[arg-type]

    def summary() -> dict[str, Any]:
        if through == "api":
            return q.summary(600, lane="gray")
        got: dict[str, Any] = cache.gather(lambda: q.summary(600, lane="gray"), store=q.store)[0]
        return got

    s = summary()
    assert racing.landed == 3  # the flush did land mid-read
    assert s["traces"] == s["traces_violated"] == 3
    assert s["edges"]["tag_lost"] == s["edges"]["calls"] == 3 and s["violations"] == 3


def test_a_summary_raced_on_every_read_returns_after_its_tries(make: Make) -> None:
    """A flush lands during every try: the summary is read CONSISTENT_TRIES times, then given."""
    reader, writer = make("serve"), make("c2")
    racing = Racing(reader, writer, races=10)
    s = Query(racing, Settings(), clock=lambda: T0 + 60.0).summary(600)  # type: ignore[arg-type]
    assert 10 - racing.left == CONSISTENT_TRIES
    assert s["traces"] >= 3 * (CONSISTENT_TRIES - 1)  # the last try saw the flushes before it


def test_alert_history_bounded(make: Make) -> None:
    store = make()
    assert isinstance(store, AlertHistory)
    events = [{"ts": T0 + i, "fingerprint": f"f{i % 3}", "alertname": f"n{i % 2}", "state": "firing",
               "labels": {"i": i}, "value": i * 0.5, "details": None} for i in range(12)]
    store.write_alert_events(events[:7], keep=10)
    store.write_alert_events(events[7:], keep=10)
    got = store.alert_events(limit=100)
    assert [e["labels"]["i"] for e in got] == list(range(11, 1, -1))
    assert [e["labels"]["i"] for e in store.alert_events(limit=3, fingerprint="f1")] == [10, 7, 4]
    assert [e["labels"]["i"] for e in store.alert_events(name="n0", limit=2)] == [10, 8]
    assert got[0]["value"] == 5.5 and got[0]["details"] is None


def _weighted(batch: Batch) -> Batch:
    """``batch`` with sampling weights other than 1 on its open spans (as a sampled trace has)."""
    change = batch.open_spans
    assert change is not None
    rng = np.random.default_rng(7)
    added = [(seq, {**rows, "w": rng.choice([1.0, 4.0, 10.0], len(rows["sid"]))}) for seq, rows in change.added]
    return dataclasses.replace(batch, open_spans=dataclasses.replace(change, added=added))


def _by_span(rows: dict[str, Any]) -> dict[str, list[Any]]:
    order = np.lexsort((np.asarray(rows["sid"]), np.asarray(rows["tlo"])))
    return {c: np.asarray(rows[c])[order].tolist() for c in J.PACKED_COLUMNS}


def test_journal_per_collector_and_clean_flag(make: Make) -> None:
    """What a collector's journal kept comes back column for column (sampling weights too: a
    resumed sampled span still stands for its weight), per collector, across a clean stop."""
    store = make("c1")
    assert isinstance(store, TraceJournal)
    assert store.open_spans().rows is None
    kept = {b.collector: b for b in BATCHES if b.open_spans is not None and b.open_spans.added}
    batch = _weighted(kept["c1"])
    store.write(batch)
    want = batch.open_spans
    assert want is not None
    live = [r for s, r in want.added if s >= want.live_from] + ([want.carry] if want.carry else [])
    expected = _by_span({c: np.concatenate([r[c] for r in live]) for c in J.PACKED_COLUMNS})
    assert len(set(expected["w"]) - {1.0}) > 0
    got = store.open_spans()
    assert got.rows is not None and _by_span(got.rows) == expected
    assert got.names[:len(want.names)] == want.names
    if make.kind != "duckdb":  # type: ignore[attr-defined]
        other = make("c2")  # another collector has its own journal
        assert other.open_spans().rows is None  # type: ignore[attr-defined]
        store.close()
        again = make("c1")
        resumed = again.open_spans()  # type: ignore[attr-defined]
        assert resumed.clean and resumed.rows is not None and _by_span(resumed.rows) == expected


def test_peer_liveness_newest_per_writer(make: Make) -> None:
    a, b = make("c1"), make("c2")
    row = {"service": "A", "lane": "gray", "instance": "i1", "intervals": "[[1.0, 2.0]]", "left": False}
    a.write(Batch(liveness=[{**row, "collector": "c1"}], collector="c1", as_of=10.0))
    a.write(Batch(liveness=[{**row, "collector": "c1", "intervals": "[[1.0, 5.0]]", "left": True,
                             "cadence": 2.5}], collector="c1", as_of=12.0))
    b.write(Batch(liveness=[{**row, "collector": "c2", "instance": "i2"}], collector="c2", as_of=11.0))
    assert isinstance(b, SharedLiveness)
    live, as_of = b.peer_liveness("c2")
    assert live == [{"collector": "c1", "service": "A", "lane": "gray", "instance": "i1",
                     "intervals": "[[1.0, 5.0]]", "left": True, "cadence": 2.5}]
    assert as_of == {"c1": 12.0}
    assert b.peer_liveness("c1")[0][0]["cadence"] is None  # a writer that learned none (or older)
    assert {r["instance"] for r in b.peer_liveness("c1")[0]} == {"i2"}
