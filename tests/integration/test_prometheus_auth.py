"""A real Prometheus scrapes `lanewatch up --auth-token --tls-cert --tls-key` with the scrape
configuration docs/security.md shows (authorization credentials_file, tls_config ca_file);
without the credentials the target is down with 401."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from access_support import TOKEN, lanewatch_up, self_signed
from metrics_support import free_port, wait_for

PROMETHEUS = "/usr/bin/prometheus"


def test_prometheus_scrapes_with_the_token_over_tls(tmp_path: Path) -> None:
    binary = shutil.which("prometheus") or (PROMETHEUS if Path(PROMETHEUS).exists() else None)
    if binary is None:
        pytest.fail("prometheus is missing: apt-get install -y --no-install-recommends prometheus")
    cert, key = self_signed(tmp_path)
    token_file = tmp_path / "lanewatch.token"
    token_file.write_text(TOKEN + "\n")
    with lanewatch_up(tmp_path / "data", "--auth-token-file", str(token_file), "--tls-cert", str(cert),
                      "--tls-key", str(key)) as ep:
        target = f"127.0.0.1:{ep['port']}"
        tls = {"ca_file": str(cert)}
        config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [
            {"job_name": "with_token", "scheme": "https", "metrics_path": "/metrics", "tls_config": tls,
             "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
             "static_configs": [{"targets": [target]}]},
            {"job_name": "without_token", "scheme": "https", "metrics_path": "/metrics", "tls_config": tls,
             "static_configs": [{"targets": [target]}]}]}
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = (tmp_path / "prometheus.log").open("w")
        proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            def targets() -> dict[str, Any]:
                assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
                try:
                    active = requests.get(url + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
                except (requests.ConnectionError, ValueError):
                    return {}
                return {t["labels"]["job"]: t for t in active if t["health"] != "unknown"}

            wait_for(lambda: len(targets()) == 2, timeout=90)
            found = targets()
            assert found["with_token"]["health"] == "up", found["with_token"]["lastError"]
            assert found["without_token"]["health"] == "down"
            assert "401" in found["without_token"]["lastError"]
            value = requests.get(url + "/api/v1/query", timeout=5,
                                 params={"query": 'up{job="with_token"}'}).json()["data"]["result"]
            assert value and value[0]["value"][1] == "1"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            log.close()
