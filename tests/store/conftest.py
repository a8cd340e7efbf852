"""The store's fixtures: every test that takes ``store`` runs on SQLite and on PostgreSQL.

``backend`` knows how to open more stores on the same database (a second worker, a second
agent) and how to make the database briefly unavailable (``outage``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailbot.store import Store
from tests.support.postgres import PostgresCluster


class FakeClock:
    """A clock the test moves by hand: ``clock()`` returns ``clock.now``."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2024, 5, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@dataclass
class Backend:
    name: str
    url: str
    sqlite_path: Path | None = None
    cluster: PostgresCluster | None = None
    stores: list[Store] = field(default_factory=list)

    def open(self, **kwargs: Any) -> Store:
        """Another Store on the same database (its own engine and pool: another worker)."""
        store = Store.open(self.url, **kwargs)
        self.stores.append(store)
        return store

    @contextmanager
    def outage(self, seconds: float) -> Iterator[None]:
        """The database is unavailable from entering this block until ``seconds`` later.

        SQLite: another connection holds an exclusive lock. PostgreSQL: the server is
        stopped, and started again by a background thread.
        """
        if self.sqlite_path is not None:
            locker = sqlite3.connect(self.sqlite_path, isolation_level=None,
                                     check_same_thread=False)
            locker.execute("BEGIN EXCLUSIVE")

            def end() -> None:
                time.sleep(seconds)
                locker.execute("COMMIT")
                locker.close()
        else:
            assert self.cluster is not None
            cluster = self.cluster
            cluster.stop()

            def end() -> None:
                time.sleep(seconds)
                cluster.start()

        thread = threading.Thread(target=end, name="outage")
        thread.start()
        try:
            yield
        finally:
            thread.join(timeout=120)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "mailbot.db"
        result = Backend("sqlite", f"sqlite:///{path}", sqlite_path=path)
    else:
        # Looked up lazily so that a SQLite-only run never starts PostgreSQL.
        url = request.getfixturevalue("postgres_fresh_url")
        cluster = request.getfixturevalue("postgres_cluster")
        result = Backend("postgresql", url, cluster=cluster)
    yield result
    for store in result.stores:
        store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(backend: Backend) -> Store:
    """A migrated store on a fresh database, with the real clock."""
    store = backend.open()
    store.migrate()
    return store
