"""IMAP-only behaviour, against a private dovecot: UIDs, IDLE, drops, logins, UIDVALIDITY."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest

from mailbot.errors import ConfigError, SourceAuthError, SourceConnectionError, SourceError
from mailbot.mail.backoff import Backoff, connect_with_retry
from mailbot.mail.imap import FETCH_BATCH, ImapMailSource
from tests.mail.conftest import make_mail
from tests.support.dovecot import DovecotServer

pytestmark = pytest.mark.dovecot


def never(_key: str) -> bool:
    return False


@pytest.fixture
def connect(dovecot: DovecotServer) -> Iterator[Callable[..., ImapMailSource]]:
    opened: list[ImapMailSource] = []

    def make(server: DovecotServer | None = None, **overrides: object) -> ImapMailSource:
        source = ImapMailSource("support", (server or dovecot).source_config(**overrides))
        source.connect()
        opened.append(source)
        return source

    yield make
    for source in opened:
        source.close()


def test_uids_keys_and_dates(dovecot: DovecotServer, connect: Callable[..., ImapMailSource]) -> None:
    uid = dovecot.append("INBOX", make_mail())
    source = connect()

    (raw,) = source.fetch_new(None, is_recorded=never)

    assert source.uidvalidity == dovecot.uidvalidity()
    assert raw.uid == uid
    assert raw.uidvalidity == source.uidvalidity
    assert raw.source_key == f"{source.uidvalidity}:{uid}"
    assert isinstance(raw.received_at, datetime) and raw.received_at.tzinfo is not None


def test_fetch_new_after_last_uid_and_the_star_quirk(
    dovecot: DovecotServer, connect: Callable[..., ImapMailSource]
) -> None:
    uids = [dovecot.append("INBOX", make_mail(f"m{n}")) for n in range(3)]
    source = connect()

    newer = [raw.uid for raw in source.fetch_new(uids[0], is_recorded=never)]
    # "UID 4:*" matches the last message (UID 3) when nothing is newer: must yield nothing.
    nothing = list(source.fetch_new(uids[-1], is_recorded=never))
    far_beyond = list(source.fetch_new(uids[-1] + 100, is_recorded=never))

    assert newer == uids[1:]
    assert nothing == []
    assert far_beyond == []


def test_fetch_new_crosses_batches_in_ascending_order(
    dovecot: DovecotServer, connect: Callable[..., ImapMailSource]
) -> None:
    with dovecot.client() as client:
        for n in range(FETCH_BATCH * 2 + 3):
            client.append("INBOX", make_mail(f"bulk {n}"))
    source = connect()

    uids = [raw.uid for raw in source.fetch_new(None, is_recorded=never) if raw.uid is not None]

    assert len(uids) == FETCH_BATCH * 2 + 3
    assert uids == sorted(uids)


def test_fetch_new_does_not_set_seen(dovecot: DovecotServer, connect: Callable[..., ImapMailSource]) -> None:
    uid = dovecot.append("INBOX", make_mail())
    source = connect()
    list(source.fetch_new(None, is_recorded=never))
    with dovecot.client() as client:
        assert b"\\Seen" not in client.get_flags([uid])[uid]


def test_mark_handled_with_a_custom_flag(
    dovecot: DovecotServer, connect: Callable[..., ImapMailSource]
) -> None:
    uid = dovecot.append("INBOX", make_mail())
    source = connect(after="flag", flag="$MailbotDone")
    (raw,) = source.fetch_new(None, is_recorded=never)
    source.mark_handled(raw.source_key)
    with dovecot.client() as client:
        flags = client.get_flags([uid])[uid]
    assert b"$MailbotDone" in flags
    assert b"\\Seen" not in flags


def test_move_without_the_move_capability(
    dovecot_factory: Callable[..., DovecotServer], connect: Callable[..., ImapMailSource]
) -> None:
    server = dovecot_factory(capabilities_without=("MOVE",))
    server.append("INBOX", make_mail("one"))
    source = connect(server, after="move", move_to="Verwerkt")
    (raw,) = source.fetch_new(None, is_recorded=never)

    source.mark_handled(raw.source_key)     # COPY + STORE \Deleted + UID EXPUNGE

    with server.client() as client:
        assert client.search("ALL") == []
        assert client.folder_status("Verwerkt", ["MESSAGES"])[b"MESSAGES"] == 1
    server.stop()


def test_key_from_an_old_uidvalidity_is_left_alone(
    dovecot: DovecotServer, connect: Callable[..., ImapMailSource], caplog: pytest.LogCaptureFixture
) -> None:
    uid = dovecot.append("INBOX", make_mail())
    source = connect()
    source.mark_handled(f"1:{uid}")
    source.flag_answered(f"1:{uid}")
    with dovecot.client() as client:
        assert client.get_flags([uid])[uid] == ()
    assert "older UIDVALIDITY" in caplog.text
    with pytest.raises(SourceError):
        source.mark_handled("not-a-key")


def test_uidvalidity_change_is_visible(
    dovecot: DovecotServer, connect: Callable[..., ImapMailSource]
) -> None:
    dovecot.append("INBOX", make_mail("one"))
    dovecot.append("INBOX", make_mail("two"))
    source = connect()
    before = source.uidvalidity
    old_keys = [raw.source_key for raw in source.fetch_new(None, is_recorded=never)]

    old, new = dovecot.change_uidvalidity()
    with pytest.raises(SourceConnectionError):
        source.noop()
    source.connect()

    assert (before, source.uidvalidity) == (old, new)
    again = list(source.fetch_new(None, is_recorded=set(old_keys).__contains__))
    assert len(again) == 2
    assert all(raw.source_key.startswith(f"{new}:") for raw in again)


# ---------------------------------------------------------------------- waiting


def test_idle_wake_latency(
    dovecot: DovecotServer, connect: Callable[..., ImapMailSource], record_property: Callable[..., None]
) -> None:
    source = connect()
    list(source.fetch_new(None, is_recorded=never))
    latencies = []
    for n in range(3):
        appended: list[float] = []

        def append_later(n: int, appended: list[float]) -> None:
            time.sleep(0.3)
            dovecot.append("INBOX", make_mail(f"idle {n}"))
            appended.append(time.monotonic())

        thread = threading.Thread(target=append_later, args=(n, appended))
        thread.start()
        assert source.wait(10.0) is True
        woke = time.monotonic()
        thread.join()
        latencies.append(woke - appended[0])
        assert len(list(source.fetch_new(None, is_recorded=never))) == n + 1
    record_property("idle_wake_latency_s", max(latencies))
    print(f"IDLE wake latency: {', '.join(f'{x * 1000:.0f} ms' for x in latencies)}")
    assert max(latencies) < 1.5


def test_idle_disabled_in_config(dovecot: DovecotServer, connect: Callable[..., ImapMailSource]) -> None:
    assert connect(idle=False).supports_idle is False


def test_without_idle_capability_wait_polls(
    dovecot_factory: Callable[..., DovecotServer], connect: Callable[..., ImapMailSource]
) -> None:
    server = dovecot_factory(capabilities_without=("IDLE",))
    source = connect(server, poll_interval=0.2)
    assert source.supports_idle is False

    assert source.wait(0.5) is False
    server.append("INBOX", make_mail())
    started = time.monotonic()
    assert source.wait(5.0) is True
    assert time.monotonic() - started < 2.0
    server.stop()


# ---------------------------------------------------------------------- failures


def test_server_stopping_is_a_connection_error(
    dovecot: DovecotServer, connect: Callable[..., ImapMailSource]
) -> None:
    source = connect()
    dovecot.stop()
    with pytest.raises(SourceConnectionError) as caught:
        list(source.fetch_new(None, is_recorded=never))
    assert isinstance(caught.value, ConnectionError)
    assert caught.value.__cause__ is not None
    with pytest.raises(SourceConnectionError, match="not connected"):
        source.noop()


def test_server_stopping_during_idle_ends_wait_with_a_connection_error(
    dovecot: DovecotServer, connect: Callable[..., ImapMailSource]
) -> None:
    source = connect()
    threading.Timer(0.3, dovecot.stop).start()
    started = time.monotonic()
    with pytest.raises(SourceConnectionError):
        source.wait(30.0)
    assert time.monotonic() - started < 5.0


def test_reconnect_with_backoff_after_a_restart(
    dovecot: DovecotServer, connect: Callable[..., ImapMailSource]
) -> None:
    dovecot.append("INBOX", make_mail())
    source = connect()
    dovecot.stop()
    with pytest.raises(SourceConnectionError):
        source.noop()
    threading.Timer(0.5, dovecot.start).start()

    backoff = Backoff(initial=0.1, maximum=0.3)
    assert connect_with_retry(source, backoff, threading.Event()) is True

    assert backoff.attempts == 0
    assert len(list(source.fetch_new(None, is_recorded=never))) == 1


def test_refused_connection(dovecot: DovecotServer) -> None:
    dovecot.stop()
    source = ImapMailSource("support", dovecot.source_config())
    with pytest.raises(SourceConnectionError, match="mailbox 'support': connecting"):
        source.connect()


def test_wrong_password_is_an_auth_error_without_the_password(
    dovecot: DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Wr0ng-Pa55word"
    source = ImapMailSource("support", dovecot.source_config(password=secret))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceAuthError) as caught:
        source.connect()
    chain = []
    exc: BaseException | None = caught.value
    while exc is not None:
        chain.append(f"{exc!s} {exc!r}")
        exc = exc.__cause__ or exc.__context__
    assert "AUTHENTICATIONFAILED" in str(caught.value)
    assert secret not in " ".join(chain)
    assert secret not in caplog.text
    assert not isinstance(caught.value, SourceConnectionError)


def test_right_password_never_reaches_the_log(
    dovecot: DovecotServer, connect: Callable[..., ImapMailSource], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    connect()
    assert "LOGIN" in caplog.text           # imapclient's debug log is on ...
    assert dovecot.password not in caplog.text  # ... and redacts the credential


def test_xoauth2_uses_the_token_command(dovecot: DovecotServer, caplog: pytest.LogCaptureFixture) -> None:
    # This dovecot offers no XOAUTH2, so the login is refused; what matters is that the token
    # came from the command and stays out of errors and logs.
    cfg = dovecot.source_config(password=None, auth="xoauth2",
                                oauth2_token_command="echo tok-SECRET-123")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceAuthError) as caught:
        ImapMailSource("support", cfg).connect()
    assert "tok-SECRET-123" not in str(caught.value)
    assert "tok-SECRET-123" not in caplog.text


@pytest.fixture
def hangs_up_at_login() -> Iterator[int]:
    """A fake IMAP server that greets, answers CAPABILITY and hangs up at LOGIN."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn, conn.makefile("rwb") as stream:
            stream.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake ready\r\n")
            stream.flush()
            for line in stream:
                tag, _, command = line.decode().partition(" ")
                if command.upper().startswith("CAPABILITY"):
                    stream.write(f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n".encode())
                    stream.flush()
                else:
                    return          # LOGIN: hang up without a word

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    listener.close()
    thread.join(timeout=5)


def test_drop_during_login_is_a_connection_error(dovecot: DovecotServer, hangs_up_at_login: int) -> None:
    source = ImapMailSource("support", dovecot.source_config(port=hangs_up_at_login))
    with pytest.raises(SourceConnectionError, match="during login"):
        source.connect()


def test_failing_token_command_is_a_config_error(dovecot: DovecotServer) -> None:
    cfg = dovecot.source_config(password=None, auth="xoauth2", oauth2_token_command="exit 4")
    source = ImapMailSource("support", cfg)
    with pytest.raises(ConfigError):
        source.connect()
    with pytest.raises(SourceConnectionError, match="not connected"):
        source.noop()
