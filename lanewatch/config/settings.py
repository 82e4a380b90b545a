"""The settings themselves: every one with its default, doc and check, in one dataclass.

Top-level settings are fields of :class:`Settings`; a *section* is a frozen
dataclass nested in it (:class:`CompareSettings` as ``compare``, ...), each of its
fields again with a default and a doc. How they are read is :mod:`.sources`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lanewatch import lane as L
from lanewatch.config import access, alerting, routing, urls
from lanewatch.config import store_url as store_urls
from lanewatch.config.alerting import LaneTarget
from lanewatch.config.fields import (
    ConfigError,
    leaves,
    not_empty,
    positive,
    section,
    setting,
    within,
)
from lanewatch.config.routing import Rule

_PORT = within(0, 65535, what="a port is 0..65535")


def _check_collector_id(name: str, value: object) -> None:
    text = str(value)
    if len(text) > 128 or any(not (c.isalnum() or c in "-_.:") for c in text):
        raise ConfigError(f"{name}: {text[:40]!r} must be at most 128 letters, digits or -_.:")
_SHARE = within(0.0, 1.0, what="a share is 0..1")
#: The gray-vs-base checks a judgement has (``lanewatch.scorecard``).
JUDGED_CHECKS = ("errors", "latency")


def _checks(name: str, value: list[str]) -> None:
    bad = [v for v in value if v not in JUDGED_CHECKS]
    if bad:
        raise ConfigError(f"{name}: unknown check {bad[0]!r} (known: {', '.join(JUDGED_CHECKS)})")


@dataclass(frozen=True)
class CompareSettings:
    """``compare:`` when "is this lane worse than base?" gives a verdict. Field for field a
    :class:`lanewatch.stats.Thresholds`: ``Thresholds(**dataclasses.asdict(settings.compare))``."""

    min_requests: int = setting(30, "Fewer requests than this on either side gives no verdict.",
                                check=within(1, float("inf"), what="must be >= 1"))
    alpha: float = setting(0.01, "Significance level of each test (error rate, latency).",
                           check=within(0.0, 1.0, open_low=True, open_high=True))
    min_latency_effect: float = setting(0.05, "Smallest latency effect called worse: "
                                        "P(lane slower than base) - 0.5.",
                                        check=within(0.0, 0.5, open_high=True))
    min_latency_increase: float = setting(0.1, "And the smallest rise of the mean latency called worse, "
                                          "relative to base (0.1 = 10%).", check=within(0.0, float("inf")))
    min_latency_increase_ms: float = setting(1.0, "And in milliseconds: a lane is slower only when its mean "
                                             "latency is higher by both.", check=within(0.0, float("inf")))
    pass_score: float = setting(75.0, "A gray-vs-base score (0-100) at or above this passes.",
                                check=within(0.0, 100.0))
    marginal_score: float = setting(50.0, "A score below this fails; between it and pass_score it is "
                                    "marginal (the gate fails, the alert does not fire).",
                                    check=within(0.0, 100.0))
    critical: list[str] = setting(  # noqa: RUF009 -- setting() returns a dataclasses.field
        ["errors", "latency"], "Checks whose failure alone fails the judgement (score 0): "
        "errors, latency.", check=_checks)


@dataclass(frozen=True)
class DeadLaneSettings:
    """``dead_lanes:`` when a live lane that serves nothing is reported."""

    after_s: float = setting(60.0, "A live lane that served no hop for this long while its service "
                             "served traffic is reported as dead.", check=positive)


@dataclass(frozen=True)
class MetricsSettings:
    """``metrics:`` the Prometheus exposition at ``GET /metrics`` (``docs/metrics.md``)."""

    max_series: int = setting(10_000, "Label sets per metric family at /metrics; further ones are "
                              "added to one overflow series (label values '_other') and counted.",
                              check=positive)


@dataclass(frozen=True)
class AlertSettings:
    """``alerts:`` the built-in alert rules (``docs/alerts.md``), on by default."""

    enabled: bool = setting(True, "Evaluate the alert rules (every evaluate_every_s).")
    disabled: list[str] = setting(  # noqa: RUF009 -- setting() returns a dataclasses.field
        [], "Alert names switched off, e.g. [GrayShareDrift].", parse=alerting.parse_names)
    evaluate_every_s: float = setting(1.0, "How often the rules are evaluated.", check=positive)
    window_s: float = setting(60.0, "Evidence window of every rule (span time).", check=positive)
    leak_threshold: float = setting(0.01, "LaneLeak fires when the Wilson 95% lower bound of a lane's "
                                    "leaked share of hops at a service exceeds this.", check=_SHARE)
    leak_min_hops: int = setting(20, "LaneLeak needs at least this many hops of the lane at the service.",
                                 check=within(1, float("inf"), what="must be >= 1"))
    intrusion_min: int = setting(1, "LaneIntrusion fires on this many intruding hops at a service.",
                                 check=within(1, float("inf"), what="must be >= 1"))
    tag_lost_threshold: float = setting(0.01, "LaneTagLost fires when the Wilson 95% lower bound of "
                                        "the share of calls that lost the lane exceeds this.", check=_SHARE)
    tag_lost_min_calls: int = setting(20, "LaneTagLost needs at least this many calls of the lane.",
                                      check=within(1, float("inf"), what="must be >= 1"))
    for_s: dict[str, float] = setting(  # noqa: RUF009 -- setting() returns a dataclasses.field
        {}, "Per alert: seconds its condition holds before it fires (pending until then); "
        "GrayWorseThanBase 5, the others 0 unless set (YAML only).", env=False,
        parse=alerting.parse_seconds)
    keep_firing_for_s: dict[str, float] = setting(  # noqa: RUF009 -- setting() returns a dataclasses.field
        {}, "Per alert: seconds it keeps firing after its condition stopped holding (0 unless set; "
        "YAML only).", env=False, parse=alerting.parse_seconds)
    history_keep: int = setting(10_000, "Alert state changes kept in the store.", check=positive)


@dataclass(frozen=True)
class Settings:
    """Typed settings. Env var for field ``x`` is ``LANEWATCH_X``, for ``section.key``
    ``LANEWATCH_SECTION__KEY``."""

    host: str = setting("127.0.0.1", "Address every listener binds to.")
    otlp_http_port: int = setting(4318, "OTLP/HTTP receiver port (0 = pick a free port).", check=_PORT)
    otlp_grpc_port: int = setting(4317, "OTLP/gRPC receiver port (0 = pick a free port, -1 = off).",
                                  check=within(-1, 65535, what="a port is 0..65535, or -1 for off"))
    port: int = setting(8050, "Query API and dashboard port (0 = pick a free port).", check=_PORT)
    data_dir: str = setting("./lanewatch-data", "Directory of the embedded store (DuckDB file).")
    store: str = setting("", "Where rollups, violations and traces live: duckdb:///PATH (default: "
                         "lanewatch.duckdb under data_dir; one process) or "
                         "clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE (native port, default "
                         "9000; shared by any number of `collect` and `serve`; docs/scale-out.md).",
                         check=store_urls.check, secret=True)
    collector_id: str = setting("", "This collector's name in a shared store (its counters, open traces "
                                "and liveness are kept under it; a restart with the same id resumes "
                                "them); default: the host name. Distinct per collector.",
                                check=_check_collector_id)
    config: str = setting("", "YAML file with settings, routing rules and topology; or a file of "
                          "Ingress / OpenSergo documents to derive the routing rules from.")
    auth_token: str = setting("", "Bearer token every listener asks for (OTLP, API, /metrics, dashboard; "
                              "docs/security.md); empty: no authentication.", check=access.check_token,
                              secret=True)
    auth_token_file: str = setting("", "File holding the bearer token (first line), instead of auth_token.",
                                   check=access.check_token_file)
    tls_cert: str = setting("", "PEM certificate (chain) every listener serves TLS with; needs tls_key.",
                            check=access.check_tls_file)
    tls_key: str = setting("", "PEM private key of tls_cert.", check=access.check_tls_file)
    allowed_hosts: list[str] = setting(  # noqa: RUF009 -- setting() returns a dataclasses.field
        [], "Host names the API, dashboard and /metrics answer to besides IP addresses, localhost and "
        "the bound host (DNS rebinding); '.example.com' takes subdomains, '*' any.",
        check=access.check_hosts)

    max_body_bytes: int = setting(16 * 1024 * 1024, "Largest OTLP request body, after decompression "
                                  "(413 beyond).", check=positive)
    max_spans_per_request: int = setting(200_000, "Spans in one OTLP request (with the resource and "
                                         "scope entries holding them), counted before it is parsed; "
                                         "413 / RESOURCE_EXHAUSTED beyond.", check=positive)
    max_points_per_request: int = setting(200_000, "Metric data points in one OTLP request (with the "
                                          "entries holding them), counted before it is parsed; 413 / "
                                          "RESOURCE_EXHAUSTED beyond.", check=positive)
    max_attributes_per_request: int = setting(1_000_000, "Span attributes in one OTLP protobuf "
                                              "request, counted before it is parsed; 413 / "
                                              "RESOURCE_EXHAUSTED beyond.", check=positive)
    max_json_values_per_request: int = setting(1_000_000, "JSON objects and arrays in one OTLP/JSON "
                                               "request, counted before it is parsed; 413 beyond.",
                                               check=positive)
    max_lanes: int = setting(64, "Distinct lanes tracked; further lanes count as '_other' and are shown.",
                             check=positive)
    max_services: int = setting(2000, "Distinct services tracked; further ones count as '_other'.",
                                check=positive)

    max_instances_per_lane: int = setting(1000, "Instances tracked per service and lane; evidence of "
                                          "further ones counts for that lane's '_other' instance "
                                          "(instances_over_limit).", check=positive)
    max_instances: int = setting(20_000, "Instances tracked in all; further ones as for "
                                 "max_instances_per_lane.", check=positive)
    max_name_chars: int = setting(256, "Instance ids and service names longer than this are cut (ids "
                                  "keep a hash of the whole id) and counted.",
                                  check=within(32, 65536, what="must be 32..65536"))

    request_lane_attributes: list[str] = setting(  # noqa: RUF009 -- setting() returns a dataclasses.field
        [L.REQUEST_LANE_ATTR], "Span attribute keys read for the request lane, first non-empty wins "
        "(aliases such as x-mse-tag may be listed).", check=not_empty)
    instance_lane_attributes: list[str] = setting(  # noqa: RUF009 -- setting() returns a dataclasses.field
        [L.INSTANCE_LANE_ATTR], "Resource attribute keys read for the instance lane, first non-empty "
        "wins.", check=not_empty)

    sampling_weight_attribute: str = setting(
        "", "Span attribute holding how many spans a span stands for (a positive number, e.g. set by "
        "a sampler; like Tempo's span_multiplier_key, but the weight itself, not a ratio). Empty: "
        "off (only the OpenTelemetry sampling threshold ot=th in tracestate weighs spans).")

    liveness_ttl_s: float = setting(10.0, "An instance is live this long after its last telemetry.",
                                    check=positive)
    liveness_wait_s: float = setting(
        2.0, "With several collectors on one store: spans wait at most this long for every other "
        "collector's liveness of their arrival time before they are judged (then they are judged "
        "and counted as spans_judged_before_peer_liveness).", check=positive)
    trace_wait_s: float = setting(6.0, "A trace is final this long after its last span arrived.",
                                  check=positive)
    closed_trace_keep_s: float = setting(60.0, "Finalised traces are kept this long to place late spans.",
                                         check=positive)
    max_pending_spans: int = setting(2_000_000, "Spans held for trace assembly; beyond, oldest traces are "
                                     "finalised early and counted.", check=positive)
    max_violations_kept: int = setting(100_000, "Violating traces kept in the store (oldest dropped first).",
                                       check=positive)
    sample_ok_traces: float = setting(0.01, "Share of in-lane traces kept for drill-down.", check=_SHARE)
    flush_interval_s: float = setting(0.5, "How often rollups are written to the store.", check=positive)
    max_unflushed_s: float = setting(
        1.0, "Accepted spans not yet in the store may span at most this long: while the store is "
        "further behind, export requests get 503 / UNAVAILABLE (retryable), so a kill -9 loses at "
        "most this much of what was acknowledged. Above flush_interval_s.", check=positive)
    retention_s: int = setting(7 * 86400, "History kept in the store.", check=positive)
    store_memory_limit_mib: int = setting(
        128, "Memory the embedded DuckDB store may use for its caches and queries (its memory_limit; "
        "beyond, it evicts and spills to disk). Without a limit it grows towards 80% of RAM.",
        check=positive)
    downsample_after_s: int = setting(3600, "Per-second rollups older than this are merged to per-minute.",
                                      check=positive)
    trace_url_template: str = setting("", "Link to the user's trace UI, e.g. "
                                      "http://jaeger:16686/trace/{trace_id}.")
    demo_control_url: str = setting("", "Set by `lanewatch demo`: its fault switchboard, shown in the "
                                    "dashboard.")

    alert_webhook: list[str] = setting(  # noqa: RUF009 -- setting() returns a dataclasses.field
        [], "Webhook URLs (comma-separated in the env var); each gets every firing and resolved "
        "alert in Alertmanager's webhook format version 4.", check=urls.check_urls)
    alertmanager_url: list[str] = setting(  # noqa: RUF009 -- setting() returns a dataclasses.field
        [], "Alertmanager URLs (http://am:9093, every instance of a cluster); alerts are pushed to "
        "POST /api/v2/alerts.", check=urls.check_urls)
    alertmanager_resend_s: float = setting(60.0, "Firing alerts are re-sent to Alertmanager this often "
                                           "(their endsAt is 4 times this ahead).", check=positive)
    external_url: str = setting("", "lanewatch's URL as alert receivers should link it (externalURL, "
                                "generatorURL); empty: http://host:port of the dashboard.",
                                check=urls.check_url)
    alert_timeout_s: float = setting(5.0, "Timeout of one alert delivery attempt (connect, then read).",
                                     check=positive)
    alert_retry_for_s: float = setting(60.0, "A notification is retried (5xx, timeout, connection error; "
                                       "never 4xx) with exponential backoff for at most this long.",
                                       check=positive)

    max_concurrent_decodes: int = setting(0, "OTLP export requests decoded at once (0 = one per core); "
                                          "the others wait for a slot.", check=within(0, 1024))
    admission_wait_s: float = setting(2.0, "An export request that cannot start decoding within this "
                                      "long is refused retryably (HTTP 503 + Retry-After, gRPC UNAVAILABLE "
                                      "+ RetryInfo); keep it well below the exporters' 10 s timeout.",
                                      check=within(0.0, 60.0))
    memory_limit_mib: int = setting(0, "Process memory ceiling in MiB (0 = none): above it less "
                                    "memory_spike_mib, new export requests are refused retryably.",
                                    check=within(0, 1 << 30))
    memory_spike_mib: int = setting(0, "Headroom below memory_limit_mib where refusing begins "
                                    "(0 = 20% of the limit).", check=within(0, 1 << 30))
    api_workers: int = setting(4, "API and dashboard requests served at once (their own pool, apart "
                               "from the OTLP receivers).", check=within(1, 1024))
    api_backlog: int = setting(64, "API and dashboard requests that may wait for a worker; beyond, "
                               "503 with Retry-After at once.", check=within(0, 100_000))
    api_wait_s: float = setting(5.0, "An API or dashboard request that waited this long for a worker "
                                "is answered 503 with Retry-After.", check=within(0.0, 600.0))

    routing_rules: list[Rule] = setting(  # noqa: RUF009 -- setting() returns a dataclasses.field
        [], "Per-service routing rules, docs/rules.md; `{import: FILE}` entries read Ingress and "
        "OpenSergo files (YAML only; formerly `rules`).", env=False,
        parse=routing.parse_config_rules, check=routing.check_rules, old_names=("rules",))
    topology: dict[str, list[str]] = setting(  # noqa: RUF009 -- setting() returns a dataclasses.field
        {}, "Declared services -> lanes, always live (YAML only).", env=False,
        parse=routing.parse_topology, check=routing.check_topology)

    compare: CompareSettings = section(  # noqa: RUF009 -- section() returns a dataclasses.field
        CompareSettings, "Gray vs base comparison thresholds.")
    dead_lanes: DeadLaneSettings = section(  # noqa: RUF009 -- section() returns a dataclasses.field
        DeadLaneSettings, "Dead-lane detection.")
    alerts: AlertSettings = section(  # noqa: RUF009 -- section() returns a dataclasses.field
        AlertSettings, "Alert rules.")
    lanes: dict[str, LaneTarget] = setting(  # noqa: RUF009 -- setting() returns a dataclasses.field
        {}, "Per lane: the share of entry traffic it should get, {gray: {target_share: 0.02, "
        "tolerance: 0.01}} (GrayShareDrift; YAML only).", env=False, parse=alerting.parse_lanes)
    metrics: MetricsSettings = section(  # noqa: RUF009 -- section() returns a dataclasses.field
        MetricsSettings, "Prometheus exposition at /metrics.")

    def validate(self) -> Settings:
        """Raise :class:`ConfigError` naming the first bad setting; return self."""
        for name, f in leaves(Settings):
            check = f.metadata["check"]
            if check is not None:
                check(name, self.value(name))
        if self.max_unflushed_s <= self.flush_interval_s:
            raise ConfigError(f"max_unflushed_s ({self.max_unflushed_s}) must be above flush_interval_s "
                              f"({self.flush_interval_s}): every flush would be refused ingest")
        access.check_together(self.auth_token, self.auth_token_file, self.tls_cert, self.tls_key)
        if 0 < self.memory_limit_mib <= self.memory_spike_mib:
            raise ConfigError(f"memory_spike_mib: {self.memory_spike_mib} must be below memory_limit_mib "
                              f"({self.memory_limit_mib})")
        return self

    def value(self, name: str) -> object:
        """A setting by its dotted name (``compare.alpha``)."""
        out: object = self
        for part in name.split("."):
            out = getattr(out, part)
        return out

    @property
    def rule_attributes(self) -> list[str]:
        """Span attribute keys the routing rules read, in a stable order."""
        return routing.rule_attributes(self.routing_rules)

    @property
    def token(self) -> str:
        """The bearer token in force (auth_token, else auth_token_file's), '' when none."""
        return self.auth_token or access.read_token_file(self.auth_token_file)

    @property
    def store_url(self) -> store_urls.StoreURL:
        """The parsed ``store`` setting."""
        return store_urls.parse(self.store, self.data_dir)

    @property
    def collector_name(self) -> str:
        """``collector_id``, else the host name."""
        import socket

        return self.collector_id or socket.gethostname() or "lanewatch"

    @property
    def db_path(self) -> Path:
        return Path(self.data_dir) / "lanewatch.duckdb"
