"""Backends for the MailSource contract tests: the same tests run on IMAP and Maildir."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, Protocol

import pytest

from mailbot.config import MaildirSource
from mailbot.mail.imap import ImapMailSource
from mailbot.mail.maildir import MaildirMailSource
from mailbot.mail.source import MailSource
from tests.support.dovecot import DovecotServer

_FLAG_NAMES = {"\\Seen": "seen", "\\Answered": "answered", "S": "seen", "R": "answered"}


def make_mail(subject: str = "Kapotte stoel", *, message_id: str | None = None,
              body: str = "Mijn stoel is kapot.") -> bytes:
    """A small customer mail with CRLF line ends, as IMAP servers hand them out."""
    lines = [
        "From: Jan Jansen <jan@example.nl>",
        "To: support@shop.example",
        f"Subject: {subject}",
        f"Date: {format_datetime(datetime(2024, 5, 1, 12, 0, tzinfo=UTC))}",
        f"Message-ID: {message_id or make_msgid(domain='example.nl')}",
        "",
        body,
        "",
    ]
    return "\r\n".join(lines).encode()


class Backend(Protocol):
    name: str

    def source(self, **overrides: Any) -> MailSource: ...
    def deliver(self, data: bytes) -> None: ...
    def flags(self, source_key: str) -> set[str]: ...
    def count(self, folder: str) -> int: ...


class ImapBackend:
    name = "imap"

    def __init__(self, server: DovecotServer) -> None:
        self.server = server

    def source(self, **overrides: Any) -> ImapMailSource:
        return ImapMailSource("support", self.server.source_config(**overrides))

    def deliver(self, data: bytes) -> None:
        self.server.append("INBOX", data)

    def flags(self, source_key: str) -> set[str]:
        uid = int(source_key.partition(":")[2])
        with self.server.client() as client:
            found = client.get_flags([uid])
        if uid not in found:
            return {"gone"}
        return {_FLAG_NAMES[f.decode()] for f in found[uid] if f.decode() in _FLAG_NAMES}

    def count(self, folder: str) -> int:
        with self.server.client(folder=None) as client:
            if not client.folder_exists(folder):
                return 0
            return int(client.folder_status(folder, ["MESSAGES"])[b"MESSAGES"])


class MaildirBackend:
    name = "maildir"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._n = 0

    def source(self, **overrides: Any) -> MaildirMailSource:
        cfg = MaildirSource.model_validate({"kind": "maildir", "path": self.root, **overrides})
        return MaildirMailSource("support", cfg)

    def deliver(self, data: bytes) -> None:
        # As an MDA does it: tmp/ then rename into new/; mtimes a second apart keep order.
        for sub in ("tmp", "new", "cur"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._n += 1
        name = f"17000000{self._n:02d}.M1P1Q{self._n}.test"
        tmp = self.root / "tmp" / name
        tmp.write_bytes(data)
        stamp = 1_700_000_000 + self._n
        os.utime(tmp, (stamp, stamp))
        tmp.rename(self.root / "new" / name)

    def flags(self, source_key: str) -> set[str]:
        for sub in ("new", "cur"):
            for path in (self.root / sub).iterdir():
                key, _, info = path.name.partition(":")
                if key == source_key:
                    return {_FLAG_NAMES[f] for f in info[2:] if f in _FLAG_NAMES}
        return {"gone"}

    def count(self, folder: str) -> int:
        base = self.root / f".{folder}"
        return sum(len(list((base / sub).iterdir())) for sub in ("new", "cur")
                   if (base / sub).is_dir())


@pytest.fixture(params=[pytest.param("imap", marks=pytest.mark.dovecot), "maildir"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "imap":
        yield ImapBackend(request.getfixturevalue("dovecot"))
    else:
        yield MaildirBackend(tmp_path / "Maildir")


@pytest.fixture
def open_source(backend: Backend) -> Iterator[Callable[..., MailSource]]:
    """``open_source(**config overrides)``: a connected source, closed after the test."""
    opened: list[MailSource] = []

    def make(**overrides: Any) -> MailSource:
        source = backend.source(**overrides)
        source.connect()
        opened.append(source)
        return source

    yield make
    for source in opened:
        source.close()
