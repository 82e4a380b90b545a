"""A mesh process whose demo died stops by itself, even when no parent-death signal came.

The grandchild below is started without ``PR_SET_PDEATHSIG`` and its control
server stays up, so the only thing that can stop it is noticing that the
process that started it is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from lanewatch.demo.control import ControlApp, ControlServer
from lanewatch.demo.faults import Switchboard
from lanewatch.demo.registry import Registry
from tests.demo.conftest import gone

GRANDCHILD = textwrap.dedent("""
    import os, sys, time
    from lanewatch.demo.client import ControlClient
    ControlClient(sys.argv[1]).start()
    open(sys.argv[2], "w").write(str(os.getpid()))
    time.sleep(120)
""")

MIDDLE = textwrap.dedent("""
    import subprocess, sys, time
    subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]])
    time.sleep(120)
""")


def test_a_mesh_process_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    server = ControlServer(ControlApp(Registry(), Switchboard())).start()
    ready = tmp_path / "pid"
    middle = subprocess.Popen([sys.executable, "-c", MIDDLE, GRANDCHILD, server.url, str(ready)])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() or not ready.read_text():
            assert middle.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        pid = int(ready.read_text())
        middle.kill()
        middle.wait(10)
        deadline = time.monotonic() + 10  # polls every 0.2 s; the control server never went away
        while not gone(pid):
            assert time.monotonic() < deadline, f"pid {pid} still runs 10 s after its parent was killed"
            time.sleep(0.05)
    finally:
        middle.kill()
        if ready.exists() and ready.read_text() and not gone(int(ready.read_text())):
            os.kill(int(ready.read_text()), signal.SIGKILL)
        server.stop()
