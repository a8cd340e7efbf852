"""The outbox transport: atomic .eml files named after the Message-ID."""

from __future__ import annotations

import asyncio
import email
import os
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbot.config import OutboxTransport
from mailbot.errors import PermanentSendError, TemporarySendError
from mailbot.mail.compose import build_reply
from mailbot.mail.outbox import OutboxSender
from mailbot.mail.sender import Sender


def reply(message_id: str = "<mailbot.0011aabb@shop.example>", body: str = "Hallo Jan") -> EmailMessage:
    return build_reply(
        from_addr="support@shop.example", from_name="Shop", to_addr="jan@example.nl",
        to_name="Jan", subject="Re: stoel", body=body, message_id=message_id,
        in_reply_to="<orig@example.nl>", references=[], auto=True, language="nl",
    )


def outbox(path: Path) -> OutboxSender:
    return OutboxSender(OutboxTransport(kind="outbox", path=path))


def test_is_a_sender(tmp_path: Path) -> None:
    assert isinstance(outbox(tmp_path), Sender)


def test_send_writes_one_eml_named_after_the_message_id(tmp_path: Path) -> None:
    box = outbox(tmp_path / "out")
    assert not box.has_sent("<mailbot.0011aabb@shop.example>")

    asyncio.run(box.send(reply()))

    assert os.listdir(tmp_path / "out") == ["mailbot.0011aabb@shop.example.eml"]
    parsed = email.message_from_bytes((tmp_path / "out" / "mailbot.0011aabb@shop.example.eml").read_bytes(),
                                      policy=policy.default)
    assert parsed["Message-ID"] == "<mailbot.0011aabb@shop.example>"
    assert box.has_sent("<mailbot.0011aabb@shop.example>")
    assert box.has_sent("mailbot.0011aabb@shop.example")


def test_resend_overwrites(tmp_path: Path) -> None:
    box = outbox(tmp_path)
    asyncio.run(box.send(reply(body="eerste")))
    asyncio.run(box.send(reply(body="tweede")))
    (name,) = os.listdir(tmp_path)
    assert b"tweede" in (tmp_path / name).read_bytes()


def test_unsafe_ids_get_distinct_safe_names(tmp_path: Path) -> None:
    box = outbox(tmp_path)
    first = box.path_for("<../../etc/passwd@x>")
    second = box.path_for("<.._.._etc_passwd@x>")
    assert first.parent == tmp_path and second.parent == tmp_path
    assert first != second
    assert not first.name.startswith(".")


def test_no_message_id_is_permanent(tmp_path: Path) -> None:
    message = reply()
    del message["Message-ID"]
    with pytest.raises(PermanentSendError):
        asyncio.run(outbox(tmp_path).send(message))


def test_unwritable_outbox_is_temporary_and_leaves_no_temp_file(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(TemporarySendError, match="cannot write"):
        asyncio.run(outbox(blocker).send(reply()))


def test_failed_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(TemporarySendError):
        asyncio.run(outbox(tmp_path).send(reply()))
    assert os.listdir(tmp_path) == []
