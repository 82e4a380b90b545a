"""``lanewatch rules import FILE...``: print the routing rules derived from Ingress and OpenSergo
files as YAML (valid ``routing_rules:``); exit 2 naming what cannot be read."""

from __future__ import annotations

import argparse
import sys

from lanewatch.config.fields import ConfigError
from lanewatch.config.routing import check_rules
from lanewatch.rules.imports import RuleImportError, import_files, to_yaml


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="rules_command", required=True)
    imp = sub.add_parser("import", help="Print the rules derived from Ingress (ingress-nginx canary) "
                         "and OpenSergo TrafficLane/TrafficRouter YAML files.")
    imp.add_argument("files", nargs="+", metavar="FILE",
                     help="YAML files, one or more documents each ('-': standard input)")
    imp.add_argument("--service", action="append", default=[], metavar="K8S_SERVICE=NAME",
                     help="the service.name of a canary backend Service (repeatable)")
    imp.add_argument("--lane", default=None, help="the lane of canary backends (default: gray)")


def run(args: argparse.Namespace) -> int:
    services = {}
    for item in args.service:
        k8s, eq, name = item.partition("=")
        if not eq or not k8s or not name:
            print(f"lanewatch rules import: --service {item!r}: expected K8S_SERVICE=NAME", file=sys.stderr)
            return 2
        services[k8s] = name
    try:
        got = import_files(args.files, services, args.lane)
        check_rules("routing_rules", [r for r, _ in got.rules])
    except (RuleImportError, ConfigError) as e:
        print(f"lanewatch rules import: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(to_yaml(got, "lanewatch rules import " + " ".join(args.files)))
    return 0
