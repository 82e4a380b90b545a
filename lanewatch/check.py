"""``lanewatch check``: a release gate over the HTTP API.

Exit status (documented in ``docs/check.md``; pipelines script against it):

* **0** pass: traffic was checked and no hop or edge of the lane's scope violated its lane
  (``leak``, ``intrusion``, ``tag_lost`` all zero), no trace of it failed to stay in lane,
  and no lane of the scope is dead;
* **1** fail: a violation, a trace that left its lane, or a dead lane;
* **2** error: unreachable, HTTP error, not lanewatch's JSON, a bad flag, or a ``--lane`` /
  ``--service`` that was not seen in the window (the message lists what was seen);
* **3** inconclusive: no finished trace to judge in the window (``--allow-empty`` makes that
  a pass): "nothing went wrong" would then only mean "nothing went".

``--compare`` adds gray vs base per service (``/api/v1/gate``, see :mod:`lanewatch.check_compare`):
1 also when a lane is worse than base, 3 also when nothing to compare had enough requests.

Prints a readable report (or, with ``--json``, the raw answers plus ``ok`` and ``status``);
errors go to stderr as one line. Uses only the standard library and the pure
:mod:`lanewatch.lane` and :mod:`lanewatch.containment`, so it runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lanewatch import lane as L
from lanewatch.check_compare import GateAnswerError, gate_lines, gate_pass
from lanewatch.containment import SummaryError, UnknownName, containment

TIMEOUT_S = 10.0
SHOW_VIOLATIONS = 5
PASS, FAIL, ERROR, INCONCLUSIVE = 0, 1, 2, 3


class CheckError(Exception):
    """The summary could not be fetched or understood, or the flags name nothing known."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``lanewatch check``."""
    parser.add_argument("--url", default="http://127.0.0.1:8050",
                        help="lanewatch API base URL (default: %(default)s)")
    parser.add_argument("--window", type=int, default=300,
                        help="seconds to look back (default: %(default)s)")
    parser.add_argument("--lane", default=None,
                        help="only what belongs to this lane: its traces' hops and edges, and every hop "
                             "that served or expected it")
    parser.add_argument("--service", default=None,
                        help="only this service: its hops, its edges (as caller or callee), the traces "
                             "that passed it")
    parser.add_argument("--allow-empty", action="store_true",
                        help="pass (exit 0) instead of inconclusive (exit 3) when there was no traffic")
    parser.add_argument("--compare", action="store_true",
                        help="also judge each lane against base per service (errors, latency) as /api/v1/gate "
                             "does; the exit status is then the gate's (same codes)")
    parser.add_argument("--json", action="store_true", help="print the API answers as JSON, plus ok and status")
    parser.add_argument("--auth-token", default=None, metavar="TOKEN",
                        help="bearer token of a lanewatch started with --auth-token (default: "
                             "LANEWATCH_AUTH_TOKEN)")
    parser.add_argument("--auth-token-file", default=None, metavar="PATH",
                        help="read the token from this file's first line (default: LANEWATCH_AUTH_TOKEN_FILE)")
    parser.add_argument("--ca-cert", default=None, metavar="PEM",
                        help="trust this certificate for an https --url (e.g. lanewatch's own self-signed "
                             "--tls-cert); default: the system's CAs")


def credentials(args: argparse.Namespace) -> tuple[str, str | None]:
    """(token, CA file) from the flags, else ``LANEWATCH_AUTH_TOKEN`` / ``LANEWATCH_AUTH_TOKEN_FILE``;
    raises CheckError when the token file cannot be read."""
    token = getattr(args, "auth_token", None) or os.environ.get("LANEWATCH_AUTH_TOKEN", "")
    path = getattr(args, "auth_token_file", None) or os.environ.get("LANEWATCH_AUTH_TOKEN_FILE", "")
    if not token and path:
        try:
            with open(path, encoding="utf-8") as f:
                token = (f.read().splitlines() or [""])[0].strip()
        except (OSError, UnicodeDecodeError) as e:
            raise CheckError(f"--auth-token-file={path}: cannot read it ({e})") from None
    return token, getattr(args, "ca_cert", None)


def fetch(base_url: str, path: str, params: dict[str, Any], timeout: float = TIMEOUT_S, *,
          token: str = "", cafile: str | None = None) -> Any:
    """GET ``base_url + path`` with ``params`` (None dropped) and decode JSON; raises CheckError.
    ``token``: sent as ``Authorization: Bearer``; ``cafile``: the CA to trust for https."""
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    url = base_url.rstrip("/") + path + ("?" + query if query else "")
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        context = ssl.create_default_context(cafile=cafile) if cafile else None
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")
        try:
            detail = json.loads(detail).get("error", detail)
        except (ValueError, AttributeError):
            pass
        hint = (" (pass --auth-token or set LANEWATCH_AUTH_TOKEN)" if e.code == 401 and not token else "")
        raise CheckError(f"{url}: HTTP {e.code}: {str(detail).strip()[:300]}{hint}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise CheckError(f"cannot reach lanewatch at {base_url}: {reason}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise CheckError(f"{url}: the answer is not JSON (is this a lanewatch API?)") from None


@dataclass
class Verdict:
    """What the gate decided, and why."""

    status: int
    counts: dict[str, int]  # per violating verdict (lane.VIOLATION_NAMES)
    traces: int  # finished traces judged
    traces_violated: int
    dead: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return self.status == PASS


def judge(summary: dict[str, Any], lane: str | None, service: str | None, allow_empty: bool) -> Verdict:
    """The gate's verdict on a summary (the rules of :mod:`lanewatch.containment`, shared with
    ``/api/v1/gate``); raises CheckError if it is malformed or a name is unknown."""
    try:
        c = containment(summary, lane, service)
    except UnknownName as e:
        raise CheckError(e.message(as_flag=True)) from None
    except SummaryError as e:
        raise CheckError(str(e)) from None
    if c.failed:
        status = FAIL
    elif c.passed is None and not allow_empty:
        status = INCONCLUSIVE
    else:
        status = PASS
    return Verdict(status, c.counts, c.traces, c.traces_violated, c.dead)


def _n(x: Any) -> str:
    return f"{int(x):,}"


def _rate(value: Any, unit: str) -> str:
    if not isinstance(value, (int, float)):
        return f"no {unit}"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"


def _ago(seconds: Any) -> str:
    s = int(seconds or 0)
    return f"{s // 60} min {s % 60} s" if s >= 120 else f"{s} s"


def report(args: argparse.Namespace, summary: dict[str, Any], violations: list[dict[str, Any]],
           v: Verdict) -> list[str]:
    """The human-readable report, line by line."""
    scope = ", ".join(f"{k} {val}" for k, val in (("lane", args.lane), ("service", args.service)) if val)
    covered = summary.get("covered_s") or 0
    lines = [f"lanewatch check: last {summary.get('window_s', args.window)} s at {args.url}"
             + (f" ({scope})" if scope else "")
             + (f"; data covers the last {covered} s" if covered and covered < summary.get("window_s", 0) else "")]
    passed = " that passed " + args.service if args.service else ""
    for name, d in summary["lanes"].items():
        traces, share = int(d.get("traces") or 0), d.get("stayed_share")
        stay = (f"{share:.1%} of {_n(traces)} {name} traces{passed} stayed in lane"
                if traces and share is not None else f"no finished {name} traces{passed}")
        rate = d.get("error_rate")
        err = f", {rate:.2%} errors" if rate is not None else ""
        lines.append(f"  {name}: {stay} ({_rate(d.get('entry_rate'), 'entry req/s')}); "
                     f"{_n(d.get('requests') or 0)} hops served ({_rate(d.get('hop_rate'), 'hops/s')}{err})")
    h, e = summary["hops"], summary["edges"]
    lines.append("  hops: " + ", ".join(f"{_n(h.get(v.label, 0))} {v.label}" for v in L.HOP_VERDICTS)
                 + f"; edges: {_n(e.get('calls', 0))} calls, {_n(e.get('tag_lost', 0))} tag_lost")
    for d in v.dead:
        lines.append(f"  dead lane: {d['service']} has {d['live_instances']} live {d['lane']} instance(s) and "
                     f"served no {d['lane']} hop for {_ago(d['idle_s'])}; nothing asked for {d['lane']} and "
                     f"{d['service']} served {_n(d['service_requests'])} hops in the last "
                     f"{_ago(summary.get('dead_after_s') or 0)}")
    if summary.get("estimated"):
        lines.append("  counts are estimated from sampled spans (their sampling weights), not counted one by one")
    lost = {k: val for k, val in (summary.get("counters") or {}).items() if val}
    if lost:
        lines.append("  collector counters since the store was created: "
                     + ", ".join(f"{k} {_n(val)}" for k, val in lost.items()))
    if violations:
        lines.append(f"  first violations (newest first, {len(violations)} shown):")
        for x in violations:
            when = datetime.fromtimestamp(int(x.get("ts") or 0), UTC).strftime("%H:%M:%SZ")
            where = x.get("service") or f"{x.get('caller')} -> {x.get('callee')}"
            expected = x.get("expected_lane") or x.get("request_lane")  # rows before schema 2: none
            lines.append(f"    {when} {x.get('kind')} at {where} ({expected} expected, served by "
                         f"{x.get('instance_lane')}), trace {x.get('trace_id')}: {x.get('lane_path') or ''}")
    lines.append(_conclusion(v, args))
    return lines


def _conclusion(v: Verdict, args: argparse.Namespace) -> str:
    if v.status == FAIL:
        parts = ([f"{_n(sum(v.counts.values()))} violations ({', '.join(f'{_n(n)} {k}' for k, n in v.counts.items())})"]
                 if any(v.counts.values()) else [])
        if v.traces_violated and args.service is None:
            parts.append(f"{_n(v.traces_violated)} of {_n(v.traces)} traces left their lane")
        if v.dead:
            parts.append(f"{len(v.dead)} dead lane(s): " + ", ".join(f"{d['lane']} at {d['service']}" for d in v.dead))
        return "FAIL: " + "; ".join(parts)
    if v.status == INCONCLUSIVE:
        return ("INCONCLUSIVE: no finished trace in the window, nothing was checked "
                "(is traffic reaching this lane? --allow-empty passes anyway)")
    if v.traces == 0:
        return "PASS (allowed empty): no finished trace in the window, nothing was checked"
    return f"PASS: no hop or edge left its lane ({_n(v.traces)} traces checked)"


def _print(text: str) -> None:
    """Print; a closed pipe (``lanewatch check | head``) is not an error of the gate."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit must not raise again


def run(args: argparse.Namespace) -> int:
    """Fetch the summary (and the first violations), print the report, return 0/1/2/3."""
    params = {"window": args.window, "lane": args.lane, "service": args.service}
    try:
        if args.window < 1:
            raise CheckError(f"--window={args.window}: must be >= 1")
        token, cafile = credentials(args)

        def get(path: str, params: dict[str, Any]) -> Any:
            return fetch(args.url, path, params, token=token, cafile=cafile)

        summary = get("/api/v1/summary", params)
        if not isinstance(summary, dict):
            raise CheckError("the summary is not a JSON object: is this a lanewatch API?")
        v = judge(summary, args.lane, args.service, args.allow_empty)
        violations = [] if not any(v.counts.values()) else get(
            "/api/v1/violations", {**params, "limit": SHOW_VIOLATIONS})
        if not isinstance(violations, list):
            raise CheckError("the violations answer is not a JSON list")
        gate = get("/api/v1/gate", params) if getattr(args, "compare", False) else None
        if gate is not None:
            passed = gate_pass(gate)
            if passed is None:
                v.status = PASS if args.allow_empty else INCONCLUSIVE
            else:
                v.status = PASS if passed else FAIL
    except (CheckError, GateAnswerError) as e:
        print(f"lanewatch check: {e}", file=sys.stderr)
        return ERROR
    if args.json:
        doc = {"ok": v.ok, "status": v.status, "estimated": bool(summary.get("estimated")), "summary": summary,
               "violations": violations}
        _print(json.dumps(doc if gate is None else {**doc, "gate": gate}, indent=2))
    else:
        lines = report(args, summary, violations, v)
        _print("\n".join(lines if gate is None else lines[:-1] + gate_lines(gate, args.allow_empty)))
    return v.status


if __name__ == "__main__":  # also runnable as ``python -m lanewatch.check``
    _parser = argparse.ArgumentParser(prog="lanewatch check", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
