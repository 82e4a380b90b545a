"""The OpenTelemetry Collector configurations in ``collectors/``.

No Collector binary runs here, so their structure is tested: the YAML parses, every component
a pipeline names is defined, every key is one the Collector's config structs name (the table
below), every key line carries a comment, the load-balancing exporters route traces by trace id,
the lanewatch side points at lanewatch's OTLP ports, and the tail sampling policy does what it
says (a reference evaluator of the processor's documented semantics, over sample traces). The
lanewatch side is then tested for real: the exporter settings the configs use (OTLP/HTTP and
OTLP/gRPC, gzip, the bearer header) are sent by the real OTLP exporters to a running lanewatch.
"""

from __future__ import annotations

import os
import random
import re
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from lanewatch import lane as L
from lanewatch.instrument.heartbeat import Heartbeat

COLLECTORS = Path(__file__).resolve().parents[2] / "collectors"
CONFIGS = sorted(COLLECTORS.glob("*.yaml"))
GATEWAYS = ("gateway-static.yaml", "gateway-dns.yaml", "gateway-k8s.yaml")

# --- Allowed keys, from the config structs (mapstructure tags) and their config.schema.yaml -------
# open-telemetry/opentelemetry-collector @ 934999fbab274d10cbf18704b4594a6fb2049887:
#   receiver/otlpreceiver/config.go; config/configgrpc, config/confighttp, config/configtls,
#   config/configretry, config/confignet config.schema.yaml; exporter/otlpexporter/config.go,
#   exporter/otlphttpexporter/config.go (+ metadata.yaml: types otlp_grpc / otlp_http, deprecated
#   otlp / otlphttp); exporter/exporterhelper/internal{,/queuebatch}/config.go;
#   processor/batchprocessor/config.go; internal/memorylimiter/config.go.
# open-telemetry/opentelemetry-collector-contrib:
#   exporter/loadbalancingexporter/config.go @ 870de3632d376a989b61459319e6e8754ec1532c and
#     config.schema.yaml @ 0140961f9de290fdf809390d3153c1eb214a2300;
#   processor/tailsamplingprocessor/config.schema.yaml @ 048c7a088a874a1c282d390f36c24eb2290d3047;
#   processor/probabilisticsamplerprocessor/config.schema.yaml @ 4632d0045a6eaca061268bf57c2fb63270bacd05.
# A schema is a dict of allowed keys (value: the sub-schema), LEAF for a scalar or a list of
# scalars, FREE for a map of any keys (headers), or a one-element list: a list of that schema.
LEAF: Any = None
FREE: Any = "free"

TLS_CLIENT = dict.fromkeys(("insecure", "insecure_skip_verify", "server_name_override", "ca_file", "ca_pem",
                            "cert_file", "cert_pem", "key_file", "key_pem", "min_version", "max_version",
                            "cipher_suites", "curve_preferences", "include_system_ca_certs_pool",
                            "reload_interval"), LEAF)
TLS_SERVER = {**dict.fromkeys(("ca_file", "ca_pem", "cert_file", "cert_pem", "key_file", "key_pem",
                               "min_version", "max_version", "cipher_suites", "client_ca_file",
                               "client_ca_file_reload", "reload_interval"), LEAF)}
RETRY = dict.fromkeys(("enabled", "initial_interval", "max_interval", "max_elapsed_time", "multiplier",
                       "randomization_factor"), LEAF)
QUEUE = {**dict.fromkeys(("enabled", "wait_for_result", "sizer", "queue_size", "block_on_overflow", "storage",
                          "num_consumers"), LEAF),
         "batch": {**dict.fromkeys(("flush_timeout", "sizer", "min_size", "max_size"), LEAF),
                   "partition": {"metadata_keys": LEAF}}}
GRPC_CLIENT = {**dict.fromkeys(("endpoint", "compression", "balancer_name", "authority", "read_buffer_size",
                                "write_buffer_size", "wait_for_ready", "user_agent", "auth", "middlewares"), LEAF),
               "headers": FREE, "tls": TLS_CLIENT,
               "keepalive": dict.fromkeys(("time", "timeout", "permit_without_stream"), LEAF)}
HTTP_CLIENT = {**dict.fromkeys(("endpoint", "compression", "compression_params", "proxy_url", "timeout",
                                "read_buffer_size", "write_buffer_size", "max_idle_conns",
                                "max_idle_conns_per_host", "max_conns_per_host", "idle_conn_timeout",
                                "disable_keep_alives", "http2_read_idle_timeout", "http2_ping_timeout",
                                "force_attempt_http2", "cookies", "auth", "middlewares"), LEAF),
               "headers": FREE, "tls": TLS_CLIENT}
OTLP_GRPC_EXPORTER = {**GRPC_CLIENT, "timeout": LEAF, "sending_queue": QUEUE, "retry_on_failure": RETRY}
OTLP_HTTP_EXPORTER = {**HTTP_CLIENT, "sending_queue": QUEUE, "retry_on_failure": RETRY,
                      **dict.fromkeys(("traces_endpoint", "metrics_endpoint", "logs_endpoint",
                                       "profiles_endpoint", "encoding"), LEAF)}
GRPC_SERVER = {**dict.fromkeys(("endpoint", "transport", "max_recv_msg_size_mib", "max_concurrent_streams",
                                "read_buffer_size", "write_buffer_size", "include_metadata", "auth",
                                "middlewares", "keepalive"), LEAF), "tls": TLS_SERVER}
HTTP_SERVER = {**dict.fromkeys(("endpoint", "max_request_body_size", "include_metadata", "compression_algorithms",
                                "read_timeout", "read_header_timeout", "write_timeout", "idle_timeout",
                                "keep_alives_enabled", "auth", "middlewares", "cors", "response_headers",
                                "traces_url_path", "metrics_url_path", "logs_url_path"), LEAF),
               "tls": TLS_SERVER}
LOADBALANCING = {
    "routing_key": LEAF, "routing_attributes": LEAF, "timeout": LEAF, "retry_on_failure": RETRY,
    "sending_queue": QUEUE,
    "protocol": {"otlp": {k: v for k, v in OTLP_GRPC_EXPORTER.items() if k != "endpoint"}},
    "resolver": {"static": {"hostnames": LEAF},
                 "dns": dict.fromkeys(("hostname", "port", "interval", "timeout"), LEAF),
                 "k8s": dict.fromkeys(("service", "ports", "timeout", "return_hostnames"), LEAF),
                 "aws_cloud_map": dict.fromkeys(("namespace", "service_name", "health_status", "interval",
                                                 "timeout", "port"), LEAF)},
}
STRING_ATTRIBUTE = dict.fromkeys(("key", "values", "enabled_regex_matching", "cache_max_size", "invert_match"), LEAF)
PROBABILISTIC = dict.fromkeys(("hash_salt", "sampling_percentage"), LEAF)
_LEAF_POLICIES: dict[str, Any] = {
    "always_sample": None, "string_attribute": STRING_ATTRIBUTE, "probabilistic": PROBABILISTIC,
    "numeric_attribute": dict.fromkeys(("key", "min_value", "max_value", "invert_match"), LEAF),
    "boolean_attribute": dict.fromkeys(("key", "value", "invert_match"), LEAF),
    "status_code": {"status_codes": LEAF}, "latency": dict.fromkeys(("threshold_ms", "upper_threshold_ms"), LEAF),
    "rate_limiting": {"spans_per_second": LEAF}, "span_count": dict.fromkeys(("min_spans", "max_spans"), LEAF),
    "trace_state": dict.fromkeys(("key", "values"), LEAF),
    "ottl_condition": dict.fromkeys(("error_mode", "span", "spanevent"), LEAF),
}
SUB_POLICY: dict[str, Any] = {"name": LEAF, "type": LEAF,
                              **{k: v for k, v in _LEAF_POLICIES.items() if v is not None}}
POLICY: dict[str, Any] = {**SUB_POLICY, "and": {"and_sub_policy": [SUB_POLICY]},
                          "drop": {"drop_sub_policy": [SUB_POLICY]}, "not": {"not_sub_policy": SUB_POLICY},
                          "composite": {"max_total_spans_per_second": LEAF, "policy_order": LEAF,
                                        "composite_sub_policy": [SUB_POLICY],
                                        "rate_allocation": [{"policy": LEAF, "percent": LEAF}]}}
POLICY_TYPES = set(_LEAF_POLICIES) | {"and", "drop", "not", "composite"}

ALLOWED: dict[str, dict[str, Any]] = {
    "receivers": {"otlp": {"protocols": {"grpc": GRPC_SERVER, "http": HTTP_SERVER}}},
    "processors": {
        "memory_limiter": dict.fromkeys(("check_interval", "limit_mib", "spike_limit_mib", "limit_percentage",
                                         "spike_limit_percentage", "min_gc_interval_when_soft_limited",
                                         "min_gc_interval_when_hard_limited", "max_gc_interval_when_soft_limited",
                                         "max_gc_interval_when_hard_limited"), LEAF),
        "batch": dict.fromkeys(("timeout", "send_batch_size", "send_batch_max_size", "metadata_keys",
                                "metadata_cardinality_limit"), LEAF),
        "tail_sampling": {**dict.fromkeys(("decision_wait", "decision_wait_after_root_received", "num_traces",
                                           "expected_new_traces_per_sec", "sample_on_first_match",
                                           "block_on_overflow", "drop_pending_traces_on_shutdown",
                                           "maximum_trace_size_bytes", "sampling_strategy"), LEAF),
                          "decision_cache": dict.fromkeys(("sampled_cache_size", "non_sampled_cache_size"), LEAF),
                          "policies": [POLICY]},
        "probabilistic_sampler": dict.fromkeys(("sampling_percentage", "hash_seed", "mode", "sampling_precision",
                                                "fail_closed", "attribute_source", "from_attribute",
                                                "sampling_priority"), LEAF),
    },
    "exporters": {"otlp_grpc": OTLP_GRPC_EXPORTER, "otlp": OTLP_GRPC_EXPORTER,
                  "otlp_http": OTLP_HTTP_EXPORTER, "otlphttp": OTLP_HTTP_EXPORTER,
                  "loadbalancing": LOADBALANCING},
}
SIGNALS = ("traces", "metrics", "logs")
LANEWATCH_GRPC_PORT, LANEWATCH_HTTP_PORT = 4317, 4318  # lanewatch's defaults (docs/configuration.md)


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), path
    return doc


def key_errors(value: Any, schema: Any, where: str) -> list[str]:
    """Keys in ``value`` that ``schema`` does not name (recursively)."""
    if schema is FREE:
        return [] if isinstance(value, dict) else [f"{where}: expected a map"]
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [e for i, item in enumerate(value) for e in key_errors(item, schema[0], f"{where}[{i}]")]
    if schema is LEAF:
        ok = not isinstance(value, dict) and not (isinstance(value, list) and any(isinstance(v, dict) for v in value))
        return [] if ok else [f"{where}: expected a scalar or a list of scalars"]
    if not isinstance(value, dict):
        return [f"{where}: expected a map"]
    return [e for k, v in value.items()
            for e in ([f"{where}.{k}: not a key the config struct names"] if k not in schema
                      else key_errors(v, schema[k], f"{where}.{k}"))]


def component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def test_there_are_the_topologies() -> None:
    names = {p.name for p in CONFIGS}
    assert {"agent.yaml", *GATEWAYS, "tail-sampling.yaml", "fanout.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_keys_are_the_collectors_own(path: Path) -> None:
    doc = load(path)
    assert set(doc) <= {"receivers", "processors", "exporters", "connectors", "extensions", "service"}
    errors: list[str] = []
    for kind in ("receivers", "processors", "exporters"):
        for cid, cfg in (doc.get(kind) or {}).items():
            ctype = component_type(cid)
            if ctype not in ALLOWED[kind]:
                errors.append(f"{kind}.{cid}: unknown component type {ctype!r}")
                continue
            errors += key_errors(cfg or {}, ALLOWED[kind][ctype], f"{kind}.{cid}")
    assert errors == []


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_pipeline_uses_defined_components(path: Path) -> None:
    doc = load(path)
    pipelines = doc["service"]["pipelines"]
    assert pipelines
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, pipe in pipelines.items():
        assert component_type(name) in SIGNALS, name
        assert set(pipe) <= {"receivers", "processors", "exporters"}, name
        assert pipe.get("receivers") and pipe.get("exporters"), name
        for kind, ids in used.items():
            for cid in pipe.get(kind, []):
                assert cid in (doc.get(kind) or {}), f"{name}: {kind} {cid} is not defined"
                ids.add(cid)
    for kind, ids in used.items():  # nothing defined and left unused (the Collector would just ignore it)
        assert set(doc.get(kind) or {}) == ids, kind
    if "memory_limiter" in doc.get("processors", {}):
        assert all(p.get("processors", ["memory_limiter"])[0] == "memory_limiter" for p in pipelines.values())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_key_line_carries_a_comment(path: Path) -> None:
    lines = path.read_text().splitlines()
    root = yaml.compose(path.read_text())
    missing: list[int] = []

    def walk(node: yaml.Node) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                line = lines[k.start_mark.line]
                if node.flow_style is not True and not re.search(r"\s#\s", _outside_quotes(line)):
                    missing.append(k.start_mark.line + 1)
                walk(v)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item)

    walk(root)
    assert missing == [], f"{path.name}: key lines without a comment: {missing}"
    assert lines[0].startswith("# ") and "opentelemetry-collector" in path.read_text().split("\nreceivers:")[0]


def _outside_quotes(line: str) -> str:
    return re.sub(r'"[^"]*"', '""', line)


def pipelines_using(doc: dict[str, Any], exporter: str) -> set[str]:
    return {component_type(n) for n, p in doc["service"]["pipelines"].items() if exporter in p["exporters"]}


@pytest.mark.parametrize("name", [*GATEWAYS, "tail-sampling.yaml"])
def test_loadbalancing_routes_traces_by_trace_id(name: str) -> None:
    doc = load(COLLECTORS / name)
    lbs = {cid: cfg for cid, cfg in doc["exporters"].items() if component_type(cid) == "loadbalancing"}
    assert any("traces" in pipelines_using(doc, cid) for cid in lbs)
    for cid, cfg in lbs.items():
        signals = pipelines_using(doc, cid)
        if "traces" in signals:
            assert cfg["routing_key"] == "traceID", cid
            assert signals == {"traces"}, f"{cid}: traceID routing must not carry metrics"
        else:
            assert cfg["routing_key"] == "service", cid  # heartbeats by service: any one collector
        assert len(cfg["resolver"]) == 1, f"{cid}: one resolver (k8s would win over the others)"


def test_the_gateways_show_each_resolver_and_route_heartbeats_by_service() -> None:
    seen = set()
    for name in GATEWAYS:
        doc = load(COLLECTORS / name)
        (resolver,) = {next(iter(doc["exporters"][cid]["resolver"])) for cid in doc["exporters"]}
        seen.add(resolver)
        assert name == f"gateway-{resolver}.yaml"
        metrics = doc["service"]["pipelines"]["metrics"]["exporters"]
        assert [doc["exporters"][cid]["routing_key"] for cid in metrics] == ["service"]
    assert seen == {"static", "dns", "k8s"}


def lanewatch_ports(cid: str, cfg: dict[str, Any]) -> list[int]:
    """The ports an exporter of the lanewatch side sends to."""
    ctype = component_type(cid)
    if ctype == "loadbalancing":
        (kind, r), = cfg["resolver"].items()
        if kind == "static":
            return [int(h.rsplit(":", 1)[1]) for h in r["hostnames"]]
        return [int(r["port"])] if kind == "dns" else [int(p) for p in r["ports"]]
    endpoint = cfg["endpoint"]
    port = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}").port
    assert port is not None, cid
    return [port]


@pytest.mark.parametrize("name", [*GATEWAYS, "tail-sampling.yaml", "fanout.yaml"])
def test_the_lanewatch_side_points_at_lanewatchs_otlp_ports(name: str) -> None:
    doc = load(COLLECTORS / name)
    side = {cid: cfg for cid, cfg in doc["exporters"].items() if "lanewatch" in cid or "lanewatch" in str(cfg)}
    assert side
    for cid, cfg in side.items():
        http = component_type(cid) in ("otlp_http", "otlphttp")
        expected = LANEWATCH_HTTP_PORT if http else LANEWATCH_GRPC_PORT
        assert set(lanewatch_ports(cid, cfg)) == {expected}, cid
        if http:
            assert cfg["endpoint"].startswith(("http://", "https://")) and urlsplit(cfg["endpoint"]).path in ("", "/")


def test_the_agent_forwards_every_signal_to_the_gateway() -> None:
    doc = load(COLLECTORS / "agent.yaml")
    assert set(doc["service"]["pipelines"]) == set(SIGNALS)
    (gateway,) = doc["exporters"]
    assert all(p["exporters"] == [gateway] for p in doc["service"]["pipelines"].values())
    assert doc["exporters"][gateway]["endpoint"].endswith(":4317")


def test_tail_sampling_sits_in_a_tier_behind_trace_id_routing() -> None:
    doc = load(COLLECTORS / "tail-sampling.yaml")
    assert set(doc["service"]["pipelines"]) == {"traces"}  # heartbeats are never sampled
    for name in GATEWAYS + ("agent.yaml", "fanout.yaml"):
        assert "tail_sampling" not in load(COLLECTORS / name).get("processors", {}), name


# --- A reference evaluator of the tail sampling processor's documented semantics ------------------
# string_tag_filter.go, util.go (hasResourceOrSpanWithCondition / invertHas...), probabilistic.go,
# and.go, and the README's "final decision" list. Two generations: LEGACY (invert_match gives
# InvertSampled / InvertNotSampled, an InvertNotSampled vetoes the trace) and CURRENT (the
# disableinvertdecisions gate, default from v0.144.0 and then the only behaviour: invert_match is a
# plain NOT, `drop` wins, else any Sampled keeps the trace).


class D(Enum):
    SAMPLED = "sampled"
    NOT_SAMPLED = "not_sampled"
    INVERT_SAMPLED = "invert_sampled"
    INVERT_NOT_SAMPLED = "invert_not_sampled"
    DROPPED = "dropped"


@dataclass(frozen=True)
class Span:
    resource: dict[str, str]
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Trace:
    trace_id: bytes
    spans: tuple[Span, ...]


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def probabilistic_keeps(cfg: dict[str, Any], trace_id: bytes) -> bool:
    threshold = int(Fraction(2**64 - 1) * Fraction(float(cfg.get("sampling_percentage", 0)) / 100))
    salt = cfg.get("hash_salt") or "default-hash-seed"
    return fnv1a64(salt.encode() + trace_id) <= threshold


def string_attribute(cfg: dict[str, Any], trace: Trace, legacy: bool) -> D:
    key = cfg["key"]
    if cfg.get("enabled_regex_matching"):
        patterns = [re.compile(v) for v in cfg["values"]]  # Go's regexp.MatchString: unanchored search

        def match(s: str) -> bool:
            return any(p.search(s) for p in patterns)
    else:
        exact = {v for v in cfg["values"] if v}

        def match(s: str) -> bool:
            return s in exact
    found = any((key in s.resource and match(s.resource[key]))
                or (bool(s.attributes.get(key)) and match(s.attributes[key])) for s in trace.spans)
    if not cfg.get("invert_match"):
        return D.SAMPLED if found else D.NOT_SAMPLED
    if legacy:
        return D.INVERT_NOT_SAMPLED if found else D.INVERT_SAMPLED
    return D.NOT_SAMPLED if found else D.SAMPLED


def evaluate(policy: dict[str, Any], trace: Trace, legacy: bool) -> D:
    kind = policy["type"]
    if kind == "always_sample":
        return D.SAMPLED
    if kind == "string_attribute":
        return string_attribute(policy["string_attribute"], trace, legacy)
    if kind == "probabilistic":
        return D.SAMPLED if probabilistic_keeps(policy["probabilistic"], trace.trace_id) else D.NOT_SAMPLED
    if kind == "and":
        subs = [evaluate(p, trace, legacy) for p in policy["and"]["and_sub_policy"]]
        return D.NOT_SAMPLED if any(d in (D.NOT_SAMPLED, D.INVERT_NOT_SAMPLED) for d in subs) else D.SAMPLED
    if kind == "drop":
        subs = [evaluate(p, trace, legacy) for p in policy["drop"]["drop_sub_policy"]]
        return D.DROPPED if all(d in (D.SAMPLED, D.INVERT_SAMPLED) for d in subs) else D.NOT_SAMPLED
    raise AssertionError(f"the reference evaluator does not know policy type {kind!r}")


def keeps(policies: list[dict[str, Any]], trace: Trace, legacy: bool) -> bool:
    ds = [evaluate(p, trace, legacy) for p in policies]
    if D.DROPPED in ds:
        return False
    if legacy:
        if D.INVERT_NOT_SAMPLED in ds:
            return False
        return D.SAMPLED in ds or (D.INVERT_SAMPLED in ds and D.NOT_SAMPLED not in ds)
    return D.SAMPLED in ds


def policies() -> tuple[list[dict[str, Any]], float]:
    ts = load(COLLECTORS / "tail-sampling.yaml")["processors"]["tail_sampling"]
    (share,) = [p for p in ts["policies"] if p["type"] == "and"]
    (prob,) = [s for s in share["and"]["and_sub_policy"] if s["type"] == "probabilistic"]
    return ts["policies"], float(prob["probabilistic"]["sampling_percentage"]) / 100


def rid(rng: random.Random) -> bytes:
    return rng.getrandbits(128).to_bytes(16, "big")


def inst(service: str, lane: str | None) -> dict[str, str]:
    r = {L.SERVICE_NAME_ATTR: service}
    if lane is not None:
        r[L.INSTANCE_LANE_ATTR] = lane
    return r


def base_trace(rng: random.Random) -> Trace:
    """A -> B -> C on base instances, no lane tag (instances may or may not say service.lane=base)."""
    explicit = rng.random() < 0.5
    return Trace(rid(rng), tuple(Span(inst(s, L.BASE if explicit else None)) for s in "ABC"))


def gray_traces(rng: random.Random) -> dict[str, Trace]:
    g = {L.REQUEST_LANE_ATTR: "gray"}
    return {
        "in lane": Trace(rid(rng), tuple(Span(inst(s, "gray"), g) for s in "ABC")),
        "fallback": Trace(rid(rng), (Span(inst("A", "gray"), g), Span(inst("B", L.BASE), g),
                                     Span(inst("C", "gray"), g))),
        "header at the edge, all base instances": Trace(rid(rng), tuple(Span(inst(s, None), g) for s in "ABC")),
        "dyed at A": Trace(rid(rng), (Span(inst("A", "gray"), {**g, L.DYED_ATTR: "true"}),
                                      Span(inst("B", None), g))),
        "tag lost at B": Trace(rid(rng), (Span(inst("A", None), g), Span(inst("B", None)), Span(inst("C", None)))),
        "tag rewritten to base at B": Trace(rid(rng), (Span(inst("A", None), g),
                                                       Span(inst("B", None), {L.REQUEST_LANE_ATTR: L.BASE}))),
        "intrusion": Trace(rid(rng), (Span(inst("A", None)), Span(inst("B", "gray")))),
        "per-service rule at B": Trace(rid(rng), (Span(inst("A", None), {"x-user-id": "100"}),
                                                  Span(inst("B", "gray"), {"x-user-id": "100"}))),
        "canary lane": Trace(rid(rng), (Span(inst("A", "canary"), {L.REQUEST_LANE_ATTR: "canary"}),)),
        "lane named b": Trace(rid(rng), (Span(inst("A", None), {L.REQUEST_LANE_ATTR: "b"}),)),
        "lane named baseline": Trace(rid(rng), (Span(inst("A", None), {L.REQUEST_LANE_ATTR: "baseline"}),)),
    }


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy-invert", "current"])
def test_every_non_base_trace_is_kept(legacy: bool) -> None:
    pols, _ = policies()
    rng = random.Random(12)
    for _ in range(50):
        for what, trace in gray_traces(rng).items():
            assert keeps(pols, trace, legacy), what


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy-invert", "current"])
def test_base_traces_are_kept_at_the_configured_share_by_trace_id(legacy: bool) -> None:
    pols, share = policies()
    rng = random.Random(7)
    traces = [base_trace(rng) for _ in range(20000)]
    kept = [t for t in traces if keeps(pols, t, legacy)]
    expected = [t for t in traces if probabilistic_keeps({"sampling_percentage": share * 100,
                                                          "hash_salt": "lanewatch-base"}, t.trace_id)]
    assert kept == expected  # exactly the trace ids the hash picks: the same trace, the same answer
    n, p = len(traces), share
    assert abs(len(kept) - n * p) < 4 * (n * p * (1 - p)) ** 0.5, (len(kept), n * p)
    assert 0 < p < 1


def test_the_two_generations_decide_alike_for_this_policy() -> None:
    pols, _ = policies()
    rng = random.Random(3)
    sample = [base_trace(rng) for _ in range(3000)] + [t for _ in range(30) for t in gray_traces(rng).values()]
    assert [keeps(pols, t, True) for t in sample] == [keeps(pols, t, False) for t in sample]


def test_a_naive_invert_match_policy_would_be_wrong_and_the_evaluator_sees_it() -> None:
    """Why the config does not write `string_attribute {key: lane, values: [base], invert_match: true}`
    next to a probabilistic policy: base traffic usually carries no lane at all."""
    naive = [{"name": "n", "type": "string_attribute",
              "string_attribute": {"key": L.REQUEST_LANE_ATTR, "values": [L.BASE], "invert_match": True}},
             {"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 10}}]
    rng = random.Random(5)
    untagged = [base_trace(rng) for _ in range(2000)]
    assert all(keeps(naive, t, legacy=False) for t in untagged)  # current: every base trace kept
    legacy_kept = sum(keeps(naive, t, legacy=True) for t in untagged)
    assert 100 < legacy_kept < 300  # legacy: only the probabilistic share
    rewritten = gray_traces(rng)["tag rewritten to base at B"]
    # a tag_lost violation: kept only when the hash happens to pick it
    assert keeps(naive, rewritten, legacy=False) == probabilistic_keeps({"sampling_percentage": 10}, rewritten.trace_id)
    pols, _ = policies()
    assert keeps(pols, rewritten, legacy=False) and keeps(pols, rewritten, legacy=True)


def test_the_not_base_regex_matches_every_value_but_base() -> None:
    pols, _ = policies()
    regexes = {p["string_attribute"]["values"][0] for p in pols if p["type"] == "string_attribute"}
    (regex,) = regexes
    pattern = re.compile(regex)
    rng = random.Random(9)
    alphabet = "base" + string.ascii_letters + string.digits + "._:-"
    values = ["b", "ba", "bas", "base", "basE", "Base", "base ", "xbase", "basebase", "bae", "gray", "based"]
    values += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(20000)]
    for v in values:
        assert bool(pattern.search(v)) == (v != L.BASE), v
        assert bool(re.fullmatch(regex, v)) == (v != L.BASE), v  # the same if a release anchors it


# --- The lanewatch side, for real ---------------------------------------------------------------

TOKEN = "collector-config-token-0123456789"


@pytest.fixture(scope="module")
def lanewatch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from lanewatch.config import Settings
    from lanewatch.server import Collector

    settings = Settings(host="127.0.0.1", otlp_http_port=0, otlp_grpc_port=0, port=0, auth_token=TOKEN,
                        data_dir=str(tmp_path_factory.mktemp("otelcol")), trace_wait_s=0.5,
                        flush_interval_s=0.2, liveness_ttl_s=60)
    with Collector(settings) as c:
        yield c


def expand_env(value: str) -> str:
    """The Collector's ``${env:NAME}`` expansion."""
    return re.sub(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: os.environ.get(m.group(1), ""), value)


def api(c: Any, path: str) -> Any:
    r = requests.get(c.endpoints()["url"] + path, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"})
    r.raise_for_status()
    return r.json()


def spans_received(c: Any) -> int:
    return int(api(c, "/api/v1/summary?window=60")["counters"].get("spans_received", 0))


def wait_for_spans(c: Any, at_least: int) -> int:
    deadline = time.monotonic() + 30
    while (n := spans_received(c)) < at_least and time.monotonic() < deadline:
        time.sleep(0.2)
    return n


def made_spans(service: str, n: int) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": service, L.INSTANCE_LANE_ATTR: "gray"}))
    tp.add_span_processor(SimpleSpanProcessor(memory))
    for _ in range(n):
        with tp.get_tracer("collector-configs").start_as_current_span("serve", kind=SpanKind.SERVER) as s:
            s.set_attribute(L.REQUEST_LANE_ATTR, "gray")
    tp.shutdown()
    return list(memory.get_finished_spans())


def test_the_fanout_otlp_http_settings_are_accepted_by_lanewatch(lanewatch: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load(COLLECTORS / "fanout.yaml")["exporters"]["otlp_http/lanewatch"]
    assert cfg["compression"] == "gzip"
    monkeypatch.setenv("LANEWATCH_AUTH_TOKEN", TOKEN)
    headers = {k: expand_env(v) for k, v in cfg["headers"].items()}
    url = lanewatch.endpoints()["otlp_http"] + "/v1/traces"  # the config's endpoint, on this test's port
    before = spans_received(lanewatch)
    refused = HttpSpanExporter(endpoint=url, timeout=10, compression=HttpCompression.Gzip)
    assert refused.export(made_spans("fanout", 1)) == SpanExportResult.FAILURE  # the header is what lets it in
    sent = HttpSpanExporter(endpoint=url, timeout=10, headers=headers, compression=HttpCompression(cfg["compression"]))
    assert sent.export(made_spans("fanout", 4)) == SpanExportResult.SUCCESS
    assert wait_for_spans(lanewatch, before + 4) == before + 4


@pytest.mark.parametrize("name, exporter", [("gateway-static.yaml", "loadbalancing/traces"),
                                            ("tail-sampling.yaml", "loadbalancing/lanewatch")])
def test_the_loadbalancing_otlp_settings_are_accepted_by_lanewatch(lanewatch: Any, monkeypatch: pytest.MonkeyPatch,
                                                                   name: str, exporter: str) -> None:
    import grpc

    otlp = load(COLLECTORS / name)["exporters"][exporter]["protocol"]["otlp"]
    assert otlp["compression"] == "gzip" and otlp["tls"]["insecure"] is True
    monkeypatch.setenv("LANEWATCH_AUTH_TOKEN", TOKEN)
    headers = tuple((k, expand_env(v)) for k, v in otlp["headers"].items())
    before = spans_received(lanewatch)
    sent = GrpcSpanExporter(endpoint=lanewatch.endpoints()["otlp_grpc"], insecure=True, timeout=10,
                            headers=headers, compression=grpc.Compression.Gzip)
    assert sent.export(made_spans(name, 3)) == SpanExportResult.SUCCESS
    assert wait_for_spans(lanewatch, before + 3) == before + 3


def test_heartbeats_over_the_by_service_exporter_settings_make_an_instance_live(
        lanewatch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import grpc

    otlp = load(COLLECTORS / "gateway-static.yaml")["exporters"]["loadbalancing/by-service"]["protocol"]["otlp"]
    monkeypatch.setenv("LANEWATCH_AUTH_TOKEN", TOKEN)
    headers = tuple((k, expand_env(v)) for k, v in otlp["headers"].items())
    exporter = GrpcMetricExporter(endpoint=lanewatch.endpoints()["otlp_grpc"], insecure=True, timeout=10,
                                  headers=headers, compression=grpc.Compression.Gzip)
    resource = Resource.create({"service.name": "hb-svc", L.INSTANCE_LANE_ATTR: "gray",
                                L.INSTANCE_ID_ATTR: "hb-svc-gray-1"})
    beat = Heartbeat(resource, exporter, interval_s=30)
    try:
        assert beat.beat_now()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            live = [i for i in api(lanewatch, "/api/v1/instances?service=hb-svc") if i["live"]]
            if live:
                break
            time.sleep(0.2)
        assert [(i["lane"], i["instance"]) for i in live] == [("gray", "hb-svc-gray-1")]
    finally:
        beat.stop()
