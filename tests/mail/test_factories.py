"""make_source / make_sender pick the backend the config names."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from mailbot.config import ImapSource, MaildirSource, OutboxTransport, SmtpTransport
from mailbot.mail import MailSource, Sender, make_sender, make_source
from mailbot.mail.imap import ImapMailSource
from mailbot.mail.maildir import MaildirMailSource
from mailbot.mail.outbox import OutboxSender
from mailbot.mail.smtp import SmtpSender


def test_make_source(tmp_path: Path) -> None:
    imap_cfg = ImapSource(kind="imap", host="mail.example", username="u", password=SecretStr("p"))
    imap = make_source("support", imap_cfg)
    maildir = make_source("support", MaildirSource(kind="maildir", path=tmp_path))
    assert isinstance(imap, ImapMailSource) and isinstance(imap, MailSource)
    assert isinstance(maildir, MaildirMailSource) and isinstance(maildir, MailSource)
    assert imap.uidvalidity is None and not imap.supports_idle      # nothing happens before connect()


def test_make_sender(tmp_path: Path) -> None:
    smtp_cfg = SmtpTransport(kind="smtp", host="relay.example", username="u", password=SecretStr("p"))
    smtp = make_sender(smtp_cfg)
    outbox = make_sender(OutboxTransport(kind="outbox", path=tmp_path))
    assert isinstance(smtp, SmtpSender) and isinstance(smtp, Sender)
    assert isinstance(outbox, OutboxSender) and isinstance(outbox, Sender)
