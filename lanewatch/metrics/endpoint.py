"""``GET /metrics`` on the API port: the exposition of a :class:`~.exposition.MetricsCollector`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lanewatch.metrics.exposition import MetricsCollector

if TYPE_CHECKING:
    import flask

log = logging.getLogger(__name__)


def register_metrics(app: flask.Flask, metrics: MetricsCollector) -> None:
    """Add ``GET /metrics`` to ``app`` (the Content-Type is ``prometheus_client``'s: the text
    format, or OpenMetrics for a scraper whose ``Accept`` takes nothing else)."""
    import flask  # the web side only: the collector itself needs no web framework

    def view() -> flask.Response:
        try:
            body, content_type = metrics.render(flask.request.headers.get("Accept"))
        except Exception:  # a bug: say so (500), never the dashboard's page
            log.exception("GET /metrics failed")
            return flask.Response("internal error; see the lanewatch log\n", status=500,
                                  mimetype="text/plain")
        resp = flask.Response(body, status=200)
        resp.headers["Content-Type"] = content_type
        resp.headers["Cache-Control"] = "no-store"
        return resp

    app.add_url_rule("/metrics", "lanewatch_metrics", view, methods=["GET"])
