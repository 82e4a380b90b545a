"""How many spans a span stands for: its sampling weight. Pure.

Two sources (``docs/design.md``, "Sampled spans"):

* the OpenTelemetry probability-sampling threshold in the span's W3C ``tracestate``
  (``ot=th:<1..14 hex digits>``, spec "TraceState: Probability Sampling"): the digits,
  padded with zeros to 14, are a rejection threshold ``T`` over 2^56, and the span's
  adjusted count is ``2^56 / (2^56 - T)`` (``th:0`` is 1: nothing was rejected);
* the span attribute named by ``sampling_weight_attribute`` (a positive int, double, or a
  string holding one), which wins over the threshold where present and valid.

A value that does not read (``th`` not hex, empty or longer than 14 digits; an attribute
that is not a number, not positive, NaN or infinite) or that stands for more than
:data:`MAX_WEIGHT` spans is junk: the span counts as the threshold alone says (1 without
one), and the engine counts it (``spans_with_invalid_sampling_threshold``,
``spans_with_invalid_sampling_weight``). Values are parsed once per distinct encoding
(:class:`Parsed`), so a batch costs one C ``map`` over its spans.

Rollups keep integer counts: a trace of weight ``w`` counts ``floor(w + u)`` times, with
``u`` uniform in [0, 1) from a hash of its trace id (:func:`integer_weights`). That is
unbiased (its mean is ``w``), the same for every span of a trace (so a trace, its edges and
its hops agree, ``stayed <= traces`` holds in every row and a correction cancels exactly),
and costs nothing where ``w`` is already an integer (every power-of-two threshold).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from lanewatch.collect import schema
from lanewatch.collect.spans import RawValue

#: The most spans one span may stand for (a sampling probability of 2^-20); beyond is junk.
MAX_WEIGHT = float(1 << 20)
_TWO56 = 1 << 56
_HEX = re.compile(r"[0-9a-fA-F]{1,14}")
#: What a parse gives for junk (the caller counts it and uses 1).
JUNK = math.nan
#: What the attribute parse gives where the span has no such attribute.
ABSENT = 0.0


def threshold_weight(state: bytes | str) -> float:
    """The adjusted count that ``ot=th`` in a W3C tracestate gives (1.0 without one)."""
    text = state.decode("ascii", "replace") if isinstance(state, bytes) else state
    if "ot=" not in text:
        return 1.0
    for member in text.split(","):
        key, eq, value = member.strip().partition("=")
        if key != "ot" or not eq:
            continue
        for sub in value.split(";"):
            name, colon, digits = sub.partition(":")
            if name != "th":
                continue
            if not colon or _HEX.fullmatch(digits) is None:
                return JUNK
            w = _TWO56 / (_TWO56 - int(digits.ljust(14, "0"), 16))
            return w if w <= MAX_WEIGHT else JUNK
        return 1.0  # the first ``ot`` member decides (keys are unique in a valid tracestate)
    return 1.0


def _number(w: float) -> float:
    return w if 0.0 < w <= MAX_WEIGHT else JUNK  # NaN compares false: junk too


def attribute_weight(raw: RawValue) -> float:
    """The weight in one attribute value: an encoded AnyValue (protobuf) or the string the
    JSON decoder keeps; :data:`ABSENT` for no value, :data:`JUNK` for anything else (an array)."""
    if not raw:
        return ABSENT
    if isinstance(raw, str):
        try:
            return _number(float(raw))
        except ValueError:
            return JUNK
    if not isinstance(raw, bytes):
        return JUNK
    m = schema.AnyValue()
    try:
        m.ParseFromString(raw)
    except Exception:  # noqa: BLE001 -- junk: counted by the caller, never raised
        return JUNK
    if m.string_value:
        return attribute_weight(str(m.string_value))
    if m.int_value:
        return _number(float(m.int_value))
    return _number(float(m.double_value))  # 0.0 also for a value of another type: junk


class Parsed(dict[RawValue, float]):
    """Encoded value -> its weight, parsed once per distinct value (bounded: values beyond
    :data:`MAX_CACHED` entries or :data:`MAX_CACHED_BYTES` long are parsed each time)."""

    MAX_CACHED = 10_000
    MAX_CACHED_BYTES = 512

    def __init__(self, parse: Callable[[Any], float]) -> None:
        super().__init__()
        self.parse = parse

    def __missing__(self, raw: RawValue) -> float:
        w = self.parse(raw)
        if len(self) < self.MAX_CACHED and len(raw) <= self.MAX_CACHED_BYTES:
            self[raw] = w
        return w

    def column(self, values: Sequence[RawValue]) -> npt.NDArray[np.float64]:
        return np.fromiter(map(self.__getitem__, values), dtype=np.float64, count=len(values))


class SpanWeights:
    """Per-span weights of decoded spans, with the parse caches of one engine."""

    def __init__(self, attribute: str = "") -> None:
        self.attribute = attribute
        self.thresholds = Parsed(threshold_weight)
        self.attributes = Parsed(attribute_weight)

    def of(self, n: int, state_at: npt.NDArray[np.int64], states: Sequence[bytes | str],
           attr_at: npt.NDArray[np.int64], attr_values: Sequence[RawValue] | None
           ) -> tuple[npt.NDArray[np.float64] | None, int, int]:
        """``(weights, junk thresholds, junk attributes)`` of ``n`` spans: the tracestates of
        spans ``state_at`` and the weight attribute's values of spans ``attr_at`` (raw).
        Weights are None when every span weighs 1 (nothing to multiply)."""
        w: npt.NDArray[np.float64] | None = None
        bad_th = bad_attr = 0
        if len(state_at):
            th = self.thresholds.column(states)
            junk = np.isnan(th)
            if junk.any():
                bad_th = int(junk.sum())
                th[junk] = 1.0
            if (th != 1.0).any():
                w = np.ones(n)
                w[state_at] = th
        if attr_values is not None and len(attr_at):
            a = self.attributes.column(attr_values)
            junk = np.isnan(a)
            bad_attr = int(junk.sum())
            given = a > ABSENT  # NaN compares false
            if given.any():
                if w is None:
                    w = np.ones(n)
                w[attr_at[given]] = a[given]
        if w is not None and not (w != 1.0).any():
            w = None
        return w, bad_th, bad_attr


# --- integer counts ----------------------------------------------------------------------

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def trace_uniform(tkey: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """A number in [0, 1) per trace key, from a 64-bit finalizing mix of the key (so it does
    not follow the trace id bits a sampler compared with its threshold)."""
    z = tkey.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z ^= z >> _S30
        z *= _M1
        z ^= z >> _S27
        z *= _M2
        z ^= z >> _S31
    return (z >> _S11).astype(np.float64) * 2.0**-53


def integer_weights(w: npt.NDArray[np.float64], tkey: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """``floor(w + u(trace))``: the integer count of each span (or trace) of weight ``w``."""
    return np.floor(w + trace_uniform(tkey)).astype(np.int64)


def integer_weight(w: float, tkey: int) -> int:
    """:func:`integer_weights` for one value, in plain Python (the tests' reference)."""
    mask = (1 << 64) - 1
    z = tkey & mask
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & mask
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & mask
    z ^= z >> 31
    return math.floor(w + (z >> 11) * 2.0**-53)
