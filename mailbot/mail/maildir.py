"""A Maildir inbox on the local disk: the embedded default, same behaviour as IMAP.

Layout (Maildir++, as dovecot and mailbox.Maildir write it)::

    PATH/new/KEY                 delivered, never looked at by a mail client
    PATH/cur/KEY:2,FLAGS         seen by a client; FLAGS sorted, e.g. "RS" (R=answered, S=seen)
    PATH/.Processed/{new,cur}/   the "move" target (cfg.move_to)
    PATH/.Sent/cur/KEY:2,S       copies of our replies (cfg.sent_folder)

The source key is KEY, the file name up to ``:``; it stays the same when flags change.
Flags are changed by renaming the file, never by rewriting it: a rename is atomic and keeps
the message bytes exactly as delivered (``mailbox.Maildir.__setitem__`` re-serialises them).
OSErrors become ``SourceError``; there is no connection to lose.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import logging
import mailbox
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailbot.config import MaildirSource
from mailbot.errors import SourceError
from mailbot.mail.source import IsRecorded
from mailbot.models import RawMail

log = logging.getLogger(__name__)

POLL_EVERY = 0.2            # seconds between directory checks in wait()
HEADER_LIMIT = 64 * 1024    # has_sent() reads at most this much of each file


@dataclass(frozen=True, slots=True)
class _Entry:
    key: str
    path: Path
    mtime_ns: int


class MaildirMailSource:
    """The Maildir at ``cfg.path`` (created when missing), for mailbox ``mailbox_name``."""

    def __init__(
        self,
        mailbox_name: str,
        cfg: MaildirSource,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.mailbox_name = mailbox_name
        self.cfg = cfg
        self.root = Path(cfg.path)
        self._clock = clock
        self._sleep = sleep
        self._box: mailbox.Maildir | None = None
        self._baseline: tuple[int, int, int] | None = None
        self._deliveries = itertools.count()

    @property
    def uidvalidity(self) -> int | None:
        return None

    @property
    def supports_idle(self) -> bool:
        # wait() watches directory mtimes: cheap, and wakes within POLL_EVERY seconds.
        return self._box is not None

    def connect(self) -> None:
        """Open (and create) the Maildir. Raises SourceError if that is impossible."""
        with self._translate(f"opening the Maildir {self.root}"):
            # mailbox.Maildir(create=True) only fills in tmp/new/cur when the folder itself
            # is missing; an existing empty folder (a fresh volume) needs them too.
            for sub in ("tmp", "new", "cur"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            self._box = mailbox.Maildir(self.root, factory=None, create=True)
            self._baseline = self._snapshot()

    def close(self) -> None:
        if self._box is not None:
            self._box.close()
        self._box = None

    def noop(self) -> None:
        """Raises SourceError when the Maildir's directories are gone or unreadable."""
        with self._translate("checking the Maildir"):
            self._snapshot()

    # ------------------------------------------------------------------ reading

    def fetch_new(
        self, last_uid: int | None, *, is_recorded: IsRecorded, limit: int | None = None
    ) -> Iterator[RawMail]:
        """Yield unrecorded messages by file mtime (delivery time), then key.

        ``last_uid`` is ignored (Maildir has no UIDs); ``is_recorded`` does the work.
        ``received_at`` is the file's mtime in UTC.
        """
        del last_uid
        with self._translate("listing the Maildir"):
            self._require()
            # Taken before listing, so wait() notices anything delivered from here on.
            self._baseline = self._snapshot()
            entries = sorted(self._entries(self.root), key=lambda e: (e.mtime_ns, e.key))
        count = 0
        for entry in entries:
            if limit is not None and count >= limit:
                return
            if is_recorded(entry.key):
                continue
            try:
                data = entry.path.read_bytes()
            except FileNotFoundError:
                # Flag change or move by another client between listing and reading.
                moved = self._find(entry.key)
                if moved is None:
                    log.info("mailbox %s: %s vanished before it was read",
                             self.mailbox_name, entry.key)
                    continue
                with self._translate(f"reading {entry.key}"):
                    data = moved.read_bytes()
            except OSError as exc:
                raise SourceError(self.mailbox_name, f"reading {entry.key}: {exc}") from exc
            count += 1
            yield RawMail(
                mailbox=self.mailbox_name,
                source_key=entry.key,
                data=data,
                received_at=datetime.fromtimestamp(entry.mtime_ns / 1e9, UTC),
            )

    def wait(self, timeout: float) -> bool:
        """Check new/ and cur/ every ``POLL_EVERY`` s until something changed since the last
        ``fetch_new`` (True) or ``timeout`` passed (False)."""
        with self._translate("watching the Maildir"):
            self._require()
            deadline = self._clock() + timeout
            while True:
                now = self._snapshot()
                if now != self._baseline:
                    self._baseline = now
                    return True
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return False
                self._sleep(min(POLL_EVERY, remaining))

    def _snapshot(self) -> tuple[int, int, int]:
        # Directory mtimes change on every delivery and rename; the entry count of new/ is
        # added because two changes within one filesystem timestamp tick share an mtime.
        new, cur = self.root / "new", self.root / "cur"
        with os.scandir(new) as listing:
            in_new = sum(1 for _ in listing)
        return new.stat().st_mtime_ns, cur.stat().st_mtime_ns, in_new

    # ------------------------------------------------------------------ after handling

    def mark_handled(self, source_key: str) -> None:
        """``after: flag`` sets S (moving the file to cur/); ``move`` moves it into the
        folder ``.move_to``; ``none`` does nothing. A missing message is only logged."""
        if self.cfg.after == "none":
            return
        with self._translate(f"marking {source_key} handled"):
            path = self._find(source_key)
            if path is None:
                log.info("mailbox %s: %s is gone; not marked", self.mailbox_name, source_key)
                return
            if self.cfg.after == "flag":
                _add_flags(path, "S")
                return
            target = self._folder(self.cfg.move_to)
            os.rename(path, target / path.parent.name / path.name)

    def flag_answered(self, source_key: str) -> None:
        """Set R. A message moved or deleted meanwhile is only logged."""
        with self._translate(f"flagging {source_key} answered"):
            path = self._find(source_key)
            if path is None:
                log.info("mailbox %s: %s was moved or deleted; R not set",
                         self.mailbox_name, source_key)
                return
            _add_flags(path, "R")

    # ------------------------------------------------------------------ sent folder

    def append_sent(self, message: bytes) -> None:
        """Deliver ``message`` into ``.<sent_folder>/cur`` with flag S (tmp/ then rename)."""
        if self.cfg.sent_folder is None:
            return
        with self._translate("storing the sent copy"):
            folder = self._folder(self.cfg.sent_folder)
            name = self._unique_name()
            tmp = folder / "tmp" / name
            with open(tmp, "wb") as out:
                out.write(message)
                out.flush()
                os.fsync(out.fileno())
            os.rename(tmp, folder / "cur" / f"{name}:2,S")

    def has_sent(self, message_id: str) -> bool:
        """True when a message in the sent folder has this Message-ID. Reads only headers."""
        if self.cfg.sent_folder is None:
            return False
        wanted = _normalise_id(message_id)
        folder = self.root / f".{self.cfg.sent_folder}"
        if not folder.is_dir():
            return False
        parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
        with self._translate("searching the sent folder"):
            for entry in self._entries(folder):
                try:
                    with open(entry.path, "rb") as handle:
                        head = handle.read(HEADER_LIMIT)
                except FileNotFoundError:
                    continue
                found = parser.parsebytes(head).get("Message-ID")
                if found is not None and _normalise_id(str(found)) == wanted:
                    return True
        return False

    # ------------------------------------------------------------------ plumbing

    def _require(self) -> mailbox.Maildir:
        if self._box is None:
            raise SourceError(self.mailbox_name, "not connected: call connect() first")
        return self._box

    def _entries(self, root: Path) -> Iterator[_Entry]:
        for sub in ("new", "cur"):
            with os.scandir(root / sub) as listing:
                for item in listing:
                    if item.name.startswith("."):
                        continue
                    try:
                        mtime = item.stat().st_mtime_ns
                    except FileNotFoundError:
                        continue
                    yield _Entry(item.name.partition(":")[0], Path(item.path), mtime)

    def _find(self, key: str) -> Path | None:
        new = self.root / "new" / key
        if new.exists():
            return new
        # The names our own handling gives a file (seen; seen and answered) are tried first:
        # flagging each reply's original \Answered scanned the whole of cur/ (with a stat per
        # file) and made sending a burst of n replies cost n^2 directory entries.
        cur = self.root / "cur"
        for flags in ("S", "RS", ""):
            candidate = cur / f"{key}:2,{flags}"
            if candidate.exists():
                return candidate
        prefix = key + ":"
        for sub in ("new", "cur"):
            with os.scandir(self.root / sub) as listing:     # names only: no stat per file
                for item in listing:
                    if item.name == key or item.name.startswith(prefix):
                        return Path(item.path)
        return None

    def _folder(self, name: str) -> Path:
        """The Maildir++ subfolder ``.name``, created (with tmp/new/cur) when missing."""
        if not name or "/" in name or name.startswith("."):
            raise SourceError(self.mailbox_name, f"invalid Maildir folder name {name!r}")
        box = self._require()
        if name not in box.list_folders():
            box.add_folder(name)
        return self.root / f".{name}"

    def _unique_name(self) -> str:
        # The classic Maildir recipe: time, microseconds, pid, a counter and the host.
        now = time.time()
        host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
        return f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(self._deliveries)}.{host}"

    @contextmanager
    def _translate(self, doing: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise SourceError(self.mailbox_name, f"{doing}: {exc.strerror or exc}") from exc


def _add_flags(path: Path, flags: str) -> None:
    """Rename ``path`` to ``cur/KEY:2,<old flags + flags>``."""
    key, _, info = path.name.partition(":")
    present = set(info[2:]) if info.startswith("2,") else set()
    merged = "".join(sorted(present | set(flags)))
    target = path.parent.parent / "cur" / f"{key}:2,{merged}"
    if target != path:
        os.rename(path, target)


def _normalise_id(message_id: str) -> str:
    return message_id.strip().strip("<>").strip()
