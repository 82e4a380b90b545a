"""``/api/v1/*``: the query layer as JSON over HTTP, beside the dashboard on ``--port``.

Every endpoint is a thin adapter over :class:`~lanewatch.query.Query`: parse
and validate the parameters, call one method, return its value as JSON. Bad
parameters (malformed, out of range, unknown names) give ``400 {"error": ...}``
naming the parameter; unknown services or lanes simply give empty results (but at
``/gate``, :mod:`lanewatch.web.gate`, where a name not seen is a typo: 404).
Any other path under ``/api/v1`` is ``404 {"error": "unknown endpoint ..."}``
(never the dashboard page that Dash serves for every other path).
The responses are documented with examples in ``docs/api.md``: users script
against them, so keep them stable.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import flask
import orjson

import lanewatch
from lanewatch import lane as L
from lanewatch.config.alerting import ALERT_NAMES
from lanewatch.query import Query
from lanewatch.rollups import ROLLUPS

log = logging.getLogger(__name__)

#: Most points a series may return per lane (window / step).
MAX_POINTS = 10_000
MAX_LIMIT = 10_000
#: Instances answered by default (``limit``); ``X-Total-Count`` says how many match.
INSTANCES_LIMIT = 1000
VIOLATION_KINDS = L.VIOLATION_NAMES
_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")
_NAME_MAX = 256


class BadParameter(ValueError):
    """A request parameter is wrong; the message names it."""


def _json(value: Any, status: int = 200) -> flask.Response:
    resp = flask.Response(orjson.dumps(value), status=status, mimetype="application/json")
    resp.headers["Cache-Control"] = "no-store"
    return resp


class _Params:
    """Typed access to the query string, refusing names the endpoint does not know."""

    def __init__(self, allowed: tuple[str, ...], retention_s: int) -> None:
        args = flask.request.args
        unknown = sorted(set(args) - set(allowed))
        if unknown:
            raise BadParameter(f"unknown parameter {unknown[0]!r} (this endpoint takes: "
                               f"{', '.join(allowed) or 'none'})")
        repeated = sorted(k for k in args if len(args.getlist(k)) > 1)
        if repeated:  # which one counts would be a guess: lane=gray&lane=base must not pass
            raise BadParameter(f"{repeated[0]} is given {len(args.getlist(repeated[0]))} times; give it once")
        self.args, self.retention_s = args, retention_s

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.args.get(name, "").strip()
        if raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadParameter(f"{name}={raw!r}: expected a whole number") from None
        if not low <= value <= high:
            raise BadParameter(f"{name}={value}: must be between {low} and {high}")
        return value

    def window(self) -> int:
        return self.integer("window", 300, 1, self.retention_s)

    def name(self, name: str, required: bool = False) -> str | None:
        value = self.args.get(name, "").strip()
        if not value:
            if required:
                raise BadParameter(f"{name} is required")
            return None
        if len(value) > _NAME_MAX:
            raise BadParameter(f"{name}: longer than {_NAME_MAX} characters")
        return value

    def step(self, window: int) -> int:
        step = self.integer("step", 1, 1, window)
        if -(-window // step) > MAX_POINTS:
            raise BadParameter(f"step={step}: window/step gives more than {MAX_POINTS} points; "
                               f"use step >= {-(-window // MAX_POINTS)}")
        return step


def parse_trace_id(raw: str) -> str:
    """A W3C trace id: exactly 32 hex digits, not all zero (16 hex digits is a span id)."""
    if _TRACE_ID.fullmatch(raw):
        if int(raw, 16) == 0:
            raise BadParameter(f"trace_id={raw}: the all-zero trace id is invalid")
        return raw
    if _SPAN_ID.fullmatch(raw):
        raise BadParameter(f"trace_id={raw}: 16 hex digits is a span id; a trace id is exactly "
                           "32 hex digits (the trace_id of /api/v1/violations)")
    raise BadParameter(f"trace_id={raw[:80]!r}: a trace id is exactly 32 hex digits")


def register_api(server: flask.Flask, query: Query) -> None:
    """Add the ``/api/v1/*`` routes of ``docs/api.md`` to ``server``, answering from ``query``."""
    bp = flask.Blueprint("lanewatch_api", __name__, url_prefix="/api/v1")
    retention = int(query.settings.retention_s)

    def route(path: str, allowed: tuple[str, ...]) -> Callable[[Callable[..., Any]], Any]:
        def wrap(fn: Callable[..., Any]) -> Any:
            def view(**kwargs: Any) -> flask.Response:
                try:
                    result = fn(_Params(allowed, retention), **kwargs)
                except BadParameter as e:
                    return _json({"error": str(e)}, 400)
                except ValueError as e:  # the query layer refusing an argument
                    return _json({"error": str(e)}, 400)
                except Exception:
                    log.exception("GET %s failed", flask.request.full_path)
                    return _json({"error": "internal error; see the lanewatch log"}, 500)
                return result if isinstance(result, flask.Response) else _json(result)
            bp.add_url_rule(path, fn.__name__, view, methods=["GET"])
            return fn
        return wrap

    @route("/summary", ("window", "service", "lane"))
    def summary(p: _Params) -> Any:
        return query.summary(p.window(), service=p.name("service"), lane=p.name("lane"))

    @route("/series", ("window", "service", "lane", "step"))
    def series(p: _Params) -> Any:
        w = p.window()
        return query.series(w, service=p.name("service"), lane=p.name("lane"), step_s=p.step(w))

    @route("/violations", ("window", "kind", "service", "lane", "limit"))
    def violations(p: _Params) -> Any:
        kind = p.name("kind")
        if kind is not None and kind not in VIOLATION_KINDS:
            raise BadParameter(f"kind={kind!r}: one of {', '.join(VIOLATION_KINDS)}")
        return query.violations(p.window(), kind=kind, service=p.name("service"), lane=p.name("lane"),
                                limit=p.integer("limit", 500, 1, MAX_LIMIT))

    @route("/edges", ("window", "lane", "service"))
    def edges(p: _Params) -> Any:
        return query.edges(p.window(), lane=p.name("lane"), service=p.name("service"))

    @route("/flows", ("window", "service"))
    def flows(p: _Params) -> Any:
        return query.flows(p.window(), service=p.name("service"))

    @route("/instances", ("service", "lane", "limit"))
    def instances(p: _Params) -> Any:
        service, lane = p.name("service"), p.name("lane")
        limit = p.integer("limit", INSTANCES_LIMIT, 1, MAX_LIMIT)
        rows = [r for r in query.instances()
                if (service is None or r["service"] == service) and (lane is None or r["lane"] == lane)]
        resp = _json(rows[:limit])
        resp.headers["X-Total-Count"] = str(len(rows))
        return resp

    @route("/compare", ("service", "lane", "base", "window", "step"))
    def compare(p: _Params) -> Any:
        service, lane = p.name("service", required=True), p.name("lane", required=True)
        w = p.window()
        assert service is not None and lane is not None
        return query.compare(service, lane, w, base=p.name("base") or "base", step_s=p.step(w))

    @route("/alerts", ("state", "name", "history"))
    def alerts(p: _Params) -> Any:
        state, name = p.name("state"), p.name("name")
        if state is not None and state not in ("pending", "firing"):
            raise BadParameter(f"state={state!r}: pending or firing")
        if name is not None and name not in ALERT_NAMES:
            raise BadParameter(f"name={name!r}: one of {', '.join(ALERT_NAMES)}")
        return query.alerts(state=state, name=name, history=p.integer("history", 100, 0, MAX_LIMIT))

    @route("/traces/<trace_id>", ())
    def trace(p: _Params, trace_id: str) -> Any:
        tid = parse_trace_id(trace_id)
        found = query.trace(tid)
        return _json({"error": f"trace {tid} was not kept"}, 404) if found is None else found

    @route("/services", ("window",))
    def services(p: _Params) -> Any:
        return query.services(p.window())

    @route("/lanes", ("window",))
    def lanes(p: _Params) -> Any:
        return query.lanes(p.window())

    @route("/collectors", ())
    def collectors(p: _Params) -> Any:
        return query.collectors()

    @route("/health/live", ())
    def health_live(p: _Params) -> Any:
        """Liveness: the process answers (a Kubernetes livenessProbe); says nothing of the store."""
        return {"status": "ok", "time": query.clock()}

    @route("/health", ())
    def health(p: _Params) -> Any:
        """Readiness: the store answers the reads every view makes; 503 with the reason if not."""
        try:
            query.store.counters()
            now = int(query.clock())
            for table, (keys, _) in ROLLUPS.items():
                # every physical table the views read: per second by service, lane-level, minutes
                by = [k for k in keys if k in ("service", "caller")][:1]
                query.store.rollup(table, now - 1, now + 1, ["ts", *by])
                query.store.rollup(table, now - 1, now + 1, [])
                query.store.rollup(table, now - 240, now + 1, by)
            query.store.violations(now - 1, now + 1, limit=1)
        except Exception as e:  # noqa: BLE001 - the store is closed or broken: say so, do not raise
            said = (str(e).splitlines() or [type(e).__name__])[0]
            log.warning("health: the store does not answer: %s", said)
            return _json({"status": "error", "error": f"the store does not answer: {said}"}, 503)
        out = {"status": "ok", "version": lanewatch.__version__, "time": query.clock()}
        if query.alert_source is not None:
            out["alerts"] = query.alert_source.health()
        overload = getattr(query.live, "overload", None)
        if overload is not None:  # decode slots and the memory ceiling: shedding is not unreadiness
            out["ingest"] = overload()
        if query.rules is not None:  # a refused reload is not unreadiness: the rules in force stay
            out["rules"] = query.rules.health()
        return out

    from lanewatch.web.gate import register_gate  # here: it imports this module's helpers
    from lanewatch.web.rules import register_rules
    register_gate(bp, query)
    register_rules(bp, query)

    def unknown(rest: str = "") -> flask.Response:
        return _json({"error": f"unknown endpoint {flask.request.path}; see docs/api.md"}, 404)

    # more specific than Dash's catch-all page route, less than every endpoint above
    for i, rule in enumerate(("", "/", "/<path:rest>")):
        bp.add_url_rule(rule, f"unknown_{i}", unknown, methods=["GET"], strict_slashes=False)
    server.register_blueprint(bp)
