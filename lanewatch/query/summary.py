"""The summary of :meth:`lanewatch.query.Query.summary`: what a lane view and the gate count.

Whose violation is it (``docs/design.md``, "Lane scope")? With ``lane=L``:

* hops: every hop that served or expected ``L`` (instance or expected lane);
* edges and lost tags: every edge of a trace that entered in ``L``, and every edge that
  sent ``L`` (when ``L`` is not base: an empty lane header is not base's doing);
* traces: the traces that entered in ``L`` (with ``service=S``: those with a hop at S).

Rates are divided by the seconds the data covers (from the first second with data in the
window to its end), not by the window; trace rates end ``trace_wait_s`` earlier (traces
are counted once final). Dead lanes are judged over the last ``dead_after_s``, whatever the
window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lanewatch import lane as L
from lanewatch.query.parts import HOP_LABELS, lane_order
from lanewatch.query.shared import Rollups as Store
from lanewatch.query.shared import edges_by, hops_by
from lanewatch.rollups import WEIGHTED

#: The coverage start is found on a grid of at most this many buckets per window.
COVERAGE_BUCKETS = 360


def edges_of_lane(edges: pd.DataFrame, lane: str) -> pd.Series:
    """Mask of edge rows (with ``lane`` sent and ``entry_lane``) that belong to ``lane``."""
    mask = edges.entry_lane == lane
    if lane != L.BASE:
        mask |= edges.lane == lane
    return mask


def drawn_lane(edges: pd.DataFrame) -> pd.Series:
    """The lane an edge is drawn in: the lane its request carried, i.e. the lane sent, or the
    entry lane of its trace when none was sent (per-service rules, scenario 3)."""
    sent = edges.lane.astype(object)
    entry = edges.entry_lane.astype(object)
    return sent.where((sent != L.BASE) | entry.isna(), entry)


def first_second(store: Store, table: str, metric: str, t0: int, t1: int,
                 where: dict[str, str | None]) -> int | None:
    """The first second (on a grid of ``(t1 - t0) / COVERAGE_BUCKETS``) with data in the window."""
    bucket = max(1, -(-(t1 - t0) // COVERAGE_BUCKETS))
    df = store.rollup(table, t0, t1, ["ts"], where=where, bucket_s=bucket)
    ts = df.ts[df[metric] != 0]
    return max(t0, int(ts.min())) if len(ts) else None


def _rate(n: int, seconds: int | None) -> float | None:
    return round(n / seconds, 3) if seconds else None


def lane_rows(traffic: pd.DataFrame, traces: pd.DataFrame, names: list[str], hop_s: int | None,
              trace_s: int | None) -> dict[str, dict[str, Any]]:
    """Per lane: trace counts (by entry lane), traffic (hops it served), their rates."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        n_tr = int(traces.traces.get(name, 0))
        stayed = int(traces.stayed.get(name, 0))
        req = int(traffic.requests.get(name, 0))
        err = int(traffic.errors.get(name, 0))
        hop_rate = _rate(req, hop_s)
        weighted = sum(int(f[WEIGHTED].get(name, 0)) for f in (traces, traffic) if WEIGHTED in f)
        out[name] = {"traces": n_tr, "stayed": stayed, "violated": n_tr - stayed,
                     "stayed_share": round(stayed / n_tr, 6) if n_tr > 0 else None,
                     "requests": req, "errors": err, "error_rate": round(err / req, 6) if req > 0 else None,
                     "entry_rate": _rate(n_tr, trace_s), "hop_rate": hop_rate,
                     "qps": hop_rate or 0.0, "covered_s": hop_s or 0, "estimated": weighted > 0}
    return out


def dead_lanes(store: Store, instances: list[dict[str, Any]], now: float, after_s: float,
               service: str | None = None, lane: str | None = None) -> list[dict[str, Any]]:
    """:func:`find_dead_lanes` over the store's hops of the last ``after_s``."""
    since, t1 = int(now - after_s), int(now) + 1
    if not _candidates(instances, now, after_s, service, lane)[0]:  # saves both reads
        return []
    asked = hops_by(store, since, t1, ["expected_lane"])
    hops = hops_by(store, since, t1, ["service", "instance_lane"], service)
    served = {(str(s), str(ln)): int(n) for s, ln, n in zip(hops.service, hops.instance_lane, hops.requests)}
    return find_dead_lanes(instances, now, after_s, set(asked.expected_lane[asked.requests > 0]),
                           served, service, lane)


def _candidates(instances: list[dict[str, Any]], now: float, after_s: float, service: str | None,
                lane: str | None) -> tuple[dict[tuple[str, str], list[dict[str, Any]]],
                                           dict[tuple[str, str], float]]:
    """(instances live for the last ``after_s`` per non-base (service, lane), newest hop of each)."""
    since = now - after_s
    live: dict[tuple[str, str], list[dict[str, Any]]] = {}
    last_hop: dict[tuple[str, str], float] = {}
    for r in instances:
        key = (str(r["service"]), str(r["lane"]))
        if key[1] == L.BASE or (service and key[0] != service) or (lane and key[1] != lane):
            continue
        if r.get("last_hop") is not None:
            last_hop[key] = max(last_hop.get(key, 0.0), float(r["last_hop"]))
        if r.get("live"):
            live.setdefault(key, []).append(r)
    old_enough = {k: v for k, v in live.items() if min(float(r["first_seen"]) for r in v) <= since}
    return old_enough, last_hop


def find_dead_lanes(instances: list[dict[str, Any]], now: float, after_s: float, wanted: set[str],
                    served: dict[tuple[str, str], int], service: str | None = None,
                    lane: str | None = None) -> list[dict[str, Any]]:
    """Lanes (not base) of a service that had a live instance for the last ``after_s`` and
    served no hop in that time while the service served traffic, and that no hop of any
    service expected in that time (nothing asked for the lane: "nothing went"). Pure:
    ``wanted`` are the lanes some hop expected in that time, ``served`` the hops per
    (service, instance lane) in that time (the store's or the alert window's)."""
    old_enough, last_hop = _candidates(instances, now, after_s, service, lane)
    # a lane that traffic asked for somewhere is not dead: where it did not arrive, the hops
    # that expected it are leaks or lost tags, reported as such; a service off the lane's path
    # (scenario 3's C, with no rule) keeps its idle instance by design
    old_enough = {k: v for k, v in old_enough.items() if k[1] not in wanted}
    by_service: dict[str, int] = {}
    for (svc, _), n in served.items():
        by_service[svc] = by_service.get(svc, 0) + n
    out = []
    for (svc, ln), rows in sorted(old_enough.items()):
        total = by_service.get(svc, 0)
        if total <= 0 or served.get((svc, ln), 0) > 0:
            continue
        last = last_hop.get((svc, ln))
        start = last if last is not None else min(float(r["first_seen"]) for r in rows)
        out.append({"service": svc, "lane": ln, "live_instances": len(rows),
                    "idle_s": int(max(after_s, now - start)),
                    "last_hop_ts": int(last) if last is not None else None, "service_requests": total})
    return out


def summarize(store: Store, t0: int, t1: int, window_s: int, service: str | None, lane: str | None,
              trace_wait_s: float) -> dict[str, Any]:
    """The summary's counts (everything but counters and dead lanes) for the window."""
    hops = hops_by(store, t0, t1, ["instance_lane", "expected_lane", "verdict"], service)
    involved = hops if lane is None else hops[(hops.instance_lane == lane) | (hops.expected_lane == lane)]
    by_verdict = involved.groupby("verdict")["requests"].sum()
    hop_counts = {v: int(by_verdict.get(v, 0)) for v in HOP_LABELS}
    edge_keys = ["caller", "callee", "lane", "entry_lane"] if service else ["lane", "entry_lane"]
    edges = edges_by(store, t0, t1, edge_keys)
    if service:
        edges = edges[(edges.caller == service) | (edges.callee == service)]
    if lane:
        edges = edges[edges_of_lane(edges, lane)]
    served = hops if lane is None else hops[hops.instance_lane == lane]
    traffic = served.groupby("instance_lane")[["requests", "errors", WEIGHTED]].sum()
    if service:
        traces = store.rollup("trace_services", t0, t1, ["entry_lane"],
                              where={"service": service, "entry_lane": lane})
    else:
        traces = store.rollup("traces", t0, t1, ["entry_lane"], where={"entry_lane": lane})
    traces = traces.set_index("entry_lane")
    first = first_second(store, "hops", "requests", t0, t1, {"service": service})
    hop_s = t1 - first if first is not None else None
    trace_end = t1 - int(np.ceil(trace_wait_s))
    trace_s = max(1, trace_end - first) if first is not None else None
    names = lane_order(set(traffic.index[traffic.requests != 0]) | set(traces.index[traces.traces != 0])
                       | ({lane} if lane else set()))
    lanes = lane_rows(traffic, traces, names, hop_s, trace_s)
    tag_lost = int(edges.tag_lost.sum())
    if service:  # a tag lost inside the caller is the caller's, not the callee's
        tag_lost -= int(edges.tag_lost_inside[(edges.callee == service) & (edges.caller != service)].sum())
    n_traces = int(traces.traces.sum())
    violated = n_traces - int(traces.stayed.sum())
    # some count stands for more spans than were seen (sampling weights, collect/weights.py)
    estimated = any(int(f[WEIGHTED].sum()) > 0 for f in (involved, edges, traces))
    return {"window_s": int(window_s), "from": t0, "to": t1, "covered_s": hop_s or 0,
            "hops": hop_counts, "edges": {"tag_lost": tag_lost, "calls": int(edges.calls.sum()),
                                          "tag_lost_inside": int(edges.tag_lost_inside.sum())},
            "lanes": lanes, "traces": n_traces, "traces_violated": violated,
            "violations": sum(hop_counts[v] for v in L.HOP_VIOLATION_NAMES) + tag_lost, "estimated": estimated}


def seen(store: Store, t0: int, t1: int, instances: list[dict[str, Any]],
         declared: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """Lanes and services seen in the window (hops, edges, traces), with an instance live now,
    or declared in the topology (always live)."""
    hops = hops_by(store, t0, t1, ["service", "instance_lane", "expected_lane"])
    hops = hops[hops.requests != 0]
    edges = edges_by(store, t0, t1, ["caller", "callee"])
    edges = edges[edges.calls != 0]
    traces = store.rollup("traces", t0, t1, ["entry_lane"])
    live = [r for r in instances if r.get("live")]
    topo = declared or {}
    lanes = lane_order(set(hops.instance_lane) | set(hops.expected_lane)
                       | set(traces.entry_lane[traces.traces != 0]) | {r["lane"] for r in live}
                       | {lane for ls in topo.values() for lane in ls})
    services = (set(hops.service) | set(edges.caller) | set(edges.callee) | {r["service"] for r in live}
                | set(topo))
    return {"lanes": lanes, "services": sorted(str(s) for s in services if isinstance(s, str))}
