"""``/api/v1/rules``: the routing rules in force, their history, and replacing them live.

* ``GET /api/v1/rules``: the version in force (``version``, ``since``, ``source``,
  ``routing_rules``, ``topology``), how many versions are kept, and the last refused reload.
* ``GET /api/v1/rules/history``: every kept version, newest first, each with ``until``.
* ``PUT /api/v1/rules``: a JSON (``application/json``) or YAML (``application/yaml``) body
  ``{"routing_rules": [...], "topology": {...}}`` (a key left out keeps what is in force).
  ``200`` with the new state (``applied: false`` when nothing changed), ``400`` naming what is
  wrong (the rules in force stay), ``415`` for another content type, ``409`` on
  ``lanewatch serve`` (the collectors apply rules: change the config file they watch).
  Behind the bearer token when one is set, as every route.
"""

from __future__ import annotations

import logging
from typing import Any

import flask
import orjson
import yaml

from lanewatch.config.fields import ConfigError
from lanewatch.query import Query

log = logging.getLogger(__name__)

#: Largest rules body taken.
MAX_BODY = 1 << 20


def _json(value: Any, status: int = 200) -> flask.Response:
    return flask.Response(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS), status=status,
                          mimetype="application/json")


def _body(req: flask.Request) -> Any:
    ctype = (req.mimetype or "").lower()
    if req.content_length is not None and req.content_length > MAX_BODY:
        raise _Refused(413, f"the body is larger than {MAX_BODY} bytes")
    raw = req.get_data(cache=False)
    if len(raw) > MAX_BODY:
        raise _Refused(413, f"the body is larger than {MAX_BODY} bytes")
    try:
        if ctype == "application/json":
            return orjson.loads(raw)
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
            return yaml.safe_load(raw)
    except (orjson.JSONDecodeError, yaml.YAMLError) as e:
        raise _Refused(400, f"the body does not parse as {ctype}: {e}") from None
    raise _Refused(415, f"Content-Type {ctype or 'none'}: send application/json or application/yaml")


class _Refused(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status


def register_rules(bp: flask.Blueprint, query: Query) -> None:
    """Add the rules routes to the ``/api/v1`` blueprint ``bp`` (PUT only where the process
    judges spans, :attr:`Reloader.applies`: ``serve`` shows the rules)."""

    def state() -> flask.Response:
        if query.rules is None:
            return _json({"error": "this process has no routing rules"}, 404)
        return _json(query.rules.book.state() | {"health": query.rules.health()})

    def history() -> flask.Response:
        if query.rules is None:
            return _json({"error": "this process has no routing rules"}, 404)
        return _json({"versions": query.rules.book.history()})

    def put() -> flask.Response:
        rules = query.rules
        if rules is None or not rules.applies:
            return _json({"error": "lanewatch serve shows the rules; the collectors apply them: change "
                          "the config file every collector watches (or PUT to lanewatch up)"}, 409)
        try:
            doc = _body(flask.request)
            new = rules.put(doc)
        except _Refused as e:
            rules.refused("api", str(e))
            return _json({"error": str(e)}, e.status)
        except ConfigError as e:
            return _json({"error": f"{e}; the rules in force (version {rules.book.current.version}) stay"}, 400)
        except Exception:
            log.exception("PUT /api/v1/rules failed")
            return _json({"error": "internal error; see the lanewatch log"}, 500)
        log.warning("routing rules replaced by PUT /api/v1/rules (version %d); they last until the "
                    "config file is read again (a change, SIGHUP) or the process restarts", rules.book.current.version)
        return _json({"applied": new is not None, **rules.book.state()})

    bp.add_url_rule("/rules", "rules", state, methods=["GET"])
    bp.add_url_rule("/rules", "rules_put", put, methods=["PUT"])
    bp.add_url_rule("/rules/history", "rules_history", history, methods=["GET"])
