"""Waiting between reconnect attempts: exponential, jittered, capped, reset after success.

Jitter keeps several workers that lost the same server from reconnecting in lock-step.

    >>> b = Backoff(initial=1.0, maximum=8.0, jitter=0.0)
    >>> [b.next_delay() for _ in range(5)]
    [1.0, 2.0, 4.0, 8.0, 8.0]
    >>> b.reset(); b.next_delay()
    1.0
"""

from __future__ import annotations

import logging
import random
import threading

from mailbot.errors import SourceConnectionError
from mailbot.mail.source import MailSource

log = logging.getLogger(__name__)


class Backoff:
    """Delays ``initial * factor**n`` capped at ``maximum``, each multiplied by a random
    factor in ``[1 - jitter, 1]``. ``attempts`` counts delays handed out since the last
    ``reset()``."""

    def __init__(
        self,
        *,
        initial: float = 1.0,
        maximum: float = 300.0,
        factor: float = 2.0,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or maximum < initial or factor < 1 or not 0 <= jitter <= 1:
            raise ValueError("need 0 < initial <= maximum, factor >= 1 and 0 <= jitter <= 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rng = rng or random.Random()
        self.attempts = 0

    def next_delay(self) -> float:
        """The seconds to wait before the next attempt; advances the sequence."""
        # min() before the power would overflow for long outages (factor**1000).
        exponent = min(self.attempts, 64)
        base = min(self.maximum, self.initial * self.factor ** exponent)
        self.attempts += 1
        if not self.jitter:
            return base
        return base * self._rng.uniform(1.0 - self.jitter, 1.0)

    def reset(self) -> None:
        """Call after a success: the next failure starts again at ``initial``."""
        self.attempts = 0


def connect_with_retry(source: MailSource, backoff: Backoff, stop: threading.Event) -> bool:
    """(Re)connect ``source``, retrying connection failures with ``backoff`` delays.

    Returns True once connected (and resets ``backoff``), False if ``stop`` was set while
    waiting. ``SourceAuthError`` and other ``SourceError``s are raised at once: retrying a
    refused password risks locking the account, and the admin has to act anyway.
    """
    while not stop.is_set():
        source.close()
        try:
            source.connect()
        except SourceConnectionError as exc:
            delay = backoff.next_delay()
            log.warning("%s; attempt %d failed, retrying in %.1f s", exc, backoff.attempts, delay)
            if stop.wait(delay):
                return False
            continue
        backoff.reset()
        return True
    return False
