"""The only code that talks to mail servers.

    source.py   MailSource protocol           imap.py     ImapMailSource (imapclient)
    sender.py   Sender protocol               maildir.py  MaildirMailSource (local Maildir)
    compose.py  building replies (pure)       smtp.py     SmtpSender (aiosmtplib)
    backoff.py  reconnect delays              outbox.py   OutboxSender (.eml files)

``make_source`` and ``make_sender`` pick the backend a mailbox's config names.
"""

from __future__ import annotations

from mailbot.config import ImapSource, MaildirSource, OutboxTransport, SmtpTransport
from mailbot.mail.sender import Sender
from mailbot.mail.source import MailSource


def make_source(mailbox_name: str, cfg: ImapSource | MaildirSource) -> MailSource:
    """A not yet connected source for ``cfg`` (call ``connect()`` on it)."""
    if isinstance(cfg, ImapSource):
        from mailbot.mail.imap import ImapMailSource

        return ImapMailSource(mailbox_name, cfg)
    from mailbot.mail.maildir import MaildirMailSource

    return MaildirMailSource(mailbox_name, cfg)


def make_sender(cfg: SmtpTransport | OutboxTransport) -> Sender:
    """The transport for ``cfg``; nothing is connected until ``send()``."""
    if isinstance(cfg, SmtpTransport):
        from mailbot.mail.smtp import SmtpSender

        return SmtpSender(cfg)
    from mailbot.mail.outbox import OutboxSender

    return OutboxSender(cfg)


__all__ = ["MailSource", "Sender", "make_sender", "make_source"]
