"""Times for people: the viewer's local time with its zone, UTC on hover.

The browser reports its IANA zone (``Intl.DateTimeFormat``) into a store;
every builder takes that name. Unknown or missing zones fall back to UTC.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

UTC_NAME = "UTC"


def zone(tz: str | None) -> ZoneInfo:
    """The ZoneInfo for ``tz``; UTC when missing or unknown."""
    try:
        return ZoneInfo(tz or UTC_NAME)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(UTC_NAME)


def zone_label(tz: str | None, at: float | None = None) -> str:
    """``Europe/Berlin (CET)``: the zone name with its abbreviation at ``at``."""
    z = zone(tz)
    moment = datetime.fromtimestamp(at if at is not None else time.time(), tz=z)
    abbrev = moment.tzname() or ""
    return z.key if abbrev in ("", z.key) else f"{z.key} ({abbrev})"


def local_axis(ts: Sequence[float] | np.ndarray, tz: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Epoch seconds -> (naive local datetimes for an axis, UTC ISO strings for hover)."""
    arr = np.asarray(ts, dtype="float64")
    utc = pd.to_datetime(arr, unit="s", utc=True)
    local = utc.tz_convert(zone(tz).key).tz_localize(None).to_numpy()
    utc_text = np.datetime_as_string(utc.tz_localize(None).to_numpy().astype("datetime64[s]"), unit="s")
    return local, np.char.replace(utc_text.astype(str), "T", " ")


def local_time(ts: float, tz: str | None, with_date: bool = False) -> str:
    """``14:03:07 CET`` (or with the date first) in the viewer's zone."""
    moment = datetime.fromtimestamp(ts, tz=zone(tz))
    fmt = "%Y-%m-%d %H:%M:%S %Z" if with_date else "%H:%M:%S %Z"
    return moment.strftime(fmt)


def utc_time(ts: float) -> str:
    """``2025-01-31 13:03:07 UTC``."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(seconds: float) -> str:
    """``4 s ago``, ``3 min ago``, ``2 h ago``; a future time reads ``just now``."""
    if seconds < 1:
        return "just now"
    if seconds < 120:
        return f"{int(seconds)} s ago"
    if seconds < 7200:
        return f"{int(seconds // 60)} min ago"
    if seconds < 172800:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def window_label(window_s: int) -> str:
    """``last 5 min`` / ``last 90 s`` / ``last 2 h``."""
    if window_s < 60 or window_s % 60:
        return f"last {window_s} s"
    if window_s < 7200 or window_s % 3600:
        return f"last {window_s // 60} min"
    return f"last {window_s // 3600} h"
