"""Where a rule condition's values come from on a span, and the stable hash of percentage splits.

Pure. A span's attributes arrive as ``{key: value}`` where a value is a string or a sequence
of strings (an OpenTelemetry string array: the Java agent records a captured HTTP header
``http.request.header.<name>`` as one). A *source* names what a condition reads and turns the
attributes into a tuple of strings, empty when the request does not carry it:

=============  ===============================================================================
``attribute``  the span attribute of that key (every element of an array)
``header``     the captured request header: ``http.request.header.<name>`` (lower case), or
               the older ``http.request.header.<name_with_underscores>``
``cookie``     the named cookie in the captured ``Cookie`` header(s)
``query``      the named query parameter (percent-decoded) from ``url.query``, else from the
               query part of ``http.target``, ``url.full`` or ``http.url``
``path``       the request path: ``url.path``, else the path part of ``http.target``
``method``     ``http.request.method``, else ``http.method``
=============  ===============================================================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from urllib.parse import parse_qsl

#: A span attribute value as rules see it: a string, or a string array.
AttrValue = str | Sequence[str]
Attrs = Mapping[str, AttrValue]

HEADER_PREFIX = "http.request.header."
COOKIE_KEY = HEADER_PREFIX + "cookie"
#: where query parameters are read, first present wins (``url.query`` has no ``?``)
QUERY_KEYS = ("url.query", "http.target", "url.full", "http.url")
PATH_KEYS = ("url.path", "http.target")
METHOD_KEYS = ("http.request.method", "http.method")
SOURCES = ("attribute", "header", "cookie", "query", "path", "method")

#: Percentage splits have this resolution: a bucket in [0, BUCKETS) per key value.
BUCKETS = 10_000


def values(raw: AttrValue | None) -> tuple[str, ...]:
    """An attribute value as a tuple of strings; ``None`` and ``""`` (unset) give ``()``."""
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        return (raw,)
    return tuple(v for v in raw if isinstance(v, str))


def _first(attrs: Attrs, keys: Sequence[str]) -> tuple[str, ...]:
    for k in keys:
        got = values(attrs.get(k))
        if got:
            return got
    return ()


@dataclass(frozen=True)
class Source:
    """What a condition reads: ``kind`` (one of :data:`SOURCES`) and a name (not for
    ``path`` and ``method``)."""

    kind: str
    name: str = ""

    def keys(self) -> tuple[str, ...]:
        """The span attribute keys this source reads."""
        return self._keys

    @cached_property
    def _keys(self) -> tuple[str, ...]:
        if self.kind == "attribute":
            return (self.name,)
        if self.kind == "header":
            return header_keys(self.name)
        if self.kind == "cookie":
            return (COOKIE_KEY,)
        if self.kind == "query":
            return QUERY_KEYS
        if self.kind == "path":
            return PATH_KEYS
        if self.kind == "method":
            return METHOD_KEYS
        raise ValueError(f"unknown source {self.kind!r}")

    def read(self, attrs: Attrs) -> tuple[str, ...]:
        """The values the request carries for this source (``()``: none)."""
        kind = self.kind
        if kind == "attribute":
            return values(attrs.get(self.name))
        if kind == "header":
            return _first(attrs, self._keys)
        if kind == "cookie":
            return cookie_values(values(attrs.get(COOKIE_KEY)), self.name)
        if kind == "query":
            return query_values(attrs, self.name)
        if kind == "path":
            got = _first(attrs, PATH_KEYS[:1])
            if got:
                return got
            target = _first(attrs, PATH_KEYS[1:])
            return tuple(t.partition("?")[0].partition("#")[0] for t in target)
        return _first(attrs, METHOD_KEYS)

    def to_dict(self) -> dict[str, str | bool]:
        return {self.kind: self.name} if self.kind not in ("path", "method") else {self.kind: True}

    def describe(self) -> str:
        return f"{self.kind} {self.name}" if self.name else self.kind


def header_keys(name: str) -> tuple[str, ...]:
    """``X-User-Id`` -> ``http.request.header.x-user-id`` and the older semantic-convention
    spelling ``http.request.header.x_user_id``."""
    low = name.strip().lower()
    under = low.replace("-", "_")
    return (HEADER_PREFIX + low,) if under == low else (HEADER_PREFIX + low, HEADER_PREFIX + under)


def cookie_values(headers: Sequence[str], name: str) -> tuple[str, ...]:
    """The values of cookie ``name`` in ``Cookie`` header values (``a=1; b=2``), in order."""
    out = []
    for header in headers:
        for part in header.split(";"):
            key, eq, value = part.partition("=")
            if eq and key.strip() == name:
                out.append(value.strip())
    return tuple(out)


def query_values(attrs: Attrs, name: str) -> tuple[str, ...]:
    """The values of query parameter ``name`` (percent-decoded, ``+`` as a space)."""
    for i, key in enumerate(QUERY_KEYS):
        got = values(attrs.get(key))
        if not got:
            continue
        query = got[0] if i == 0 else got[0].partition("?")[2]
        query = query.partition("#")[0]
        return tuple(v for k, v in parse_qsl(query, keep_blank_values=True) if k == name)
    return ()


@lru_cache(maxsize=1 << 16)
def bucket(value: str, salt: str = "") -> int:
    """The stable bucket of a key value, in ``[0, BUCKETS)``: the first 8 bytes of the SHA-256
    of the UTF-8 bytes of ``salt + value``, read as a big-endian unsigned integer, modulo
    :data:`BUCKETS`. The same in every process and language::

        int(hashlib.sha256(b"user-42").hexdigest()[:16], 16) % 10000
    """
    digest = hashlib.sha256((salt + value).encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_share(value: str, percent: float, salt: str = "") -> bool:
    """Whether ``value`` falls in the first ``percent`` % of buckets (raising ``percent``
    only ever adds values: a user in a 5 % split stays in it at 10 %)."""
    return bucket(value, salt) < round(percent * BUCKETS / 100)
