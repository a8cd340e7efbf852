"""The IMAP inbox, through imapclient.

Errors are translated here and nowhere else::

    socket errors, timeouts, imaplib abort (EOF, BYE)  -> SourceConnectionError
    login refused (LOGIN, AUTHENTICATE)                 -> SourceAuthError
    any other NO/BAD answer                             -> SourceError

After a ``SourceConnectionError`` the client is discarded; the caller reconnects with
``close()`` + ``connect()``. Secrets are never part of a message or a log line.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from mailbot.config import ImapSource
from mailbot.errors import SourceAuthError, SourceConnectionError, SourceError
from mailbot.mail.source import IsRecorded
from mailbot.models import RawMail

log = logging.getLogger(__name__)

FETCH_BATCH = 20          # UIDs per FETCH: bounds memory with large attachments
IDLE_SLICE = 1.0          # seconds per idle_check(); a dead socket is noticed within one slice
SEEN = "\\Seen"
ANSWERED = "\\Answered"
DELETED = "\\Deleted"


class ImapMailSource:
    """One IMAP folder, per the ``ImapSource`` config of mailbox ``mailbox_name``.

    ``ssl_context`` overrides the default (verifying) TLS context, e.g. for a private CA.
    Not thread-safe: use one instance per thread.
    """

    def __init__(
        self,
        mailbox_name: str,
        cfg: ImapSource,
        *,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.mailbox_name = mailbox_name
        self.cfg = cfg
        self._ssl_context = ssl_context
        self._clock = clock
        self._sleep = sleep
        self._client: IMAPClient | None = None
        self._uidvalidity: int | None = None
        self._capabilities: frozenset[bytes] = frozenset()
        self._known_folders: set[str] = set()

    # ------------------------------------------------------------------ connection

    @property
    def uidvalidity(self) -> int | None:
        return self._uidvalidity

    @property
    def supports_idle(self) -> bool:
        return self.cfg.idle and b"IDLE" in self._capabilities

    def connect(self) -> None:
        """Connect, (STARTTLS,) log in and select ``cfg.folder`` read-write.

        Raises SourceConnectionError (refused, TLS failure, timeout), SourceAuthError (login
        refused) or ConfigError (the OAuth2 token command failed).
        """
        self.close()
        self._known_folders.clear()
        cfg = self.cfg
        with self._translate("connecting"):
            client = IMAPClient(
                cfg.host,
                port=cfg.effective_port(),
                ssl=cfg.security == "tls",
                ssl_context=self._ssl_context,
                timeout=cfg.timeout,
            )
            self._client = client
            # Aware datetimes: INTERNALDATE becomes RawMail.received_at without guessing a zone.
            client.normalise_times = False
            if cfg.security == "starttls":
                client.starttls(self._ssl_context)
        self._login()
        with self._translate(f"selecting folder {cfg.folder!r}"):
            selected = self._require().select_folder(cfg.folder, readonly=False)
            self._uidvalidity = int(selected[b"UIDVALIDITY"])
            # Post-login capabilities differ from the greeting's (IDLE, MOVE, UIDPLUS).
            self._capabilities = frozenset(self._require().capabilities())
            self._take_change_notices()
        log.info(
            "mailbox %s: connected to %s:%s folder %s (UIDVALIDITY %s, IDLE %s)",
            self.mailbox_name, cfg.host, cfg.effective_port(), cfg.folder, self._uidvalidity,
            "yes" if self.supports_idle else "no",
        )

    def _login(self) -> None:
        cfg = self.cfg
        if cfg.auth == "none":
            return
        try:
            secret = cfg.secret()
        except BaseException:
            self._discard()
            raise
        client = self._require()
        try:
            if cfg.auth == "xoauth2":
                client.oauth2_login(cfg.username, secret)
            else:
                client.login(cfg.username, secret)
        except LoginError as exc:
            if isinstance(exc.__context__, IMAPClientAbortError):
                # imapclient turns every failure during login into LoginError, a dropped
                # connection (EOF, BYE) included: that is no verdict on the password.
                self._discard()
                raise SourceConnectionError(
                    self.mailbox_name, "connection lost during login"
                ) from exc.__context__
            # The server's own words help ("[AUTHENTICATIONFAILED]", "[UNAVAILABLE]"), but a
            # misbehaving server could echo the credential back: scrub it, and then do not
            # chain the original either (tracebacks print the cause).
            said = _text(exc)
            echoed = bool(secret) and secret in said
            self._discard()
            error = SourceAuthError(
                self.mailbox_name,
                f"login as {cfg.username!r} refused: {said.replace(secret, '***') if echoed else said}",
            )
            if echoed:
                raise error from None
            raise error from exc
        except (IMAPClientAbortError, OSError) as exc:
            self._discard()
            raise SourceConnectionError(
                self.mailbox_name, f"connection lost during login: {type(exc).__name__}"
            ) from exc

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # the connection is going away anyway; any failure means it already did
            try:
                client.shutdown()
            except Exception as exc:
                log.debug("mailbox %s: shutdown after failed logout: %s", self.mailbox_name, exc)

    def noop(self) -> None:
        """Send NOOP. Raises SourceConnectionError when the connection is gone."""
        with self._translate("sending NOOP"):
            self._require().noop()

    # ------------------------------------------------------------------ reading

    def fetch_new(
        self, last_uid: int | None, *, is_recorded: IsRecorded, limit: int | None = None
    ) -> Iterator[RawMail]:
        """Yield unrecorded messages with UID > ``last_uid`` (all when None), ascending.

        Uses ``UID SEARCH UID n:*`` and ``UID FETCH (BODY.PEEK[] INTERNALDATE)`` in batches
        of ``FETCH_BATCH``; a message expunged between SEARCH and FETCH is skipped.
        """
        with self._translate("searching for new messages"):
            uids = self._search_new(last_uid)
        uidvalidity = self._uidvalidity
        remaining = limit
        for start in range(0, len(uids), FETCH_BATCH):
            if remaining is not None and remaining <= 0:
                return
            wanted = [
                uid for uid in uids[start:start + FETCH_BATCH]
                if not is_recorded(f"{uidvalidity}:{uid}")
            ]
            if remaining is not None:
                wanted = wanted[:remaining]
            if not wanted:
                continue
            with self._translate(f"fetching {len(wanted)} messages"):
                fetched = self._require().fetch(wanted, ["BODY.PEEK[]", "INTERNALDATE"])
            for uid in wanted:
                item = fetched.get(uid)
                if item is None or b"BODY[]" not in item:
                    log.info("mailbox %s: UID %s vanished before it was fetched",
                             self.mailbox_name, uid)
                    continue
                received = item.get(b"INTERNALDATE")
                yield RawMail(
                    mailbox=self.mailbox_name,
                    source_key=f"{uidvalidity}:{uid}",
                    data=bytes(item[b"BODY[]"]),
                    uidvalidity=uidvalidity,
                    uid=uid,
                    received_at=received if isinstance(received, datetime) else None,
                )
                if remaining is not None:
                    remaining -= 1

    def _search_new(self, last_uid: int | None) -> list[int]:
        client = self._require()
        if last_uid is None:
            found = client.search(["NOT", "DELETED"])
        else:
            found = client.search(["UID", f"{last_uid + 1}:*", "NOT", "DELETED"])
        # "n:*" always matches the highest UID, even when it is below n (RFC 3501 6.4.8):
        # with nothing new the server answers with the last, already-seen message.
        return sorted(uid for uid in found if last_uid is None or uid > last_uid)

    # ------------------------------------------------------------------ waiting

    def wait(self, timeout: float) -> bool:
        """IDLE (or, without IDLE, NOOP every ``poll_interval``) until EXISTS/RECENT arrives
        or ``timeout`` seconds passed. Returns True on a change, False on timeout.

        Changes the server reported during earlier commands count too, so a message that
        arrived between ``fetch_new`` and ``wait`` is never slept through.
        """
        with self._translate("waiting for new mail"):
            if self._take_change_notices():
                return True
            if self.supports_idle:
                return self._idle(timeout)
            return self._poll(timeout)

    def _idle(self, timeout: float) -> bool:
        client = self._require()
        deadline = self._clock() + timeout
        changed = False
        while not changed:
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            client.idle()
            try:
                while not changed and (remaining := deadline - self._clock()) > 0:
                    slice_ = min(IDLE_SLICE, remaining)
                    started = self._clock()
                    responses = client.idle_check(timeout=slice_)
                    changed = _has_change(responses)
                    # idle_check() swallows EOF and returns [] at once: an early empty
                    # answer means "socket readable, nothing parsed", so leave IDLE, which
                    # raises if the server has gone, and start a fresh one if not.
                    if not responses and self._clock() - started < slice_ * 0.5:
                        break
            except BaseException:
                # Mid-IDLE the connection accepts nothing but DONE: it cannot be reused.
                self._discard()
                raise
            _text_done, responses = client.idle_done()
            changed = _has_change(responses) or changed
        self._take_change_notices()
        return changed

    def _poll(self, timeout: float) -> bool:
        client = self._require()
        deadline = self._clock() + timeout
        while (remaining := deadline - self._clock()) > 0:
            self._sleep(min(self.cfg.poll_interval, remaining))
            _text_ok, responses = client.noop()
            self._take_change_notices()
            if _has_change(responses):
                return True
        return False

    def _take_change_notices(self) -> bool:
        """Pop the EXISTS/RECENT notices imaplib collected during earlier commands.

        imaplib keeps unsolicited responses in ``untagged_responses`` until the next SELECT,
        so without this they would pile up for the life of the connection.
        """
        client = self._client
        if client is None:
            return False
        pending: dict[str, list[Any]] = client._imap.untagged_responses
        exists = pending.pop("EXISTS", None)
        recent = pending.pop("RECENT", None)
        for noise in ("EXPUNGE", "FETCH", "VANISHED"):
            pending.pop(noise, None)
        return bool(exists) or any(_int(value) > 0 for value in recent or ())

    # ------------------------------------------------------------------ after handling

    def mark_handled(self, source_key: str) -> None:
        """Apply ``cfg.after``: add ``cfg.flag``, move to ``cfg.move_to``, or nothing."""
        if self.cfg.after == "none":
            return
        uid = self._uid_of(source_key)
        if uid is None:
            return
        if self.cfg.after == "flag":
            with self._translate(f"flagging UID {uid}"):
                done = self._require().add_flags([uid], [self.cfg.flag])
            if uid not in done:
                log.info("mailbox %s: UID %s is gone; not flagged", self.mailbox_name, uid)
            return
        self._move(uid, self.cfg.move_to)

    def _move(self, uid: int, folder: str) -> None:
        self._ensure_folder(folder)
        with self._translate(f"moving UID {uid} to {folder!r}"):
            client = self._require()
            if b"MOVE" in self._capabilities:
                client.move([uid], folder)
                return
            client.copy([uid], folder)
            client.add_flags([uid], [DELETED], silent=True)
            if b"UIDPLUS" in self._capabilities:
                client.uid_expunge([uid])
            else:
                # A plain EXPUNGE would also remove what other clients marked \Deleted;
                # leave ours marked (fetch_new skips deleted messages) for them to expunge.
                log.info("mailbox %s: server lacks UIDPLUS; UID %s left marked \\Deleted",
                         self.mailbox_name, uid)

    def flag_answered(self, source_key: str) -> None:
        """Add \\Answered; a message that was moved or expunged meanwhile is only logged."""
        uid = self._uid_of(source_key)
        if uid is None:
            return
        with self._translate(f"flagging UID {uid} answered"):
            done = self._require().add_flags([uid], [ANSWERED])
        if uid not in done:
            log.info("mailbox %s: UID %s was moved or deleted; \\Answered not set",
                     self.mailbox_name, uid)

    def _uid_of(self, source_key: str) -> int | None:
        """The UID in ``source_key`` if it belongs to the current UIDVALIDITY, else None."""
        uidvalidity, _, uid = source_key.partition(":")
        if not uidvalidity.isdigit() or not uid.isdigit():
            raise SourceError(self.mailbox_name, f"not an IMAP source key: {source_key!r}")
        if int(uidvalidity) != self._uidvalidity:
            # After a UIDVALIDITY change the UID may name a different message now.
            log.warning("mailbox %s: key %s is from an older UIDVALIDITY (now %s); left alone",
                        self.mailbox_name, source_key, self._uidvalidity)
            return None
        return int(uid)

    # ------------------------------------------------------------------ sent folder

    def append_sent(self, message: bytes) -> None:
        """APPEND ``message`` with \\Seen to ``cfg.sent_folder`` (created when missing)."""
        folder = self.cfg.sent_folder
        if folder is None:
            return
        self._ensure_folder(folder)
        with self._translate(f"appending to {folder!r}"):
            self._require().append(folder, message, flags=[SEEN])

    def has_sent(self, message_id: str) -> bool:
        """SEARCH HEADER Message-ID in ``cfg.sent_folder``; False when it does not exist.

        Selects the sent folder read-only, then selects the watched folder again.
        """
        folder = self.cfg.sent_folder
        if folder is None:
            return False
        wanted = "<" + message_id.strip().strip("<>") + ">"
        with self._translate(f"searching {folder!r}"):
            client = self._require()
            if not client.folder_exists(folder):
                return False
            try:
                client.select_folder(folder, readonly=True)
                found = client.search(["HEADER", "Message-ID", wanted])
            finally:
                selected = client.select_folder(self.cfg.folder, readonly=False)
                self._check_uidvalidity(int(selected[b"UIDVALIDITY"]))
        return bool(found)

    def _check_uidvalidity(self, value: int) -> None:
        if value != self._uidvalidity:
            log.warning("mailbox %s: UIDVALIDITY changed from %s to %s",
                        self.mailbox_name, self._uidvalidity, value)
            self._uidvalidity = value

    def _ensure_folder(self, folder: str) -> None:
        if folder in self._known_folders:
            return
        with self._translate(f"creating folder {folder!r}"):
            client = self._require()
            if not client.folder_exists(folder):
                try:
                    client.create_folder(folder)
                except IMAPClientError:
                    # Another client may have created it in the meantime.
                    if not client.folder_exists(folder):
                        raise
                try:
                    client.subscribe_folder(folder)
                except IMAPClientError as exc:  # only affects what mail clients show
                    log.info("mailbox %s: could not subscribe %s: %s",
                             self.mailbox_name, folder, _text(exc))
        self._known_folders.add(folder)

    # ------------------------------------------------------------------ plumbing

    def _require(self) -> IMAPClient:
        if self._client is None:
            raise SourceConnectionError(self.mailbox_name, "not connected")
        return self._client

    def _discard(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.shutdown()
            except Exception as exc:  # the socket is broken already; nothing left to do
                log.debug("mailbox %s: shutdown of a broken connection: %s",
                          self.mailbox_name, exc)

    @contextmanager
    def _translate(self, doing: str) -> Iterator[None]:
        """Turn imaplib/imapclient/socket exceptions into SourceError subclasses."""
        try:
            yield
        except SourceError:
            raise
        except LoginError as exc:
            self._fail(SourceAuthError(self.mailbox_name, f"{doing}: {_text(exc)}"), exc)
        except (IMAPClientAbortError, OSError) as exc:
            # OSError covers socket.timeout, ConnectionError, ssl.SSLError and refused connects;
            # IMAPClientAbortError covers EOF and BYE. The connection is unusable either way.
            self._fail(SourceConnectionError(self.mailbox_name, f"{doing}: {_describe(exc)}"), exc)
        except IMAPClientError as exc:
            raise SourceError(self.mailbox_name, f"{doing}: {_text(exc)}") from exc

    def _fail(self, error: SourceError, cause: BaseException) -> NoReturn:
        if isinstance(error, SourceConnectionError):
            self._discard()
        raise error from cause


def _has_change(responses: Sequence[Any]) -> bool:
    """True if the parsed IDLE/NOOP responses include EXISTS or RECENT > 0.

    Shape (imapclient): ``[(b'OK', b'Still here'), (3, b'EXISTS'), (1, b'RECENT')]``.
    A BYE means the server is closing the connection.
    """
    changed = False
    for response in responses:
        if len(response) < 2:
            continue
        first, kind = response[0], response[1]
        if first == b"BYE":
            raise IMAPClientAbortError(f"server said BYE: {_text(kind)}")
        if kind == b"EXISTS" or (kind == b"RECENT" and _int(first) > 0):
            changed = True
    return changed


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _text(exc: BaseException | bytes | str) -> str:
    if isinstance(exc, bytes):
        return exc.decode("utf-8", "replace")
    if isinstance(exc, str):
        return exc
    if exc.args and isinstance(exc.args[0], bytes):
        return exc.args[0].decode("utf-8", "replace")
    text = str(exc)
    # imapclient wraps server answers as str(b'...'): show the server's words only.
    if text.startswith(("b'", 'b"')) and text.endswith(text[1]) and len(text) >= 3:
        return text[2:-1]
    return text


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = _text(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
