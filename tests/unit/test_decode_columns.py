"""Protobuf span decoding: the fast wire path (collect/wire.py) and the per-span path
(collect/decode.py with the merged view of collect/columns.py) against a plain
per-span read of every field, on random, canonical and non-canonical encodings."""

from __future__ import annotations

import ast
import random
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from lanewatch import lane as L
from lanewatch.collect import columns, decode, schema, wire
from lanewatch.collect.decode import Keys

KEYS = Keys(request_lane=(L.REQUEST_LANE_ATTR, "x-lane"), extra=("tenant",))


@pytest.fixture(autouse=True)
def wire_for_every_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """decode_traces sends small requests span by span; here every size takes the fast path."""
    monkeypatch.setattr(decode, "FAST_MIN_BYTES", 0)
_ALL = attrgetter("trace_id", "span_id", "parent_span_id", "kind", "start_time_unix_nano",
                  "end_time_unix_nano", "status", "attributes", "trace_state")


def reference(body: bytes, keys: Keys) -> dict[str, Any]:
    """Every field of every span read one by one from the ordinary parse; invalid spans
    (bad ids, no start time, times past 2^63) left out and counted."""
    req = schema.TraceRequest()
    req.ParseFromString(body)
    rows: list[tuple[Any, ...]] = []
    rejected = 0
    for r, rs in enumerate(req.resource_spans):
        for ss in rs.scope_spans:
            for sp in ss.spans:
                tid, sid, pid, kind, st, en, status, attrs, state = _ALL(sp)
                if (len(tid) != 16 or not any(tid) or len(sid) != 8 or len(pid) not in (0, 8)
                        or not 0 < st < 2**63 or en >= 2**63):
                    rejected += 1
                    continue
                lane = next((attrs[k] for k in keys.request_lane if attrs.get(k)), b"")
                rows.append((int.from_bytes(tid[:8], "big"), int.from_bytes(tid[8:], "big"),
                             int.from_bytes(sid, "big"), int.from_bytes(pid or bytes(8), "big"),
                             kind if 0 <= kind <= 5 else 0, st, en, schema.StatusCodes()[status] == 2,
                             lane, L.DYED_ATTR in attrs, r, tuple(attrs.get(k, b"") for k in keys.extra), state))
    names = ("trace_hi", "trace_lo", "span_id", "parent_id", "kind", "start_ns", "end_ns", "err",
             "request_lane", "dyed", "resource", "extra", "trace_state")
    out = {k: list(v) for k, v in zip(names, zip(*rows))} if rows else {k: [] for k in names}
    return {**out, "rejected": rejected}


def dense(c: decode.SpanColumns, keys: Keys) -> dict[str, Any]:
    """SpanColumns in the reference's shape (attributes spread over every span)."""
    lanes: list[Any] = [b""] * c.n
    states: list[Any] = [b""] * c.n
    assert len(c.state_at) == len(c.trace_state)
    for i, v in zip(c.state_at.tolist(), c.trace_state):
        assert v  # only spans with a tracestate are listed
        states[i] = v
    extra: list[list[Any]] = [[b""] * c.n for _ in keys.extra]
    for j, i in enumerate(c.attr_at.tolist()):
        lanes[i] = c.request_lane[j]
        for col, k in zip(extra, keys.extra):
            col[i] = c.extra[k][j]
    out: dict[str, Any] = {k: getattr(c, k).tolist() for k in (
        "trace_hi", "trace_lo", "span_id", "parent_id", "kind", "start_ns", "end_ns", "err")}
    out.update(request_lane=[v or b"" for v in lanes], dyed=c.dyed.tolist(), resource=c.resource.tolist(),
               extra=list(zip(*extra)) if keys.extra else [()] * c.n, rejected=c.rejected,
               trace_state=states)
    return out


def check(body: bytes, keys: Keys = KEYS) -> decode.SpanColumns | None:
    """Decode ``body`` both ways and against the reference; return the fast path's result."""
    want = reference(body, keys)
    assert dense(decode.decode_traces(body, "proto", keys), keys) == want
    assert dense(decode._traces_pb(body, keys).columns(), keys) == want
    fast = wire.fast_traces(body, keys)
    if fast is not None:
        assert wire.read_deferred(fast, keys) == 0
        assert dense(fast, keys) == want
    return fast


def _kv(k: str, v: str) -> KeyValue:
    return KeyValue(key=k, value=AnyValue(string_value=v))


def random_request(rng: random.Random, p_missing: float) -> bytes:
    """Spans where any field may be absent (so merged columns misalign), several
    resources and scopes (some empty), lane keys on some spans only."""
    req = ExportTraceServiceRequest()
    for _ in range(rng.randint(1, 3)):
        rs = req.resource_spans.add()
        rs.resource.attributes.append(_kv(L.SERVICE_NAME_ATTR, f"svc{rng.randint(0, 3)}"))
        for _ in range(rng.randint(0, 3)):
            ss = rs.scope_spans.add()
            for _ in range(rng.choice((0, 1, 2, 7, 30))):
                sp = ss.spans.add()

                def maybe(p: float = p_missing) -> bool:
                    return rng.random() >= p
                if maybe():
                    sp.trace_id = rng.randbytes(16)
                if maybe():
                    sp.span_id = rng.randbytes(8)
                if maybe(0.5):
                    sp.parent_span_id = rng.randbytes(rng.choice((8, 8, 3)))
                if maybe():
                    sp.kind = rng.randint(1, 5)
                if maybe():
                    sp.start_time_unix_nano = rng.randint(1, 2**63)
                if maybe():
                    sp.end_time_unix_nano = rng.randint(1, 2**63)
                if maybe(0.4):
                    sp.status.CopyFrom(Status(code=rng.choice((0, 1, 2, 2))))
                if maybe(0.7):
                    sp.trace_state = rng.choice(("ot=th:8", "ot=th:c;rv:abcdef01234567", "k=v,ot=th:zz"))
                attrs = [_kv("http.route", "/x")]
                if maybe(0.7):
                    attrs.append(_kv(rng.choice((L.REQUEST_LANE_ATTR, "x-lane")), rng.choice(("gray", "", "b"))))
                if maybe(0.9):
                    attrs.append(_kv(L.DYED_ATTR, "1"))
                if maybe(0.8):
                    attrs.append(_kv("tenant", rng.choice(("t1", "t2"))))
                rng.shuffle(attrs)
                sp.attributes.extend(attrs)
    return req.SerializeToString()


@pytest.mark.parametrize("p_missing", [0.0, 0.01, 0.3, 1.0])
def test_random_requests_decode_as_the_plain_read(p_missing: float) -> None:
    rng = random.Random(int(p_missing * 100))
    for _ in range(150):
        body = random_request(rng, p_missing)
        check(body, KEYS)
        check(body, Keys())


def realistic_span(rng: random.Random, t: int) -> Span:
    """A valid span as SDKs write it, with the optional parts real spans have."""
    sp = Span(trace_id=rng.randbytes(15) + b"\x01", span_id=rng.randbytes(8), name=rng.choice(("GET /", "x" * 300)),
              kind=rng.randint(1, 5), start_time_unix_nano=t, end_time_unix_nano=t + rng.randint(0, 10**9))
    if rng.random() < 0.7:
        sp.parent_span_id = rng.randbytes(8)
    if rng.random() < 0.2:
        sp.trace_state = rng.choice(("k=v", "vendor=" + "x" * 150, "ot=th:8", "ot=th:fd70a4", "ot=th:"))
    if rng.random() < 0.5:
        sp.flags = 0x301
    attrs = [_kv("http.route", "/api"), KeyValue(key="http.status_code", value=AnyValue(int_value=2))]
    roll = rng.random()
    if roll < 0.4:
        attrs.append(_kv(L.REQUEST_LANE_ATTR, rng.choice(("gray", "blue", ""))))
    elif roll < 0.5:  # the Java agent's captured header: a string array
        attrs.append(KeyValue(key="x-lane", value=AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="gray")]))))
    elif roll < 0.55:  # a lane that is not a string
        attrs.append(KeyValue(key=L.REQUEST_LANE_ATTR, value=AnyValue(int_value=7)))
    elif roll < 0.6:  # the key's bytes inside another value only
        attrs.append(_kv("note", "\n\x04lane\x12\x06\n\x04gray"))
    if rng.random() < 0.1:
        attrs.append(_kv(L.DYED_ATTR, "true"))
    if rng.random() < 0.3:
        attrs.append(_kv("tenant", rng.choice(("t1", "t2"))))
    if rng.random() < 0.05:  # the same key twice: the last one counts
        attrs += [_kv(L.REQUEST_LANE_ATTR, "first"), _kv(L.REQUEST_LANE_ATTR, "last")]
    sp.attributes.extend(attrs)
    if rng.random() < 0.2:  # an event that carries the lane key: not the span's attribute
        sp.events.add(name="ev", time_unix_nano=t, attributes=[_kv(L.REQUEST_LANE_ATTR, "event-lane")])
    if rng.random() < 0.1:
        sp.links.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8), attributes=[_kv("tenant", "link")])
    roll = rng.random()
    if roll < 0.6:
        sp.status.code = rng.choice((Status.STATUS_CODE_UNSET, Status.STATUS_CODE_OK, Status.STATUS_CODE_ERROR))
        if rng.random() < 0.3:
            sp.status.message = rng.choice(("boom", "x" * 80))
    elif roll < 0.8:
        sp.status.SetInParent()  # present and empty, as the Python SDK writes UNSET
    return sp


def realistic_request(rng: random.Random, n: int) -> bytes:
    req = ExportTraceServiceRequest()
    for r in range(rng.randint(1, 3)):
        rs = req.resource_spans.add()
        rs.resource.attributes.extend([_kv(L.SERVICE_NAME_ATTR, f"svc{r}"), _kv(L.INSTANCE_LANE_ATTR, "gray")])
        for _ in range(rng.randint(1, 2)):
            rs.scope_spans.add().spans.extend(realistic_span(rng, 10**18 + i) for i in range(n))
    return req.SerializeToString()


def test_canonical_requests_take_the_fast_path_and_read_exactly() -> None:
    rng = random.Random(7)
    taken = 0
    for i in range(120):
        taken += check(realistic_request(rng, rng.choice((1, 5, 40)))) is not None
    # a long status message (beyond what is looked for at a span's end) falls back
    assert taken >= 100


def test_every_span_carrying_a_status_reads_status_from_the_merged_column() -> None:
    rng = random.Random(3)
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for i in range(20):
        sp = realistic_span(rng, 10**18 + i)
        sp.status.code = Status.STATUS_CODE_ERROR if i % 3 == 0 else Status.STATUS_CODE_OK
        spans.append(sp)
    fast = check(req.SerializeToString())
    assert fast is not None and fast.err.tolist() == [i % 3 == 0 for i in range(20)]


def _fields(sp: Span, order: list[str]) -> bytes:
    """``sp`` encoded with its fields in ``order`` (each field as its own one-field
    message: concatenated, they are one valid encoding of the span)."""
    out = b""
    for name in order:
        one = Span()
        value = getattr(sp, name)
        if name in ("attributes", "events", "links"):
            getattr(one, name).extend(value)
        elif name == "status":
            one.status.CopyFrom(value)
        else:
            setattr(one, name, value)
        out += one.SerializeToString()
    return out


def _request(span_bytes: list[bytes]) -> bytes:
    scope = b"".join(b"\x12" + schema.varint(len(b)) + b for b in span_bytes)
    rs = b"\x12" + schema.varint(len(scope)) + scope
    return b"\x0a" + schema.varint(len(rs)) + rs


CANONICAL = ["trace_id", "span_id", "parent_span_id", "name", "kind", "start_time_unix_nano",
             "end_time_unix_nano", "attributes", "status"]


@pytest.mark.parametrize("order", [
    ["span_id", *[f for f in CANONICAL if f != "span_id"]],  # ids swapped
    [f for f in CANONICAL if f != "parent_span_id"] + ["parent_span_id"],  # parent last
    [f for f in CANONICAL if f != "status"][:3] + ["status"] + [f for f in CANONICAL if f != "status"][3:],
    [*CANONICAL, "parent_span_id"],  # parent twice
    [*CANONICAL, "kind"],  # kind twice
])
def test_fields_out_of_order_or_repeated_read_as_the_plain_parse(order: list[str]) -> None:
    rng = random.Random(11)
    spans = []
    for i in range(6):
        sp = realistic_span(rng, 10**18 + i)
        sp.parent_span_id = rng.randbytes(8)
        sp.status.code = Status.STATUS_CODE_ERROR
        spans.append(sp)
    plain = [s.SerializeToString() for s in spans]
    odd = [_fields(s, order) for s in spans]
    for mix in (odd, [odd[0], *plain[1:]], [*plain[:3], odd[3], *plain[4:]]):
        check(_request(mix))


def test_a_status_less_span_next_to_error_spans_keeps_its_place() -> None:
    rng = random.Random(5)
    spans = [realistic_span(rng, 10**18 + i) for i in range(8)]
    for i, sp in enumerate(spans):
        sp.ClearField("status")
        if i % 2:
            sp.status.code = Status.STATUS_CODE_ERROR
            sp.status.message = "m" * i
    fast = check(_request([s.SerializeToString() for s in spans]))
    assert fast is not None and fast.err.tolist() == [bool(i % 2) for i in range(8)]


def test_invalid_spans_are_rejected_with_a_message() -> None:
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    spans.add(trace_id=b"a" * 16, span_id=b"1" * 8, kind=2, start_time_unix_nano=5)
    spans.add(trace_id=bytes(16), span_id=b"2" * 8, kind=2, start_time_unix_nano=5)  # all-zero trace id
    spans.add(trace_id=b"b" * 16, span_id=b"3" * 7, kind=2, start_time_unix_nano=5)
    spans.add(trace_id=b"c" * 16, span_id=b"4" * 8, kind=2, start_time_unix_nano=0)
    spans.add(trace_id=b"d" * 16, span_id=b"5" * 8, kind=2, start_time_unix_nano=2**63)
    c = decode.decode_traces(req.SerializeToString(), "proto", KEYS)
    assert (c.n, c.rejected) == (1, 4) and "span_id 8 bytes" in c.why


def test_aligned_misaligned_and_absent_columns() -> None:
    """Full columns come from the merged view; a partly present one is read per span; an
    absent one is the default for every span."""
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    spans.add(trace_id=b"a" * 16, span_id=b"1" * 8, kind=2, start_time_unix_nano=5)
    spans.add(trace_id=b"b" * 16, span_id=b"2" * 8, parent_span_id=b"1" * 8, kind=3, start_time_unix_nano=6)
    body = req.SerializeToString()
    merged = columns.parse_merged(body)
    assert merged is not None
    n_req = schema.TraceRequest()
    n_req.ParseFromString(body)
    plain = n_req.resource_spans[0].scope_spans[0].spans
    cols, attrs = columns.scope_columns(merged.resource_spans[0].scope_spans[0].spans, plain, False)
    assert attrs is None
    assert cols == [[b"a" * 16, b"b" * 16], [b"1" * 8, b"2" * 8], [b"", b"1" * 8], [2, 3], [5, 6], [0, 0],
                    [b"", b""], [b"", b""]]
    assert columns.scope_columns(None, plain, True)[0] == cols  # no merged view: all per span


def test_keys_absent_from_the_body_skip_attribute_lookups() -> None:
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"a" * 16, span_id=b"1" * 8, kind=2, start_time_unix_nano=1, end_time_unix_nano=2,
        attributes=[_kv("http.route", "/")])
    body = req.SerializeToString()
    assert not decode.any_wanted_key(body, KEYS)
    assert wire.fast_traces(body, KEYS) is not None
    fast = decode.decode_traces(body, "proto", KEYS, defer_attributes=True)
    assert fast.deferred == [] and len(fast.attr_at) == 0  # no walk scheduled
    exact = decode._traces_pb(body, KEYS).columns()
    assert exact.request_lane == [b""] and exact.extra == {"tenant": [b""]}
    for c in (fast, exact):
        assert c.dyed.tolist() == [False]
    req.resource_spans[0].scope_spans[0].spans[0].attributes.append(_kv("tenant", "t1"))
    assert decode.any_wanted_key(req.SerializeToString(), KEYS)
    assert decode.decode_traces(req.SerializeToString(), "proto", KEYS, defer_attributes=True).deferred


def test_columns_of_several_requests_concatenate() -> None:
    rng = random.Random(9)
    bodies = [realistic_request(rng, 5) for _ in range(3)]
    parts = [decode.decode_traces(b, "proto", KEYS) for b in bodies]
    joined = dense(decode.SpanColumns.concat(parts), KEYS)
    want = [reference(b, KEYS) for b in bodies]
    offsets = np.cumsum([0] + [len(p.resources) for p in parts[:-1]])
    for k in joined:
        if k == "rejected":
            continue
        expect = [v + o if k == "resource" else v for w, o in zip(want, offsets) for v in w[k]]
        assert joined[k] == expect, k


def test_attributes_of_many_requests_are_read_in_one_walk_or_one_by_one() -> None:
    """Deferred attributes of several requests, read together after concatenation: a
    request whose attributes are irregular (a KeyValue with its value before its key) is
    read on its own, span by span, without disturbing the others."""
    rng = random.Random(13)
    bodies = [realistic_request(rng, 6) for _ in range(4)]
    odd = realistic_span(rng, 10**18)
    odd.attributes.clear()
    kv = KeyValue(key=L.REQUEST_LANE_ATTR, value=AnyValue(string_value="gray"))
    value_first = b"\x12" + schema.varint(len(kv.value.SerializeToString())) + kv.value.SerializeToString() \
        + b"\x0a" + schema.varint(len(kv.key)) + kv.key.encode()
    odd_bytes = odd.SerializeToString() + b"\x4a" + schema.varint(len(value_first)) + value_first
    bodies.insert(2, _request([odd_bytes]))
    for group in (bodies, bodies[:2], bodies[2:3]):
        parts = []
        for b in group:
            c = decode.decode_traces(b, "proto", KEYS, defer_attributes=True)
            parts.append(c)
        joined = decode.SpanColumns.concat(parts)
        assert wire.read_deferred(joined, KEYS) == 0
        want = [reference(b, KEYS) for b in group]
        got = dense(joined, KEYS)
        assert got["request_lane"] == [v for w in want for v in w["request_lane"]]
        assert got["dyed"] == [v for w in want for v in w["dyed"]]
        assert got["extra"] == [v for w in want for v in w["extra"]]
    assert dense(decode.decode_traces(bodies[2], "proto", KEYS), KEYS)["request_lane"] == [kv.value.SerializeToString()]


def test_unparsable_attributes_are_counted_not_raised() -> None:
    """Past the checks the response depends on, a span whose attributes cannot be read
    (an irregular KeyValue, so no walk, and a key that is not UTF-8, so no parse) reads
    as carrying none, and is counted; the request itself was sound and accepted."""
    rng = random.Random(17)
    sp = realistic_span(rng, 10**18)
    sp.attributes.clear()
    sp.attributes.append(_kv(L.REQUEST_LANE_ATTR, "gray"))
    bad_key = b"\x12\x02\x0a\x00\x0a\x01\xff"  # value first, then a key of one invalid byte
    body = _request([sp.SerializeToString() + b"\x4a" + schema.varint(len(bad_key)) + bad_key])
    with pytest.raises(decode.DecodeError):
        decode._traces_pb(body, KEYS)  # read span by span, the whole request is malformed
    c = decode.decode_traces(body, "proto", KEYS, defer_attributes=True)
    assert c.n == 1 and wire.read_deferred(c, KEYS) == 1
    assert len(c.attr_at) == 0 and c.dyed.tolist() == [False]


def test_a_lane_value_that_is_no_anyvalue_is_kept_raw_for_the_name_table() -> None:
    """As the per-span map keeps values encoded, the walk keeps them raw: junk is decoded
    (and counted as an invalid lane) by the name table later."""
    rng = random.Random(19)
    sp = realistic_span(rng, 10**18)
    sp.attributes.clear()
    junk_kv = b"\x0a\x04lane\x12\x03\xff\xff\xff"
    check(_request([sp.SerializeToString() + b"\x4a" + schema.varint(len(junk_kv)) + junk_kv]))


def test_small_requests_are_read_span_by_span(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "FAST_MIN_BYTES", 16 * 1024)
    taken: list[int] = []
    real = wire.fast_traces
    monkeypatch.setattr(wire, "fast_traces", lambda body, keys: taken.append(len(body)) or real(body, keys))
    rng = random.Random(21)
    small, large = realistic_request(rng, 2), realistic_request(rng, 200)
    assert len(small) < 16 * 1024 <= len(large)
    for body in (small, large):
        assert dense(decode.decode_traces(body, "proto", KEYS), KEYS) == reference(body, KEYS)
    assert taken == [len(large)]


def test_mutated_requests_decode_or_are_refused_never_crash() -> None:
    """Random bytes flipped, cut or inserted in canonical requests: each is either refused
    as malformed or read, the same way by both paths, never with another exception."""
    rng = random.Random(23)
    refused = read = 0
    for i in range(400):
        body = bytearray(realistic_request(rng, rng.choice((3, 20))))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(body))
            roll = rng.random()
            if roll < 0.6:
                body[at] = rng.randrange(256)
            elif roll < 0.8:
                del body[at:at + rng.randint(1, 8)]
            else:
                body[at:at] = rng.randbytes(rng.randint(1, 8))
        try:
            exact = decode._traces_pb(bytes(body), KEYS).columns()
        except decode.DecodeError:
            exact = None
        try:
            c = decode.decode_traces(bytes(body), "proto", KEYS, defer_attributes=True)
        except decode.DecodeError:
            refused += 1
            continue
        wire.read_deferred(c, KEYS)
        read += 1
        if exact is not None and exact.rejected == c.rejected == 0:
            got, want = dense(c, KEYS), dense(exact, KEYS)
            for k in ("trace_hi", "trace_lo", "span_id", "start_ns", "end_ns", "resource"):
                assert got[k] == want[k], k
    assert refused and read


def _imports_within(package: Path, name: str) -> dict[str, set[str]]:
    """Module -> the modules of ``name`` it imports, counting imports inside functions
    and under TYPE_CHECKING too (a lazy import is still a cycle)."""
    graph: dict[str, set[str]] = {}
    modules = {".".join((name, *p.relative_to(package).with_suffix("").parts)): p for p in package.rglob("*.py")}
    for mod, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                deps |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                         for a in node.names}
        graph[mod] = {d for d in deps if d in modules and d != mod and not d.endswith("__init__")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(mod: str, path: list[str]) -> list[str] | None:
        if mod in path:
            return [*path[path.index(mod):], mod]
        if mod in done:
            return None
        for dep in sorted(graph[mod]):
            found = visit(dep, [*path, mod])
            if found:
                return found
        done.add(mod)
        return None
    return next((c for m in sorted(graph) if (c := visit(m, [])) is not None), None)


def test_the_decoders_import_no_cycle() -> None:
    """decode uses wire's fast path and both share the decoded form (collect/spans.py):
    neither imports the other back, not even lazily."""
    import lanewatch.collect

    graph = _imports_within(Path(lanewatch.collect.__file__).parent, "lanewatch.collect")
    assert "lanewatch.collect.wire" in graph["lanewatch.collect.decode"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])
