"""The scale-out roles: ``lanewatch collect`` (receivers, span path, store writer; no UI) and
``lanewatch serve`` (API, dashboard, alerts and ``/metrics`` over a shared store).

No receiver and no span path: any number of ``lanewatch collect`` write the store (ClickHouse),
any number of ``serve`` read it. Live views follow other processes' writes through the store's
change feed; alerts are evaluated from the store's rollups (each evaluation reads its window
afresh); ``/metrics`` sums the store (:mod:`lanewatch.metrics.from_store`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from lanewatch import access
from lanewatch.alerts.engine import AlertEngine
from lanewatch.config import ConfigError, Settings
from lanewatch.metrics import MetricsCollector
from lanewatch.metrics.from_store import StoreTotals
from lanewatch.rules.reload import Reloader
from lanewatch.rules.versions import RuleBook
from lanewatch.store.base import AlertHistory, AlertLease

log = logging.getLogger("lanewatch")


class _Counts:
    """What this process counts itself (refused API requests), shown with the store's counters."""

    def __init__(self) -> None:
        self._c: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count_drop(self, reason: str) -> None:
        self.count_event(f"requests_refused_{reason}")

    def count_event(self, name: str) -> None:
        with self._lock:
            self._c[name] += 1

    def instances(self) -> list[dict[str, Any]]:
        return []

    def counters(self, after: int | None = None) -> dict[str, int]:
        with self._lock:
            return dict(self._c)


class Server:
    """Everything ``lanewatch serve`` runs; ``start()`` binds the web port, ``stop()`` frees it."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        from lanewatch.alerts.notify import notifiers_from
        from lanewatch.query import Query
        from lanewatch.store import open_store

        if not settings.store_url.shared:
            raise ConfigError("lanewatch serve reads a store that collectors share: set --store "
                              "clickhouse://HOST:PORT/DATABASE (for the embedded DuckDB file, "
                              "run lanewatch up)")
        self.settings = settings
        self.store = open_store(settings)
        self.counts = _Counts()
        self.notifiers = notifiers_from(settings, self._dashboard_url)
        self.alerts = AlertEngine(settings, lambda: self.query.instances(),
                                  history=self.store if isinstance(self.store, AlertHistory) else None,
                                  notifiers=self.notifiers, clock=clock,
                                  lease=self.store if isinstance(self.store, AlertLease) else None,
                                  holder=f"serve@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
        self.alerts.follow(self.store)
        #: the routing rules and topology as this process reads them (the config file watched):
        #: the collectors judge with their own copy; these are shown (/api/v1/rules, annotations)
        self.rules = Reloader(RuleBook(settings.routing_rules, settings.topology, clock), settings.config,
                              applies=False)
        self.query = Query(self.store, settings, clock, live=self.counts, alerts=self.alerts,
                           rules=self.rules)
        self.metrics = MetricsCollector(StoreTotals(self.store, clock(), settings.metrics.max_series),
                                        instances=self.query.instances,
                                        alert_states=lambda: [a.to_dict() for a in self.alerts.current()],
                                        alert_health=self.alerts.health)
        self.token = settings.token
        self.tls = access.server_ssl_context(settings.tls_cert, settings.tls_key) if settings.tls_cert else None
        self._web: Any = None
        self._thread: threading.Thread | None = None

    def _dashboard_url(self) -> str:
        from lanewatch.alerts.notify import default_external_url

        return default_external_url(self.settings, self._web.server_port if self._web is not None else None)

    def start(self) -> Self:
        from lanewatch.web.build import build_web

        try:
            self.rules.start()
            self.alerts.start()
            self._web = build_web(self.settings, self.query, self.metrics, token=self.token, tls=self.tls,
                                  count_drop=self.counts.count_drop, count_event=self.counts.count_event,
                                  otlp_http_port=None)
            self._thread = threading.Thread(target=self._web.serve_forever, name="lanewatch-web", daemon=True)
            self._thread.start()
        except BaseException:
            self.stop()
            raise
        return self

    def endpoints(self) -> dict[str, Any]:
        scheme = "https" if self.tls is not None else "http"
        if self._web is None:
            return {}
        return {"url": f"{scheme}://{self.settings.host}:{self._web.server_port}", "port": self._web.server_port}

    def stop(self) -> None:
        self.rules.stop()
        if self._web is not None:
            self._web.shutdown()
            self._web.server_close()
            self._web = None
        self.alerts.stop()
        self.store.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: The flags of ``serve`` that are settings.
SERVE_SETTINGS = ("host", "port", "store", "config", "alert_webhook", "alertmanager_url", "external_url",
                  "auth_token", "auth_token_file", "tls_cert", "tls_key", "allowed_hosts")


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    from lanewatch.server import add_up_arguments

    add_up_arguments(p, only=SERVE_SETTINGS)


def run_serve(args: argparse.Namespace) -> int:
    from lanewatch.collect.pipeline import tune_gc
    from lanewatch.server import catch_signals, load_settings, print_alerts, start_or_explain

    settings = load_settings(args, SERVE_SETTINGS, "serve")
    if settings is None:
        return 2
    if not settings.store_url.shared:
        log.error("configuration: lanewatch serve reads a store that collectors share: set --store "
                  "clickhouse://HOST:PORT/DATABASE (for the embedded DuckDB file, run lanewatch up)")
        return 2
    server = start_or_explain(settings, lambda: Server(settings))
    if server is None:
        return 2
    tune_gc()  # start-up's objects (Dash, plotly, pandas) frozen: a render's collections skip them
    stops = catch_signals(server.rules.trigger)
    ep = server.endpoints()
    if args.ready_file:
        Path(args.ready_file).write_text(json.dumps(ep))
    print(f"lanewatch serve: dashboard and API {ep['url']}  store {settings.store_url.display()}", flush=True)
    print_alerts("serve", server.alerts, server.notifiers)
    stops.wait()
    server.stop()
    return 0


#: The flags of ``collect`` that are settings.
COLLECT_SETTINGS = ("host", "otlp_http_port", "otlp_grpc_port", "data_dir", "store", "collector_id", "config",
                    "auth_token", "auth_token_file", "tls_cert", "tls_key", "memory_limit_mib")


def add_collect_arguments(p: argparse.ArgumentParser) -> None:
    from lanewatch.server import add_up_arguments

    add_up_arguments(p, only=COLLECT_SETTINGS)


def run_collect(args: argparse.Namespace) -> int:
    from lanewatch.collect.pipeline import tune_gc
    from lanewatch.server import Collector, catch_signals, load_settings, start_or_explain

    settings = load_settings(args, COLLECT_SETTINGS, "collect")
    if settings is None:
        return 2
    collector = start_or_explain(settings, lambda: Collector(settings, web=False, alerts=False))
    if collector is None:
        return 2
    tune_gc()
    stops = catch_signals(collector.rules.trigger)
    ep = collector.endpoints()
    if args.ready_file:
        Path(args.ready_file).write_text(json.dumps(ep))
    print(f"lanewatch collect {settings.collector_name}: OTLP/HTTP {ep['otlp_http']}  OTLP/gRPC "
          f"{ep.get('otlp_grpc', 'off')}  store {settings.store_url.display()}", flush=True)
    stops.wait()
    collector.stop()
    return 0
