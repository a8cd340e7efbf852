"""IMAP over TLS against a private dovecot: implicit TLS, STARTTLS, certificate trust,
plaintext-login policy and XOAUTH2 through dovecot's oauth2 passdb."""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable, Iterator

import pytest

from mailbot.errors import SourceAuthError, SourceConnectionError, SourceError
from mailbot.mail.imap import ImapMailSource
from tests.mail.conftest import make_mail
from tests.support.dovecot import DovecotServer

pytestmark = pytest.mark.dovecot

WRONG_TOKEN = "wrong-token-Zq81x"


def never(_key: str) -> bool:
    return False


@pytest.fixture
def make(dovecot_factory: Callable[..., DovecotServer]) -> Iterator[Callable[..., DovecotServer]]:
    """``make(tls=True, ...)``: a fresh dovecot variant, closed and deleted after the test."""
    made: list[DovecotServer] = []

    def make_server(**options: object) -> DovecotServer:
        server = dovecot_factory(**options)
        made.append(server)
        return server

    yield make_server
    for server in made:
        server.close()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def tls_dovecot(make: Callable[..., DovecotServer]) -> DovecotServer:
    return make(tls=True)


@pytest.fixture
def opened() -> Iterator[list[ImapMailSource]]:
    sources: list[ImapMailSource] = []
    yield sources
    for source in sources:
        source.close()


def open_source(server: DovecotServer, opened: list[ImapMailSource], **overrides: object) -> ImapMailSource:
    source = ImapMailSource("support", server.source_config(**overrides),
                            ssl_context=server.client_tls_context())
    opened.append(source)
    source.connect()
    return source


def wait_for_logs(server: DovecotServer, pattern: str, count: int = 1, timeout: float = 5.0) -> list[str]:
    """The dovecot log lines matching ``pattern``, once there are at least ``count`` (dovecot
    logs asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in server.log().splitlines() if re.search(pattern, line)]
        if len(lines) >= count:
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(lines)} log lines match {pattern!r}, expected {count}:\n"
                                 f"{server.log()}")
        time.sleep(0.05)


def error_chain(exc: BaseException) -> str:
    parts = []
    current: BaseException | None = exc
    while current is not None:
        parts.append(f"{current!s} {current!r}")
        current = current.__cause__ or current.__context__
    return " ".join(parts)


# ---------------------------------------------------------------------- TLS and STARTTLS


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_connect_and_fetch_over_tls(
    tls_dovecot: DovecotServer, opened: list[ImapMailSource], security: str
) -> None:
    uid = tls_dovecot.append("INBOX", make_mail("over TLS"))
    source = open_source(tls_dovecot, opened, security=security)

    (raw,) = source.fetch_new(None, is_recorded=never)
    source.mark_handled(raw.source_key)

    assert raw.uid == uid
    assert b"Subject: over TLS" in raw.data
    port = tls_dovecot.tls_port if security == "tls" else tls_dovecot.port
    assert source.cfg.effective_port() == port
    # Dovecot marks a session that runs over TLS (implicit or after STARTTLS) with ", TLS";
    # two logins: append()'s own connection and the source's.
    logins = wait_for_logs(tls_dovecot, r"imap-login: Info: Login: user=<alice>", count=2)
    assert all(re.search(r", TLS[,:]", line) for line in logins), logins


def test_reconnect_over_tls_after_a_restart(
    tls_dovecot: DovecotServer, opened: list[ImapMailSource]
) -> None:
    source = open_source(tls_dovecot, opened, security="tls")
    tls_dovecot.stop()
    with pytest.raises(SourceConnectionError):
        source.noop()
    tls_dovecot.start()
    source.connect()
    source.noop()


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_untrusted_certificate_is_a_connection_error_naming_the_certificate(
    tls_dovecot: DovecotServer, security: str
) -> None:
    # No ssl_context: the system's CA store, which does not know the self-signed certificate.
    source = ImapMailSource("support", tls_dovecot.source_config(security=security))

    with pytest.raises(SourceConnectionError) as caught:
        source.connect()

    message = str(caught.value)
    assert message.startswith("mailbox 'support': connecting: SSLCertVerificationError")
    assert "certificate verify failed" in message
    assert tls_dovecot.password not in error_chain(caught.value)
    with pytest.raises(SourceConnectionError, match="not connected"):
        source.noop()
    # The server saw the client give up in the handshake, before any login.
    wait_for_logs(tls_dovecot, r"SSL_accept\(\) failed.*unknown ca")
    assert "Login:" not in tls_dovecot.log()


def test_implicit_tls_against_the_plain_port_is_a_connection_error(tls_dovecot: DovecotServer) -> None:
    cfg = tls_dovecot.source_config(security="tls", port=tls_dovecot.port, timeout=5.0)
    source = ImapMailSource("support", cfg, ssl_context=tls_dovecot.client_tls_context())
    with pytest.raises(SourceConnectionError, match="connecting: SSLError"):
        source.connect()


def test_starttls_demanded_but_not_offered_sends_no_password(dovecot: DovecotServer) -> None:
    # The default test dovecot runs with ssl = no, so it offers no STARTTLS: the client must
    # stop there rather than fall back to a plain-text login.
    source = ImapMailSource("support", dovecot.source_config(security="starttls"))

    with pytest.raises(SourceError) as caught:
        source.connect()
    source.close()

    assert "STARTTLS" in str(caught.value)
    assert not isinstance(caught.value, SourceAuthError)
    wait_for_logs(dovecot, r"imap-login: Info: Disconnected")
    log = dovecot.log()
    assert "Login:" not in log and "auth failed" not in log


def test_plaintext_login_is_refused_before_starttls(
    make: Callable[..., DovecotServer], opened: list[ImapMailSource]
) -> None:
    server = make(tls=True, plaintext_auth=False)

    with pytest.raises(SourceAuthError, match=r"PRIVACYREQUIRED") as caught:
        ImapMailSource("support", server.source_config(security="none")).connect()
    assert server.password not in error_chain(caught.value)

    # The same account over STARTTLS and over implicit TLS is fine.
    open_source(server, opened, security="starttls").noop()
    open_source(server, opened, security="tls").noop()


# ---------------------------------------------------------------------- XOAUTH2


@pytest.fixture
def oauth2_dovecot(make: Callable[..., DovecotServer]) -> DovecotServer:
    return make(tls=True, oauth2=True)


def test_xoauth2_login(
    oauth2_dovecot: DovecotServer, opened: list[ImapMailSource], caplog: pytest.LogCaptureFixture
) -> None:
    server = oauth2_dovecot
    assert server.oauth2_token is not None and server.introspection is not None
    server.append("INBOX", make_mail("for the token holder"))
    caplog.set_level(logging.DEBUG)

    source = open_source(server, opened, security="tls", auth="xoauth2", password=None,
                         oauth2_token_command=f"echo {server.oauth2_token}")
    (raw,) = source.fetch_new(None, is_recorded=never)

    assert b"Subject: for the token holder" in raw.data
    assert server.introspection.requests >= 1          # the oauth2 passdb really asked
    wait_for_logs(server, r"Login: user=<alice>, method=XOAUTH2")
    assert "AUTHENTICATE" in caplog.text               # imapclient's debug log is on ...
    assert server.oauth2_token not in caplog.text      # ... and never shows the token


def test_xoauth2_wrong_token_is_an_auth_error_without_the_token(
    oauth2_dovecot: DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = oauth2_dovecot
    assert server.introspection is not None
    cfg = server.source_config(security="tls", auth="xoauth2", password=None,
                               oauth2_token_command=f"echo {WRONG_TOKEN}")
    source = ImapMailSource("support", cfg, ssl_context=server.client_tls_context())
    caplog.set_level(logging.DEBUG)

    with pytest.raises(SourceAuthError) as caught:
        source.connect()

    assert "AUTHENTICATIONFAILED" in str(caught.value)
    assert not isinstance(caught.value, SourceConnectionError)
    assert server.introspection.requests >= 1
    assert WRONG_TOKEN not in error_chain(caught.value)
    assert WRONG_TOKEN not in caplog.text
    with pytest.raises(SourceConnectionError, match="not connected"):
        source.noop()


def test_xoauth2_token_of_another_user_is_refused(oauth2_dovecot: DovecotServer) -> None:
    # The introspection endpoint says the token belongs to alice; dovecot compares that with
    # the user the client claims.
    server = oauth2_dovecot
    server.append("INBOX", make_mail())   # alice's mailbox exists: only the name is wrong
    cfg = server.source_config(security="tls", auth="xoauth2", password=None, username="bob",
                               oauth2_token_command=f"echo {server.oauth2_token}")
    source = ImapMailSource("support", cfg, ssl_context=server.client_tls_context())

    with pytest.raises(SourceAuthError, match="login as 'bob' refused"):
        source.connect()


def test_password_login_still_works_beside_xoauth2(
    oauth2_dovecot: DovecotServer, opened: list[ImapMailSource]
) -> None:
    assert oauth2_dovecot.introspection is not None
    open_source(oauth2_dovecot, opened, security="starttls").noop()
    assert oauth2_dovecot.introspection.requests == 0   # LOGIN never reaches the oauth2 passdb
