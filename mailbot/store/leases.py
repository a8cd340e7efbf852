"""Named, expiring locks: "one worker per mailbox" without a lock server.

A lease is held by ``holder`` until ``expires_at``; the holder renews it by acquiring it
again before it runs out, and anyone may take it over once it has expired. Times come from
the store's clock, so the workers' clocks must roughly agree (well within the TTL).
Nothing here commits; callers pass their session.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import CursorResult, delete
from sqlalchemy.orm import Session

from mailbot.store.schema import LeaseRow


def acquire(session: Session, name: str, holder: str, ttl: timedelta, *, now: datetime) -> bool:
    """Take or renew the lease; False while someone else holds it unexpired."""
    if ttl <= timedelta(0):
        raise ValueError("a lease needs a positive ttl")
    # Locked so that two workers taking over an expired lease cannot both win; a race to
    # insert a new lease ends in a unique violation and the store reruns this unit.
    row = session.get(LeaseRow, name, with_for_update=True)
    if row is None:
        session.add(LeaseRow(name=name, holder=holder, expires_at=now + ttl))
        session.flush()
        return True
    if row.holder != holder and row.expires_at > now:
        return False
    row.holder, row.expires_at = holder, now + ttl
    return True


def release(session: Session, name: str, holder: str) -> bool:
    """Give the lease up; False if ``holder`` did not hold it (expired and taken over)."""
    result = session.execute(delete(LeaseRow).where(LeaseRow.name == name,
                                                    LeaseRow.holder == holder))
    return isinstance(result, CursorResult) and result.rowcount == 1
