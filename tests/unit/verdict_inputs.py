"""Inputs for the gray-vs-base tests: histograms by bucket, request totals."""

from __future__ import annotations

from typing import Any

import numpy as np

from lanewatch.histogram import N_BUCKETS


def hist(**buckets: int) -> np.ndarray:
    """A latency histogram: ``hist(b30=900, b31=100)`` puts 900 in bucket 30, 100 in 31."""
    h = np.zeros(N_BUCKETS)
    for k, v in buckets.items():
        h[int(k[1:])] = v
    return h


def tot(requests: int, errors: int) -> dict[str, Any]:
    return {"requests": requests, "errors": errors}


SAME = hist(b30=900, b31=100)
