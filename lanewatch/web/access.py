"""Access to the web side (API, ``/metrics``, dashboard): the Host check and the bearer token.

Installed as one Flask ``before_request`` hook, so no route can be added without it:

1. ``Host`` not one lanewatch answers to (:class:`lanewatch.access.HostCheck`): 400, counted
   as ``requests_refused_web_bad_host``.
2. With a token: ``Authorization: Bearer <token>`` or the dashboard's session cookie, else 401
   with ``WWW-Authenticate: Bearer`` (the dashboard's pages answer with the login page),
   counted as ``requests_refused_web_unauthenticated``. ``GET /api/v1/health/live`` and
   ``/login`` stay open. ``?token=<token>`` on a dashboard page logs in (a one-time link).

``docs/security.md`` describes it for users.
"""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Callable
from typing import Any

import flask

from lanewatch import access
from lanewatch.config import Settings

COOKIE = "lanewatch_session"
COOKIE_MAX_AGE_S = 7 * 86400
#: Paths answered without a token: the liveness probe (Kubernetes probes send no secret), the
#: login page itself and the icon a browser asks for beside it.
OPEN_PATHS = frozenset({"/api/v1/health/live", "/login", "/logout", "/favicon.ico"})
_MACHINE_PREFIXES = ("/api/", "/metrics", "/_dash-")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lanewatch: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">{head}
<style>
body {{ font-family: system-ui, sans-serif; background: #f8fafc; color: #1e293b; margin: 0; }}
main {{ max-width: 26rem; margin: 12vh auto; background: #fff; border: 1px solid #e2e8f0;
        border-radius: 8px; padding: 1.5rem 2rem; }}
h1 {{ font-size: 1.3rem; margin-top: 0; }}
input[type=password] {{ width: 100%; box-sizing: border-box; padding: .5rem; font-size: 1rem; }}
button {{ margin-top: .8rem; padding: .5rem 1.2rem; font-size: 1rem; }}
.lw-login-error {{ color: #b91c1c; }}
p.lw-muted {{ color: #64748b; font-size: .9rem; }}
</style></head>
<body><main>{body}</main></body></html>
"""


def _local(next_url: str) -> str:
    """``next_url`` when it is a path of this site, else ``/`` (no open redirect)."""
    if not next_url.startswith("/") or next_url.startswith("//") or "\\" in next_url:
        return "/"
    return next_url


def login_page(next_url: str, error: str = "") -> str:
    err = f'<p class="lw-login-error" id="lw-login-error">{html.escape(error)}</p>' if error else ""
    body = (f"<h1>lanewatch</h1>{err}"
            '<form method="post" action="/login" id="lw-login">'
            '<label for="lw-token">Access token</label>'
            '<input type="password" id="lw-token" name="token" autocomplete="current-password" autofocus>'
            f'<input type="hidden" name="next" value="{html.escape(_local(next_url))}">'
            '<button type="submit" id="lw-login-submit">Sign in</button></form>'
            '<p class="lw-muted">The token lanewatch was started with (--auth-token, '
            "LANEWATCH_AUTH_TOKEN or --auth-token-file).</p>")
    return _PAGE.format(head="", body=body)


def _moving_on(to: str) -> str:
    """A page that loads ``to`` itself: a same-site navigation, so the SameSite=Strict cookie
    just set goes with it even when the ``?token=`` link was opened from another site."""
    to = html.escape(_local(to))
    return _PAGE.format(head=f'<meta http-equiv="refresh" content="0;url={to}">',
                        body=f'<p>Signed in. <a href="{to}">Continue to lanewatch</a>.</p>')


def _without_token(req: flask.Request) -> str:
    args = [(k, v) for k, v in req.args.items(multi=True) if k != "token"]
    return req.path + ("?" + urllib.parse.urlencode(args) if args else "")


def host_check(settings: Settings) -> access.HostCheck:
    """The Host names of :class:`lanewatch.access.HostCheck` for these settings: the bound host,
    ``allowed_hosts`` and the host of the external URL alert links use (``external_url``, else
    for a wildcard bind this machine's host name)."""
    from lanewatch.alerts.notify import default_external_url

    extra = list(settings.allowed_hosts)
    external = settings.external_url or default_external_url(settings)
    extra.append(urllib.parse.urlsplit(external).hostname or "")
    return access.HostCheck(settings.host, [h for h in extra if h])


def install(app: flask.Flask, token: str, hosts: access.HostCheck, count: Callable[[str], None],
            secure: bool) -> None:
    """Guard every route of ``app``; ``count(reason)`` counts a refusal; ``secure``: TLS is on
    (the cookie is then ``Secure``)."""

    def sign_in(resp: Any) -> Any:
        resp.set_cookie(COOKIE, access.session_value(token), max_age=COOKIE_MAX_AGE_S, path="/",
                        httponly=True, samesite="Strict", secure=secure)
        return resp

    def refuse(req: flask.Request, error: str = "", next_url: str | None = None) -> flask.Response:
        count(access.REFUSED_WEB)
        if req.path.startswith(_MACHINE_PREFIXES) or req.method not in ("GET", "HEAD", "POST"):
            resp = flask.Response(
                '{"error": "missing or wrong bearer token: send Authorization: Bearer <token> '
                '(or sign in to the dashboard)"}', status=401, mimetype="application/json")
        else:
            page = login_page(_without_token(req) if next_url is None else next_url, error)
            resp = flask.Response(page, status=401, mimetype="text/html")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="lanewatch"'
        resp.headers["Cache-Control"] = "no-store"
        return resp

    def guard() -> Any:
        req = flask.request
        if not hosts.allows(req.headers.get("Host")):
            count(access.REFUSED_HOST)
            name = (req.headers.get("Host") or "")[:100]
            return flask.Response(
                f"Host {name!r} is not a name this lanewatch answers to (DNS rebinding protection); "
                "add it to allowed_hosts (--allowed-host, LANEWATCH_ALLOWED_HOSTS)\n",
                status=400, mimetype="text/plain")
        if not token or req.path in OPEN_PATHS:
            return None
        if access.bearer_ok(req.headers.get("Authorization"), token) or \
                access.session_ok(req.cookies.get(COOKIE), token):
            return None
        given = req.args.get("token")
        if given is not None and req.method == "GET" and not req.path.startswith(_MACHINE_PREFIXES):
            if access.bearer_ok(f"Bearer {given}", token):
                return sign_in(flask.Response(_moving_on(_without_token(req)), mimetype="text/html"))
            return refuse(req, "The token of that link is wrong.")
        return refuse(req)

    def login() -> Any:
        req = flask.request
        if req.method == "GET":
            return flask.Response(login_page(req.args.get("next", "/")), mimetype="text/html")
        if token and access.bearer_ok(f"Bearer {req.form.get('token', '')}", token):
            return sign_in(flask.redirect(_local(req.form.get("next", "/")), code=303))
        if not token:
            return flask.redirect("/", code=303)
        return refuse(req, "Wrong token.", req.form.get("next", "/"))

    def logout() -> Any:
        resp = flask.redirect("/login", code=303)
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="Strict", secure=secure)
        return resp

    app.before_request(guard)
    app.add_url_rule("/login", "lanewatch_login", login, methods=["GET", "POST"])
    app.add_url_rule("/logout", "lanewatch_logout", logout, methods=["GET", "POST"])
