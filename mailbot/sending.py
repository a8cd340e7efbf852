"""Sending approved drafts: claim, build, hand to the transport, record, file a copy, flag.

The order matters for "never two replies to one mail":

1. ``claim_sendable`` moves the draft to ``sending`` in its own transaction;
2. a draft that was sending before (a crash, a dropped connection) is first looked up in the
   Sent folder / outbox by its deterministic Message-ID: if it is there, it was sent;
3. the transport sends; on success the draft becomes ``sent`` at once, in a single small
   transaction, before anything slower (the copy to Sent, the \\Answered flag) is attempted;
4. 4xx and connection trouble put the draft back to ``approved`` with a ``not_before`` that
   backs off exponentially; 5xx marks it ``failed`` with the server's reason;
5. every round ends by filing what an earlier one left undone: a reply recorded as sent
   whose copy in Sent or \\Answered flag is missing (a crash or a mail server outage right
   after the send, or a reply that recovery found in Sent).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Protocol, TypeVar

from mailbot.config import Mailbox, Settings
from mailbot.errors import MailbotError, PermanentSendError, SendError, TemporarySendError
from mailbot.mail.compose import build_reply
from mailbot.mail.sender import Sender
from mailbot.models import DraftState
from mailbot.store import Draft, Store

log = logging.getLogger(__name__)
T = TypeVar("T")


class SentFolder(Protocol):
    """The parts of a mail source the sender needs (IMAP or Maildir)."""

    def connect(self) -> None: ...
    def close(self) -> None: ...
    def has_sent(self, message_id: str) -> bool: ...
    def append_sent(self, message: bytes) -> None: ...
    def flag_answered(self, source_key: str) -> None: ...


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    already_sent: int = 0


class SendWorker:
    """Sends what is due for all mailboxes. One instance per daemon; safe to call repeatedly."""

    def __init__(self, settings: Settings, store: Store, *,
                 senders: dict[str, Sender], sent_folders: dict[str, Callable[[], SentFolder]],
                 worker_id: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._settings = settings
        self._store = store
        self._senders = senders
        self._sent_folders = sent_folders
        self._worker = worker_id
        self._clock = clock

    async def send_due(self, *, limit: int = 50) -> SendReport:
        """Claim and send every due draft (in batches of ``limit``) until none is left."""
        report = SendReport()
        folders = _Folders(self._sent_folders)
        try:
            self.recover_stuck(folders=folders)
            while True:
                drafts = self._store.claim_sendable(self._worker, self._clock(), limit=limit)
                if not drafts:
                    break
                for draft in drafts:
                    await self._send_one(draft, report, folders)
            self._file_missing_copies(folders)
        finally:
            folders.close()
        return report

    def recover_stuck(self, older_than: timedelta = timedelta(minutes=2), *,
                      folders: _Folders | None = None) -> None:
        """Drafts left in ``sending`` by a dead worker: sent if the copy exists, else retried.

        A claim by a process of this host that no longer runs is stale at once (a restart
        after a crash goes on immediately); any other claim only after ``older_than``, since
        its worker may still be talking to the relay.
        """
        own = folders is None
        folders = folders or _Folders(self._sent_folders)
        try:
            self._recover(folders, older_than)
        finally:
            if own:
                folders.close()

    def _recover(self, folders: _Folders, older_than: timedelta) -> None:
        now = self._clock()
        for draft in self._store.stuck_sending(now):
            stale = (draft.claimed_at is not None and draft.claimed_at < now - older_than) or (
                draft.claimed_by != self._worker and _dead_local_worker(draft.claimed_by))
            if not stale:
                continue
            if self._already_sent(draft, folders):
                self._store.mark_sent(draft.id, actor=self._worker)
                log.info("draft %s was sent before a crash; recorded as sent", draft.id)
            else:
                self._store.retry_later(draft.id, "recovered after an interrupted send", None,
                                        now, actor=self._worker)

    async def _send_one(self, draft: Draft, report: SendReport, folders: _Folders) -> None:
        mailbox = self._settings.mailbox(draft.mailbox)
        if draft.attempts > 0 and self._already_sent(draft, folders):
            self._store.mark_sent(draft.id, actor=self._worker)
            report.already_sent += 1
            return
        message = _message_for(draft, mailbox)
        try:
            await self._senders[draft.mailbox].send(message)
        except PermanentSendError as exc:
            self._store.mark_failed(draft.id, exc.problem, exc.code, actor=self._worker)
            log.warning("draft %s failed permanently: %s", draft.id, exc)
            report.failed += 1
            return
        except SendError as exc:  # TemporarySendError, or anything else not known to be final
            self._retry(draft, exc, report)
            return
        self._store.mark_sent(draft.id, actor=self._worker)
        report.sent += 1
        self._file_copy(draft, message.as_bytes(), folders)

    def _retry(self, draft: Draft, exc: SendError, report: SendReport) -> None:
        sending = self._settings.sending
        if draft.attempts + 1 >= sending.max_attempts:
            self._store.mark_failed(
                draft.id, f"gave up after {draft.attempts + 1} attempts: {exc.problem}", exc.code,
                actor=self._worker)
            report.failed += 1
            return
        delay = min(sending.backoff_initial * 2 ** draft.attempts, sending.backoff_max)
        self._store.retry_later(draft.id, exc.problem, exc.code,
                                self._clock() + timedelta(seconds=delay), actor=self._worker)
        log.info("draft %s: %s; retrying in %.0f s", draft.id, exc, delay)
        report.retried += 1

    def _already_sent(self, draft: Draft, folders: _Folders) -> bool:
        try:
            return folders.use(draft.mailbox, lambda folder: folder.has_sent(draft.message_id))
        except MailbotError as exc:
            # Without the check we cannot know; waiting is safer than a possible second reply.
            raise TemporarySendError(f"cannot check the Sent folder before retrying: {exc}") from exc

    def _file_copy(self, draft: Draft, data: bytes, folders: _Folders) -> None:
        """Copy to Sent and flag the original \\Answered; failures here never resend."""
        source_key = self._store.get_mail(draft.mail_id).source_key

        def file(folder: SentFolder) -> None:
            folder.append_sent(data)
            folder.flag_answered(source_key)

        try:
            folders.use(draft.mailbox, file)
            self._store.mark_answered_done(draft.mail_id)
        except MailbotError as exc:
            log.warning("draft %s sent, but filing the copy failed: %s", draft.id, exc)

    def _file_missing_copies(self, folders: _Folders, *, limit: int = 100) -> None:
        """File the copies and \\Answered flags that ``_file_copy`` could not (it never
        raises: the reply is out, and nothing may send it again), and those of replies that
        recovery or a retry found in Sent and recorded as sent without filing anything.

        The copy is looked up first, so a copy that made it (or that the relay filed itself)
        is not filed twice. A mail server that is still down ends the pass; the next round
        tries again.
        """
        for box in self._settings.mailboxes:
            for mail in self._store.pending_answered_flags(box.name, limit=limit):
                draft = self._store.draft_of_mail(mail.id)
                if draft is None or draft.state is not DraftState.SENT:
                    continue  # pending_answered_flags only lists mails with a sent draft
                data = _message_for(draft, box, date=draft.sent_at).as_bytes()

                def file(folder: SentFolder, draft: Draft = draft, data: bytes = data,
                         source_key: str = mail.source_key) -> None:
                    if not folder.has_sent(draft.message_id):
                        folder.append_sent(data)
                    folder.flag_answered(source_key)

                try:
                    folders.use(box.name, file)
                except MailbotError as exc:
                    log.warning("mailbox %s: filing the copy of sent draft %s failed: %s",
                                box.name, draft.id, exc)
                    break
                self._store.mark_answered_done(mail.id)
                log.info("draft %s: copy in Sent and \\Answered flag filed afterwards", draft.id)


class _Folders:
    """One connection per mailbox for a whole round of sending, opened on first use, so a
    batch of replies costs one IMAP login instead of one (or two) per reply. A connection
    that failed is dropped and opened afresh on its next use."""

    def __init__(self, factories: dict[str, Callable[[], SentFolder]]) -> None:
        self._factories = factories
        self._open: dict[str, SentFolder] = {}

    def use(self, mailbox: str, action: Callable[[SentFolder], T]) -> T:
        folder = self._open.get(mailbox)
        if folder is None:
            folder = self._factories[mailbox]()
            folder.connect()
            self._open[mailbox] = folder
        try:
            return action(folder)
        except MailbotError:
            self._open.pop(mailbox, None)
            folder.close()
            raise

    def close(self) -> None:
        for folder in self._open.values():
            folder.close()
        self._open.clear()


def _message_for(draft: Draft, mailbox: Mailbox, *, date: datetime | None = None) -> EmailMessage:
    return build_reply(
        from_addr=mailbox.address,
        from_name=mailbox.display_name,
        to_addr=draft.to_addr,
        to_name=draft.to_name or "",
        subject=draft.subject,
        body=draft.body,
        message_id=draft.message_id,
        in_reply_to=draft.in_reply_to,
        references=draft.references,
        auto=draft.auto,
        language=draft.language or "en",
        date=date,
    )


def _dead_local_worker(worker: str | None) -> bool:
    """True for a worker id "host:pid" of this host whose process is gone."""
    if not worker or ":" not in worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False
