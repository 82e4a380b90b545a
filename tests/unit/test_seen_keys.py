"""SeenKeys (a set for new keys, a sorted array for older ones) against a plain dict of
key -> arrival time, on random keys, repeats and clock steps."""

from __future__ import annotations

import random

import numpy as np
import pytest

from lanewatch.collect.seen import SeenKeys


@pytest.mark.parametrize("seed", range(5))
def test_seen_keys_answer_as_a_plain_dict_of_arrivals(seed: int) -> None:
    rng = random.Random(seed)
    horizon, merge = 10.0, 2.0
    seen = SeenKeys(horizon, max_keys=10**9, merge_every_s=merge)
    ref: dict[int, float] = {}
    pool = [rng.getrandbits(64) for _ in range(3000)]
    now = 0.0
    merged_at = 0.0
    horizon_at_merge = -horizon  # the reference forgets at the merges, as SeenKeys does
    seen.roll(now)
    for _ in range(400):
        keys = np.array(sorted(set(rng.sample(pool, rng.randint(1, 40)))), dtype=np.uint64)
        klist = keys.tolist()
        old = seen.in_old(keys)
        got = [(old is not None and bool(old[i])) or k in seen.recent for i, k in enumerate(klist)]
        want = [k in ref and ref[k] >= horizon_at_merge for k in klist]
        assert got == want
        new = [k for k, g in zip(klist, got, strict=True) if not g]
        seen.recent.update(new)
        seen.add(new, now)
        for k in new:
            ref[k] = now
        now += rng.choice([0.0, 0.1, 0.5, 1.5])
        seen.roll(now)
        if now - merged_at >= merge:
            merged_at, horizon_at_merge = now, now - horizon
            ref = {k: t for k, t in ref.items() if t >= horizon_at_merge}
            assert len(seen) == len(ref)


def test_beyond_max_keys_the_oldest_are_forgotten_first() -> None:
    seen = SeenKeys(horizon_s=1000.0, max_keys=100, merge_every_s=1000.0)
    seen.roll(0.0)
    for t in range(3):
        batch = list(range(t * 60, t * 60 + 60))
        seen.recent.update(batch)
        seen.add(batch, float(t))
        seen.roll(float(t))
    assert len(seen) <= 120 and seen.in_old(np.arange(0, 20, dtype=np.uint64)) is None
    assert seen.in_old(np.arange(130, 180, dtype=np.uint64)) is not None
