"""``/api/v1/gate``: the release gate over HTTP, for Argo Rollouts and Flagger (``docs/gate.md``).

* ``GET /api/v1/gate?window=&lane=&service=`` answers **200** whenever it could judge, with
  ``pass`` true, false or null (inconclusive: too little traffic). Argo Rollouts' ``web``
  provider counts any non-2xx as an Error (four in a row abort the rollout), so "not enough
  traffic yet" must be a 200 with ``pass: null``, not an error.
* ``POST /api/v1/gate`` takes a Flagger webhook body (``name, namespace, phase, checksum,
  metadata``; ``metadata`` may carry ``lane``, ``service`` and ``window`` as strings) and answers
  **200** when the gate passes, **412** when it fails or is inconclusive (Flagger fails a hook on
  any status above 202), the same JSON either way.

Both: a lane or service not seen in the window (a typo) is **404** naming what was seen (as
``lanewatch check`` exits 2); a bad parameter or body is **400** naming it. The decision is
:func:`lanewatch.gate_verdict.evaluate`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import flask

from lanewatch.api import BadParameter, _json, _Params
from lanewatch.containment import UnknownName
from lanewatch.gate_verdict import evaluate
from lanewatch.query import Query

log = logging.getLogger(__name__)

PARAMS = ("window", "lane", "service")
#: The Flagger payload fields read (others, such as newer Flagger's ``buildId``, are ignored).
FLAGGER_FIELDS = ("name", "namespace", "phase", "checksum")
NAME_MAX = 256
_DURATION = re.compile(r"(\d+)([smh]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600}


def _kind(value: Any) -> str:
    return "null" if value is None else {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
                                        int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def parse_window(raw: str, retention_s: int) -> int:
    """``300``, ``300s``, ``5m`` or ``1h`` (Flagger writes durations) in seconds, 1..retention."""
    m = _DURATION.fullmatch(raw.strip())
    if m is None:
        raise BadParameter(f"metadata.window={raw[:40]!r}: expected whole seconds (300) or a duration "
                           "such as 300s, 5m, 1h")
    value = int(m.group(1)) * _UNIT_S[m.group(2)]
    if not 1 <= value <= retention_s:
        raise BadParameter(f"metadata.window={raw!r}: must be between 1 s and {retention_s} s")
    return value


def flagger_request(raw: bytes, retention_s: int) -> tuple[dict[str, str], dict[str, Any]]:
    """``(webhook, params)`` of a Flagger webhook body: its identity fields, and the gate's
    ``window`` / ``lane`` / ``service`` from ``metadata`` (only those present); raises BadParameter."""
    if not raw.strip():
        raise BadParameter("the body is empty: expected a Flagger webhook payload "
                           '{"name", "namespace", "phase", "checksum", "metadata"}')
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise BadParameter(f"the body is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise BadParameter(f"the body is {_kind(doc)}: expected a Flagger webhook payload (a JSON object "
                           'with "name", "namespace", "phase", "checksum", "metadata")')
    webhook = {}
    for k in FLAGGER_FIELDS:
        if doc.get(k) is not None and not isinstance(doc[k], str):
            raise BadParameter(f"{k}: expected a string, got {_kind(doc[k])}")
        if doc.get(k) is not None:
            webhook[k] = doc[k]
    meta = doc.get("metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise BadParameter(f"metadata: expected an object of strings, got {_kind(meta)}")
    params: dict[str, Any] = {}
    for k, v in meta.items():
        if k not in PARAMS:
            raise BadParameter(f"metadata.{k}: unknown key (the gate takes: {', '.join(PARAMS)})")
        if not isinstance(v, str):
            raise BadParameter(f"metadata.{k}: expected a string (Flagger metadata values are strings), "
                               f"got {_kind(v)}")
        if k == "window":
            params[k] = parse_window(v, retention_s)
        elif v.strip():
            if len(v.strip()) > NAME_MAX:
                raise BadParameter(f"metadata.{k}: longer than {NAME_MAX} characters")
            params[k] = v.strip()
    return webhook, params


def _query_params(retention_s: int) -> dict[str, Any]:
    """``window`` / ``lane`` / ``service`` given in the query string (only those present)."""
    p = _Params(PARAMS, retention_s)
    out: dict[str, Any] = {"lane": p.name("lane"), "service": p.name("service")}
    if p.args.get("window", "").strip():
        out["window"] = p.window()
    return {k: v for k, v in out.items() if v is not None}


def register_gate(bp: flask.Blueprint, query: Query) -> None:
    """Add ``GET`` and ``POST /gate`` to the ``/api/v1`` blueprint ``bp``, answering from ``query``."""
    retention = int(query.settings.retention_s)

    def answer(read: Callable[[], tuple[Mapping[str, str] | None, dict[str, Any]]]) -> flask.Response:
        try:
            webhook, params = read()
            out = evaluate(query, int(params.get("window", 300)), params.get("lane"), params.get("service"))
        except UnknownName as e:
            return _json({"error": str(e)}, 404)
        except ValueError as e:  # BadParameter, or the query layer refusing an argument
            return _json({"error": str(e)}, 400)
        except Exception:
            log.exception("%s %s failed", flask.request.method, flask.request.full_path)
            return _json({"error": "internal error; see the lanewatch log"}, 500)
        if webhook is None:
            return _json(out)
        return _json({**out, "webhook": dict(webhook)}, 200 if out["pass"] is True else 412)

    def get() -> flask.Response:
        return answer(lambda: (None, _query_params(retention)))

    def post() -> flask.Response:
        def read() -> tuple[Mapping[str, str] | None, dict[str, Any]]:
            given = _query_params(retention)
            webhook, meta = flagger_request(flask.request.get_data(cache=False), retention)
            both = sorted(set(given) & set(meta))
            if both:
                raise BadParameter(f"{both[0]} is given both in the URL and in metadata: give it once")
            return webhook, {**given, **meta}
        return answer(read)

    bp.add_url_rule("/gate", "gate", get, methods=["GET"])
    bp.add_url_rule("/gate", "gate_webhook", post, methods=["POST"])
