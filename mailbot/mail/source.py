"""The interface every inbox backend implements (IMAP, Maildir).

A source is used from one thread at a time, in this order::

    source.connect()                 # may raise SourceConnectionError / SourceAuthError
    for raw in source.fetch_new(checkpoint_uid, is_recorded=store.has_key):
        ...                          # parse, decide, store; then
        source.mark_handled(raw.source_key)
    changed = source.wait(240.0)     # only if source.supports_idle; else poll on a timer
    ...
    source.close()

Every call after ``connect()`` may raise ``SourceConnectionError`` when the connection has
dropped; the caller then calls ``close()`` and ``connect()`` again (see
``mailbot.mail.backoff.connect_with_retry``). No call raises anything but ``SourceError`` and
its subclasses (and ``ConfigError`` from ``connect()`` when an OAuth2 token command fails).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

from mailbot.models import RawMail

#: How a caller tells a source which messages it already recorded: ``is_recorded(source_key)``.
IsRecorded = Callable[[str], bool]


@runtime_checkable
class MailSource(Protocol):
    """One watched mailbox folder (IMAP folder or Maildir)."""

    @property
    def uidvalidity(self) -> int | None:
        """The folder's UIDVALIDITY as of the last ``connect()``; None for Maildir and before
        ``connect()``. When it differs from the checkpoint's, UIDs were renumbered: pass
        ``last_uid=None`` to ``fetch_new`` and dedupe on Message-ID."""
        ...

    @property
    def supports_idle(self) -> bool:
        """True (after ``connect()``) when ``wait()`` is a cheap push-style wait that returns
        soon after a change, so the caller may loop on it. False: poll ``fetch_new`` on a
        timer every ``poll_interval`` instead (``wait()`` still works, but only polls)."""
        ...

    def connect(self) -> None:
        """Open the connection, log in and select the folder. May be called again after
        ``close()`` (reconnect). Raises ``SourceConnectionError`` or ``SourceAuthError``."""
        ...

    def close(self) -> None:
        """Log out and drop the connection. Never raises; safe to call twice or after a drop."""
        ...

    def fetch_new(
        self, last_uid: int | None, *, is_recorded: IsRecorded, limit: int | None = None
    ) -> Iterator[RawMail]:
        """Yield the messages newer than ``last_uid`` (all messages when None) whose
        ``source_key`` is not recorded, oldest first (ascending UID for IMAP; delivery time,
        then key, for Maildir), at most ``limit`` of them.

        Reading never marks a message as seen. Messages are fetched in small batches, so the
        caller may call ``mark_handled()`` etc. between two items. Example item::

            RawMail(mailbox="support", source_key="1700000000:42", data=b"Received: ...",
                    uidvalidity=1700000000, uid=42, received_at=datetime(..., tzinfo=...))
        """
        ...

    def wait(self, timeout: float) -> bool:
        """Block until the folder may have changed, or ``timeout`` seconds passed. Returns
        True when a change was seen (new message), False on timeout. Call between two
        ``fetch_new`` runs; keep ``timeout`` under 5 minutes (servers end a longer IDLE)."""
        ...

    def mark_handled(self, source_key: str) -> None:
        """Apply the configured ``after`` action (flag, move or none) to one message. A
        message that is gone already is logged, not an error."""
        ...

    def flag_answered(self, source_key: str) -> None:
        """Set \\Answered (Maildir: R) on the original after a reply went out. A message that
        was moved or deleted meanwhile is logged, not an error."""
        ...

    def append_sent(self, message: bytes) -> None:
        """Store a copy of a sent reply, marked as seen, in the sent folder (created when
        missing). Does nothing when the config has no sent folder."""
        ...

    def has_sent(self, message_id: str) -> bool:
        """True when the sent folder holds a message with this Message-ID (with or without
        angle brackets). Used before retrying a send a crash interrupted."""
        ...

    def noop(self) -> None:
        """Check that the connection (or directory) still works; raises ``SourceError`` if
        not. Cheap: used as a health check and to keep the connection alive."""
        ...
