"""Several ``lanewatch serve`` on one ClickHouse store: each evaluates the alerts (its API and
dashboard show them), one of them at a time holds the lease and records and notifies, so the
history and the webhook get each change once; when it stops, another takes over.

Real parts: a ``lanewatch collect`` role (the real OTLP/HTTP receiver) fed raw OTLP leak
traces, two ``serve`` roles reading the real 18.16 server, a real webhook receiver."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alert_receivers import Receiver, receiver, wait_for

from lanewatch import config
from lanewatch.roles import Server
from lanewatch.server import Collector
from lanewatch.store.clickhouse_local import LocalServer
from lanewatch.testing import TraceBuilder, heartbeat_request, wait_until
from tests.clickhouse_support import fresh_database

pytestmark = pytest.mark.timeout(180)


def settings(tmp: Path, **flags: Any) -> config.Settings:
    return config.load(environ={}, flags={"otlp_http_port": 0, "otlp_grpc_port": -1, "port": 0,
                                          "trace_wait_s": 1.0, "data_dir": str(tmp), **flags})


def post(url: str, body: bytes) -> None:
    req = urllib.request.Request(url, body, {"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def leak(otlp: str, service: str, n: int = 30) -> None:
    """``n`` gray requests served by ``service``'s base instance while its gray one is live."""
    for lane in ("gray", ""):
        post(otlp + "/v1/metrics", heartbeat_request(service, lane, f"{service}-{lane or 'base'}-1",
                                                     time_ns=time.time_ns()))
    tb = TraceBuilder(t0=time.time())
    for _ in range(n):
        tb.hop(service, "", "gray")
    post(otlp + "/v1/traces", tb.body())


def firing(s: Server, name: str, service: str) -> bool:
    return any(a.name == name and a.labels.get("service") == service and a.state == "firing"
               for a in s.alerts.current())


def sent(hook: Receiver, service: str) -> list[dict[str, Any]]:
    return [a for body in hook.bodies for a in body["alerts"]
            if a["labels"].get("service") == service and a["status"] == "firing"]


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as rec:
        yield rec


def test_two_serve_record_and_notify_each_change_once_and_hand_over(
        tmp_path: Path, clickhouse_server: LocalServer, hook: Receiver) -> None:
    store = clickhouse_server.url(fresh_database("lease"))
    collector = Collector(settings(tmp_path / "c", store=store, collector_id="c0"), web=False,
                          alerts=False).start()
    serves = [Server(settings(tmp_path / f"s{i}", store=store, alert_webhook=[hook.url])).start()
              for i in range(2)]
    try:
        otlp = collector.endpoints()["otlp_http"]
        wait_until(lambda: all(s.alerts.evaluations > 1 for s in serves), 20, "both serve evaluate")
        leak(otlp, "B")
        wait_until(lambda: all(firing(s, "LaneLeak", "B") for s in serves), 30,
                   "LaneLeak at B fires on both serve")
        wait_for(lambda: sent(hook, "B") or None, 10, "the webhook hears of it")
        time.sleep(3.0)  # several evaluations of both: a second copy would have come by now
        assert len(sent(hook, "B")) == 1, sent(hook, "B")
        history = serves[0].query.alerts(history=50)["history"]
        rows = [e for e in history if e["alertname"] == "LaneLeak" and e["state"] == "firing"]
        assert len(rows) == 1, history
        leases = [s.alerts.health()["lease"] for s in serves]
        assert sorted(x["leader"] for x in leases) == [False, True], leases
        assert leases[0]["holder"] == leases[1]["holder"] and leases[0]["shared"]

        # the holder stops: the other takes over within the lease, and records the next change once
        leader = next(s for s, x in zip(serves, leases) if x["leader"])
        other = next(s for s in serves if s is not leader)
        leader.stop()
        serves.remove(leader)
        stopped = time.monotonic()
        wait_until(lambda: other.alerts.health()["lease"]["leader"], other.alerts.lease_s + 5,
                   "the other serve takes the lease")
        assert time.monotonic() - stopped <= other.alerts.lease_s + 5
        leak(otlp, "C")
        wait_until(lambda: firing(other, "LaneLeak", "C"), 30, "LaneLeak at C fires")
        wait_for(lambda: sent(hook, "C") or None, 10, "the webhook hears of C")
        time.sleep(2.0)
        assert len(sent(hook, "C")) == 1  # (that body lists B too: the group's firing alerts)
        history = other.query.alerts(history=50)["history"]
        assert sorted(e["labels"]["service"] for e in history
                      if e["alertname"] == "LaneLeak" and e["state"] == "firing") == ["B", "C"], history
    finally:
        for s in serves:
            s.stop()
        collector.stop()
