"""Bounded name tables for lanes and services: junk and overflow are counted.

``Names`` maps raw attribute values (strings, or still-encoded AnyValue
bytes from the protobuf path) to the names the rollups use, through a dict
cache (lookups of known values run in C). A value that is not a valid
name maps to its normalised form (for lanes: ``base`` for empty, ``_invalid``
for junk, which then counts as base traffic); once ``limit`` distinct names
are in use, new ones map to the overflow name; a name the normaliser cut
short (a service name over ``max_name_chars``) is counted as
``<what>_names_truncated``. All are counted per occurrence in the shared
counters, so users see them.

Only raw values of at most :data:`CACHED_MAX_LEN` bytes or characters are
remembered (a long one is normalised on every lookup; none is a valid lane), so
junk values cannot make the cache hold more than ``CACHE_LIMIT`` short keys.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from lanewatch import lane as L
from lanewatch.collect.schema import any_string

#: Raw values remembered; past this the cache is cleared (random junk cannot grow it).
CACHE_LIMIT = 50_000
#: Longest raw value remembered (the rest are normalised on every lookup).
CACHED_MAX_LEN = 512


class Names(dict[str | bytes, str]):
    def __init__(self, limit: int, normalize: Callable[[object], str], overflow: str,
                 what: str, counters: Counter[str]) -> None:
        super().__init__()
        self.limit, self.normalize, self.overflow, self.what = limit, normalize, overflow, what
        self.counters = counters
        self.known: set[str] = set()
        self._flagged: dict[str | bytes, str] = {}  # raw value -> counter name

    def __missing__(self, raw: str | bytes) -> str:
        if len(self) >= CACHE_LIMIT:
            self.clear()
            self._flagged.clear()  # its keys are cached ones
        text = any_string(raw)
        name = self.normalize(text)
        flag = None
        if name == L.INVALID_LANE:
            flag = f"invalid_{self.what}_values"
            name = L.BASE
        elif name not in self.known:
            if len(self.known) >= self.limit:
                flag = f"{self.what}s_over_limit"
                name = self.overflow
            else:
                self.known.add(name)
        if flag is None and len(name) < len(text.strip()):
            flag = f"{self.what}_names_truncated"
        if len(raw) > CACHED_MAX_LEN:  # not remembered: counted here, on every lookup
            if flag is not None:
                self.counters[flag] += 1
            return name
        if flag is not None:
            self._flagged[raw] = flag
        self[raw] = name
        return name

    def adopt(self, names: Iterable[str]) -> int:
        """Admit names other collectors admitted (so every collector maps a name alike), while
        there is room under ``limit``; returns how many were new. Cached lookups are dropped,
        since a raw value cached as the overflow name may now have its own name."""
        added = 0
        for name in names:
            if name and name not in self.known and name != self.overflow and len(self.known) < self.limit:
                self.known.add(name)
                added += 1
        if added:
            self.clear()
            self._flagged.clear()
        return added

    def map(self, raws: Sequence[str | bytes]) -> list[str]:
        """Names for a column of raw values; counts junk and overflow occurrences."""
        out = list(map(self.__getitem__, raws))
        if self._flagged:
            self.counters.update(filter(None, map(self._flagged.get, raws)))
        return out


class Strings(dict[str, int]):
    """Name -> small integer code (``base`` is 0), for columns of names as int arrays."""

    def __init__(self) -> None:
        super().__init__()
        self._names: list[str] = []
        self._array = np.empty(0, dtype=object)
        self[L.BASE]  # code 0

    def __missing__(self, name: str) -> int:
        code = self[name] = len(self._names)
        self._names.append(name)
        return code

    def codes(self, names: Sequence[str]) -> np.ndarray:
        return np.fromiter(map(self.__getitem__, names), dtype=np.int32, count=len(names))

    def names_from(self, code: int) -> list[str]:
        """The names of codes ``code`` and above, in code order."""
        return self._names[code:]

    def names(self, codes: np.ndarray) -> list[str]:
        """Names of a code array (C-speed take on an object array)."""
        if len(self._array) != len(self._names):
            self._array = np.asarray(self._names, dtype=object)
        return self._array[codes].tolist()  # type: ignore[no-any-return]

    def name(self, code: int) -> str:
        return self._names[code]
