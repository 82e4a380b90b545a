"""``lanewatch check``: a release gate over the HTTP API.

Exit status: 0 when no hop or edge violated its lane in the window (``leak``,
``intrusion`` and ``tag_lost`` all zero), 1 when one did, 2 when the answer
could not be had (unreachable, HTTP error, not lanewatch's JSON). Prints a
readable summary (or, with ``--json``, the raw answers plus ``ok``); errors go
to stderr as one line. Uses only the standard library, so it runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

TIMEOUT_S = 10.0
SHOW_VIOLATIONS = 5


class CheckError(Exception):
    """The summary could not be fetched or understood."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``lanewatch check``."""
    parser.add_argument("--url", default="http://127.0.0.1:8050",
                        help="lanewatch API base URL (default: %(default)s)")
    parser.add_argument("--window", type=int, default=300,
                        help="seconds to look back (default: %(default)s)")
    parser.add_argument("--lane", default=None, help="only hops, traces and violations involving this lane")
    parser.add_argument("--service", default=None, help="only this service (as server, caller or callee)")
    parser.add_argument("--json", action="store_true", help="print the API answers as JSON, plus ok")


def fetch(base_url: str, path: str, params: dict[str, Any], timeout: float = TIMEOUT_S) -> Any:
    """GET ``base_url + path`` with ``params`` (None dropped) and decode JSON; raises CheckError."""
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    url = base_url.rstrip("/") + path + ("?" + query if query else "")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")
        try:
            detail = json.loads(detail).get("error", detail)
        except (ValueError, AttributeError):
            pass
        raise CheckError(f"{url}: HTTP {e.code}: {str(detail).strip()[:300]}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise CheckError(f"cannot reach lanewatch at {base_url}: {reason}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise CheckError(f"{url}: the answer is not JSON (is this a lanewatch API?)") from None


def verdict(summary: dict[str, Any]) -> tuple[bool, dict[str, int]]:
    """(ok, counts of leak/intrusion/tag_lost) from a summary; raises CheckError if malformed."""
    try:
        counts = {"leak": int(summary["hops"]["leak"]), "intrusion": int(summary["hops"]["intrusion"]),
                  "tag_lost": int(summary["edges"]["tag_lost"])}
        summary["lanes"].items()
    except (KeyError, TypeError, ValueError, AttributeError):
        raise CheckError("the summary lacks hops/edges/lanes: is this a lanewatch API?") from None
    return not any(counts.values()), counts


def _n(x: Any) -> str:
    return f"{int(x):,}"


def report(args: argparse.Namespace, summary: dict[str, Any], violations: list[dict[str, Any]],
           ok: bool, counts: dict[str, int]) -> list[str]:
    """The human-readable report, line by line."""
    scope = ", ".join(f"{k} {v}" for k, v in (("lane", args.lane), ("service", args.service)) if v)
    lines = [f"lanewatch check: last {summary.get('window_s', args.window)} s at {args.url}"
             + (f" ({scope})" if scope else "")]
    lanes = summary["lanes"]
    if not lanes:
        lines.append("  no traffic in the window: nothing was checked (is the collector receiving spans?)")
    for name, d in lanes.items():
        traces, share = int(d.get("traces") or 0), d.get("stayed_share")
        stay = (f"{share:.1%} of {_n(traces)} {name} traces stayed in lane"
                if traces and share is not None else f"no finished {name} traces")
        rate = d.get("error_rate")
        err = f", {rate:.2%} errors" if rate is not None else ""
        lines.append(f"  {name}: {stay}; {_n(d.get('requests') or 0)} requests "
                     f"({d.get('qps') or 0:g}/s{err})")
    h, e = summary["hops"], summary["edges"]
    lines.append("  hops: " + ", ".join(f"{_n(h.get(k, 0))} {k}" for k in ("in_lane", "fallback", "leak",
                                                                          "intrusion"))
                 + f"; edges: {_n(e.get('calls', 0))} calls, {_n(e.get('tag_lost', 0))} tag_lost")
    lost = {k: v for k, v in (summary.get("counters") or {}).items() if v}
    if lost:
        lines.append("  not counted: " + ", ".join(f"{k} {_n(v)}" for k, v in lost.items()))
    if violations:
        lines.append(f"  first violations (newest first, {len(violations)} shown):")
        for v in violations:
            when = datetime.fromtimestamp(int(v.get("ts") or 0), UTC).strftime("%H:%M:%SZ")
            where = v.get("service") or f"{v.get('caller')} -> {v.get('callee')}"
            lines.append(f"    {when} {v.get('kind')} at {where} ({v.get('request_lane')} served by "
                         f"{v.get('instance_lane')}), trace {v.get('trace_id')}: {v.get('lane_path') or ''}")
    total = sum(counts.values())
    lines.append("PASS: no hop or edge left its lane" if ok else
                 f"FAIL: {_n(total)} violations ({', '.join(f'{_n(v)} {k}' for k, v in counts.items())})")
    return lines


def run(args: argparse.Namespace) -> int:
    """Fetch the summary (and the first violations), print the report, return 0/1/2."""
    params = {"window": args.window, "lane": args.lane, "service": args.service}
    try:
        if args.window < 1:
            raise CheckError(f"--window={args.window}: must be >= 1")
        summary = fetch(args.url, "/api/v1/summary", params)
        if not isinstance(summary, dict):
            raise CheckError("the summary is not a JSON object: is this a lanewatch API?")
        ok, counts = verdict(summary)
        violations = [] if ok else fetch(args.url, "/api/v1/violations",
                                         {**params, "limit": SHOW_VIOLATIONS})
        if not isinstance(violations, list):
            raise CheckError("the violations answer is not a JSON list")
    except CheckError as e:
        print(f"lanewatch check: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"ok": ok, "summary": summary, "violations": violations}, indent=2))
    else:
        print("\n".join(report(args, summary, violations, ok, counts)))
    return 0 if ok else 1


if __name__ == "__main__":  # also runnable as ``python -m lanewatch.check``
    _parser = argparse.ArgumentParser(prog="lanewatch check", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
