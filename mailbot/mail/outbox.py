"""The outbox transport: replies become .eml files in a folder instead of being sent.

One file per Message-ID, written atomically (temporary file, fsync, ``os.replace``), so a
reader never sees half a message and sending the same reply twice leaves one file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from email import policy
from email.message import EmailMessage
from pathlib import Path

from mailbot.config import OutboxTransport
from mailbot.errors import PermanentSendError, TemporarySendError

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]")
_MAX_STEM = 120


class OutboxSender:
    """Writes replies into ``cfg.path`` (created when missing)."""

    def __init__(self, cfg: OutboxTransport) -> None:
        self.folder = Path(cfg.path)

    async def send(self, message: EmailMessage) -> None:
        """Write ``message`` as ``<file_name(Message-ID)>``; an existing file is replaced.

        Raises PermanentSendError when the message has no Message-ID, TemporarySendError
        when the file cannot be written (disk full, permissions).
        """
        message_id = message.get("Message-ID")
        if not message_id:
            raise PermanentSendError("the reply has no Message-ID header")
        data = message.as_bytes(policy=policy.SMTP)
        try:
            await asyncio.to_thread(self._write, self.path_for(str(message_id)), data)
        except OSError as exc:
            raise TemporarySendError(f"cannot write to the outbox {self.folder}: {exc}") from exc

    def has_sent(self, message_id: str) -> bool:
        """True when the outbox holds the file for ``message_id`` (brackets optional)."""
        return self.path_for(message_id).exists()

    def path_for(self, message_id: str) -> Path:
        """The file for a Message-ID: ``<mailbot.ab12@example.com>`` -> ``mailbot.ab12@example.com.eml``.

        Ids with unsafe characters, or very long ones, get a hash suffix so two different
        ids never share a file.
        """
        bare = message_id.strip().strip("<>").strip()
        stem = _UNSAFE.sub("_", bare)
        if stem != bare or len(stem) > _MAX_STEM or not stem or stem.startswith("."):
            digest = hashlib.sha256(bare.encode("utf-8", "surrogateescape")).hexdigest()[:16]
            stem = f"{stem[:_MAX_STEM].lstrip('.')}~{digest}"
        return self.folder / f"{stem}.eml"

    def _write(self, target: Path, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # The temporary file lives in the same folder so os.replace is a same-filesystem
        # rename; its dot name keeps *.eml readers from picking it up half-written.
        # mkstemp makes the file 0600: replies hold customer data.
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".part")
        try:
            with open(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.folder)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
