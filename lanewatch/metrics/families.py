"""Cumulative totals by label values: monotone, with a cap on the number of series.

Pure (no locks, no I/O): :class:`Family` keeps, for one metric family, a vector of totals
per label tuple. Two rules make the totals fit Prometheus:

* **Monotone.** Rollup rows may carry negative counts: a correction, when a late span
  changes a finished trace's verdict. A Prometheus counter must never go down (a decrease
  reads as a restart of the process, and ``rate()`` would count the whole total again), so
  each shown value is the *highest* net total reached so far. A correction is then not
  subtracted; later increments of the same series first make up for it (the shown value
  stays put until the net total passes it again), so the totals agree with the store
  again as soon as the corrected series has had as much new traffic as was taken back.
  The units taken back are counted (:attr:`Family.taken_back`).
* **Capped.** At most ``max_series`` label tuples are kept; the values of any further
  one are added to the overflow series, whose label values are all ``_other``. The
  distinct label tuples folded into it are counted (:class:`Folds`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

#: The label value of every label of a family's overflow series.
OTHER: Final = "_other"

Key = tuple[str, ...]


class Folds:
    """Counts the distinct label tuples folded into an overflow series.

    Remembers the hashes of up to ``memory`` folded tuples (bounded memory, whatever the
    cardinality thrown at it); past that, a tuple it no longer tells apart counts again
    each time it is folded, so :attr:`count` is exact up to ``memory`` folded series and
    an upper bound beyond."""

    def __init__(self, memory: int) -> None:
        self.memory = memory
        self.count = 0
        self._seen: set[int] = set()

    def note(self, key: Key) -> None:
        h = hash(key)
        if h in self._seen:
            return
        self.count += 1
        if len(self._seen) < self.memory:
            self._seen.add(h)


class Family:
    """Totals of one metric family: ``width`` values per label tuple of ``labels``."""

    def __init__(self, name: str, labels: Sequence[str], width: int, max_series: int) -> None:
        if max_series < 1:
            raise ValueError(f"max_series={max_series}: must be >= 1")
        self.name, self.labels, self.width, self.max_series = name, tuple(labels), width, max_series
        self.other: Key = (OTHER,) * len(self.labels)
        self.folds = Folds(10 * max_series)
        #: units of negative corrections received (not subtracted from the shown values)
        self.taken_back = 0.0
        self._net: dict[Key, list[float]] = {}
        self._shown: dict[Key, list[float]] = {}
        self._regular = 0  # label tuples kept as themselves (the overflow series excluded)

    def __len__(self) -> int:
        """Series kept, the overflow series included."""
        return len(self._net)

    def _slot(self, key: Key) -> Key:
        if key in self._net:
            return key
        key = tuple(v if isinstance(v, str) else "" if v is None else str(v) for v in key)
        if key in self._net:
            return key
        if key != self.other and self._regular >= self.max_series:
            self.folds.note(key)
            key = self.other
            if key in self._net:
                return key
        elif key != self.other:
            self._regular += 1
        self._net[key] = [0.0] * self.width
        self._shown[key] = [0.0] * self.width
        return key

    def add(self, deltas: Mapping[Key, Sequence[float]]) -> None:
        """Add one batch's net change per label tuple (each ``width`` values)."""
        for key, delta in deltas.items():
            slot = self._slot(key)
            net, shown = self._net[slot], self._shown[slot]
            for i, d in enumerate(delta):
                if d == 0:
                    continue
                if d < 0:
                    self.taken_back -= d
                v = net[i] = net[i] + d
                shown[i] = max(shown[i], v)

    def items(self) -> list[tuple[Key, list[float]]]:
        """(label values, shown values) of every series, copied."""
        return [(k, list(v)) for k, v in self._shown.items()]

