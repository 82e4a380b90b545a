"""``lanewatch demo``: the write-up's mesh, live, in one command; ``lanewatch demo fault``: its switches.

``lanewatch demo [--scenario 1|2|3|all] [--rate 20] [--duration S] [--no-browser]``
starts the collector and dashboard, the A -> B -> C mesh (base and gray
copies), the ingress and the traffic, prints the dashboard URL, and stops
every process it started on Ctrl-C, SIGTERM or at the end of ``--duration``.

``lanewatch demo fault [NAME on|off] [--control URL] [--run-file FILE]`` lists or
switches the faults of a running demo (the URL defaults to the one in the run file:
``--run-file``, given before or after ``fault``, or the default run file).
While the demo runs in a terminal, typing a fault's number and Enter toggles it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import webbrowser
from pathlib import Path

from lanewatch.demo import faults as F
from lanewatch.demo import scenarios as S
from lanewatch.demo import web
from lanewatch.demo.runner import Demo, DemoError, DemoOptions
from lanewatch.stop_signals import StopFlag, restore, stop_on_signals

log = logging.getLogger(__name__)


def default_run_file() -> Path:
    """Where a running demo says how to reach it (for ``lanewatch demo fault``)."""
    return Path(tempfile.gettempdir()) / f"lanewatch-demo-{os.getuid()}.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``lanewatch demo`` and its ``fault`` subcommand."""
    parser.add_argument("--scenario", default="all", choices=(*S.SCENARIOS, "all"),
                        help="the write-up's scenario; 'all' cycles through them (default)")
    parser.add_argument("--no-canary", action="store_true",
                        help="scenario 3 without the ingress canary (user 100 enters at A-base)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds")
    parser.add_argument("--phase-seconds", type=float, default=30.0, help="length of each phase of 'all'")
    parser.add_argument("--no-browser", action="store_true", help="do not open the dashboard")
    parser.add_argument("--no-collector", action="store_true", help="the mesh only, not instrumented")
    parser.add_argument("--otlp-endpoint", default="",
                        help="export to this running collector (OTLP/HTTP base URL) instead of starting one")
    parser.add_argument("--no-traffic", action="store_true", help="send no traffic (use curl)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="dashboard and API port (0 = free)")
    parser.add_argument("--otlp-http-port", type=int, default=0, help="collector OTLP/HTTP port (0 = free)")
    parser.add_argument("--ingress-port", type=int, default=0, help="ingress port (0 = free)")
    parser.add_argument("--control-port", type=int, default=0, help="fault/registry control port (0 = free)")
    parser.add_argument("--data-dir", default="", help="keep the collector's store here (default: temporary)")
    parser.add_argument("--run-file", default="", help=f"write URLs and pids here (default {default_run_file()})")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--auth-token", default=None, metavar="TOKEN",
                        help="the collector asks for this bearer token and the mesh sends it (default: "
                             "LANEWATCH_AUTH_TOKEN); with --otlp-endpoint, the token of that collector")
    parser.add_argument("--alert-webhook", action="append", metavar="URL",
                        help="also deliver the demo's alerts to URL, in Alertmanager's webhook format "
                        "(repeatable)")
    sub = parser.add_subparsers(dest="demo_command")
    fault = sub.add_parser("fault", help="list or switch the faults of a running demo")
    fault.add_argument("name", nargs="?", choices=F.FAULT_NAMES, help="the fault")
    fault.add_argument("state", nargs="?", choices=("on", "off"), help="switch it on or off")
    fault.add_argument("--control", default="", help="the demo's control URL (default: the running demo's)")
    # SUPPRESS: when not given here, a --run-file before `fault` stays
    fault.add_argument("--run-file", default=argparse.SUPPRESS,
                       help="read the control URL from this run file (default: as for the demo)")
    release = sub.add_parser("release", help="a release under traffic on a running demo: rolling restart "
                             "of every gray instance, promotion of gray to base, or a kill -9 of C-gray")
    release.add_argument("kind", choices=("rolling", "promote", "crash"))
    release.add_argument("--control", default="", help="the demo's control URL (default: the running demo's)")
    release.add_argument("--run-file", default=argparse.SUPPRESS,
                         help="read the control URL from this run file (default: as for the demo)")


def run(args: argparse.Namespace) -> int:
    """Run the demo, or the ``fault`` subcommand."""
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if getattr(args, "demo_command", None) == "fault":
        return fault_command(args)
    if getattr(args, "demo_command", None) == "release":
        return release_command(args)
    opts = DemoOptions(scenario=args.scenario, canary=not args.no_canary, rate=args.rate,
                       phase_s=args.phase_seconds, host=args.host, port=args.port,
                       otlp_http_port=args.otlp_http_port, ingress_port=args.ingress_port,
                       control_port=args.control_port, collector=not args.no_collector,
                       otlp_endpoint=args.otlp_endpoint,
                       traffic=not args.no_traffic, data_dir=args.data_dir,
                       run_file=args.run_file or str(default_run_file()), log_level=args.log_level,
                       alert_webhook=tuple(args.alert_webhook or ()), auth_token=_token(args))
    return run_until_stopped(opts, args.duration, open_browser=not args.no_browser)


def run_until_stopped(opts: DemoOptions, duration: float = 0.0, open_browser: bool = False) -> int:
    """Start, show progress until Ctrl-C / SIGTERM / ``duration``, stop everything."""
    stop = StopFlag()
    try:
        demo = Demo(opts)
    except OSError as e:  # a port given by a flag is taken
        sys.stderr.write(f"lanewatch demo: {e}\n")
        return 2
    previous = stop_on_signals(stop)
    try:
        try:
            demo.start(abort=stop)
        except DemoError as e:
            sys.stderr.write(f"lanewatch demo: {e}\n")
            return 1
        _banner(demo)
        if open_browser and opts.collector:
            _open_browser(demo.login_url)
        if sys.stdin.isatty():
            threading.Thread(target=_keys, args=(demo, stop), name="demo-keys", daemon=True).start()
        _progress(demo, stop, duration)
        if demo.traffic is not None:
            sys.stderr.write("\n" + demo.traffic.progress_line("final") + "\n")
            if demo.traffic.snapshot().last_error:
                sys.stderr.write(f"last error: {demo.traffic.snapshot().last_error}\n")
        return 0
    finally:
        if sys.stderr.isatty():
            sys.stderr.write("stopping...\n")
        demo.stop()
        restore(previous)


def _progress(demo: Demo, stop: StopFlag, duration: float) -> None:
    end = time.monotonic() + duration if duration > 0 else float("inf")
    tty = sys.stderr.isatty()
    last_line = time.monotonic()
    while not stop.is_set() and time.monotonic() < end:
        demo.run_pending(0.5)
        note = demo.tick()
        for why in demo.reap():
            log.warning("%s", why)
        line = demo.traffic.progress_line(note) if demo.traffic is not None else note
        if tty:
            sys.stderr.write("\r\033[K" + line[: max(20, _columns() - 1)])
            sys.stderr.flush()
        elif time.monotonic() - last_line >= 10:
            last_line = time.monotonic()
            sys.stderr.write(line + "\n")


def _columns() -> int:
    return shutil.get_terminal_size(fallback=(120, 24)).columns


def _banner(demo: Demo) -> None:
    info, sc = demo.info(), demo.phases.current()
    lines = [f"lanewatch demo up in {info['startup_s']} s: scenario {demo.opts.scenario} ({sc.title})"]
    if info["dashboard_url"]:
        lines += [f"  dashboard   {info['dashboard_url']}", f"  API         {info['api_url']}/api/v1/summary?window=60"]
        if demo.opts.auth_token:
            lines += [("              (both ask for the token: sign in on the dashboard, "
                      "curl -H 'Authorization: Bearer TOKEN')")]
    lines += [f"  ingress     {info['ingress_url']}   try:",
              f"    curl -H 'Host: {sc.traffic[-1].host}' "
              + "".join(f"-H '{k}: {v}' " for k, v in sc.traffic[-1].headers.items()) + f"{info['ingress_url']}/a",
              f"  faults      lanewatch demo fault NAME on|off --control {info['control_url']}",
              "              or type a number and Enter to toggle:"]
    lines += [f"    {i}. {f.name:<18} {f.description}" for i, f in enumerate(F.FAULTS, 1)]
    print("\n".join(lines), flush=True)


def _keys(demo: Demo, stop: StopFlag) -> None:
    for raw in sys.stdin:
        key = raw.strip().lower()
        if key in ("q", "quit", "exit"):
            stop.set()
            return
        if key.isdigit() and 1 <= int(key) <= len(F.FAULTS):
            name = F.FAULTS[int(key) - 1].name
            demo.switchboard.set(name, not demo.switchboard.snapshot()[name])


def _token(args: argparse.Namespace) -> str:
    """``--auth-token``, else ``LANEWATCH_AUTH_TOKEN``, else ``LANEWATCH_AUTH_TOKEN_FILE``'s."""
    from lanewatch.config.access import read_token_file

    return str(getattr(args, "auth_token", None) or os.environ.get("LANEWATCH_AUTH_TOKEN")
               or read_token_file(os.environ.get("LANEWATCH_AUTH_TOKEN_FILE", "")))


def _open_browser(url: str) -> None:
    """Open ``url`` only where a graphical browser can be (a text browser would take the terminal)."""
    if sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        try:
            webbrowser.open(url, new=2)
        except webbrowser.Error as e:
            log.info("no browser: %s", e)


def _control_url(args: argparse.Namespace) -> str:
    """The running demo's control URL (``--control``, the env, the run file), or ``""``."""
    url = str(args.control or os.environ.get("LANEWATCH_DEMO_CONTROL_URL", ""))
    if not url:
        run_file = Path(getattr(args, "run_file", "") or default_run_file())
        try:
            url = str(json.loads(run_file.read_text())["control_url"])
        except (OSError, ValueError, KeyError, TypeError):
            sys.stderr.write(f"no running demo found in {run_file}: pass --run-file FILE or --control URL\n")
    return url


def release_command(args: argparse.Namespace) -> int:
    """``lanewatch demo release rolling|promote|crash``: run it on the running demo, print what it did."""
    url = _control_url(args)
    if not url:
        return 2
    try:
        out = web.post_json(f"{url.rstrip('/')}/release/{args.kind}", {}, timeout=180.0)
    except OSError as e:
        sys.stderr.write(f"control server {url}: {e}\n")
        return 2
    print(json.dumps(out))
    return 0


def fault_command(args: argparse.Namespace) -> int:
    """``lanewatch demo fault [NAME on|off]``: list the faults, or switch one."""
    url = _control_url(args)
    if not url:
        return 2
    try:
        if args.name and args.state:
            web.post_json(f"{url.rstrip('/')}/faults/{args.name}", {"on": args.state == "on"}, timeout=15.0)
        info = web.get_json(f"{url.rstrip('/')}/faults/info")
    except OSError as e:
        sys.stderr.write(f"control server {url}: {e}\n")
        return 2
    for f in info:
        if not args.name or f["name"] == args.name:
            print(f"{'ON ' if f['on'] else 'off'}  {f['name']:<18} {f['description']}  -> {f['expect']}")
    return 0
