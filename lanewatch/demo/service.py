"""One instance of A (cart), B (trade) or C (stock): a real HTTP server process.

``python -m lanewatch.demo.service --service B --lane gray --control URL [--endpoint OTLP]``

Each instance answers like the write-up, prefixing its own name to its
callee's answer: ``Agray[127.0.0.1:PORT] -> Bgray[127.0.0.1:PORT] -> Cgray[127.0.0.1:PORT]``.
A calls B, B calls C, through the lane-aware :class:`~lanewatch.demo.balancer.Balancer`;
A's calls go through the demo's forward proxy when one is given.

On SIGTERM the instance leaves gracefully: it stops accepting, finishes the
requests in flight, says goodbye to the collector (heartbeat 0), deregisters,
flushes its spans and exits.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import requests

from lanewatch import config as lw_config
from lanewatch import lane as L
from lanewatch.demo import faults as F
from lanewatch.demo import web
from lanewatch.demo.balancer import Balancer, NoInstance
from lanewatch.demo.client import ControlClient, leave_by_deadline
from lanewatch.demo.proxy import PROXY_ERROR_HEADER, UNREACHABLE
from lanewatch.demo.registry import Instance
from lanewatch.demo.telemetry import Telemetry
from lanewatch.stop_signals import StopFlag, stop_on_signals

log = logging.getLogger(__name__)

#: Who calls whom: A (cart) -> B (trade) -> C (stock).
CALLEE = {"A": "B", "B": "C"}
DOWNSTREAM_TIMEOUT_S = 5.0
#: Response header with the trace id of the request (A's, as the ingress passes it on).
TRACE_HEADER = "X-Trace-Id"


class ServiceApp:
    """The business logic of one instance (a WSGI app; lanes come from :class:`Telemetry`)."""

    def __init__(self, me: Instance, tel: Telemetry, control: ControlClient, balancer: Balancer,
                 proxy_url: str | None = None, rand: Callable[[], float] = random.random) -> None:
        self.me = me
        self.tel = tel
        self.control = control
        self.balancer = balancer
        self.proxies = {"http": proxy_url} if proxy_url else {}
        self.rand = rand
        self.name = f"{me.label}[{me.addr}]"
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
        return session

    @property
    def is_b_gray(self) -> bool:
        return self.me.service == "B" and self.me.lane != L.BASE

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            return web.text_response(start_response, 200, "ok")
        headers = web.incoming_headers(environ)
        trace_id = self.tel.trace_id()
        extra = [(TRACE_HEADER, trace_id)] if trace_id else []
        if self.is_b_gray:
            if self.control.fault(F.B_GRAY_SLOW):
                time.sleep(F.SLOW_S)
            if self.control.fault(F.B_GRAY_ERRORS) and self.rand() < F.ERROR_SHARE:
                return web.text_response(start_response, 500, f"{self.name} failed (fault b_gray_errors)", extra)
        callee = CALLEE.get(self.me.service)
        if callee is None:
            return web.text_response(start_response, 200, self.name, extra)
        status, text = self._call(callee, headers)
        return web.text_response(start_response, 200 if status < 400 else 502, f"{self.name} -> {text}", extra)

    def _call(self, callee: str, headers: dict[str, str]) -> tuple[int, str]:
        drop = self.is_b_gray and self.control.fault(F.B_GRAY_DROPS_TAG)
        lane = L.BASE if drop else self.tel.request_lane(headers)
        want = self.balancer.lane_for(callee, lane, self.tel.attributes(headers))
        blind = (self.me.service == "A" and want == L.BASE and self.control.fault(F.BASE_TO_B_GRAY))
        if callee == "C" and want != L.BASE and self.control.fault(F.GRAY_TO_C_BASE):
            want = L.BASE  # the lane tag goes on (out_headers): C-base serves gray, a leak
        out_headers = self.tel.outgoing_headers(headers, lane)

        def send(inst: Instance) -> tuple[int, str]:
            resp = self._session().get(f"http://{inst.addr}/{callee.lower()}", headers=out_headers,
                                       proxies=self.proxies, timeout=DOWNSTREAM_TIMEOUT_S)
            if resp.headers.get(PROXY_ERROR_HEADER) == UNREACHABLE:
                raise requests.ConnectionError(resp.text)
            return resp.status_code, resp.text

        with self.tel.calling(drop_lane=drop):
            try:
                return self.balancer.call(callee, want, send, lane_blind=blind,
                                          retry_on=(requests.ConnectionError,))
            except NoInstance:
                return 503, f"({callee}: no live instance)"
            except requests.RequestException as e:
                return 504, f"({callee}: {type(e).__name__})"


class InFlight:
    """WSGI wrapper counting requests in flight (the whole response, spans included)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self._n = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            self._n += 1
        try:
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        finally:
            with self._lock:
                self._n -= 1

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._n == 0:
                    return True
            time.sleep(0.01)
        return False


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT, then leave gracefully."""
    stop = StopFlag()
    stop_on_signals(stop)
    rules = lw_config.load(config_file=args.rules, environ={}).routing_rules if args.rules else []
    server = web.make_server(args.host, args.port, lambda e, s: [])
    port = int(server.server_address[1])
    ident = f"{args.service}-{args.lane}-{port}"
    me = Instance(id=ident, service=args.service, lane=args.lane, addr=f"{args.host}:{port}", pid=os.getpid())
    tel = Telemetry(args.service, args.lane, args.endpoint, dyeing=args.dyeing,
                    passthrough=args.passthrough or (), instance_id=ident)
    control = ControlClient(args.control, me)
    balancer = Balancer(control.instances, rules, refresh=control.refresh_quietly)
    app = InFlight(tel.wrap(ServiceApp(me, tel, control, balancer, args.proxy)))
    server.set_app(app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    control.start()
    log.info("%s serving at %s (dyeing=%s, rules=%d)", me.label, me.addr, args.dyeing, len(rules))
    stop.wait()
    # Graceful leave: stop accepting, finish in-flight requests, goodbye, deregister, flush;
    # bounded, for when the demo (control server, collector) died first
    leave_by_deadline()
    server.shutdown()
    server.server_close()
    app.wait_idle(3.0)
    tel.leaving()
    control.leave()
    tel.shutdown()
    log.info("%s left", me.label)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lanewatch.demo.service", description=__doc__.splitlines()[0])
    p.add_argument("--service", required=True, choices=("A", "B", "C"))
    p.add_argument("--lane", default=L.BASE)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--control", required=True, help="URL of the demo's control server")
    p.add_argument("--endpoint", default=None, help="OTLP/HTTP base URL; none = not instrumented")
    p.add_argument("--dyeing", action="store_true", help="stamp this instance's lane on untagged requests")
    p.add_argument("--passthrough", action="append", help="business header carried down the chain")
    p.add_argument("--rules", default=None, help="YAML file with per-service routing rules")
    p.add_argument("--proxy", default=None, help="forward proxy for outgoing calls")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level, format=f"%(asctime)s {args.service}-{args.lane} %(levelname)s %(message)s")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
