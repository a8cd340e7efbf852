"""Connections, transactions and retries: the only module that knows about engines.

``Database.open(url)`` builds the engine for SQLite or PostgreSQL; ``read(fn)`` and
``write(fn)`` run ``fn(session)`` in one short transaction and return what it returns. A
database that is briefly unavailable (SQLite locked by another writer, PostgreSQL restarting,
a connection dropped) is waited for with backoff, up to ``retry_for`` seconds; after that,
and for every other database failure, a ``StoreError`` is raised with the SQLAlchemy
exception as its ``__cause__``. Errors raised by ``fn`` itself (``StoreError`` subclasses,
``ValueError``) roll the transaction back and pass through unchanged.

A unit of work may run more than once, so it must not have effects outside the database.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from mailbot.errors import ConfigError, StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Set on the engine used for write transactions; the SQLite "begin" hook reads it.
_WRITE = "mailbot_write"

# PostgreSQL SQLSTATE classes worth waiting for: connection exceptions, serialization
# failures and deadlocks, insufficient resources (too many connections), and the shutdown /
# "starting up" states a restart passes through.
_PG_TRANSIENT_PREFIXES = ("08", "40", "53", "57P", "55P03")
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy")
_MAX_CONFLICT_RETRIES = 3


def is_transient(exc: DBAPIError) -> bool:
    """True when waiting and trying the same unit of work again may succeed."""
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        return any(text in str(orig).lower() for text in _SQLITE_TRANSIENT)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is None:
        # psycopg raises OperationalError without SQLSTATE when it cannot reach the server.
        return isinstance(exc, OperationalError)
    return str(sqlstate).startswith(_PG_TRANSIENT_PREFIXES)


def is_unique_violation(exc: IntegrityError) -> bool:
    """True for a duplicate key, the loser's side of a race to insert the same row."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23505":
        return True
    return isinstance(orig, sqlite3.IntegrityError) and "UNIQUE constraint failed" in str(orig)


def retry_transient(
    attempt: Callable[[], T],
    *,
    what: str,
    retry_for: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``attempt()`` until it succeeds, waiting with backoff while the database is
    briefly unavailable; raise ``StoreError`` once ``retry_for`` seconds have passed.

    Only transient ``DBAPIError``s are retried; every other exception propagates at once.
    """
    deadline = clock() + retry_for
    delay = 0.05
    while True:
        try:
            return attempt()
        except DBAPIError as exc:
            if not is_transient(exc):
                raise
            remaining = deadline - clock()
            if remaining <= 0:
                raise StoreError(
                    f"{what}: database unavailable for {retry_for:.0f}s: {_short(exc)}"
                ) from exc
            pause = min(delay, remaining)
            log.warning("%s: database unavailable (%s); retrying in %.2fs", what, _short(exc), pause)
            sleep(pause)
            delay = min(delay * 2, 2.0)


def _short(exc: DBAPIError) -> str:
    text = str(exc.orig).strip() or type(exc.orig).__name__
    return text.splitlines()[0]


class Database:
    """An engine plus the two kinds of transaction the store runs.

    Build it with ``Database.open(url)``; close it with ``close()``. Thread-safe: each call
    takes its own pooled connection.
    """

    def __init__(self, engine: Engine, *, retry_for: float = 60.0) -> None:
        self.engine = engine
        self.retry_for = retry_for
        # SQLite starts write transactions with BEGIN IMMEDIATE (see _sqlite_begin); on
        # PostgreSQL the option is ignored.
        self._write_engine = engine.execution_options(**{_WRITE: True})
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, busy_timeout: float = 30.0, retry_for: float = 60.0,
             echo: bool = False) -> Database:
        """Create the engine for ``url``: ``sqlite:///path``, ``sqlite://`` (in memory, one
        shared connection: for tests) or ``postgresql[+psycopg]://...``.

        Nothing is connected yet; a bad URL raises ``ConfigError``.
        """
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(f"not a database URL: {exc}", key="database") from exc
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            engine = _sqlite_engine(parsed, busy_timeout=busy_timeout, echo=echo)
        elif backend == "postgresql":
            engine = _postgres_engine(parsed, echo=echo)
        else:
            raise ConfigError(
                f"unsupported database {backend!r}: use sqlite or postgresql", key="database"
            )
        return cls(engine, retry_for=retry_for)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def read(self, fn: Callable[[Session], T], *, what: str) -> T:
        """Run ``fn`` in a read-only transaction (on SQLite: deferred, never blocks writers)."""
        return self._run(self._read, fn, what=what, retry_conflicts=False)

    def write(self, fn: Callable[[Session], T], *, what: str, retry_conflicts: bool = False) -> T:
        """Run ``fn`` in a write transaction and commit.

        With ``retry_conflicts``, a unique-key violation (another worker inserted the same
        row first) reruns ``fn`` in a new transaction, where it will see that row: use this
        for units that are idempotent by design, such as ``record_mail``.
        """
        return self._run(self._write, fn, what=what, retry_conflicts=retry_conflicts)

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A connection inside a write transaction, committed on exit (for migrations)."""
        with self._write_engine.begin() as connection:
            yield connection

    def close(self) -> None:
        """Close every pooled connection. The Database must not be used afterwards."""
        self.engine.dispose()

    def _run(self, maker: sessionmaker[Session], fn: Callable[[Session], T], *, what: str,
             retry_conflicts: bool) -> T:
        conflicts = 0

        def attempt() -> T:
            nonlocal conflicts
            while True:
                try:
                    with maker() as session, session.begin():
                        return fn(session)
                except IntegrityError as exc:
                    if not (retry_conflicts and is_unique_violation(exc)):
                        raise
                    conflicts += 1
                    if conflicts > _MAX_CONFLICT_RETRIES:
                        raise
                    log.info("%s: lost a race to insert (%s); rereading", what, _short(exc))

        try:
            return retry_transient(attempt, what=what, retry_for=self.retry_for)
        except SQLAlchemyError as exc:
            detail = _short(exc) if isinstance(exc, DBAPIError) else str(exc)
            raise StoreError(f"{what}: {detail}") from exc


# ---------------------------------------------------------------- engines


def _sqlite_engine(url: URL, *, busy_timeout: float, echo: bool) -> Engine:
    in_memory = url.database in (None, "", ":memory:") or "mode=memory" in str(url)
    kwargs: dict[str, Any] = {
        # Connections move between the threads of the pool; SQLite itself is compiled
        # thread-safe, the check only guards naive use of one connection.
        "connect_args": {"check_same_thread": False, "timeout": busy_timeout},
        "echo": echo,
    }
    if in_memory:
        # An in-memory database lives and dies with its connection: keep exactly one.
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Turn off the driver's own transaction handling: it starts DEFERRED transactions
        # lazily and not before SELECTs. _sqlite_begin issues BEGIN itself instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            # WAL: readers never block the writer and the writer never blocks readers.
            # synchronous stays FULL (the default) so a committed mail survives power loss.
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection: Connection) -> None:
        # A write transaction takes the write lock up front (IMMEDIATE), so a second writer
        # waits in busy_timeout at BEGIN instead of failing with SQLITE_BUSY when a deferred
        # read lock cannot be upgraded halfway through.
        writes = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def _postgres_engine(url: URL, *, echo: bool) -> Engine:
    if url.drivername == "postgresql":
        # SQLAlchemy's default PostgreSQL driver is psycopg2; mailbot ships psycopg 3.
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(
        url,
        echo=echo,
        # A pooled connection may be dead after a server restart: test it before use.
        pool_pre_ping=True,
        connect_args={"connect_timeout": 10},
    )
