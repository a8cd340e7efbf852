"""Small, pure helpers the templates use: times, ages, the SLA, sizes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


def local_time(when: datetime | None) -> str:
    """``2024-05-01 10:02`` in the server's time zone (where the support team works)."""
    if when is None:
        return "-"
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def short_age(delta: timedelta) -> str:
    """A compact duration for a table cell.

    >>> short_age(timedelta(seconds=40)), short_age(timedelta(minutes=90))
    ('<1m', '1h 30m')
    >>> short_age(timedelta(days=3, hours=5))
    '3d 5h'
    """
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return "<1m"
    minutes, hours, days = seconds // 60 % 60, seconds // 3600 % 24, seconds // 86400
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


@dataclass(frozen=True, slots=True)
class Sla:
    label: str                  # "3h left", "2h 10m over"
    level: str                  # "ok" | "due" | "over": a CSS class


def sla(arrived: datetime, now: datetime, hours: float, *, done: bool = False) -> Sla:
    """Where a mail stands against the promise to answer within ``hours``; "due" in the
    last quarter of that time.

    >>> from datetime import UTC
    >>> t = datetime(2024, 5, 1, 9, tzinfo=UTC)
    >>> sla(t, t + timedelta(hours=20), 24), sla(t, t + timedelta(hours=26), 24)
    (Sla(label='4h left', level='due'), Sla(label='2h over', level='over'))
    """
    if done:
        return Sla("answered", "ok")
    budget = timedelta(hours=hours)
    left = arrived + budget - now
    if left <= timedelta(0):
        return Sla(f"{short_age(-left)} over", "over")
    return Sla(f"{short_age(left)} left", "due" if left <= budget / 4 else "ok")


def file_size(size: int) -> str:
    """
    >>> file_size(1536)
    '1.5 KB'
    """
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def percent(value: object) -> str:
    try:
        return f"{float(value) * 100:.0f}%"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"
