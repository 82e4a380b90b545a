"""Storage: the :class:`~lanewatch.store.base.Store` protocol and the embedded default."""

from __future__ import annotations

from pathlib import Path

from lanewatch.config import Settings
from lanewatch.store.base import Batch, Store

__all__ = ["Batch", "Store", "open_store"]


def open_store(settings: Settings) -> Store:
    """The embedded DuckDB store at ``settings.db_path`` (its directory is created).

    Retention, downsampling and the bound on kept violations come from ``settings``.
    """
    from lanewatch.store.duck import DuckStore

    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    return DuckStore(settings.db_path, retention_s=settings.retention_s,
                     downsample_after_s=settings.downsample_after_s,
                     max_violations=settings.max_violations_kept,
                     memory_limit_mib=settings.store_memory_limit_mib)
