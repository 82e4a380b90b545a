"""``lanewatch up | collect | serve | check | demo | config | rules``: the command line.

Each subcommand lives in its own module exposing ``add_arguments(parser)``
and ``run(args) -> int`` (or ``add_NAME_arguments``/``run_NAME``); this file
only dispatches, importing just the chosen command's module so that
``lanewatch check`` does not pay for Dash.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

COMMANDS = {
    "up": ("lanewatch.server", "Start the collector, store, query API and dashboard."),
    "collect": ("lanewatch.roles", "Receive OTLP, judge spans and write them to the store; no UI (scale-out: docs/scale-out.md)."),
    "serve": ("lanewatch.roles", "Serve the API, dashboard, alerts and /metrics from a shared store (scale-out: docs/scale-out.md)."),
    "check": ("lanewatch.check", "Release gate: exit 0 pass, 1 violation, dead lane or (--compare) a lane worse than base, 2 error or unknown name, 3 too little traffic."),
    "demo": ("lanewatch.demo.cli", "Run the write-up's A -> B -> C mesh with base and gray copies, live."),
    "config": ("lanewatch.server", "List every setting with its env var and default."),
    "rules": ("lanewatch.rules.cli", "Routing rules: 'rules import FILE...' prints the rules derived from Ingress (ingress-nginx canary) and OpenSergo files."),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lanewatch", description="Did gray traffic stay gray, end to end? "
                                     "lanewatch COMMAND --help tells more of each command.")
    sub = parser.add_subparsers(dest="command", required=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if argv[:1] != [name]:
            continue  # only the chosen command's module is imported
        mod = importlib.import_module(module)
        adder = getattr(mod, f"add_{name}_arguments", None) or mod.add_arguments
        adder(p)
        p.set_defaults(_run=getattr(mod, f"run_{name}", None) or mod.run)
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `lanewatch config | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
