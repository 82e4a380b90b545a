"""Run ``lanewatch demo`` as a real subprocess and check it leaves nothing behind."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lanewatch.demo import web
from lanewatch.demo.traffic import lane_path


class RunningDemo:
    """A started demo: its run file, and helpers to talk to it."""

    def __init__(self, proc: subprocess.Popen[bytes], info: dict[str, Any], log: Path) -> None:
        self.proc = proc
        self.info = info
        self.log = log

    def ask(self, host: str, headers: dict[str, str] | None = None) -> tuple[int, str, float]:
        """One request through the ingress: (status, answer, seconds)."""
        t0 = time.monotonic()
        status, body = web.request("GET", self.info["ingress_url"] + "/a",
                                   headers={"Host": host, **(headers or {})}, timeout=10)
        return status, body.decode(), time.monotonic() - t0

    def path(self, host: str, headers: dict[str, str] | None = None) -> str:
        """The lane path of one answer, ``A[gray] -> B[gray] -> C[base]``."""
        status, text, _ = self.ask(host, headers)
        assert status == 200, text
        return lane_path(text)

    def fault(self, name: str, on: bool) -> None:
        web.post_json(f"{self.info['control_url']}/faults/{name}", {"on": on}, timeout=30)

    def api(self, path: str) -> Any:
        return web.get_json(self.info["api_url"] + path, timeout=10)

    def registry(self) -> list[dict[str, Any]]:
        return list(web.get_json(self.info["control_url"] + "/registry"))


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def _ports(info: dict[str, Any], registry: list[dict[str, Any]]) -> set[int]:
    urls = [info[k] for k in ("control_url", "ingress_url", "api_url", "otlp_url") if info.get(k)]
    ports = {int(u.rsplit(":", 1)[1].split("/")[0]) for u in urls}
    return ports | {int(r["addr"].rsplit(":", 1)[1]) for r in registry}


@contextlib.contextmanager
def running_demo(tmp: Path, *args: str, start_timeout_s: float = 120.0) -> Iterator[RunningDemo]:
    """Start ``lanewatch demo ARGS``; on exit SIGTERM it and assert no process or port is left."""
    run_file, log = tmp / "run.json", tmp / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "lanewatch.cli", "demo", "--no-browser",
                                 "--run-file", str(run_file), *args],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    demo: RunningDemo | None = None
    try:
        deadline = time.monotonic() + start_timeout_s
        while not run_file.exists():
            assert proc.poll() is None, f"demo exited {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"demo not up in {start_timeout_s} s:\n{log.read_text()}"
            time.sleep(0.1)
        time.sleep(0.05)  # the file is written in one go; let it land
        demo = RunningDemo(proc, json.loads(run_file.read_text()), log)
        registry = demo.registry()
        yield demo
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert demo is not None
    assert rc == 0, log.read_text()
    children = demo.info["children"].values()
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in children if not gone(p)] == [], "child processes left behind"
    busy = [p for p in _ports(demo.info, registry) if not web.port_is_free(p)]
    assert busy == [], f"ports still bound: {busy}"
    assert not Path(demo.info["run_dir"]).exists()
    assert not run_file.exists()


@pytest.fixture
def demo_runner(tmp_path: Path) -> Callable[..., contextlib.AbstractContextManager[RunningDemo]]:
    """``with demo_runner("--scenario", "1") as demo: ...``"""
    return lambda *args, **kw: running_demo(tmp_path, *args, **kw)
