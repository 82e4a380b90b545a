"""The view state every page shares, and its round trip through the URL.

``?window=300&service=B&lane=gray&kind=leak`` is enough to share a view: the
shell reads it on load and writes it back whenever a control changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode

from lanewatch import lane as L

#: Window choices offered by the picker, in seconds, with their labels.
WINDOWS: tuple[tuple[int, str], ...] = ((60, "1 min"), (300, "5 min"), (900, "15 min"),
                                        (3600, "60 min"))
DEFAULT_WINDOW_S = 300
MIN_WINDOW_S = 10
MAX_WINDOW_S = 7 * 86400
#: Picker value that reveals the custom-minutes input.
CUSTOM = "custom"
KINDS = L.VIOLATION_NAMES


@dataclass(frozen=True)
class ViewState:
    """Window, filters and the violation kind; ``None`` means "all"."""

    window_s: int = DEFAULT_WINDOW_S
    service: str | None = None
    lane: str | None = None
    kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ViewState:
        """Inverse of :meth:`to_dict`; tolerant of ``None`` and junk."""
        if not data:
            return cls()
        return cls(window_s=_window(data.get("window_s")), service=_text(data.get("service")),
                   lane=_text(data.get("lane")), kind=_kind(data.get("kind")))


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) and value != "" else None


def _window(value: Any) -> int:
    try:
        w = int(float(_text(value) or value))
    except (TypeError, ValueError):
        return DEFAULT_WINDOW_S
    return max(MIN_WINDOW_S, min(MAX_WINDOW_S, w))


def _kind(value: Any) -> str | None:
    text = _text(value)
    return text if text in KINDS else None


def parse_search(search: str | None) -> ViewState:
    """``?window=300&service=B`` -> ViewState; bad values fall back to defaults."""
    qs = parse_qs((search or "").lstrip("?"), keep_blank_values=False)
    first = {k: v[0] for k, v in qs.items() if v}
    return ViewState(window_s=_window(first.get("window", DEFAULT_WINDOW_S)),
                     service=_text(first.get("service")), lane=_text(first.get("lane")),
                     kind=_kind(first.get("kind")))


#: The query parameters of the view; anything else belongs to one page (``id``, ``name``).
VIEW_PARAMS = ("window", "service", "lane", "kind")


def page_params(search: str | None) -> list[tuple[str, str]]:
    """The parameters of ``search`` that belong to the page, not the view (``?id=``, ``?name=``)."""
    return [(k, v) for k, v in parse_qsl((search or "").lstrip("?")) if k not in VIEW_PARAMS]


def to_search(state: ViewState, keep: list[tuple[str, str]] | None = None) -> str:
    """ViewState -> ``?window=300&service=B``; defaults are left out; ``keep`` (page
    parameters, see :func:`page_params`) follow the view's."""
    params: dict[str, str] = {}
    if state.window_s != DEFAULT_WINDOW_S:
        params["window"] = str(state.window_s)
    for key in ("service", "lane", "kind"):
        value = getattr(state, key)
        if value:
            params[key] = value
    pairs = [*params.items(), *(keep or [])]
    return "?" + urlencode(pairs) if pairs else ""


def picker_value(window_s: int) -> tuple[str, int | None]:
    """(picker value, custom minutes) for a window: a preset or ``custom``."""
    if any(window_s == w for w, _ in WINDOWS):
        return str(window_s), None
    return CUSTOM, max(1, round(window_s / 60))


def window_from_picker(value: str | None, custom_minutes: float | None) -> int:
    """The window in seconds chosen by the picker (custom uses the minutes input)."""
    if value == CUSTOM:
        if not custom_minutes or custom_minutes <= 0:
            return DEFAULT_WINDOW_S
        return _window(custom_minutes * 60)
    return _window(value if value is not None else DEFAULT_WINDOW_S)


def step_for(window_s: int, max_points: int = 360) -> int:
    """Series step in seconds: one point per second up to ``max_points`` points."""
    return max(1, -(-window_s // max_points))
