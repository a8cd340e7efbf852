"""Sending replies through an SMTP relay, with aiosmtplib.

One connection per reply: replies are few, and a fresh connection never inherits a broken
state. aiosmtplib's exceptions are translated here and nowhere else::

    4xx answer (any stage), timeout, refused or dropped connection  -> TemporarySendError
    5xx answer (any stage), every recipient refused with 5xx,
    a missing server feature (STARTTLS, AUTH)                        -> PermanentSendError

A connection dropped after the message data went out is ambiguous (the relay may have
queued it): that is a TemporarySendError, and the caller checks ``has_sent`` on the Sent
folder before trying again.
"""

from __future__ import annotations

import logging
import ssl
from email.message import EmailMessage
from email.utils import getaddresses

import aiosmtplib
from aiosmtplib import (
    SMTPException,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponse,
    SMTPResponseException,
)

from mailbot.config import SmtpTransport
from mailbot.errors import ConfigError, PermanentSendError, SendError, TemporarySendError

log = logging.getLogger(__name__)


class SmtpSender:
    """Sends through the relay in ``cfg``; ``tls_context`` overrides the verifying default."""

    def __init__(
        self,
        cfg: SmtpTransport,
        *,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.cfg = cfg
        self._tls_context = tls_context
        self._local_hostname = local_hostname

    async def send(self, message: EmailMessage) -> None:
        """Connect, (STARTTLS,) log in, send ``message`` and quit.

        The envelope sender is the From address; recipients are To, Cc and Bcc (Bcc is not
        transmitted). Returns once the relay accepted the data (250 after DATA). Raises
        TemporarySendError or PermanentSendError, each with ``code`` when the relay answered.
        """
        sender = envelope_sender(message)
        cfg = self.cfg
        smtp = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.effective_port(),
            timeout=cfg.timeout,
            use_tls=cfg.security == "tls",
            # False, not None: None would upgrade opportunistically when security is "none".
            start_tls=cfg.security == "starttls",
            tls_context=self._tls_context,
            local_hostname=self._local_hostname,
        )
        try:
            refused = await self._transfer(smtp, message, sender)
        except BaseException:
            # After a failure a polite QUIT could wait out another timeout: just hang up.
            smtp.close()
            raise
        await _quit(smtp)
        if refused:
            # Some recipients took it: retrying would send it to them twice, so only log.
            log.warning("relay refused some recipients of %s: %s", message.get("Message-ID"),
                        "; ".join(f"{rcpt} ({resp.code} {resp.message})"
                                  for rcpt, resp in refused.items()))

    async def _transfer(
        self, smtp: aiosmtplib.SMTP, message: EmailMessage, sender: str
    ) -> dict[str, SMTPResponse]:
        """Connect, log in, send; returns the refused recipients (when others accepted)."""
        try:
            await smtp.connect()
            await self._login(smtp)
            refused, _reply = await smtp.send_message(message, sender=sender)
        except SMTPException as exc:
            raise _translate(exc) from exc
        except OSError as exc:  # refused connects, resets and TLS failures outside aiosmtplib
            raise TemporarySendError(f"connection to {self.cfg.host} failed: {exc}") from exc
        except ValueError as exc:  # aiosmtplib: no recipients in To/Cc/Bcc
            raise PermanentSendError(f"the reply cannot be sent: {exc}") from exc
        return refused

    async def _login(self, smtp: aiosmtplib.SMTP) -> None:
        cfg = self.cfg
        if cfg.auth == "none":
            return
        try:
            secret = cfg.secret()
        except ConfigError as exc:
            # The token refresher may be down for a moment; the next attempt runs it again.
            raise TemporarySendError(f"cannot get a login token: {exc.problem}") from exc
        if cfg.auth == "xoauth2":
            await smtp.auth_xoauth2(cfg.username, secret)
        else:
            await smtp.login(cfg.username, secret)


def envelope_sender(message: EmailMessage) -> str:
    """The addr-spec of the first From address; raises PermanentSendError when there is none."""
    addresses = [addr for _name, addr in getaddresses([str(v) for v in message.get_all("From", [])])]
    if not addresses or not addresses[0] or "@" not in addresses[0]:
        raise PermanentSendError("the reply has no usable From address")
    return addresses[0]


def _translate(exc: SMTPException) -> SendError:
    if isinstance(exc, SMTPRecipientsRefused):
        codes = [refusal.code for refusal in exc.recipients]
        detail = "; ".join(
            f"recipient {refusal.recipient} refused: {refusal.message}" for refusal in exc.recipients
        )
        if all(400 <= code < 500 for code in codes):
            return TemporarySendError(detail, code=codes[0])
        return PermanentSendError(detail, code=next(c for c in codes if not 400 <= c < 500))
    if isinstance(exc, SMTPResponseException):
        if 500 <= exc.code < 600:
            return PermanentSendError(exc.message, code=exc.code)
        # 4xx, and the -1 aiosmtplib uses for a garbled or missing answer.
        return TemporarySendError(exc.message, code=exc.code if exc.code > 0 else None)
    if isinstance(exc, SMTPNotSupported):
        return PermanentSendError(f"the relay lacks a needed feature: {exc.message}")
    if isinstance(exc, ConnectionError | TimeoutError):
        # SMTPServerDisconnected, SMTPConnectError, SMTPTimeoutError and their subclasses.
        return TemporarySendError(f"connection trouble: {exc.message or type(exc).__name__}")
    # What remains is configuration: AUTH not offered, no common AUTH mechanism.
    return PermanentSendError(exc.message or type(exc).__name__)


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    if not smtp.is_connected:
        return
    try:
        await smtp.quit()
    except (SMTPException, OSError):
        # The reply is already accepted or already failed; a rude goodbye changes neither.
        smtp.close()
