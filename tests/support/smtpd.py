"""A real SMTP server for tests (pytest plugin "tests.support.smtpd"), with aiosmtpd.

The server runs aiosmtpd's Controller in its own thread on a free port of 127.0.0.1 and
records every accepted message. Tests can program faults::

    smtpd.fail_next(451, "4.3.0 try again later")          # at DATA, once
    smtpd.fail_next(550, "5.1.1 no such user", at="RCPT")
    smtpd.drop_next_data()        # close the connection after the data, before the reply
    smtpd.wait_for(1, timeout=5)  # -> [Received(mail_from, rcpt_tos, content, login)]

AUTH PLAIN, LOGIN and XOAUTH2 are offered (also without TLS) for ``smtpd.user`` with
``smtpd.password`` (XOAUTH2: ``smtpd.token``); STARTTLS is offered with a self-signed
certificate whose file is ``smtpd.cert_file`` (``smtpd.client_tls_context()`` trusts it).
The ``smtpd_tls`` fixture speaks implicit TLS instead.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mailbot.config import SmtpTransport

USER = "bot@shop.example"
PASSWORD = "smtp-pass-123"
TOKEN = "ya29.test-token"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    login: str | None


@dataclass
class _Fault:
    stage: str          # "MAIL", "RCPT" or "DATA"
    reply: str | None   # None: drop the connection
    times: int


@dataclass
class _State:
    received: list[Received] = field(default_factory=list)
    faults: list[_Fault] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)


class _Handler:
    """aiosmtpd handler: applies programmed faults, records what got through."""

    def __init__(self, state: _State, token: str) -> None:
        self.state = state
        self.token = token

    def _fault(self, stage: str) -> _Fault | None:
        with self.state.changed:
            for fault in self.state.faults:
                if fault.stage == stage and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        fault = self._fault("MAIL")
        if fault is not None:
            return _apply(fault, server)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        fault = self._fault("RCPT")
        if fault is not None:
            return _apply(fault, server)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self._fault("DATA")
        if fault is not None:
            return _apply(fault, server)
        content = envelope.original_content or b""
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        with self.state.changed:
            self.state.received.append(Received(
                mail_from=envelope.mail_from or "", rcpt_tos=list(envelope.rcpt_tos),
                content=content, login=login,
            ))
            self.state.changed.notify_all()
        return "250 2.0.0 Message accepted for delivery"

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """AUTH XOAUTH2 <base64 "user=U\\x01auth=Bearer T\\x01\\x01">, as Gmail speaks it."""
        try:
            decoded = base64.b64decode(args[1], validate=True).decode()
            fields = dict(part.split("=", 1) for part in decoded.split("\x01") if part)
        except (IndexError, ValueError):
            return AuthResult(success=False, handled=False, message="501 5.5.2 cannot decode XOAUTH2")
        if fields.get("auth") != f"Bearer {self.token}":
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=LoginPassword(fields["user"].encode(), b""))


def _apply(fault: _Fault, server: SMTP) -> str:
    if fault.reply is None:
        transport = server.transport
        assert isinstance(transport, asyncio.Transport)
        transport.abort()
        return "451 unreachable: the connection is gone"
    return fault.reply


class SmtpServer:
    """One running aiosmtpd; see the module docstring."""

    def __init__(self, cert_file: Path, key_file: Path, *, implicit_tls: bool = False) -> None:
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.user = USER
        self.password = PASSWORD
        self.token = TOKEN
        self.cert_file = cert_file
        self.implicit_tls = implicit_tls
        self._state = _State()
        self._running = False
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(cert_file, key_file)
        self._controller = Controller(
            _Handler(self._state, TOKEN),
            hostname=self.host,
            port=self.port,
            ssl_context=server_tls if implicit_tls else None,
            tls_context=None if implicit_tls else server_tls,
            require_starttls=False,
            authenticator=self._authenticate,
            auth_require_tls=False,
            auth_required=False,
        )

    def start(self) -> None:
        self._controller.start()
        self._running = True

    def stop(self) -> None:
        """Stop the server; safe to call twice."""
        if self._running:
            self._running = False
            self._controller.stop()

    @property
    def received(self) -> list[Received]:
        with self._state.changed:
            return list(self._state.received)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Block until ``count`` messages arrived; returns them all. AssertionError on timeout."""
        with self._state.changed:
            ok = self._state.changed.wait_for(lambda: len(self._state.received) >= count, timeout)
            got = list(self._state.received)
        assert ok, f"expected {count} messages within {timeout} s, got {len(got)}"
        return got

    def fail_next(self, code: int, text: str, *, times: int = 1, at: str = "DATA") -> None:
        """Answer the next ``times`` MAIL/RCPT/DATA commands with ``code text``."""
        self._add(_Fault(at.upper(), f"{code} {text}", times))

    def drop_next_data(self, *, times: int = 1) -> None:
        """Close the connection once the message data arrived, without answering (the
        ambiguous case: the client cannot know whether the message was taken)."""
        self._add(_Fault("DATA", None, times))

    def client_tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_file))

    def transport_config(self, **overrides: object) -> SmtpTransport:
        """An SmtpTransport for this server: no TLS, password login."""
        values: dict[str, object] = {
            "kind": "smtp", "host": self.host, "port": self.port,
            "security": "tls" if self.implicit_tls else "none",
            "username": self.user, "password": self.password, "timeout": 5.0,
        }
        values.update(overrides)
        return SmtpTransport.model_validate(values)

    def _add(self, fault: _Fault) -> None:
        with self._state.changed:
            self._state.faults.append(fault)

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == self.user
              and auth_data.password.decode() == self.password)
        # handled=False: aiosmtpd then answers 535 itself ("handled" means "already answered").
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def smtpd_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert file, key file)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed for the SMTP TLS tests: apt-get install -y openssl",
                    pytrace=False)
    folder = tmp_path_factory.mktemp("smtpd-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="session")
def smtpd_factory(smtpd_certificate: tuple[Path, Path]) -> Iterator[Callable[..., SmtpServer]]:
    """``make_server(implicit_tls=False)`` starts another aiosmtpd; all stop at session end."""
    servers: list[SmtpServer] = []

    def make_server(*, implicit_tls: bool = False) -> SmtpServer:
        server = SmtpServer(*smtpd_certificate, implicit_tls=implicit_tls)
        server.start()
        servers.append(server)
        return server

    yield make_server
    for server in servers:
        server.stop()


@pytest.fixture
def smtpd(smtpd_factory: Callable[..., SmtpServer]) -> Iterator[SmtpServer]:
    """A fresh SMTP server with STARTTLS offered and AUTH allowed without TLS."""
    server = smtpd_factory()
    yield server
    server.stop()


@pytest.fixture
def smtpd_tls(smtpd_factory: Callable[..., SmtpServer]) -> Iterator[SmtpServer]:
    """A fresh SMTP server that speaks implicit TLS (port 465 style)."""
    server = smtpd_factory(implicit_tls=True)
    yield server
    server.stop()
