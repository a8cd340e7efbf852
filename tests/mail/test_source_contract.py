"""Behaviour every MailSource shares, run against a real dovecot and a real Maildir."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mailbot.mail.source import MailSource
from tests.mail.conftest import Backend, make_mail

Open = Callable[..., MailSource]


def never(_key: str) -> bool:
    return False


def test_is_a_mail_source(backend: Backend) -> None:
    assert isinstance(backend.source(), MailSource)


def test_fetch_new_yields_every_message_oldest_first_with_exact_bytes(
    backend: Backend, open_source: Open
) -> None:
    mails = [make_mail(f"mail {n}") for n in range(3)]
    for data in mails:
        backend.deliver(data)
    source = open_source()

    got = list(source.fetch_new(None, is_recorded=never))

    assert [raw.data for raw in got] == mails
    assert all(raw.mailbox == "support" for raw in got)
    assert len({raw.source_key for raw in got}) == 3
    assert all(raw.received_at is not None and raw.received_at.tzinfo for raw in got)


def test_fetch_new_skips_recorded_keys_and_honours_limit(backend: Backend, open_source: Open) -> None:
    for n in range(4):
        backend.deliver(make_mail(f"mail {n}"))
    source = open_source()
    keys = [raw.source_key for raw in source.fetch_new(None, is_recorded=never)]

    recorded = {keys[0], keys[2]}
    rest = list(source.fetch_new(None, is_recorded=recorded.__contains__))
    limited = list(source.fetch_new(None, is_recorded=recorded.__contains__, limit=1))

    assert [raw.source_key for raw in rest] == [keys[1], keys[3]]
    assert [raw.source_key for raw in limited] == [keys[1]]


def test_fetching_does_not_mark_anything_seen(backend: Backend, open_source: Open) -> None:
    backend.deliver(make_mail())
    source = open_source()
    (raw,) = source.fetch_new(None, is_recorded=never)
    assert backend.flags(raw.source_key) == set()


def test_mark_handled_flag_sets_seen(backend: Backend, open_source: Open) -> None:
    backend.deliver(make_mail())
    source = open_source(after="flag")
    (raw,) = source.fetch_new(None, is_recorded=never)

    source.mark_handled(raw.source_key)

    assert backend.flags(raw.source_key) == {"seen"}


def test_mark_handled_move_creates_the_folder_and_moves(backend: Backend, open_source: Open) -> None:
    backend.deliver(make_mail("one"))
    backend.deliver(make_mail("two"))
    source = open_source(after="move", move_to="Processed")
    first, second = source.fetch_new(None, is_recorded=never)

    source.mark_handled(first.source_key)

    assert backend.count("Processed") == 1
    assert backend.flags(first.source_key) == {"gone"}
    left = list(source.fetch_new(None, is_recorded=never))
    assert [raw.data for raw in left] == [second.data]


def test_mark_handled_none_changes_nothing(backend: Backend, open_source: Open) -> None:
    backend.deliver(make_mail())
    source = open_source(after="none")
    (raw,) = source.fetch_new(None, is_recorded=never)
    source.mark_handled(raw.source_key)
    assert backend.flags(raw.source_key) == set()


def test_flag_answered_and_tolerates_a_moved_message(backend: Backend, open_source: Open) -> None:
    backend.deliver(make_mail("one"))
    backend.deliver(make_mail("two"))
    source = open_source(after="move")
    first, second = source.fetch_new(None, is_recorded=never)

    source.flag_answered(first.source_key)
    source.mark_handled(second.source_key)
    source.flag_answered(second.source_key)     # moved away: logged, no error

    assert backend.flags(first.source_key) == {"answered"}


def test_append_sent_then_has_sent(backend: Backend, open_source: Open) -> None:
    source = open_source()
    reply = make_mail("Re: Kapotte stoel", message_id="<mailbot.0123abcd@shop.example>")

    assert not source.has_sent("<mailbot.0123abcd@shop.example>")
    source.append_sent(reply)

    assert source.has_sent("<mailbot.0123abcd@shop.example>")
    assert source.has_sent("mailbot.0123abcd@shop.example")      # brackets optional
    assert not source.has_sent("<mailbot.0123abcd@other.example>")
    assert backend.count("Sent") == 1
    # Still on the inbox afterwards: fetching works as before.
    assert list(source.fetch_new(None, is_recorded=never)) == []


def test_append_sent_uses_the_configured_folder_or_none(backend: Backend, open_source: Open) -> None:
    source = open_source(sent_folder="Verzonden")
    source.append_sent(make_mail(message_id="<a1@shop.example>"))
    assert backend.count("Verzonden") == 1

    off = open_source(sent_folder=None)
    off.append_sent(make_mail(message_id="<a2@shop.example>"))
    assert not off.has_sent("<a2@shop.example>")


def test_wait_times_out_without_changes(backend: Backend, open_source: Open) -> None:
    source = open_source()
    list(source.fetch_new(None, is_recorded=never))
    started = time.monotonic()
    assert source.wait(1.0) is False
    assert 0.9 <= time.monotonic() - started < 2.5


def test_wait_wakes_up_soon_after_a_delivery(backend: Backend, open_source: Open) -> None:
    source = open_source()
    assert source.supports_idle
    list(source.fetch_new(None, is_recorded=never))
    delivered = threading.Event()
    delivered_at: list[float] = []

    def deliver_later() -> None:
        time.sleep(0.5)
        backend.deliver(make_mail())
        delivered_at.append(time.monotonic())
        delivered.set()

    thread = threading.Thread(target=deliver_later)
    thread.start()
    try:
        assert source.wait(10.0) is True
        woke = time.monotonic()
    finally:
        thread.join()
    assert woke - delivered_at[0] < 2.0
    assert len(list(source.fetch_new(None, is_recorded=never))) == 1


def test_wait_notices_a_delivery_made_before_it_was_called(backend: Backend, open_source: Open) -> None:
    source = open_source()
    list(source.fetch_new(None, is_recorded=never))
    backend.deliver(make_mail())
    time.sleep(0.3)
    source.noop()
    assert source.wait(3.0) is True


def test_noop_and_close_twice(backend: Backend, open_source: Open) -> None:
    source = open_source()
    source.noop()
    source.close()
    source.close()
