"""GET /metrics of a running ``lanewatch up`` fed by real OTLP agrees with /api/v1/summary."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from metrics_support import Sdk, running_lanewatch, scrape, total, wait_for

from lanewatch.rollups import HOP_VERDICT_LABELS

GRAY, BASE = "gray", "base"
N_TRACES = 11


@pytest.fixture(scope="module")
def lanewatch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A gray A and C but no gray B; traffic with one of each violation, judged."""
    with running_lanewatch(tmp_path_factory.mktemp("lw-metrics")) as collector:
        ep = collector.endpoints()
        sdk = Sdk(ep["otlp_http"])
        for service, lane in (("A", BASE), ("A", GRAY), ("B", BASE), ("C", BASE), ("C", GRAY)):
            sdk.heartbeat(service, lane)
        abc = [("A", GRAY), ("B", BASE), ("C", GRAY)]
        for i in range(4):  # gray falls back at B and returns to C-gray; one fails at C
            sdk.chain(abc, [GRAY] * 3, [GRAY] * 3, error_at=2 if i == 0 else -1)
        for i in range(3):  # base stays base; one fails at B
            sdk.chain([("A", BASE), ("B", BASE), ("C", BASE)], [BASE] * 3, [BASE] * 3,
                      error_at=1 if i == 0 else -1)
        sdk.chain([("A", GRAY), ("B", BASE), ("C", BASE)], [GRAY] * 3, [GRAY] * 3)  # leak at C
        sdk.chain([("A", BASE), ("B", BASE), ("C", GRAY)], [BASE] * 3, [BASE] * 3)  # intrusion at C
        sdk.chain([("A", GRAY), ("B", BASE), ("C", BASE)], [GRAY, BASE, BASE], [GRAY, BASE, BASE])  # lost A->B
        sdk.chain([("A", GRAY), ("B", BASE)], [GRAY, GRAY], [GRAY, GRAY])  # fallback at B
        sdk.shutdown()
        wait_for(lambda: summary(ep)["traces"] >= N_TRACES, timeout=60)
        yield ep


def summary(ep: dict[str, Any]) -> dict[str, Any]:
    r = requests.get(ep["url"] + "/api/v1/summary", params={"window": 3600}, timeout=10)
    r.raise_for_status()
    out: dict[str, Any] = r.json()
    return out


def differences(ep: dict[str, Any]) -> list[str]:
    """What /metrics and /api/v1/summary disagree on (empty: they agree)."""
    got, _ = scrape(ep["url"])
    s = summary(ep)
    diff = []

    def check(what: str, metrics: float, api: float) -> None:
        if metrics != api:
            diff.append(f"{what}: /metrics {metrics} != summary {api}")

    for v in HOP_VERDICT_LABELS:
        check(f"hops {v}", total(got, "lanewatch_hops_total", verdict=v), s["hops"][v])
    check("edges tag_lost", total(got, "lanewatch_edges_total", verdict="tag_lost"), s["edges"]["tag_lost"])
    check("edge calls", sum(total(got, "lanewatch_edges_total", verdict=v) for v in HOP_VERDICT_LABELS),
          s["edges"]["calls"])
    check("traces", total(got, "lanewatch_traces_total"), s["traces"])
    check("traces violated", total(got, "lanewatch_traces_total", stayed="false"), s["traces_violated"])
    for lane, row in s["lanes"].items():
        check(f"{lane} traces", total(got, "lanewatch_traces_total", entry_lane=lane), row["traces"])
        check(f"{lane} stayed", total(got, "lanewatch_traces_total", entry_lane=lane, stayed="true"),
              row["stayed"])
        check(f"{lane} requests", total(got, "lanewatch_hops_total", instance_lane=lane), row["requests"])
        check(f"{lane} errors", total(got, "lanewatch_hop_errors_total", instance_lane=lane), row["errors"])
        check(f"{lane} latency count", total(got, "lanewatch_hop_duration_seconds_count", instance_lane=lane),
              row["requests"])
    check("spans received", total(got, "lanewatch_spans_received_total"), s["counters"]["spans_received"])
    return diff


def test_metrics_totals_agree_with_the_summary(lanewatch: dict[str, Any]) -> None:
    wait_for(lambda: not differences(lanewatch) or None, timeout=30)  # a flush may sit between them
    assert differences(lanewatch) == []
    got, content_type = scrape(lanewatch["url"])
    assert content_type.startswith("text/plain; version=")
    s = summary(lanewatch)
    assert s["hops"]["leak"] == 1 and s["hops"]["intrusion"] == 1 and s["edges"]["tag_lost"] == 1
    assert total(got, "lanewatch_hops_total", service="C", instance_lane=BASE, expected_lane=GRAY,
                 verdict="leak") == 1
    assert total(got, "lanewatch_hops_total", service="B", verdict="fallback") == 6
    assert total(got, "lanewatch_edges_total", caller="A", callee="B", lane=GRAY, verdict="tag_lost") == 1
    assert total(got, "lanewatch_traces_total", entry_lane=GRAY, stayed="true") == 5
    assert total(got, "lanewatch_hop_errors_total", service="C", instance_lane=GRAY) == 1


def test_live_instances_and_the_content_types(lanewatch: dict[str, Any]) -> None:
    prometheus = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    r = requests.get(lanewatch["url"] + "/metrics", headers={"Accept": prometheus}, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    r = requests.get(lanewatch["url"] + "/metrics", headers={"Accept": "application/openmetrics-text"},
                     timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/openmetrics-text")
    assert r.text.endswith("# EOF\n")
    got, _ = scrape(lanewatch["url"])
    instances = requests.get(lanewatch["url"] + "/api/v1/instances", timeout=10).json()
    live = {(i["service"], i["lane"]) for i in instances if i["live"]}
    assert live == {("A", BASE), ("A", GRAY), ("B", BASE), ("C", BASE), ("C", GRAY)}
    for service, lane in live:
        assert total(got, "lanewatch_instances_live", service=service, lane=lane) == 1


def test_lanewatchs_own_alerts_are_exposed(lanewatch: dict[str, Any]) -> None:
    """The intrusion at C fires lanewatch's LaneIntrusion at once; /metrics counts what
    /api/v1/alerts lists, per name and state."""
    def agreeing() -> dict[tuple[str, str], float] | None:
        listed = requests.get(lanewatch["url"] + "/api/v1/alerts", timeout=10).json()["alerts"]
        want: dict[tuple[str, str], float] = {}
        for a in listed:
            key = (a["labels"]["alertname"], a["state"])
            want[key] = want.get(key, 0) + 1
        got, _ = scrape(lanewatch["url"])
        shown = {(dict(lb)["alertname"], dict(lb)["state"]): v for (n, lb), v in got.items()
                 if n == "lanewatch_alerts"}
        return shown if shown == want and ("LaneIntrusion", "firing") in shown else None
    shown = wait_for(agreeing, timeout=30)
    assert shown[("LaneIntrusion", "firing")] == 1
