"""Maildir-only behaviour: file names, flags by rename, bytes untouched, ordering."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from mailbot.config import MaildirSource
from mailbot.errors import SourceError
from mailbot.mail.maildir import MaildirMailSource
from tests.mail.conftest import MaildirBackend, make_mail


def never(_key: str) -> bool:
    return False


def open_maildir(root: Path, **overrides: object) -> MaildirMailSource:
    cfg = MaildirSource.model_validate({"kind": "maildir", "path": root, **overrides})
    source = MaildirMailSource("support", cfg)
    source.connect()
    return source


def test_connect_creates_the_maildir(tmp_path: Path) -> None:
    source = open_maildir(tmp_path / "new-box")
    assert all((tmp_path / "new-box" / sub).is_dir() for sub in ("tmp", "new", "cur"))
    assert source.uidvalidity is None
    assert list(source.fetch_new(None, is_recorded=never)) == []


def test_not_connected_is_an_error(tmp_path: Path) -> None:
    cfg = MaildirSource(kind="maildir", path=tmp_path)
    with pytest.raises(SourceError, match="not connected"):
        list(MaildirMailSource("support", cfg).fetch_new(None, is_recorded=never))


def test_source_key_is_the_file_name_before_the_colon(tmp_path: Path) -> None:
    backend = MaildirBackend(tmp_path)
    backend.deliver(make_mail())
    source = open_maildir(tmp_path)
    (raw,) = source.fetch_new(None, is_recorded=never)
    assert raw.source_key == os.listdir(tmp_path / "new")[0]
    assert raw.uid is None and raw.uidvalidity is None


def test_order_is_delivery_time_then_key(tmp_path: Path) -> None:
    source = open_maildir(tmp_path)
    for name, stamp in (("c", 1_700_000_005), ("b", 1_700_000_001), ("a", 1_700_000_005)):
        path = tmp_path / "new" / name
        path.write_bytes(make_mail(name))
        os.utime(path, (stamp, stamp))
    assert [raw.source_key for raw in source.fetch_new(None, is_recorded=never)] == ["b", "a", "c"]


def test_flagging_renames_into_cur_and_keeps_the_bytes(tmp_path: Path) -> None:
    backend = MaildirBackend(tmp_path)
    data = make_mail(body="Regel een\r\nRegel twee met een heel lange zin " + "x" * 900)
    backend.deliver(data)
    source = open_maildir(tmp_path)
    (raw,) = source.fetch_new(None, is_recorded=never)

    source.mark_handled(raw.source_key)
    source.flag_answered(raw.source_key)
    source.mark_handled(raw.source_key)      # twice: still one file, flags merged

    assert os.listdir(tmp_path / "new") == []
    (name,) = os.listdir(tmp_path / "cur")
    assert name == f"{raw.source_key}:2,RS"
    assert (tmp_path / "cur" / name).read_bytes() == data
    (again,) = source.fetch_new(None, is_recorded=never)
    assert again.source_key == raw.source_key and again.data == data


def test_move_keeps_new_or_cur(tmp_path: Path) -> None:
    backend = MaildirBackend(tmp_path)
    backend.deliver(make_mail())
    source = open_maildir(tmp_path, after="move", move_to="Verwerkt")
    (raw,) = source.fetch_new(None, is_recorded=never)
    source.mark_handled(raw.source_key)
    assert os.listdir(tmp_path / ".Verwerkt" / "new") == [raw.source_key]
    assert (tmp_path / ".Verwerkt" / "maildirfolder").exists()


def test_missing_message_is_only_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    source = open_maildir(tmp_path)
    source.mark_handled("1700000000.gone.test")
    source.flag_answered("1700000000.gone.test")
    assert "gone" in caplog.text


def test_sent_copy_is_seen_and_found_by_a_folded_message_id(tmp_path: Path) -> None:
    source = open_maildir(tmp_path)
    reply = b"From: a@shop.example\nMessage-ID:\n <mailbot.abc@shop.example>\nSubject: x\n\nbody\n"
    source.append_sent(reply)
    (name,) = os.listdir(tmp_path / ".Sent" / "cur")
    assert name.endswith(":2,S")
    assert (tmp_path / ".Sent" / "cur" / name).read_bytes() == reply
    assert os.listdir(tmp_path / ".Sent" / "tmp") == []
    assert source.has_sent("<mailbot.abc@shop.example>")
    assert not source.has_sent("<mailbot.abd@shop.example>")


def test_sent_folder_is_not_fetched(tmp_path: Path) -> None:
    source = open_maildir(tmp_path)
    source.append_sent(make_mail(message_id="<r@shop.example>"))
    assert list(source.fetch_new(None, is_recorded=never)) == []


def test_invalid_folder_name(tmp_path: Path) -> None:
    source = open_maildir(tmp_path, after="move", move_to="../escape")
    MaildirBackend(tmp_path).deliver(make_mail())
    (raw,) = source.fetch_new(None, is_recorded=never)
    with pytest.raises(SourceError, match="invalid Maildir folder name"):
        source.mark_handled(raw.source_key)


def test_wait_sees_a_delivery_within_the_same_mtime_tick(tmp_path: Path) -> None:
    source = open_maildir(tmp_path)
    list(source.fetch_new(None, is_recorded=never))
    stat = (tmp_path / "new").stat()
    (tmp_path / "new" / "x").write_bytes(make_mail())
    # Pretend the directory mtime did not move (coarse timestamps).
    os.utime(tmp_path / "new", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    started = time.monotonic()
    assert source.wait(2.0) is True
    assert time.monotonic() - started < 0.5


def test_vanished_directory_is_a_source_error(tmp_path: Path) -> None:
    source = open_maildir(tmp_path / "box")
    (tmp_path / "box" / "new").rmdir()
    with pytest.raises(SourceError):
        source.noop()
