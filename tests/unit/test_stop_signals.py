"""A process told to stop stops, however many signals arrive and wherever they land.

The CI failure this guards: a killed demo's child got one SIGTERM per exiting
demo thread (``PR_SET_PDEATHSIG``); the second ran its handler inside the
first one's ``threading.Event.set()``, waited for the lock that ``set()``
held, and the child never left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

# Sends one more signal to itself on each of the first lines the handler runs:
# a second handler starts inside the first at every point it could.
NESTING = textwrap.dedent("""
    import os, signal, sys
    fired = 0
    def tracer(frame, event, arg):
        global fired
        if event == "line" and fired < 30 and frame.f_code.co_filename != "<string>":
            fired += 1
            os.kill(os.getpid(), signal.SIGTERM)
        return tracer
    {install}
    sys.settrace(tracer)
    os.kill(os.getpid(), signal.SIGTERM)
    sys.settrace(None)
    print("stopped" if {is_set} else "not stopped", fired, flush=True)
""")

FLAG = NESTING.format(install="from lanewatch.stop_signals import StopFlag, stop_on_signals\n"
                              "flag = StopFlag(); stop_on_signals(flag)",
                      is_set="flag.wait(2.0)")
EVENT = NESTING.format(install="import threading\nflag = threading.Event()\n"
                               "signal.signal(signal.SIGTERM, lambda *_: flag.set())",
                       is_set="flag.wait(2.0)")


def run(code: str, timeout: float) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return None


def test_a_signal_inside_the_handler_still_stops_the_process() -> None:
    done = run(FLAG, timeout=20)
    assert done is not None, "hung: a nested handler waited for itself"
    assert done.returncode == 0, done.stderr
    word, fired = done.stdout.split()
    assert word == "stopped" and int(fired) >= 1, done.stdout  # nested signals were really sent


def test_the_event_handler_it_replaces_does_hang() -> None:
    """The check above can fail: the same nesting hangs a handler that calls Event.set()."""
    assert run(EVENT, timeout=5) is None


WAITER = textwrap.dedent("""
    import sys
    from lanewatch.stop_signals import Stops
    hups = []
    stops = Stops(lambda: (hups.append(1), print("reload", len(hups), flush=True)))
    print("ready", flush=True)  # after Stops, as lanewatch up writes its ready file
    signum = stops.wait()
    print("stopped by", signum, "after", len(hups), "reloads", flush=True)
""")


def start_waiter() -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", WAITER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_hangup_reloads_in_the_main_loop_and_term_stops() -> None:
    proc = start_waiter()
    assert proc.stdout is not None
    os.kill(proc.pid, signal.SIGHUP)
    assert proc.stdout.readline().strip() == "reload 1"
    os.kill(proc.pid, signal.SIGHUP)
    assert proc.stdout.readline().strip() == "reload 2"
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out.strip() == f"stopped by {int(signal.SIGTERM)} after 2 reloads"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_burst_of_stop_signals_stops_it_once(sig: signal.Signals) -> None:
    proc = start_waiter()
    for _ in range(200):
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            break
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out.strip() == f"stopped by {int(sig)} after 0 reloads"
