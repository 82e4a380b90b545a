"""The collector's own counters (``Batch.counters``, ``Engine.pending_counters()``) as metrics.

The engine counts by flat names (``spans_received``, ``requests_refused_oversize``, ...;
the list is in ``docs/api.md``). Here each name becomes a Prometheus counter with labels
where several names are one quantity (``lanewatch_spans_dropped_total{reason}``). A name
this table does not know (a counter added later) still shows, as
``lanewatch_collector_events_total{event="<name>"}``: nothing counted is hidden.
"""

from __future__ import annotations

from typing import Final

#: family name (without ``_total``) -> (help, label names)
FAMILIES: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "lanewatch_spans_received": ("Spans accepted by the OTLP receivers.", ()),
    "lanewatch_spans_dropped": (("Spans accepted but not judged: invalid ids or times, duplicates, "
                                "or lost to an internal error."), ("reason",)),
    "lanewatch_requests_refused": (("Requests refused whole (OTLP: the span count is unknown; "
                                   "web_* reasons: API, dashboard, /metrics), by reason."), ("reason",)),
    "lanewatch_metric_points_received": ("OTLP metric data points received (heartbeats among them).", ()),
    "lanewatch_log_records_received": (("OTLP log records received (liveness evidence; "
                                       "otherwise dropped)."), ()),
    "lanewatch_log_records_rejected": ("OTLP log records rejected (invalid ids or times).", ()),
    "lanewatch_spans_late": ("Spans that arrived after their trace was final and reopened it.", ()),
    "lanewatch_spans_finalised_early": (("Spans whose traces were judged early because too many "
                                        "spans were waiting."), ()),
    "lanewatch_spans_unpaired": (("Spans whose other side of the call never arrived "
                                 "(kind: server = no client span, client = no server span)."),
                                 ("kind",)),
    "lanewatch_spans_unreadable_attributes": (("Spans whose attributes could not be read "
                                              "(their lanes read as base)."), ()),
    "lanewatch_names_replaced": (("Lane, service or instance values read as base (invalid), as "
                                 "'_other' (over the max_lanes / max_services / max_instances* "
                                 "limits) or cut short (over max_name_chars)."),
                                 ("what", "reason")),
    "lanewatch_traces_without_hops": ("Finished traces with no SERVER or CONSUMER span.", ()),
    "lanewatch_traces_not_detailed": (("Violating traces counted but not kept in detail "
                                      "(too many in one flush)."), ()),
    "lanewatch_trace_chunks_forgotten": (("Batches of finished spans forgotten early; late "
                                         "spans of their traces can no longer reopen them."), ()),
    "lanewatch_spans_resumed": (("Spans of traces open at the last stop, read back from the store "
                                "at start and judged after it."), ()),
    "lanewatch_restarts_unclean": (("Starts that found the last process had not stopped cleanly "
                                   "(spans it acknowledged after its last flush are missing)."), ()),
    "lanewatch_open_spans_unreadable": (("Starts whose kept open spans could not be read (their "
                                        "traces' verdicts are lost)."), ()),
    "lanewatch_api_requests_refused": (("API and dashboard requests answered 503 by the API pool "
                                       "(backlog, wait, connections) or dropped because their client had "
                                       "gone (client_gone)."), ("reason",)),
    "lanewatch_spans_invalid_sampling_weight": (("Spans whose sampling weight did not read (a junk ot=th "
                                                 "threshold in tracestate, or a junk sampling_weight_attribute "
                                                 "value); they count as 1."), ("source",)),
    "lanewatch_collector_events": ("Other collector counters, by engine name.", ("event",)),
}

#: engine counter name -> (family, label values)
KNOWN: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "spans_received": ("lanewatch_spans_received", ()),
    "spans_rejected_invalid": ("lanewatch_spans_dropped", ("invalid",)),
    "duplicate_spans": ("lanewatch_spans_dropped", ("duplicate",)),
    "spans_lost_internal_error": ("lanewatch_spans_dropped", ("internal_error",)),
    "metric_points_received": ("lanewatch_metric_points_received", ()),
    "log_records_received": ("lanewatch_log_records_received", ()),
    "log_records_rejected_invalid": ("lanewatch_log_records_rejected", ()),
    "late_spans": ("lanewatch_spans_late", ()),
    "spans_finalised_early": ("lanewatch_spans_finalised_early", ()),
    "unpaired_server_spans": ("lanewatch_spans_unpaired", ("server",)),
    "unpaired_client_spans": ("lanewatch_spans_unpaired", ("client",)),
    "spans_with_unreadable_attributes": ("lanewatch_spans_unreadable_attributes", ()),
    "spans_with_invalid_sampling_threshold": ("lanewatch_spans_invalid_sampling_weight", ("threshold",)),
    "spans_with_invalid_sampling_weight": ("lanewatch_spans_invalid_sampling_weight", ("attribute",)),
    "invalid_lane_values": ("lanewatch_names_replaced", ("lane", "invalid")),
    "lanes_over_limit": ("lanewatch_names_replaced", ("lane", "over_limit")),
    "services_over_limit": ("lanewatch_names_replaced", ("service", "over_limit")),
    "service_names_truncated": ("lanewatch_names_replaced", ("service", "truncated")),
    "instance_ids_truncated": ("lanewatch_names_replaced", ("instance", "truncated")),
    "instances_over_limit": ("lanewatch_names_replaced", ("instance", "over_limit")),
    "traces_without_hops": ("lanewatch_traces_without_hops", ()),
    "violating_traces_not_detailed": ("lanewatch_traces_not_detailed", ()),
    "kept_chunks_forgotten": ("lanewatch_trace_chunks_forgotten", ()),
    "spans_resumed": ("lanewatch_spans_resumed", ()),
    "restarts_unclean": ("lanewatch_restarts_unclean", ()),
    "open_spans_unreadable": ("lanewatch_open_spans_unreadable", ()),
    "api_requests_refused_backlog": ("lanewatch_api_requests_refused", ("backlog",)),
    "api_requests_refused_wait": ("lanewatch_api_requests_refused", ("wait",)),
    "api_requests_refused_connections": ("lanewatch_api_requests_refused", ("connections",)),
    "api_requests_abandoned": ("lanewatch_api_requests_refused", ("client_gone",)),
}
REFUSED_PREFIX: Final = "requests_refused_"
#: Engine counters not exposed: ``hops`` is ``sum(lanewatch_hops_total)``.
SKIPPED: Final = frozenset({"hops"})
#: Series shown even at zero, so that rates and alert guards always have a series.
ALWAYS: Final = ("spans_received", "spans_rejected_invalid", "duplicate_spans",
                 "spans_lost_internal_error")


def metric_of(name: str) -> tuple[str, tuple[str, ...]] | None:
    """(family, label values) of engine counter ``name``; None for a counter not exposed."""
    if name in SKIPPED:
        return None
    known = KNOWN.get(name)
    if known is not None:
        return known
    if name.startswith(REFUSED_PREFIX) and len(name) > len(REFUSED_PREFIX):
        return "lanewatch_requests_refused", (name[len(REFUSED_PREFIX):],)
    return "lanewatch_collector_events", (name,)
