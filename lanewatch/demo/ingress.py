"""The ingress in front of A: the write-up's host routing and canary rules.

``python -m lanewatch.demo.ingress --control URL``

Rules (:class:`~lanewatch.demo.scenarios.IngressRules`, read live from the
control server, so a scenario change needs no restart):

* host routing: ``Host: www.gray.com`` -> A-gray, ``www.base.com`` -> A-base;
* canary by header (``x-mse-tag: gray``) and by header value (``x-user-id: 100``);
* canary by weight (e.g. 2% of base traffic).

The chosen lane picks an A instance through the lane-aware balancer (A-base
when A has no live instance in that lane). The ingress is not instrumented,
like the write-up's nginx: traces start at A. With the fault ``dead_lane`` on
it routes everything to base and drops lane headers at the edge.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

from lanewatch import lane as L
from lanewatch.demo import faults as F
from lanewatch.demo import web
from lanewatch.demo.balancer import Balancer, NoInstance
from lanewatch.demo.client import ControlClient, role_main
from lanewatch.demo.proxy import strip_lane
from lanewatch.demo.scenarios import ENTRY_SERVICE, IngressRules

log = logging.getLogger(__name__)

#: Response header naming the lane the ingress chose for A.
ROUTE_HEADER = "X-Ingress-Lane"


class IngressApp:
    """WSGI app: route by the current rules, forward to an A instance, return its answer."""

    def __init__(self, control: ControlClient, rand: Callable[[], float] = random.random) -> None:
        self.control = control
        self.balancer = Balancer(control.instances, refresh=control.refresh_quietly)
        self.rand = rand
        self._rules_raw: dict[str, Any] | None = None
        self._rules = IngressRules()

    def rules(self) -> IngressRules:
        """The current rules (parsed again only when they changed)."""
        raw = self.control.ingress()
        if raw != self._rules_raw:
            self._rules_raw, self._rules = raw, IngressRules.from_json(raw)
        return self._rules

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            return web.text_response(start_response, 200, "ok")
        headers = web.incoming_headers(environ)
        if self.control.fault(F.DEAD_LANE):
            lane, headers = L.BASE, strip_lane(headers)
        else:
            lane = self.rules().route(headers.get("host", ""), headers, self.rand())
        path = str(environ.get("PATH_INFO") or "/")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        body = web.read_body(environ)
        method = str(environ.get("REQUEST_METHOD", "GET"))

        def send(inst: Any) -> tuple[int, list[tuple[str, str]], bytes]:
            return web.forward(method, inst.addr, path, headers, body)

        try:
            status, out, data = self.balancer.call(ENTRY_SERVICE, lane, send, retry_on=(ConnectionError,))
        except NoInstance:
            return web.text_response(start_response, 503, f"(ingress: no live {ENTRY_SERVICE} instance)")
        except OSError as e:
            return web.text_response(start_response, 502, f"(ingress: {type(e).__name__}: {e})")
        start_response(f"{status} {'OK' if status < 400 else 'Error'}",
                       [*out, ("Content-Length", str(len(data))), (ROUTE_HEADER, lane)])
        return [data]


def main(argv: list[str] | None = None) -> int:
    return role_main("ingress", __doc__.splitlines()[0], IngressApp, argv)


if __name__ == "__main__":
    raise SystemExit(main())
