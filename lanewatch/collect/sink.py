"""What the span path hands its batches to: the :class:`BatchSink` protocol.

The engine produces one :class:`~lanewatch.store.base.Batch` per flush; the pipeline
hands each to any number of sinks (the store writer now; Prometheus totals and the
alert evaluator next), as the OpenTelemetry SDK's span processor hands spans to its
exporters. A sink knows nothing of the others, must not keep the batch's lists past
the call (they are not copied), and should return quickly: it runs on the flush thread.
"""

from __future__ import annotations

from typing import Protocol

from lanewatch.store.base import Batch


class BatchSink(Protocol):
    """Anything that takes the engine's batches: a store, a metrics total, an alert evaluator."""

    def write(self, batch: Batch) -> None:
        """Take one batch. An exception is logged and counted; the other sinks still get it."""
        ...
