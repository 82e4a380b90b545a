"""Every answer of a real `lanewatch up` (API, dashboard, /metrics) refuses framing and sniffing,
and no answer names the server software."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from lanewatch import config
from lanewatch.server import Collector


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("headers")
    settings = config.load(environ={}, flags={"otlp_http_port": 0, "otlp_grpc_port": -1, "port": 0,
                                              "data_dir": str(tmp)})
    with Collector(settings) as c:
        yield c.endpoints()["url"]


@pytest.mark.parametrize("path", ["/", "/alerts", "/api/v1/summary", "/api/v1/nope", "/metrics",
                                  "/_dash-layout"])
def test_every_answer_refuses_framing_and_names_no_server(url: str, path: str) -> None:
    r = requests.get(url + path, timeout=30)
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers.get("Server") == "lanewatch"
    assert "werkzeug" not in str(r.headers).lower() and "python" not in str(r.headers).lower()
