"""The demo's control server: registry, fault switchboard and ingress rules over HTTP.

It runs inside the ``lanewatch demo`` process. Endpoints (JSON in and out):

* ``GET  /faults``              -> ``{name: bool}`` for every fault
* ``GET  /faults/info``         -> ``[{name, on, description, expect}]``
* ``POST /faults/{name}``       with ``{"on": bool}`` -> ``{name: bool}`` (404 unknown, 400 bad body),
  answered once every registered process has seen the change
* ``GET  /state?instance=ID&seen=V``   what a mesh process needs: live instances, faults,
  ingress rules and the state ``version``; renews ``ID`` in the registry and notes that it
  has applied version ``V`` (``"known": false`` asks it to register again)
* ``POST /registry``            register ``{id, service, lane, addr, role, pid}``
* ``DELETE /registry/{id}``     deregister (a graceful leave)
* ``GET  /registry``            every live registered process
* ``GET  /health``
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from lanewatch.demo import web
from lanewatch.demo.faults import Switchboard
from lanewatch.demo.registry import Instance, Registry

log = logging.getLogger(__name__)


class ControlApp:
    """WSGI app over a :class:`Registry`, a :class:`Switchboard` and the current ingress rules."""

    def __init__(self, registry: Registry, switchboard: Switchboard,
                 ingress: Callable[[], dict[str, Any]] = dict,
                 version: Callable[[], int] | None = None,
                 release: Callable[[str], dict[str, Any]] | None = None) -> None:
        self.registry = registry
        self._release = release
        self.switchboard = switchboard
        self._ingress = ingress
        #: The state version: grows with every change of faults or ingress rules.
        self.version = version or (lambda: self.switchboard.version)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        parts = [p for p in environ.get("PATH_INFO", "/").split("/") if p]
        if method == "OPTIONS":
            return web.json_response(start_response, 200, {})
        try:
            return self._route(method, parts, environ, start_response)
        except ValueError as e:
            return web.json_response(start_response, 400, {"error": str(e)})

    def _route(self, method: str, parts: list[str], environ: dict[str, Any],
               start_response: Callable[..., Any]) -> list[bytes]:
        reply = start_response
        if parts == ["health"]:
            return web.json_response(reply, 200, {"ok": True})
        if parts == ["state"] and method == "GET":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            ident = (query.get("instance") or [""])[0]
            try:
                seen = int((query.get("seen") or ["-1"])[0])
            except ValueError:
                seen = -1
            known = self.registry.renew(ident, seen) if ident else False
            version = self.version()  # read first: the state below is at least this new
            return web.json_response(reply, 200, {
                "known": known, "version": version, "faults": self.switchboard.snapshot(),
                "ingress": self._ingress(), "instances": [i.to_json() for i in self.registry.live()]})
        if len(parts) == 2 and parts[0] == "release" and method == "POST" and self._release is not None:
            from lanewatch.demo.release import KINDS
            if parts[1] not in KINDS:
                return web.json_response(reply, 404, {"error": f"unknown release {parts[1]!r}", "releases": KINDS})
            return web.json_response(reply, 200, self._release(parts[1]))
        if parts and parts[0] == "faults":
            return self._faults(method, parts[1:], environ, reply)
        if parts == ["registry"] and method == "GET":
            return web.json_response(reply, 200, [i.to_json() for i in self.registry.live(role=None)])
        if parts == ["registry"] and method == "POST":
            inst = Instance.from_json(_json_body(environ))
            self.registry.register(inst)
            log.info("registered %s %s at %s (%s)", inst.label, inst.id, inst.addr, inst.role)
            return web.json_response(reply, 200, inst.to_json())
        if len(parts) == 2 and parts[0] == "registry" and method == "DELETE":
            gone = self.registry.deregister(parts[1])
            log.info("deregistered %s", parts[1])
            return web.json_response(reply, 200 if gone else 404, {"deregistered": gone})
        return web.json_response(reply, 404, {"error": f"no route {method} /{'/'.join(parts)}"})

    def _faults(self, method: str, rest: list[str], environ: dict[str, Any],
                reply: Callable[..., Any]) -> list[bytes]:
        if not rest and method == "GET":
            return web.json_response(reply, 200, self.switchboard.snapshot())
        if rest == ["info"] and method == "GET":
            return web.json_response(reply, 200, self.switchboard.info())
        if len(rest) == 1 and method == "POST":
            body = _json_body(environ)
            on = body.get("on") if isinstance(body, dict) else None
            if not isinstance(on, bool):
                raise ValueError('expected a JSON body {"on": true|false}')
            try:
                self.switchboard.set(rest[0], on)
            except KeyError:
                return web.json_response(reply, 404, {"error": f"unknown fault {rest[0]!r}",
                                                      "faults": sorted(self.switchboard.snapshot())})
            # answer once every process has applied the change: the fault is then in effect
            self.registry.wait_all_seen(self.version(), timeout_s=3.0)
            return web.json_response(reply, 200, {rest[0]: on})
        return web.json_response(reply, 404, {"error": "GET /faults, GET /faults/info, POST /faults/NAME"})


def _json_body(environ: dict[str, Any]) -> Any:
    try:
        return json.loads(web.read_body(environ) or b"null")
    except json.JSONDecodeError as e:
        raise ValueError(f"body is not JSON: {e}") from None


class ControlServer:
    """The control app served on a background thread."""

    def __init__(self, app: ControlApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._server = web.make_server(host, port, app)
        self.port = int(self._server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="demo-control", daemon=True)

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
