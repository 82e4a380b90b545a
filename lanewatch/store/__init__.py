"""Storage: the store interfaces (:mod:`lanewatch.store.base`) and the backends behind ``--store``."""

from __future__ import annotations

from pathlib import Path

from lanewatch.config import Settings
from lanewatch.store.base import Batch, Store

__all__ = ["Batch", "Store", "open_store"]


def open_store(settings: Settings) -> Store:
    """The store ``settings.store`` names: the embedded DuckDB file (its directory is created)
    or a ClickHouse database (created if missing, schema migrated on start).

    Retention, downsampling and the bound on kept violations come from ``settings``.
    """
    url = settings.store_url
    if url.kind == "clickhouse":
        from lanewatch.store.clickhouse import ClickHouseStore

        shared: Store = ClickHouseStore(url, collector=settings.collector_name,
                                        retention_s=settings.retention_s,
                                        downsample_after_s=settings.downsample_after_s,
                                        max_violations=settings.max_violations_kept)
        return shared
    from lanewatch.store.duck import DuckStore

    Path(url.path).parent.mkdir(parents=True, exist_ok=True)
    return DuckStore(url.path, retention_s=settings.retention_s,
                     downsample_after_s=settings.downsample_after_s,
                     max_violations=settings.max_violations_kept,
                     memory_limit_mib=settings.store_memory_limit_mib)
