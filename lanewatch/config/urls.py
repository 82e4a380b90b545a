"""URL settings: their check at start-up, and the redacted form every log line shows.

A receiver URL may carry a secret: a password or token as userinfo
(``https://user:TOKEN@host``), a token in the query (``?api_key=...``), or a
token as a path segment (Slack, Discord and Teams webhooks). :func:`redact` hides
all three, so a URL is never logged, nor put in an error message, as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from lanewatch.config.fields import ConfigError

#: Path segments at least this long are shown as ``***`` (webhook tokens are 24 and more).
SECRET_SEGMENT_CHARS = 20
_MASK = "***"


def redact(url: str) -> str:
    """``url`` as it may be logged: userinfo as ``***@``, query values as ``***``, long path
    segments as ``***``, no fragment. ``https://u:p@h:8443/x/T0K3N...?k=v`` ->
    ``https://***@h:8443/x/***?k=***``."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<malformed URL>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    user = f"{_MASK}@" if "@" in parts.netloc else ""
    path = "/".join(_MASK if len(seg) >= SECRET_SEGMENT_CHARS else seg for seg in parts.path.split("/"))
    query = ""
    if parts.query:
        keys = [k for k, _ in parse_qsl(parts.query, keep_blank_values=True)] or [_MASK]
        query = "?" + "&".join(f"{k}={_MASK}" if k != _MASK else k for k in keys)
    return f"{parts.scheme}://{user}{host}{port}{path}{query}"


def scrub(text: str, url: str) -> str:
    """``text`` (an error message, a response body) with every secret part of ``url`` replaced
    by ``***``: the whole URL, its userinfo, its query and its long path segments."""
    parts = urlsplit(url.strip())
    secrets = [url.strip(), parts.netloc.rpartition("@")[0] if "@" in parts.netloc else "", parts.query]
    secrets += [seg for seg in parts.path.split("/") if len(seg) >= SECRET_SEGMENT_CHARS]
    secrets += [v for _, v in parse_qsl(parts.query) if v]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return text


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be posted to, or None when it is a usable http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises on a malformed port
    except ValueError as e:
        return f"malformed URL ({e})"
    if parts.scheme not in ("http", "https"):
        return "expected an http:// or https:// URL"
    if not parts.hostname:
        return "the URL has no host"
    return None


def check_url(name: str, value: Any) -> None:
    """A check for a URL setting that may be empty (off)."""
    if value and (problem := url_problem(str(value))):
        raise ConfigError(f"{name}={redact(str(value))}: {problem}")


def check_urls(name: str, values: Sequence[str]) -> None:
    """A check for a list-of-URLs setting; the error names the item: ``alert_webhook[1]=...``."""
    for i, value in enumerate(values):
        if problem := url_problem(value):
            raise ConfigError(f"{name}[{i}]={redact(value)}: {problem}")
