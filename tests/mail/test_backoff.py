"""Reconnect delays and the reconnect loop (no server needed)."""

from __future__ import annotations

import random
import threading

import pytest

from mailbot.errors import SourceAuthError, SourceConnectionError
from mailbot.mail.backoff import Backoff, connect_with_retry


def test_exponential_capped_and_reset() -> None:
    backoff = Backoff(initial=1.0, maximum=10.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.attempts == 6
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_jitter_stays_within_bounds_and_never_overflows() -> None:
    backoff = Backoff(initial=2.0, maximum=60.0, jitter=0.5, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(2000)]
    assert all(0 < d <= 60.0 for d in delays)
    assert min(delays[10:]) >= 30.0
    assert len(set(delays)) > 1000


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        Backoff(initial=0)
    with pytest.raises(ValueError):
        Backoff(initial=5, maximum=1)


class FlakySource:
    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or SourceConnectionError("support", "refused")
        self.connects = 0
        self.closes = 0

    def connect(self) -> None:
        self.connects += 1
        if self.connects <= self.failures:
            raise self.error

    def close(self) -> None:
        self.closes += 1


def test_connect_with_retry_retries_then_resets() -> None:
    source = FlakySource(failures=2)
    backoff = Backoff(initial=0.01, maximum=0.02)
    assert connect_with_retry(source, backoff, threading.Event()) is True  # type: ignore[arg-type]
    assert source.connects == 3
    assert backoff.attempts == 0


def test_connect_with_retry_stops_when_asked() -> None:
    stop = threading.Event()
    source = FlakySource(failures=10**6)
    threading.Timer(0.1, stop.set).start()
    assert connect_with_retry(source, Backoff(initial=0.02, maximum=0.05), stop) is False  # type: ignore[arg-type]


def test_auth_errors_are_not_retried() -> None:
    source = FlakySource(failures=1, error=SourceAuthError("support", "refused"))
    with pytest.raises(SourceAuthError):
        connect_with_retry(source, Backoff(), threading.Event())  # type: ignore[arg-type]
    assert source.connects == 1
