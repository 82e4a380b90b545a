"""Issue 11, finding 4: the Lanes & instances page renders with thousands of instances
(it took 33 s for 300 and never rendered 600): a few per service and lane, and how many more."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from dashboard_browser_support import Browser, Running, start_lanewatch
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from lanewatch import lane as L

pytestmark = pytest.mark.browser

SERVICES, LANES, PER_LANE = 10, ("base", "gray"), 300
#: lanewatch.dashboard.pages.MAX_ROWS, PER_LANE_ROWS (that module registers a page on import)
MAX_ROWS, PER_LANE_ROWS = 200, 10


def heartbeats(service: str, lane: str, n: int) -> bytes:
    req = ExportMetricsServiceRequest()
    for i in range(n):
        rm = req.resource_metrics.add()
        rm.resource.attributes.extend([
            KeyValue(key=L.SERVICE_NAME_ATTR, value=AnyValue(string_value=service)),
            KeyValue(key=L.INSTANCE_LANE_ATTR, value=AnyValue(string_value=lane)),
            KeyValue(key=L.INSTANCE_ID_ATTR, value=AnyValue(string_value=f"{service}-{lane}-{i:04d}"))])
        rm.scope_metrics.add().metrics.add(name=L.HEARTBEAT_METRIC).gauge.data_points.add(as_int=1)
    return bytes(req.SerializeToString())


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with start_lanewatch(tmp_path_factory.mktemp("crowded"), traffic=False) as running:
        otlp = running.collector.endpoints()["otlp_http"]
        for s in range(SERVICES):
            for lane in LANES:
                req = urllib.request.Request(otlp + "/v1/metrics", heartbeats(f"svc{s:02d}", lane, PER_LANE),
                                             {"Content-Type": "application/x-protobuf"})
                with urllib.request.urlopen(req, timeout=30) as r:
                    assert r.status == 200
        yield running


def test_thousands_of_instances_render_a_few_per_lane(crowded: Running, browser: Browser) -> None:
    page = browser.page
    page.goto(crowded.url + "/lanes")
    note = page.wait_for_selector("#lanes-instances-note", timeout=120_000)
    assert note is not None
    total = SERVICES * len(LANES) * PER_LANE
    assert f"of {total:,} instances" in note.inner_text()
    rows = page.locator("#lanes-instance-table tbody tr")
    assert rows.count() <= MAX_ROWS + SERVICES * len(LANES)
    more = page.locator("#lanes-instance-table tr.lw-more")
    assert more.count() >= 1
    assert f"{PER_LANE - PER_LANE_ROWS} more base instances of svc00" in more.first.inner_text()
    # every service and lane is in the matrix
    assert page.locator(".lw-matrix tbody tr").count() == SERVICES
    assert browser.errors == []
