"""``lanewatch up``: collector, store, query API and dashboard in one process.

:class:`Collector` wires the parts (usable in-process by tests and the demo);
``run_up`` is the command. One process owns the DuckDB file: it writes and
answers queries (DuckDB holds the file lock).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

from lanewatch import access, config
from lanewatch.alerts.engine import AlertEngine
from lanewatch.collect.engine import PEER_GONE_S, Engine
from lanewatch.collect.pipeline import Pipeline, tune_gc
from lanewatch.collect.receivers.grpc import OtlpGrpcReceiver
from lanewatch.collect.receivers.http import OtlpHttpReceiver
from lanewatch.collect.sink import BatchSink
from lanewatch.config import Settings
from lanewatch.metrics import MetricsCollector, MetricsSink
from lanewatch.rules.reload import Reloader
from lanewatch.stop_signals import Stops
from lanewatch.store.base import AlertHistory, PerCollector, SharedLiveness, TraceJournal

log = logging.getLogger("lanewatch")


class _LiveView:
    """What the running engine knows before its next batch reaches the store."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def instances(self) -> list[dict[str, Any]]:
        return self._engine.instances()

    def counters(self, after: int | None = None) -> dict[str, int]:
        return self._engine.pending_counters(after)

    def overload(self) -> dict[str, Any]:
        return self._engine.overload_state()


class Collector:
    """Everything ``lanewatch up`` runs. ``start()`` binds every listener (ports 0
    are picked free; see :meth:`endpoints`), ``stop()`` flushes and frees them.

    ``alerts=False`` (``lanewatch collect``): receivers, span path and store writer only; the
    alerts are evaluated by ``lanewatch serve`` from the shared store."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time,
                 web: bool = True, alerts: bool = True) -> None:
        from lanewatch.alerts.notify import notifiers_from
        from lanewatch.query import Query
        from lanewatch.store import open_store

        self.settings = settings
        self.store = open_store(settings)
        self.engine = Engine(settings, clock)
        #: with other collectors on the same store: judge with every collector's liveness
        self.engine.sharing = settings.store_url.shared and isinstance(self.store, SharedLiveness)
        #: alert delivery (webhooks, Alertmanager), one per configured URL
        self.notifiers = notifiers_from(settings, self._dashboard_url) if alerts else []
        self._alerting = alerts
        self.alerts = AlertEngine(settings, self.engine.instances,
                                  history=self.store if isinstance(self.store, AlertHistory) else None,
                                  notifiers=self.notifiers, clock=clock)
        self.metrics_sink = MetricsSink(settings.metrics.max_series)
        sinks: list[BatchSink] = [self.store, self.metrics_sink]
        if alerts:
            sinks.insert(1, self.alerts)
        self.pipeline = Pipeline(self.engine, sinks,
                                 interval_s=settings.flush_interval_s,
                                 jobs=[self.store.maintain, self.engine.forget_instances], clock=clock,
                                 store=self.store)
        #: routing rules reloaded live (the config file watched, SIGHUP, PUT /api/v1/rules)
        self.rules = Reloader(self.engine.rulebook, settings.config)
        self.query = Query(self.store, settings, clock, live=_LiveView(self.engine), alerts=self.alerts,
                           rules=self.rules)
        #: ``GET /metrics``
        self.metrics = MetricsCollector(self.metrics_sink, instances=self.query.instances,
                                        pending_counters=self.engine.pending_counters,
                                        alert_states=lambda: [a.to_dict() for a in self.alerts.current()],
                                        alert_health=self.alerts.health)
        limit = settings.max_body_bytes
        #: read once: a token file is not read again per request (restart to change the token)
        self.token = settings.token
        self.tls = access.server_ssl_context(settings.tls_cert, settings.tls_key) if settings.tls_cert else None
        grpc_tls = ((Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes())
                    if settings.tls_cert else None)
        self.http = OtlpHttpReceiver(self.engine, settings.host, settings.otlp_http_port, limit,
                                     token=self.token, tls=self.tls)
        self.grpc = (OtlpGrpcReceiver(self.engine, settings.host, settings.otlp_grpc_port, limit,
                                      token=self.token, tls=grpc_tls)
                     if settings.otlp_grpc_port >= 0 else None)
        self._web_enabled = web
        self._web: Any = None
        self._web_thread: threading.Thread | None = None

    def _dashboard_url(self) -> str:
        from lanewatch.alerts.notify import default_external_url

        return default_external_url(self.settings, self._web.server_port if self._web is not None else None)

    def _build_web(self) -> Any:
        from lanewatch.web.build import build_web

        return build_web(self.settings, self.query, self.metrics, token=self.token, tls=self.tls,
                         count_drop=self.engine.count_drop, count_event=self.engine.count_event,
                         otlp_http_port=self.http.port)

    def start(self) -> Self:
        """Bind everything; on failure, release what was already bound and re-raise."""
        try:
            if self.engine.sharing:  # before anything is read or written under our name
                refuse_a_live_namesake(self.store, self.settings.collector_name, self.settings.flush_interval_s)
            self._resume()
            if self.engine.sharing:  # before the first span: the other collectors' liveness
                self.pipeline.merge_peers()
                self.pipeline.adopt_names(self.alerts.clock())
            if self._alerting:
                self.alerts.prime(self.store, self.alerts.clock())
            self.pipeline.start()
            self.rules.start()
            if self._alerting:
                self.alerts.start()
            self.http.start()
            if self.grpc is not None:
                self.grpc.start()
            if self._web_enabled:
                self._web = self._build_web()
                self._web_thread = threading.Thread(target=self._web.serve_forever,
                                                    name="lanewatch-web", daemon=True)
                self._web_thread.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _resume(self) -> None:
        """Take back the traces that were open when the last process stopped (a store that
        keeps them), or judge every open trace at stop (one that does not)."""
        if not isinstance(self.store, TraceJournal):
            return
        try:
            kept = self.store.open_spans()
        except Exception as e:  # noqa: BLE001 -- unreadable: start without them, said loudly
            log.error("the open traces kept at the last stop cannot be read (%s); they are lost "
                      "and counted as open_spans_unreadable", e)
            self.engine.journaling = True
            self.engine.count("open_spans_unreadable")
            return
        n = self.engine.resume(kept)
        if not kept.clean:
            log.warning("the last lanewatch on %s%s did not stop cleanly: spans it acknowledged "
                        "after its last committed flush (at most max_unflushed_s = %gs of them) are "
                        "missing; the traces open at that flush are resumed",
                        self.settings.store_url.display(),
                        f" as collector {self.settings.collector_name}" if self.engine.sharing else "",
                        self.settings.max_unflushed_s)
        if n:
            log.info("resumed %d spans of traces that were open at the last stop", n)

    def endpoints(self) -> dict[str, Any]:
        host = self.settings.host
        scheme = "https" if self.tls is not None else "http"
        out: dict[str, Any] = {"otlp_http": f"{scheme}://{host}:{self.http.port}",
                               "otlp_http_port": self.http.port}
        if self.grpc is not None:
            out.update(otlp_grpc=f"{host}:{self.grpc.port}", otlp_grpc_port=self.grpc.port)
        if self._web is not None:
            out.update(url=f"{scheme}://{host}:{self._web.server_port}", port=self._web.server_port)
        return out

    def stop(self) -> None:
        self.rules.stop()
        self.http.stop()
        if self.grpc is not None:
            self.grpc.stop()
        if self._web is not None:
            self._web.shutdown()
            self._web.server_close()
        self.pipeline.stop()
        self.alerts.stop()  # closes the notifiers: what is queued is delivered (bounded wait)
        self.store.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def refuse_a_live_namesake(store: Any, name: str, flush_interval_s: float) -> None:
    """ConfigError when another running collector writes the shared store as ``name``: its
    newest batch is recent and keeps advancing while we watch (a stopped or crashed
    predecessor of the same name does not advance: then we take over)."""
    if not isinstance(store, PerCollector):
        return

    def stamp() -> float | None:
        return next((float(r["as_of"]) for r in store.collectors() if r["collector"] == name), None)

    first = stamp()
    if first is None or time.time() - first > PEER_GONE_S:
        return
    deadline = time.monotonic() + max(2.0, 4 * flush_interval_s)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if stamp() != first:
            raise config.ConfigError(
                f"collector id {name!r} is in use: another lanewatch collect writes the store under "
                "that name; give each collector its own --collector-id (LANEWATCH_COLLECTOR_ID)")


def add_store_arguments(p: argparse.ArgumentParser, collector: bool = True) -> None:
    p.add_argument("--store", metavar="URL",
                   help="duckdb:///PATH (default: the file under --data-dir) or "
                   "clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE (LANEWATCH_STORE; docs/scale-out.md)")
    if collector:
        p.add_argument("--collector-id", metavar="NAME",
                       help="this collector's name in a shared store (default: the host name; "
                       "LANEWATCH_COLLECTOR_ID)")


def add_up_arguments(p: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    """The flags of ``up``; ``only``: just those of these settings (``collect``, ``serve``),
    plus ``--ready-file`` and ``--log-level``."""
    def want(name: str) -> bool:
        return only is None or name in only

    if want("host"):
        p.add_argument("--host", help="address to bind (LANEWATCH_HOST, default 127.0.0.1)")
    if want("otlp_http_port"):
        p.add_argument("--otlp-http-port", type=int, help="OTLP/HTTP port (default 4318, 0 = any free)")
    if want("otlp_grpc_port"):
        p.add_argument("--otlp-grpc-port", type=int, help="OTLP/gRPC port (default 4317, 0 = any, -1 = off)")
    if want("port"):
        p.add_argument("--port", type=int, help="API and dashboard port (default 8050, 0 = any free)")
    if want("data_dir"):
        p.add_argument("--data-dir", help="directory of the embedded store (default ./lanewatch-data)")
    if want("store"):
        add_store_arguments(p, collector=want("collector_id"))
    if want("config"):
        p.add_argument("--config", help="YAML file with settings, rules and topology")
    if want("alert_webhook"):
        p.add_argument("--alert-webhook", action="append", metavar="URL",
                       help="POST alerts in Alertmanager's webhook format to URL (repeatable; "
                       "LANEWATCH_ALERT_WEBHOOK, comma-separated)")
    if want("alertmanager_url"):
        p.add_argument("--alertmanager-url", action="append", metavar="URL",
                       help="push alerts to this Alertmanager (repeatable; LANEWATCH_ALERTMANAGER_URL)")
    if want("external_url"):
        p.add_argument("--external-url", metavar="URL",
                       help="lanewatch's URL in alert links (default http://host:port of the dashboard)")
    if want("auth_token"):
        p.add_argument("--auth-token", metavar="TOKEN",
                       help="require Authorization: Bearer TOKEN on every listener (LANEWATCH_AUTH_TOKEN; "
                       "docs/security.md)")
    if want("auth_token_file"):
        p.add_argument("--auth-token-file", metavar="PATH", help="read the token from this file's first line")
    if want("tls_cert"):
        p.add_argument("--tls-cert", metavar="PEM", help="serve TLS on every listener with this certificate")
    if want("tls_key"):
        p.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    if want("allowed_hosts"):
        p.add_argument("--allowed-host", action="append", dest="allowed_hosts", metavar="NAME",
                       help="a host name the API and dashboard answer to (repeatable; LANEWATCH_ALLOWED_HOSTS)")
    if want("memory_limit_mib"):
        p.add_argument("--memory-limit-mib", type=int, metavar="MIB",
                       help="memory ceiling: above it less memory_spike_mib, export requests are refused "
                       "retryably (LANEWATCH_MEMORY_LIMIT_MIB, default 0 = none)")
    p.add_argument("--ready-file", help="write the bound endpoints as JSON here once listening")
    p.add_argument("--log-level", default=os.environ.get("LANEWATCH_LOG_LEVEL", "INFO"))


#: The flags of ``up`` that are settings (``add_up_arguments``), by setting name.
UP_SETTINGS = ("host", "otlp_http_port", "otlp_grpc_port", "port", "data_dir", "store", "collector_id",
               "config", "alert_webhook", "alertmanager_url", "external_url", "auth_token",
               "auth_token_file", "tls_cert", "tls_key", "allowed_hosts", "memory_limit_mib")


def load_settings(args: argparse.Namespace, names: Sequence[str], command: str) -> Settings | None:
    """Settings from the flags ``names`` of ``args`` (plus env and config file), logged
    warnings for an open listener; None (after logging why) when they do not load."""
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    flags = {k: getattr(args, k, None) for k in names}
    try:
        settings = config.load(flags)
    except config.ConfigError as e:
        log.error("configuration: %s", e)
        return None
    if not access.is_loopback(settings.host):
        if not (settings.auth_token or settings.auth_token_file):
            log.warning("--host %s: every listener of lanewatch %s is reachable from the network and "
                        "none asks for credentials; set --auth-token (or LANEWATCH_AUTH_TOKEN, "
                        "--auth-token-file), bind 127.0.0.1, or put lanewatch behind an "
                        "authenticating proxy", settings.host, command)
        elif not settings.tls_cert:
            log.warning("--host %s: the token crosses the network in clear text; add --tls-cert and "
                        "--tls-key (or terminate TLS in front of lanewatch)", settings.host)
    return settings


def start_or_explain(settings: Settings, build: Callable[[], Any]) -> Any:
    """``build().start()``, or None after logging why it cannot start."""
    try:
        return build().start()
    except ssl.SSLError as e:
        log.error("cannot start: tls_cert=%s / tls_key=%s do not load: %s", settings.tls_cert,
                  settings.tls_key, e)
    except OSError as e:
        log.error("cannot start: %s (is another lanewatch running on these ports?)", e)
    except Exception as e:  # noqa: BLE001 -- e.g. the store file is locked by another lanewatch
        log.error("cannot start: %s (store %s)", e, settings.store_url.display())
    return None


def catch_signals(reload: Callable[[str], None] | None = None) -> Stops:
    """SIGINT and SIGTERM caught from now on (before the ready file is written: a stop right
    after readiness is clean); ``SIGHUP`` calls ``reload("SIGHUP")`` (the routing rules).
    ``.wait()`` blocks until a stop."""
    return Stops(None if reload is None else lambda: reload("SIGHUP"))


def run_up(args: argparse.Namespace) -> int:
    settings = load_settings(args, UP_SETTINGS, "up")
    if settings is None:
        return 2
    collector = start_or_explain(settings, lambda: Collector(settings))
    if collector is None:
        return 2
    tune_gc()
    stops = catch_signals(collector.rules.trigger)
    ep = collector.endpoints()
    if args.ready_file:
        Path(args.ready_file).write_text(json.dumps(ep))
    print(f"lanewatch up: OTLP/HTTP {ep['otlp_http']}  OTLP/gRPC {ep.get('otlp_grpc', 'off')}  "
          f"dashboard and API {ep.get('url')}", flush=True)
    print_alerts("up", collector.alerts, collector.notifiers)
    stops.wait()
    collector.stop()
    return 0


def print_alerts(command: str, alerts: AlertEngine, notifiers: Sequence[Any]) -> None:
    rules = sorted(alerts.rules)
    to = ", ".join(f"{n.kind} {n.target}" for n in notifiers) or "no webhook or Alertmanager"
    print(f"lanewatch {command}: alerts {'on: ' + ', '.join(rules) if rules else 'off'}; delivered to {to}",
          flush=True)


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--markdown", action="store_true", help="print as a Markdown table")


def run_config(args: argparse.Namespace) -> int:
    """Every setting (sections' as ``section.key``) with its env var, default and doc."""
    rows = config.describe()
    if args.markdown:
        print("| setting | env var | default | meaning |\n| --- | --- | --- | --- |")
    for name, env, default, doc in rows:
        if args.markdown:
            cell = doc.replace("|", "\\|")
            print(f"| `{name}` | `{env}` | `{default!r}` | {cell} |")
        else:
            print(f"{name:28} {env:38} {default!r:24} {doc}")
    return 0
