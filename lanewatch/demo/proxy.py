"""A forward proxy between A and B, which can lose the lane tag in transit.

``python -m lanewatch.demo.proxy --control URL``

A's calls to B go through it (``requests`` with ``proxies=``). It passes
everything on unchanged, until the fault ``proxy_strips_tag`` is on: then it
behaves like a gateway with a header filter in front of its lane routing. It
drops the lane header (and its aliases) and the ``lane`` entry of the W3C
``baggage`` header, keeping ``traceparent`` and every other baggage entry,
and routes what is left: a request that lost its lane goes to a base
instance of the same service. The gray request silently continues in base;
only the lost tag tells (``tag_lost`` on the edge A -> B). Not instrumented:
to the collector it is part of the wire.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from lanewatch import lane as L
from lanewatch.demo import faults as F
from lanewatch.demo import web
from lanewatch.demo.balancer import Balancer
from lanewatch.demo.client import ControlClient, role_main

log = logging.getLogger(__name__)

#: Response header set when the upstream could not be reached (the caller may fail over).
PROXY_ERROR_HEADER = "X-Proxy-Error"
UNREACHABLE = "upstream-unreachable"


def strip_lane(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` without the lane headers and without the ``lane`` baggage entry."""
    aliases = {h.lower() for h in L.LANE_HEADER_ALIASES}
    out = {k: v for k, v in headers.items() if k.lower() not in aliases}
    for key in [k for k in out if k.lower() == "baggage"]:
        entries = [e for e in out[key].split(",")
                   if e.strip() and e.split("=", 1)[0].strip() != L.REQUEST_LANE_ATTR]
        if entries:
            out[key] = ",".join(e.strip() for e in entries)
        else:
            del out[key]
    return out


class ProxyApp:
    """WSGI forward proxy: ``GET http://host:port/path`` request lines."""

    def __init__(self, control: ControlClient) -> None:
        self.control = control
        self.balancer = Balancer(control.instances)

    def reroute(self, netloc: str) -> str:
        """A base instance of the service at ``netloc`` (``netloc`` itself when there is none)."""
        target = next((i for i in self.control.instances() if i.addr == netloc), None)
        if target is None or target.lane == L.BASE:
            return netloc
        base = self.balancer.choose(target.service, L.BASE)
        return base.addr if base is not None and base.lane == L.BASE else netloc

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = str(environ.get("PATH_INFO", ""))
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
        if target == "/healthz":
            return web.text_response(start_response, 200, "ok")
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.netloc:
            return web.text_response(start_response, 400, "a forward proxy: expected an absolute http:// URL")
        headers = web.incoming_headers(environ)
        netloc = parts.netloc
        if self.control.fault(F.PROXY_STRIPS_TAG):
            stripped = strip_lane(headers)
            if stripped != headers:  # it carried a lane: routed as the untagged request it now is
                headers, netloc = stripped, self.reroute(netloc)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            status, out, body = web.forward(environ["REQUEST_METHOD"], netloc, path, headers,
                                            web.read_body(environ))
        except OSError as e:
            return web.text_response(start_response, 502, f"(proxy: {netloc} unreachable: {e})",
                                     [(PROXY_ERROR_HEADER, UNREACHABLE)])
        start_response(f"{status} {'OK' if status < 400 else 'Error'}", [*out, ("Content-Length", str(len(body)))])
        return [body]


def main(argv: list[str] | None = None) -> int:
    return role_main("proxy", __doc__.splitlines()[0], ProxyApp, argv)


if __name__ == "__main__":
    raise SystemExit(main())
