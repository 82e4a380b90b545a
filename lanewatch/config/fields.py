"""How a setting is declared: a dataclass field carrying its default, doc, parser and check.

The loader (:mod:`.sources`) and ``validate()`` read only this metadata, so a new
setting or a new section is one declaration, never a special case in the loader.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import field, fields
from typing import Any

#: Turns a raw YAML/env/flag value into the setting's value; raises TypeError or ValueError.
Parser = Callable[[Any], Any]
#: Raises :class:`ConfigError` naming ``name`` when ``value`` is out of range.
Check = Callable[[str, Any], None]


class ConfigError(ValueError):
    """A setting is missing, malformed or out of range; the message names it."""


def setting(default: Any, doc: str, *, env: bool = True, parse: Parser | None = None,
            check: Check | None = None, old_names: tuple[str, ...] = (), secret: bool = False) -> Any:
    """One setting. ``env``: whether an env var sets it; ``parse``: for values that are not
    a scalar or a list of strings (default: by the default's type); ``check``: run by
    ``validate()``; ``old_names``: earlier YAML keys still read, with a deprecation warning;
    ``secret``: left out of the settings' ``repr`` (a token)."""
    meta = {"doc": doc, "env": env, "parse": parse, "check": check, "old_names": old_names}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta, repr=not secret)


def section(cls: type, doc: str) -> Any:
    """A nested section: a frozen dataclass of :func:`setting` fields, written in YAML as
    ``name: {key: value}`` and in the environment as ``LANEWATCH_NAME__KEY``."""
    return field(default_factory=cls, metadata={"doc": doc, "section": cls})


def section_of(f: dataclasses.Field[Any]) -> type | None:
    """The section class of a field declared with :func:`section`, else None."""
    cls: type | None = f.metadata.get("section")
    return cls


def default_of(f: dataclasses.Field[Any]) -> Any:
    factory: Any = f.default_factory
    return f.default if f.default is not dataclasses.MISSING else factory()


def leaves(cls: type) -> Iterator[tuple[str, dataclasses.Field[Any]]]:
    """(dotted name, field) of every setting of ``cls``, sections' settings as ``section.key``."""
    for f in fields(cls):
        sub = section_of(f)
        if sub is None:
            yield f.name, f
        else:
            for g in fields(sub):
                yield f"{f.name}.{g.name}", g


# --- checks ---------------------------------------------------------------------------------

def positive(name: str, value: Any) -> None:
    if value <= 0:
        raise ConfigError(f"{name}={value}: must be > 0")


def within(low: float, high: float, *, open_low: bool = False, open_high: bool = False,
           what: str = "") -> Check:
    """A check that the value lies between ``low`` and ``high`` (each end open or closed)."""
    text = what or f"must be in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"

    def check(name: str, value: Any) -> None:
        above = low < value if open_low else low <= value
        below = value < high if open_high else value <= high
        if not (above and below):
            raise ConfigError(f"{name}={value}: {text}")
    return check


def not_empty(name: str, value: Any) -> None:
    if not value:
        raise ConfigError(f"{name}: needs at least one key")
