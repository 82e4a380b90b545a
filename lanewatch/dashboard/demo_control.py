"""Client of the demo's fault switchboard (``settings.demo_control_url``).

``GET {url}/faults`` answers ``{name: bool}``; ``POST {url}/faults/{name}``
with ``{"on": bool}`` switches one. Short timeouts: the dashboard must not
hang on a demo that went away.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import requests

log = logging.getLogger(__name__)
TIMEOUT_S = 1.5


class DemoControlError(RuntimeError):
    """The switchboard did not answer, or answered something unexpected."""


def list_faults(url: str) -> dict[str, bool]:
    """The demo's faults and whether each is on."""
    try:
        resp = requests.get(url.rstrip("/") + "/faults", timeout=TIMEOUT_S)
        resp.raise_for_status()
        data = resp.json()
    except (requests.RequestException, ValueError) as e:
        raise DemoControlError(str(e)) from None
    if not isinstance(data, dict):
        raise DemoControlError(f"expected a JSON object of faults, got {type(data).__name__}")
    return {str(k): bool(v) for k, v in data.items()}


def set_fault(url: str, name: str, on: bool) -> None:
    """Switch fault ``name`` on or off."""
    target = url.rstrip("/") + "/faults/" + quote(name, safe="")
    try:
        requests.post(target, json={"on": on}, timeout=TIMEOUT_S).raise_for_status()
    except requests.RequestException as e:
        raise DemoControlError(str(e)) from None
    log.info("demo fault %s switched %s", name, "on" if on else "off")
