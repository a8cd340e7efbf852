"""Leases: one holder at a time, renewable, taken over once expired."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from mailbot.store import Store
from tests.store.conftest import Backend, FakeClock

TTL = timedelta(seconds=60)


@pytest.fixture
def timed(backend: Backend, clock: FakeClock) -> Store:
    store = backend.open(clock=clock)
    store.migrate()
    return store


def test_one_holder_at_a_time(timed: Store, clock: FakeClock) -> None:
    assert timed.acquire_lease("mailbox:INBOX", "w1", TTL)
    assert not timed.acquire_lease("mailbox:INBOX", "w2", TTL)
    assert timed.acquire_lease("mailbox:Sales", "w2", TTL)          # another name
    clock.advance(seconds=50)
    assert timed.acquire_lease("mailbox:INBOX", "w1", TTL)          # renewed to 110 s
    clock.advance(seconds=50)
    assert not timed.acquire_lease("mailbox:INBOX", "w2", TTL)      # still w1's
    clock.advance(seconds=11)
    assert timed.acquire_lease("mailbox:INBOX", "w2", TTL)          # expired: taken over
    assert not timed.acquire_lease("mailbox:INBOX", "w1", TTL)


def test_release(timed: Store) -> None:
    assert timed.acquire_lease("mailbox:INBOX", "w1", TTL)
    assert not timed.release_lease("mailbox:INBOX", "w2")
    assert not timed.acquire_lease("mailbox:INBOX", "w2", TTL)
    assert timed.release_lease("mailbox:INBOX", "w1")
    assert not timed.release_lease("mailbox:INBOX", "w1")
    assert timed.acquire_lease("mailbox:INBOX", "w2", TTL)


def test_ttl_must_be_positive(timed: Store) -> None:
    with pytest.raises(ValueError, match="positive ttl"):
        timed.acquire_lease("x", "w1", timedelta(0))


@pytest.mark.parametrize("existing", [False, True])
def test_racing_workers_get_one_lease(backend: Backend, timed: Store, clock: FakeClock,
                                      existing: bool) -> None:
    if existing:        # an expired lease that everyone wants to take over
        assert timed.acquire_lease("mailbox:INBOX", "old", TTL)
        clock.advance(seconds=61)
    workers = [backend.open(clock=clock) for _ in range(4)]
    won: list[str] = []
    start = threading.Barrier(len(workers))

    def take(worker: Store, name: str) -> None:
        start.wait()
        if worker.acquire_lease("mailbox:INBOX", name, TTL):
            won.append(name)

    threads = [threading.Thread(target=take, args=(w, f"w{n}"))
               for n, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
