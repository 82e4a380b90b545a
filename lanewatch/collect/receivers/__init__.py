"""OTLP receivers, the collector's only network code.

:class:`~lanewatch.collect.receivers.http.OtlpHttpReceiver` (OTLP/HTTP, port 4318) and
:class:`~lanewatch.collect.receivers.grpc.OtlpGrpcReceiver` (OTLP/gRPC, port 4317) turn
export requests into ``Sink.ingest(signal, body, fmt)`` calls (see ``collect/ingest.py``)
and the sink's answers into OTLP responses; they check sizes, content types and
encodings, and count what they refuse with ``Sink.count_drop``.
"""
