"""The seam between network receivers and the span pipeline.

Receivers (OTLP/HTTP, OTLP/gRPC) are the only network code. They turn a
request into ``(signal, body bytes, format)`` (decompressed, size-checked)
and call :meth:`Sink.ingest`; the answer maps onto the OTLP response:

* :class:`IngestResult` -> success; ``rejected > 0`` -> partial success with
  that count and ``message``.
* :class:`DecodeError` -> HTTP 400 / gRPC ``INVALID_ARGUMENT`` with its message.
* :class:`TooLarge` (a DecodeError) -> HTTP 413 / gRPC ``RESOURCE_EXHAUSTED`` without
  ``RetryInfo`` (not retryable: the same request would be refused again).
* :class:`Overloaded` -> HTTP 503 with ``Retry-After`` / gRPC ``UNAVAILABLE``
  (retryable, per the OTLP specification's throttling rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Signal = Literal["traces", "metrics", "logs"]
Format = Literal["proto", "json"]


class DecodeError(ValueError):
    """The payload is not a valid OTLP export request; the message says why."""


class TooLarge(DecodeError):
    """The request would build more objects than the limits allow (:mod:`.limits`);
    ``reason`` is the drop counter's suffix (``requests_refused_<reason>``)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class Overloaded(RuntimeError):
    """The collector cannot take more now; the client should retry later."""

    def __init__(self, message: str, retry_after_s: float = 1.0, reason: str = "") -> None:
        super().__init__(message)
        #: the delay the sender is told to wait (``Retry-After``, ``RetryInfo``)
        self.retry_after_s = retry_after_s
        #: counted by the sink as ``requests_refused_<reason>`` ("" = counted already)
        self.reason = reason


@dataclass(frozen=True)
class IngestResult:
    """Items (spans, data points or log records) accepted and rejected, with the reason."""

    accepted: int
    rejected: int = 0
    message: str = ""


class Sink(Protocol):
    def ingest(self, signal: Signal, body: bytes, fmt: Format) -> IngestResult:
        """Decode and process one export request. Thread-safe. Raises
        :class:`DecodeError` or :class:`Overloaded`; never anything else
        for bad input."""
        ...

    def count_drop(self, reason: str, n: int = 1) -> None:
        """Record items lost before decoding (oversize, bad encoding...) so users see them."""
        ...
