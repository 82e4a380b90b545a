"""Who may talk to lanewatch: the bearer token, TLS, and the Host names the web side answers to.

Shared by every listener (:mod:`lanewatch.collect.receivers`, :mod:`lanewatch.web.access`);
``docs/security.md`` describes the whole. The token is compared in constant time and never
logged.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import ssl
from collections.abc import Iterable

#: Engine counter reasons (``requests_refused_<reason>``).
REFUSED_OTLP = "unauthenticated"
REFUSED_TLS = "tls_handshake"
REFUSED_WEB = "web_unauthenticated"
REFUSED_HOST = "web_bad_host"
#: Host names every lanewatch answers to: they cannot be pointed at another address by DNS.
LOOPBACK_NAMES = ("localhost", ".localhost")


def is_loopback(host: str) -> bool:
    """``host`` (an address to bind) is reachable from this machine only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def bearer_ok(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>`` matches (constant-time); always True without a token."""
    if not token:
        return True
    scheme, _, given = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # digests of equal length: the comparison does not even tell the token's length
    return hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(),
                               hashlib.sha256(token.encode()).digest())


def session_value(token: str) -> str:
    """The dashboard cookie's value: derived from the token, so that a leaked cookie does not
    give the token itself (which OTLP exporters hold too)."""
    return hmac.new(token.encode(), b"lanewatch dashboard session", hashlib.sha256).hexdigest()


def session_ok(cookie: str | None, token: str) -> bool:
    return bool(cookie) and hmac.compare_digest((cookie or "").encode(), session_value(token).encode())


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    """A TLS 1.2+ server context for ``cert`` (PEM, chain allowed) and ``key``; raises
    ``ssl.SSLError``/``OSError`` when they do not load."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def _host_name(host_header: str) -> str:
    """``Host`` without its port, lower case, IPv6 brackets removed."""
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1:].partition("]")[0]
    if h.count(":") == 1:
        h = h.partition(":")[0]
    return h.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostCheck:
    """Which ``Host`` headers the web side answers (DNS rebinding: a page of another site whose
    name was re-pointed at lanewatch's address sends that site's name as ``Host``).

    Allowed: any IP address (a page can only have that origin when the user typed it),
    ``localhost`` and ``*.localhost``, the bound host and the names of ``extra`` (exact, or
    ``.example.com`` / ``*.example.com`` for the name and its subdomains, ``*`` for any)."""

    def __init__(self, bound_host: str, extra: Iterable[str]) -> None:
        names = [*LOOPBACK_NAMES, bound_host, *extra]
        self.any = "*" in names
        self.exact = {n.lower().rstrip(".") for n in names if not n.startswith((".", "*"))}
        self.suffixes = tuple("." + n.lower().lstrip("*.").rstrip(".") for n in names
                              if n.startswith((".", "*.")))

    def allows(self, host_header: str | None) -> bool:
        if self.any:
            return True
        if not host_header:  # HTTP/1.0 without Host: no browser sends that
            return True
        name = _host_name(host_header)
        return (_is_ip(name) or name in self.exact or name.endswith(self.suffixes)
                or any(name == s[1:] for s in self.suffixes))
