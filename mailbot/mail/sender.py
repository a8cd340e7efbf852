"""The interface both reply transports implement (SMTP relay, outbox folder)."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol, runtime_checkable


@runtime_checkable
class Sender(Protocol):
    """Hands one finished reply to its transport.

    ``send`` may be called any time, from one event loop; each call stands alone (there is
    no connect/close). It returns when the transport has taken responsibility for the
    message, and raises ``TemporarySendError`` (retry later) or ``PermanentSendError``
    (record the reason, do not retry); both carry the SMTP ``code`` when there was one.
    """

    async def send(self, message: EmailMessage) -> None:
        ...
