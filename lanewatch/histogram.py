"""Log-bucket latency histograms: mergeable across seconds and processes.

Bucket ``b`` holds latencies in ``[LOW_MS * G**(b-1), LOW_MS * G**b)`` with
``G = 2**(1/4)`` (~19% wide, so a quantile read off it is within ~10%);
bucket 0 holds everything below ``LOW_MS``, the last bucket everything above.
Histograms are summed bucket-wise; quantiles are read at the geometric middle
of the bucket the rank falls in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

LOW_MS = 0.01
GROWTH = 2 ** 0.25
N_BUCKETS = 112  # up to LOW_MS * G**111 ~ 2.3e6 ms (38 min)
_LOG_G = float(np.log(GROWTH))


def bucket_of(latency_ms: npt.ArrayLike) -> npt.NDArray[np.int16]:
    """Bucket index per latency (vectorised)."""
    x = np.maximum(np.asarray(latency_ms, dtype=np.float64), LOW_MS * 0.5)
    b = np.floor(np.log(x / LOW_MS) / _LOG_G).astype(np.int64) + 1
    return np.clip(b, 0, N_BUCKETS - 1).astype(np.int16)


def bucket_mid_ms(bucket: int) -> float:
    """Representative latency of a bucket (geometric middle)."""
    if bucket <= 0:
        return LOW_MS / 2
    return float(LOW_MS * GROWTH ** (bucket - 0.5))


def bucket_upper_ms(bucket: int) -> float:
    return LOW_MS * GROWTH ** bucket


def quantiles(buckets: Sequence[int], counts: Sequence[int], qs: Sequence[float]) -> list[float | None]:
    """Quantiles (0..1) of a sparse histogram; ``None`` when it is empty."""
    b = np.asarray(buckets, dtype=np.int64)
    c = np.asarray(counts, dtype=np.int64)
    keep = c > 0
    b, c = b[keep], c[keep]
    total = int(c.sum())
    if total == 0:
        return [None for _ in qs]
    order = np.argsort(b)
    b, c = b[order], np.cumsum(c[order])
    out: list[float | None] = []
    for q in qs:
        rank = max(1, int(np.ceil(q * total)))
        i = int(np.searchsorted(c, rank))
        out.append(round(bucket_mid_ms(int(b[min(i, len(b) - 1)])), 3))
    return out
