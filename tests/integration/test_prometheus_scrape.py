"""A real Prometheus scrapes a running lanewatch; injected leaks make LaneLeak pending, then firing.

Prometheus is Debian's ``/usr/bin/prometheus`` (2.42), started on a free loopback port with a
1 s scrape and evaluation interval, temporary storage, and a copy of
``dashboards/prometheus/lanewatch-alerts.yml`` whose LaneLeak waits ``for: 5s`` instead of
30 s (the rule itself is what is tested; only the wait is shortened). Leaks come as real
OTLP/protobuf over HTTP: C has a live gray instance (heartbeats) while base C serves gray
requests. Prometheus scrapes its first target 5-9 s after it is ready: the deadlines are generous.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest
import requests
import yaml
from metrics_support import free_port, running_lanewatch, wait_for

from lanewatch.testing import TraceBuilder, heartbeat_request

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "dashboards" / "prometheus" / "lanewatch-alerts.yml"
PROMETHEUS = "/usr/bin/prometheus"
LEAK_FOR = "5s"


def rules_copy(path: Path) -> Path:
    """The shipped rules with LaneLeak's ``for`` shortened to :data:`LEAK_FOR`."""
    doc = yaml.safe_load(RULES.read_text())
    leak = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == "LaneLeak"]
    assert len(leak) == 1
    leak[0]["for"] = LEAK_FOR
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def prometheus_scraping(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """(Prometheus URL, the running lanewatch Collector it scrapes every second)."""
    binary = shutil.which("prometheus") or (PROMETHEUS if Path(PROMETHEUS).exists() else None)
    if binary is None:
        pytest.fail("prometheus is missing: apt-get install -y --no-install-recommends prometheus "
                    "(.ci/run installs it)")
    with running_lanewatch(tmp_path / "lanewatch") as collector:
        target = f"127.0.0.1:{collector.endpoints()['port']}"
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(rules_copy(tmp_path / "rules.yml"))],
                  "scrape_configs": [{"job_name": "lanewatch", "metrics_path": "/metrics",
                                      "static_configs": [{"targets": [target]}]}]}
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = (tmp_path / "prometheus.log").open("w")
        proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            def ready() -> bool:
                assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
                try:
                    return requests.get(url + "/-/ready", timeout=2).status_code == 200
                except requests.ConnectionError:
                    return False
            wait_for(ready, timeout=60)

            def scraped() -> bool:
                active = requests.get(url + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
                return any(t["health"] == "up" for t in active)
            wait_for(scraped, timeout=60)
            yield url, collector
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            log.close()


class Traffic:
    """Gray requests A-gray -> C every ``tick_s`` on a thread, ``leaks`` of each ``per_tick``
    served by base C while C-gray is live (heartbeats every 2 s): real OTLP over HTTP."""

    def __init__(self, otlp_http: str, per_tick: int = 8, leaks: int = 2, tick_s: float = 0.5) -> None:
        self.otlp_http, self.per_tick, self.leaks, self.tick_s = otlp_http, per_tick, leaks, tick_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leak-traffic", daemon=True)
        self.errors: list[str] = []

    def _post(self, path: str, body: bytes) -> None:
        r = requests.post(self.otlp_http + path, data=body, timeout=10,
                          headers={"Content-Type": "application/x-protobuf"})
        if r.status_code != 200:
            self.errors.append(f"{path}: {r.status_code} {r.text[:200]}")

    def _run(self) -> None:
        last_beat = 0.0
        while not self._stop.is_set():
            if time.time() - last_beat >= 2.0:
                for service, lane in (("A", "gray"), ("C", "gray"), ("C", "")):
                    self._post("/v1/metrics", heartbeat_request(service, lane))
                last_beat = time.time()
            tb = TraceBuilder(t0=time.time())
            for i in range(self.per_tick):
                a = tb.new_trace().hop("A", lane="gray", request_lane="gray")
                tb.hop("C", lane="" if i < self.leaks else "gray", request_lane="gray", caller=tb.call(a))
            self._post("/v1/traces", tb.body())
            self._stop.wait(self.tick_s)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def leak_alert_state(url: str) -> str | None:
    alerts = requests.get(url + "/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    states = [a["state"] for a in alerts if a["labels"].get("alertname") == "LaneLeak"
              and a["labels"].get("service") == "C" and a["labels"].get("lane") == "gray"]
    return states[0] if states else None


def test_prometheus_scrapes_lanewatch_and_the_leak_rule_goes_pending_then_firing(
        prometheus_scraping: tuple[str, Any]) -> None:
    url, collector = prometheus_scraping
    seen: list[str] = []

    def firing() -> bool:
        state = leak_alert_state(url)
        if state and (not seen or seen[-1] != state):
            seen.append(state)
        return state == "firing"

    with Traffic(collector.endpoints()["otlp_http"]) as traffic:
        try:
            wait_for(firing, timeout=90, every=0.2)
        finally:
            assert not traffic.errors, traffic.errors
    assert seen == ["pending", "firing"], seen
    # what fired is what lanewatch counted: leaks at C, gray expected, served by base
    q = requests.get(url + "/api/v1/query", params={"query": 'lanewatch_hops_total{verdict="leak"}'},
                     timeout=5).json()["data"]["result"]
    assert [(r["metric"]["service"], r["metric"]["instance_lane"], r["metric"]["expected_lane"]) for r in q] \
        == [("C", "base", "gray")]
    assert float(q[0]["value"][1]) > 0
    assert collector.query.summary(300)["hops"]["leak"] >= float(q[0]["value"][1])
