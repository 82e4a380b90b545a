"""The access rules themselves: token comparison, Host names, the access settings' checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.util.re import parse_env_headers

from lanewatch import access, config
from lanewatch.config import ConfigError
from lanewatch.demo.runner import token_env

TOKEN = "unit-token-0123456789abcdef"


def load(**flags: object) -> config.Settings:
    return config.load(flags, environ={})


@pytest.mark.parametrize("header,ok", [
    (f"Bearer {TOKEN}", True), (f"bearer {TOKEN}", True), (f"  Bearer   {TOKEN} ", True),
    (f"Bearer {TOKEN}x", False), (f"Bearer {TOKEN[:-1]}", False), (f"Basic {TOKEN}", False),
    (TOKEN, False), ("Bearer", False), ("", False), (None, False)])
def test_bearer(header: str | None, ok: bool) -> None:
    assert access.bearer_ok(header, TOKEN) is ok


def test_no_token_lets_everything_in() -> None:
    assert access.bearer_ok(None, "")


def test_session_cookie_is_derived_not_the_token() -> None:
    value = access.session_value(TOKEN)
    assert TOKEN not in value and len(value) == 64
    assert access.session_ok(value, TOKEN)
    assert not access.session_ok(value, TOKEN + "x")
    assert not access.session_ok(None, TOKEN) and not access.session_ok("", TOKEN)


@pytest.mark.parametrize("host,ok", [
    ("localhost", True), ("LOCALHOST:8050", True), ("grafana.localhost", True), ("127.0.0.1:8050", True),
    ("[::1]:8050", True), ("192.168.1.20", True), ("lw.corp.example", True), ("a.b.team.example:443", True),
    ("team.example", True), ("evil.example", False), ("lw.corp.example.evil.example", False),
    ("localhost.evil.example", False), ("eviltteam.example", False), ("", True), (None, True)])
def test_host_check(host: str | None, ok: bool) -> None:
    check = access.HostCheck("0.0.0.0", ["lw.corp.example", ".team.example"])
    assert check.allows(host) is ok


def test_host_check_star_and_bound_name() -> None:
    assert access.HostCheck("127.0.0.1", ["*"]).allows("anything.example")
    assert access.HostCheck("lanewatch.internal", []).allows("lanewatch.internal:8050")
    assert access.HostCheck("127.0.0.1", ["*.team.example"]).allows("x.team.example")


def test_host_check_includes_external_url() -> None:
    from lanewatch.web.access import host_check

    s = load(external_url="https://lanewatch.corp.example/", allowed_hosts=["other.example"])
    assert host_check(s).allows("lanewatch.corp.example")
    assert host_check(s).allows("other.example")
    assert not host_check(s).allows("evil.example")


@pytest.mark.parametrize("flags,message", [
    ({"auth_token": "short"}, "auth_token: the token has 5 characters; use at least 16"),
    ({"auth_token": "has spaces in it, which is bad"}, "auth_token: the token may hold only"),
    ({"tls_cert": "/nonexistent/cert.pem", "tls_key": "/nonexistent/key.pem"},
     "tls_cert=/nonexistent/cert.pem: no such file"),
    ({"allowed_hosts": ["http://x.example"]}, "allowed_hosts[0]='http://x.example': a host name"),
    ({"allowed_hosts": ["x.example:8050"]}, "allowed_hosts[0]='x.example:8050'"),
])
def test_access_settings_are_checked(flags: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(**flags)
    assert message in str(e.value)


def test_pairs(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text(TOKEN + "\nignored second line\n")
    with pytest.raises(ConfigError, match="auth_token and auth_token_file are both set"):
        load(auth_token=TOKEN, auth_token_file=str(f))
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        load(tls_cert=str(cert))


def test_token_file(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text(TOKEN + "\nignored second line\n")
    assert load(auth_token_file=str(f)).token == TOKEN
    assert config.load(environ={"LANEWATCH_AUTH_TOKEN_FILE": str(f)}).token == TOKEN
    assert config.load(environ={"LANEWATCH_AUTH_TOKEN": TOKEN}).token == TOKEN
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="the file is empty"):
        load(auth_token_file=str(empty))
    with pytest.raises(ConfigError, match="cannot read it"):
        load(auth_token_file=str(tmp_path / "missing"))


def test_env_allowed_hosts_is_a_comma_list() -> None:
    s = config.load(environ={"LANEWATCH_ALLOWED_HOSTS": "a.example, .b.example"})
    assert s.allowed_hosts == ["a.example", ".b.example"]


def test_demo_token_env_is_what_the_sdk_reads() -> None:
    env = token_env("tok+/=en-0123456789abcdef")
    assert env["LANEWATCH_AUTH_TOKEN"] == "tok+/=en-0123456789abcdef"
    assert parse_env_headers(env["OTEL_EXPORTER_OTLP_HEADERS"], liberal=True) == {
        "authorization": "Bearer tok+/=en-0123456789abcdef"}
    assert token_env("") == {}


def test_loopback() -> None:
    assert access.is_loopback("127.0.0.1") and access.is_loopback("::1") and access.is_loopback("localhost")
    assert not access.is_loopback("0.0.0.0") and not access.is_loopback("10.0.0.1")


def test_empty_state_says_https_and_the_header_when_asked_for() -> None:
    from lanewatch.dashboard import components as C

    s = config.Settings(auth_token=TOKEN, tls_cert="c.pem", tls_key="k.pem")
    assert C.no_spans(s) == ("No spans yet: point OTEL_EXPORTER_OTLP_ENDPOINT at https://127.0.0.1:4318 "
                             "with OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>.")
    assert TOKEN not in C.no_spans(s)


def test_the_token_is_not_in_the_settings_repr() -> None:
    s = load(auth_token=TOKEN)
    assert s.token == TOKEN and TOKEN not in repr(s)


def test_a_wildcard_bind_answers_to_the_host_name_alert_links_use() -> None:
    import socket

    from lanewatch.alerts.notify import default_external_url
    from lanewatch.web.access import host_check

    s = load(host="0.0.0.0")
    assert host_check(s).allows(socket.gethostname())
    assert not host_check(s).allows("evil.example")
    assert default_external_url(load(host="0.0.0.0", tls_cert=__file__, tls_key=__file__)).startswith("https://")
