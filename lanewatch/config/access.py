"""Access settings (``auth_token``, ``auth_token_file``, ``tls_cert``, ``tls_key``,
``allowed_hosts``): their checks at start-up. A token is never put in a message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lanewatch.config.fields import ConfigError

#: A shorter token is refused: it could be guessed.
MIN_TOKEN_CHARS = 16
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=")


def check_token(name: str, value: Any) -> None:
    token = str(value)
    if not token:
        return
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{name}: the token has {len(token)} characters; use at least {MIN_TOKEN_CHARS} "
                          "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if not set(token) <= _TOKEN_CHARS:
        raise ConfigError(f"{name}: the token may hold only letters, digits and -._~+/= "
                          "(it is sent in an HTTP header)")


def read_token_file(path: str) -> str:
    """The first line of ``path`` stripped; '' for no path. Raises ConfigError when unreadable."""
    if not path:
        return ""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"auth_token_file={path}: cannot read it ({e})") from None
    return (text.splitlines() or [""])[0].strip()


def check_token_file(name: str, value: Any) -> None:
    if not value:
        return
    token = read_token_file(str(value))
    if not token:
        raise ConfigError(f"{name}={value}: the file is empty; put the token on its first line")
    check_token(f"{name}={value}", token)


def check_tls_file(name: str, value: Any) -> None:
    if value and not Path(str(value)).is_file():
        raise ConfigError(f"{name}={value}: no such file")


def check_hosts(name: str, values: Any) -> None:
    for i, host in enumerate(values):
        h = str(host)
        if h != "*" and (not h.strip(".") or any(c in h for c in "/:@ ") or "*" in h.lstrip("*")):
            raise ConfigError(f"{name}[{i}]={h!r}: a host name (no port or scheme), '.example.com' for "
                              "it and its subdomains, or '*'")


def check_together(token: str, token_file: str, cert: str, key: str) -> None:
    """The settings that only make sense in pairs, or not both."""
    if token and token_file:
        raise ConfigError("auth_token and auth_token_file are both set; keep one")
    if bool(cert) != bool(key):
        raise ConfigError("tls_cert and tls_key go together; set both (or neither)")
