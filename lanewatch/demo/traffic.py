"""The traffic generator: a steady request rate at the ingress, with a live progress line.

``python -m lanewatch.demo.traffic --url http://127.0.0.1:PORT --scenario 2 --rate 20``

Requests are drawn from the scenario's request kinds by weight and sent at
``rate`` per second from a small thread pool. Each answer (the write-up's
``Agray[...] -> Bgray[...] -> C[...]``) is read back as a lane path,
``A[gray] -> B[gray] -> C[base]``, counted, and compared with the kind's
expected paths.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from lanewatch import lane as L
from lanewatch.demo import web
from lanewatch.demo.scenarios import CHAIN, RequestKind

_HOP = re.compile(r"([A-Z])([A-Za-z0-9._:-]*)\[[^\]]*\]")


def lane_path(answer: str) -> str:
    """``Agray[1.2.3.4:5] -> B[...] -> Cgray[...]`` -> ``A[gray] -> B[base] -> C[gray]``.

    Hops the answer does not name (an error text) are left out.
    """
    hops = [f"{m.group(1)}[{m.group(2) or L.BASE}]" for m in _HOP.finditer(answer)
            if m.group(1) in CHAIN]
    return " -> ".join(hops)


def send(url: str, kind: RequestKind, timeout: float = 10.0) -> tuple[int, str]:
    """One request of ``kind`` to the ingress at ``url``; returns (status, answer text)."""
    status, body = web.request("GET", url.rstrip("/") + "/a", headers={"Host": kind.host, **kind.headers},
                               timeout=timeout)
    return status, body.decode(errors="replace")


@dataclass
class Stats:
    """Counts since start; read with :meth:`Traffic.snapshot`."""

    sent: int = 0
    ok: int = 0
    errors: int = 0
    unexpected: int = 0
    skipped: int = 0  # not sent: the pool was behind
    latency_s: float = 0.0
    paths: Counter[str] = field(default_factory=Counter)
    last_error: str = ""


class Traffic:
    """Send ``rate`` requests per second until :meth:`stop`."""

    def __init__(self, url: str, kinds: Sequence[RequestKind], rate: float, *, workers: int = 16,
                 seed: int | None = None, sender: Callable[[str, RequestKind], tuple[int, str]] = send) -> None:
        if rate <= 0:
            raise ValueError(f"rate={rate}: must be > 0")
        self.url = url
        self.rate = rate
        self._kinds = list(kinds)
        self._rand = random.Random(seed)
        self._sender = sender
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="traffic")
        self._workers = workers
        self._lock = threading.Lock()
        self._stats = Stats()
        self._pending = 0
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="traffic", daemon=True)
        self.started = 0.0

    def set_kinds(self, kinds: Sequence[RequestKind]) -> None:
        """Switch to another request mix (a new scenario phase)."""
        with self._lock:
            self._kinds = list(kinds)

    def pause(self, timeout_s: float = 5.0) -> bool:
        """Stop sending and wait (bounded) until no request is in flight; True when idle."""
        self._paused.set()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._pending == 0:
                    return True
            time.sleep(0.01)
        return False

    def resume(self) -> None:
        """Send again, at the same rate (the paused time is not made up)."""
        self._paused.clear()

    def start(self) -> Traffic:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop sending and wait (bounded) for the requests in flight."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def snapshot(self) -> Stats:
        with self._lock:
            s = self._stats
            return Stats(s.sent, s.ok, s.errors, s.unexpected, s.skipped, s.latency_s, Counter(s.paths),
                         s.last_error)

    def _loop(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_at:
                self._stop.wait(next_at - now)
                continue
            next_at += interval
            if next_at < now - 1.0:  # fell far behind (suspended): do not burst
                next_at = now
            if self._paused.is_set():
                continue
            with self._lock:
                if self._pending >= 2 * self._workers:
                    self._stats.skipped += 1
                    continue
                self._pending += 1
                kind = self._rand.choices(self._kinds, weights=[k.weight for k in self._kinds])[0]
            self._pool.submit(self._one, kind)

    def _one(self, kind: RequestKind) -> None:
        t0 = time.monotonic()
        try:
            status, text = self._sender(self.url, kind)
        except OSError as e:
            status, text = 599, str(e)
        took = time.monotonic() - t0
        path = lane_path(text) if status < 400 else ""
        with self._lock:
            self._pending -= 1
            s = self._stats
            s.sent += 1
            s.latency_s += took
            if status >= 400:
                s.errors += 1
                s.last_error = f"{status} {text[:200]}"
                return
            s.ok += 1
            s.paths[path] += 1
            if kind.expect and path not in kind.expect:
                s.unexpected += 1

    def progress_line(self, note: str = "") -> str:
        """One line: elapsed, rate, counts, the most common lane paths."""
        s = self.snapshot()
        elapsed = max(time.monotonic() - self.started, 1e-9)
        mean_ms = 1000 * s.latency_s / s.sent if s.sent else 0.0
        top = "  ".join(f"{p.replace(' -> ', '>')} {n}" for p, n in s.paths.most_common(3))
        head = (f"[{elapsed:5.0f}s] {s.sent / elapsed:5.1f} req/s  sent {s.sent}  err {s.errors}  "
                f"unexpected {s.unexpected}  {mean_ms:4.0f} ms")
        return f"{head} | " + (f"{note} | " if note else "") + top


def main(argv: list[str] | None = None) -> int:
    from lanewatch.demo import scenarios

    p = argparse.ArgumentParser(prog="lanewatch.demo.traffic", description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="the ingress, e.g. http://127.0.0.1:8080")
    p.add_argument("--scenario", default="1", choices=scenarios.SCENARIOS)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until Ctrl-C")
    args = p.parse_args(argv)
    traffic = Traffic(args.url, scenarios.load(args.scenario).traffic, args.rate).start()
    end = time.monotonic() + args.duration if args.duration else float("inf")
    try:
        while time.monotonic() < end:
            time.sleep(0.5)
            sys.stderr.write("\r\033[K" + traffic.progress_line())
            sys.stderr.flush()
    except KeyboardInterrupt:
        pass
    traffic.stop()
    sys.stderr.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
