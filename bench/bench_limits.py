"""What the per-request object limits (``lanewatch/collect/limits.py``) cost: the check
before parsing, as a share of decoding the same request, and how fast a flood is refused.

    PYTHONPATH=. python bench/bench_limits.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lanewatch.collect import limits
from lanewatch.collect.decode import Keys, decode_traces
from lanewatch.collect.ingest import TooLarge
from lanewatch.collect.schema import varint
from lanewatch.testing import TraceBuilder


def best(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def refused(body: bytes, fmt: str) -> None:
    try:
        limits.check_request("traces", body, fmt, limits.Limits())  # type: ignore[arg-type]
    except TooLarge:
        return
    raise AssertionError("not refused")


def main() -> None:
    keys, lim = Keys(), limits.Limits()
    for n in (512, 8192, 50_000):
        tb = TraceBuilder()
        for i in range(n):
            tb.hop("A", lane="gray", request_lane="gray", attributes={"http.route": f"/r/{i % 50}"})
        for fmt in ("proto", "json"):
            body = tb.body(fmt=fmt)
            check = best(lambda b=body, f=fmt: limits.check_request("traces", b, f, lim))  # type: ignore[misc]
            decode = best(lambda b=body, f=fmt: decode_traces(b, f, keys))  # type: ignore[misc]
            print(f"{n:>6} spans {fmt:5}: check {check * 1e3:7.3f} ms, decode {decode * 1e3:8.2f} ms, "
                  f"check/decode {check / decode:.3%}")
    flood = field(1, field(2, b"\x12\x00" * 8_000_000))
    print(f"8M empty spans (protobuf) refused in {best(lambda: refused(flood, 'proto')) * 1e3:.1f} ms")
    jflood = b'{"resourceSpans":[{"scopeSpans":[{"spans":[' + b",".join([b"{}"] * 5_000_000) + b"]}]}]}"
    print(f"5M empty JSON objects refused in {best(lambda: refused(jflood, 'json')) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
