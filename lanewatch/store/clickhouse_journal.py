"""The open spans in ClickHouse (:class:`~lanewatch.store.base.TraceJournal`), per collector.

ClickHouse has no transactions and no cheap deletes, so the journal is versioned instead of
edited: a collector's rows live under an *epoch* (a new one on every reset: a new process),
each chunk under its number ``seq``, each carry under a fresh generation ``gen`` (``seq = -1``).
A chunk is one ``open_chunks`` row: its span columns packed side by side as raw little-endian
arrays (the columns of :data:`PACKED`), in base64 text: the collector encodes and sends one
string per chunk instead of 13 columns of every span (half the journal's insert time at 80k
spans/s, ``docs/benchmarks.md``); the server stores about the same bytes either way. Schema 2
kept a row per span in ``open_spans`` (without the sampling weight): those rows are still
read, never written.
One ``journal`` row per collector (newest by ``ver`` wins) names what is live: the epoch, the
lowest live chunk ``live_from`` and the live carry's generation. It is written last in each
flush, so a reader sees either the previous flush's open spans or this one's, never a mix.
Dead rows are dropped by whole partitions in :meth:`ClickHouseStore.maintain`.

Crash window: the journal is written after the batch's rollups. A process killed between the
two resumes the previous flush's open spans: traces judged in the lost flush are judged again
(their rollups counted twice), never lost.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lanewatch.collect.bulk import COLUMNS as SPAN_DTYPES
from lanewatch.collect.bulk import NAME_COLUMNS
from lanewatch.store.base import OpenSpans, Resumed
from lanewatch.store.clickhouse_conn import Connection, lit
from lanewatch.store.clickhouse_read import newest_sql
from lanewatch.store.clickhouse_schema import JOURNAL_TYPES

_CARRY = -1
#: The span columns of a chunk in ``open_chunks.data``, in order, with their types (the
#: assembly's columns but the derived ``tkey``).
PACKED: tuple[tuple[str, np.dtype[Any]], ...] = tuple(
    (c, np.dtype(t).newbyteorder("<")) for c, t in SPAN_DTYPES.items() if c != "tkey")
PACKED_COLUMNS: tuple[str, ...] = tuple(c for c, _ in PACKED)
_ROW_BYTES = sum(t.itemsize for _, t in PACKED)


def pack(rows: dict[str, Any]) -> str:
    """The columns of ``rows`` (one chunk) as ``open_chunks.data``."""
    raw = b"".join(np.ascontiguousarray(rows[c], dtype=t).tobytes() for c, t in PACKED)
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


def unpack(n: int, data: str) -> dict[str, npt.NDArray[Any]]:
    """The ``n`` spans of one ``open_chunks.data``, as columns in the assembly's types."""
    raw = binascii.a2b_base64(data)
    if len(raw) != n * _ROW_BYTES:
        raise ValueError(f"open_chunks: {len(raw)} bytes for {n} spans, {n * _ROW_BYTES} expected")
    out: dict[str, npt.NDArray[Any]] = {}
    at = 0
    for c, t in PACKED:
        out[c] = np.frombuffer(raw, dtype=t, count=n, offset=at).astype(SPAN_DTYPES[c])
        at += n * t.itemsize
    return out


_STATE = ("epoch", "live_from", "carry_gen", "running")


@dataclass
class State:
    epoch: int = 0
    live_from: int = 0
    carry_gen: int = 0
    running: bool = False


def states(con: Connection, collector: str | None = None) -> dict[str, State]:
    """The newest journal row of every collector (or of one)."""
    where = f"collector = {lit(collector)}" if collector is not None else ""
    cols = con.query(newest_sql("journal", ["collector"], _STATE, where))
    return {str(c): State(int(e), int(lf), int(g), bool(r)) for c, e, lf, g, r in zip(*cols)}


def live_cond(collector: str, s: State) -> str:
    return (f"(collector = {lit(collector)} AND epoch = {s.epoch} AND "
            f"(seq >= {s.live_from} OR (seq = {_CARRY} AND gen = {s.carry_gen} AND gen > 0)))")


#: One part of a change as written: (seq, gen, span columns).
Part = tuple[int, int, dict[str, Any]]


def plan(state: State, change: OpenSpans, stamp: int) -> tuple[State, list[Part]]:
    """The state after ``change`` and the parts (chunks, the carry) it writes, none empty."""
    new = State(state.epoch, state.live_from, state.carry_gen, True)
    if change.reset or not new.epoch:
        new = State(stamp, int(change.live_from), 0, True)
    else:
        new.live_from = max(new.live_from, int(change.live_from))
    if new.live_from > _CARRY and change.carry is None:
        new.carry_gen = 0  # the carry goes with the chunks below live_from, as in DuckDB
    parts: list[Part] = [(seq, 0, rows) for seq, rows in change.added]
    if change.carry is not None:
        new.carry_gen = stamp
        parts.append((_CARRY, stamp, change.carry))
    return new, [p for p in parts if len(p[2]["sid"])]


def write(con: Connection, collector: str, state: State, change: OpenSpans, stamp: int, at: int) -> State:
    """Insert one change's rows, then the journal row that makes them live; the new state.
    ``stamp`` is a fresh unique number (epoch, carry generation and ``ver``)."""
    new, parts = plan(state, change, stamp)
    if parts:
        k = len(parts)
        con.insert("open_chunks", ["collector", "epoch", "seq", "gen", "at", "n", "data"],
                   [[collector] * k, [new.epoch] * k, [s for s, _, _ in parts], [g for _, g, _ in parts],
                    [at] * k, [len(rows["sid"]) for _, _, rows in parts], [pack(rows) for _, _, rows in parts]])
    write_names(con, collector, new.epoch, change)
    mark(con, collector, new, stamp)
    return new


def write_names(con: Connection, collector: str, epoch: int, change: OpenSpans) -> None:
    """The names of the codes ``change`` added."""
    if change.names:
        k = len(change.names)
        con.insert("open_names", ["collector", "epoch", "code", "name"],
                   [[collector] * k, [epoch] * k,
                    list(range(change.names_from, change.names_from + k)), list(change.names)])


def mark(con: Connection, collector: str, s: State, ver: int) -> None:
    con.insert("journal", ["collector", *_STATE, "ver"],
               [[collector], [s.epoch], [s.live_from], [s.carry_gen], [int(s.running)], [ver]])


def read(con: Connection, collector: str, s: State | None, clean: bool) -> Resumed:
    """The live open spans of ``collector``, with the names of their codes."""
    if s is None or not s.epoch:
        return Resumed(rows=None, names=[], clean=clean)
    codes, texts = con.query(f"SELECT code, name FROM open_names WHERE collector = {lit(collector)} "
                             f"AND epoch = {s.epoch} ORDER BY code LIMIT 1 BY code")
    names: list[str] = []
    for code, name in zip(codes, texts):
        if code != len(names):
            raise ValueError(f"open_names: code {code} where {len(names)} was expected")
        names.append(str(name))
    live = live_cond(collector, s)
    counts, blobs = con.query(f"SELECT n, data FROM open_chunks WHERE {live}")
    parts = [unpack(int(n), str(b)) for n, b in zip(counts, blobs)]
    legacy = con.query(f"SELECT {', '.join(JOURNAL_TYPES)} FROM open_spans WHERE {live}")
    if legacy and len(legacy[0]):
        old: dict[str, npt.NDArray[Any]] = {c: np.asarray(v, dtype=SPAN_DTYPES[c]) for c, v in zip(JOURNAL_TYPES, legacy)}
        old["w"] = np.ones(len(old["sid"]))  # schema 2 kept no weight
        parts.append(old)
    rows: dict[str, Any] | None = None
    if parts:
        rows = {c: np.concatenate([p[c] for p in parts]) for c, _ in PACKED}
        if len(rows["sid"]) and int(max(rows[k].max() for k in NAME_COLUMNS)) >= len(names):
            raise ValueError("open_chunks: a name code without its name in open_names")
    return Resumed(rows=rows, names=names, clean=clean)
