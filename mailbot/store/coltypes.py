"""Column types that make SQLite and PostgreSQL hand back the same Python values.

- ``ID``: BIGINT keys on PostgreSQL, INTEGER on SQLite (only ``INTEGER PRIMARY KEY`` is the
  rowid alias that autoincrements there).
- ``UTCDateTime``: accepts only timezone-aware datetimes and always returns them in UTC.
- ``EnumText``: a ``StrEnum`` stored as its short text value.
- ``JSONValue``: JSON whose Python ``None`` is SQL NULL, not the JSON text ``null``.

Migrations use the plain types these decorate (``DateTime(timezone=True)``, ``String(16)``,
``JSON``), so the DDL never depends on this module.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

ID = BigInteger().with_variant(Integer(), "sqlite")

E = TypeVar("E", bound=StrEnum)


def require_utc(value: datetime, name: str = "datetime") -> datetime:
    """``value`` converted to UTC; a naive datetime is refused rather than guessed at.

    >>> require_utc(datetime(2024, 1, 1, 12, tzinfo=UTC)).isoformat()
    '2024-01-01T12:00:00+00:00'
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, stored as UTC on every backend, returned timezone-aware in UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = require_utc(value)
        if dialect.name == "sqlite":
            # SQLite keeps datetimes as text and compares them as text: only naive UTC text
            # with the same layout sorts in time order, so the zone is dropped after converting.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class EnumText(TypeDecorator[E]):
    """A ``StrEnum`` member stored as its value in a ``VARCHAR(16)``.

    Binding an unknown value raises ``ValueError`` before anything reaches the database.
    """

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E]) -> None:
        super().__init__(16)
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


def JSONValue() -> JSON:
    """A JSON column where Python ``None`` is SQL NULL, so ``IS NULL`` finds it."""
    return JSON(none_as_null=True)


def enum_values(enum: type[StrEnum]) -> str:
    """The members of ``enum`` as an SQL list for a CHECK constraint: ``'a', 'b'``."""
    return ", ".join(f"'{member.value}'" for member in enum)


__all__ = ["ID", "EnumText", "JSONValue", "UTCDateTime", "enum_values", "require_utc"]
