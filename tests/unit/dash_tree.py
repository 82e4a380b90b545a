"""Reading Dash component trees in tests: the text a browser would show, components by type."""

from __future__ import annotations

from typing import Any


def texts(component: Any) -> list[str]:
    """Every string in a component tree, in order (what the browser shows as text)."""
    if component is None:
        return []
    if isinstance(component, (str, int, float)):
        return [str(component)]
    if isinstance(component, (list, tuple)):
        return [t for c in component for t in texts(c)]
    return texts(getattr(component, "children", None))


def text(component: Any) -> str:
    return "".join(texts(component))


def find(c: Any, cls: type) -> list[Any]:
    """Every component of type ``cls`` in a tree."""
    out = [c] if isinstance(c, cls) else []
    kids = c if isinstance(c, (list, tuple)) else getattr(c, "children", None)
    if isinstance(kids, (list, tuple)):
        for k in kids:
            out += find(k, cls)
    elif kids is not None and not isinstance(kids, (str, int, float)):
        out += find(kids, cls)
    return out
