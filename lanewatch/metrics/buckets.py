"""The fixed ``le`` bounds of ``lanewatch_hop_duration_seconds`` and how log buckets map onto them.

The collector keeps latency in log buckets about 19% wide (:mod:`lanewatch.histogram`);
Prometheus wants fixed upper bounds. Each log bucket counts under the **first bound that
is >= its upper edge** (the last log bucket, open-ended, under ``+Inf``). So every hop
counted under a bound was truly at most that long: the cumulative counts never claim a
hop was faster than it was; a hop just under a bound may be counted under the next one,
which moves a quantile read by ``histogram_quantile`` up by at most one log bucket (19%).
The bounds step by 1.5-2.5x (fine enough for a p95 comparison of gray and base); 18 ``le``
values keep ``/metrics`` at 100 services x 4 lanes near 8,000 histogram samples.
"""

from __future__ import annotations

from typing import Final

from prometheus_client.utils import floatToGoString

from lanewatch.histogram import N_BUCKETS, bucket_upper_ms

#: Upper bounds in seconds (``+Inf`` follows).
LE_SECONDS: Final = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.15,
                     0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The ``le`` label values, ``+Inf`` last.
LE_LABELS: Final = (*(floatToGoString(b) for b in LE_SECONDS), "+Inf")  # type: ignore[no-untyped-call]
#: Number of ``le`` slots, ``+Inf`` included.
N_LE: Final = len(LE_LABELS)


def le_slot(bucket: int) -> int:
    """Index into :data:`LE_LABELS` under which log bucket ``bucket`` counts."""
    if bucket >= N_BUCKETS - 1:  # holds everything above: only +Inf is sure to cover it
        return N_LE - 1
    upper_s = bucket_upper_ms(max(bucket, 0)) / 1000.0
    for i, bound in enumerate(LE_SECONDS):
        if bound >= upper_s * (1 - 1e-9):  # float noise must not push an exact edge up
            return i
    return N_LE - 1


#: ``LE_OF_BUCKET[b]``: the slot of log bucket ``b``.
LE_OF_BUCKET: Final = tuple(le_slot(b) for b in range(N_BUCKETS))
