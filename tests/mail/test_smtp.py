"""Sending replies to a real aiosmtpd: headers on the wire, faults, AUTH, TLS."""

from __future__ import annotations

import asyncio
import email
import socket
import threading
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest

from mailbot.errors import PermanentSendError, TemporarySendError
from mailbot.mail.compose import build_reply, make_message_id
from mailbot.mail.sender import Sender
from mailbot.mail.smtp import SmtpSender
from tests.support.smtpd import SmtpServer


def reply(**overrides: Any) -> EmailMessage:
    values: dict[str, Any] = {
        "from_addr": "support@shop.example", "from_name": "Shop", "to_addr": "jan@example.nl",
        "to_name": "Jan Jansen", "subject": "Re: Kapotte stoel", "body": "Beste Jan,\n\nZoë € 5\n",
        "message_id": make_message_id("support", "orig@example.nl", "shop.example"),
        "in_reply_to": "<orig@example.nl>", "references": ["<root@example.nl>"], "auto": True,
        "language": "nl",
    }
    values.update(overrides)
    return build_reply(**values)


def send(sender: SmtpSender, message: EmailMessage) -> None:
    asyncio.run(sender.send(message))


def test_is_a_sender(smtpd: SmtpServer) -> None:
    assert isinstance(SmtpSender(smtpd.transport_config()), Sender)


def test_reply_arrives_as_built(smtpd: SmtpServer) -> None:
    message = reply()
    send(SmtpSender(smtpd.transport_config()), message)

    (got,) = smtpd.wait_for(1)
    assert got.mail_from == "support@shop.example"
    assert got.rcpt_tos == ["jan@example.nl"]
    assert got.login == smtpd.user
    parsed = email.message_from_bytes(got.content, policy=policy.default)
    for name in ("Message-ID", "In-Reply-To", "References", "Auto-Submitted", "X-Mailbot",
                 "Subject", "Content-Language"):
        assert parsed[name] == message[name], name
    assert parsed["References"] == "<root@example.nl> <orig@example.nl>"
    assert parsed.get_content().replace("\r\n", "\n") == "Beste Jan,\n\nZoë € 5\n"


def test_without_login(smtpd: SmtpServer) -> None:
    send(SmtpSender(smtpd.transport_config(auth="none", username="", password=None)), reply())
    assert smtpd.wait_for(1)[0].login is None


@pytest.mark.parametrize(("stage", "code", "text", "error"), [
    ("DATA", 451, "4.3.0 Try again later", TemporarySendError),
    ("DATA", 550, "5.7.1 Message rejected as spam", PermanentSendError),
    ("MAIL", 421, "4.7.0 Too many connections", TemporarySendError),
    ("MAIL", 553, "5.7.1 Sender not allowed", PermanentSendError),
    ("RCPT", 450, "4.2.1 Greylisted", TemporarySendError),
])
def test_server_answers_become_typed_errors(
    smtpd: SmtpServer, stage: str, code: int, text: str, error: type[Exception]
) -> None:
    smtpd.fail_next(code, text, at=stage)
    with pytest.raises(error) as caught:
        send(SmtpSender(smtpd.transport_config()), reply())
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert text in str(caught.value)
    assert smtpd.received == []
    # The fault was for one attempt only: the retry goes through.
    send(SmtpSender(smtpd.transport_config()), reply())
    assert len(smtpd.wait_for(1)) == 1


def test_refused_recipient_is_permanent_and_named(smtpd: SmtpServer) -> None:
    smtpd.fail_next(550, "5.1.1 No such user", at="RCPT")
    with pytest.raises(PermanentSendError) as caught:
        send(SmtpSender(smtpd.transport_config()), reply())
    assert caught.value.code == 550
    assert "jan@example.nl" in str(caught.value)
    assert "No such user" in str(caught.value)


def test_connection_dropped_during_data_is_temporary(smtpd: SmtpServer) -> None:
    smtpd.drop_next_data()
    with pytest.raises(TemporarySendError) as caught:
        send(SmtpSender(smtpd.transport_config()), reply())
    assert caught.value.code is None
    assert isinstance(caught.value.__cause__, ConnectionError)


def test_refused_connection_is_temporary(smtpd: SmtpServer) -> None:
    cfg = smtpd.transport_config()
    smtpd.stop()
    with pytest.raises(TemporarySendError):
        send(SmtpSender(cfg), reply())


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_silent_server_times_out_as_temporary(smtpd: SmtpServer, silent_server: int) -> None:
    cfg = smtpd.transport_config(port=silent_server, timeout=0.5)
    with pytest.raises(TemporarySendError, match="connection trouble"):
        send(SmtpSender(cfg), reply())


def test_wrong_password_is_permanent_and_secret_free(smtpd: SmtpServer) -> None:
    with pytest.raises(PermanentSendError) as caught:
        send(SmtpSender(smtpd.transport_config(password="Wr0ng-Pa55")), reply())
    assert caught.value.code == 535
    assert "Wr0ng-Pa55" not in str(caught.value)
    assert smtpd.received == []


def test_xoauth2_with_the_token_command(smtpd: SmtpServer) -> None:
    cfg = smtpd.transport_config(auth="xoauth2", password=None,
                                 oauth2_token_command=f"echo {smtpd.token}")
    send(SmtpSender(cfg), reply())
    assert smtpd.wait_for(1)[0].login == smtpd.user

    bad = smtpd.transport_config(auth="xoauth2", password=None, oauth2_token_command="echo expired")
    with pytest.raises(PermanentSendError) as caught:
        send(SmtpSender(bad), reply())
    assert caught.value.code == 535


def test_failing_token_command_is_temporary(smtpd: SmtpServer) -> None:
    cfg = smtpd.transport_config(auth="xoauth2", password=None, oauth2_token_command="exit 3")
    with pytest.raises(TemporarySendError, match="token"):
        send(SmtpSender(cfg), reply())


def test_starttls(smtpd: SmtpServer) -> None:
    cfg = smtpd.transport_config(security="starttls")
    send(SmtpSender(cfg, tls_context=smtpd.client_tls_context()), reply())
    assert len(smtpd.wait_for(1)) == 1


def test_starttls_with_an_untrusted_certificate_fails(smtpd: SmtpServer) -> None:
    with pytest.raises(TemporarySendError):
        send(SmtpSender(smtpd.transport_config(security="starttls")), reply())
    assert smtpd.received == []


def test_implicit_tls(smtpd_tls: SmtpServer) -> None:
    send(SmtpSender(smtpd_tls.transport_config(), tls_context=smtpd_tls.client_tls_context()), reply())
    assert len(smtpd_tls.wait_for(1)) == 1


def test_message_without_from_is_permanent(smtpd: SmtpServer) -> None:
    message = reply()
    del message["From"]
    with pytest.raises(PermanentSendError, match="From"):
        send(SmtpSender(smtpd.transport_config()), message)


def test_message_without_recipients_is_permanent(smtpd: SmtpServer) -> None:
    message = reply()
    del message["To"]
    with pytest.raises(PermanentSendError, match="recipient"):
        send(SmtpSender(smtpd.transport_config()), message)
