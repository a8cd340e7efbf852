"""The shipped migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from mailbot.store import Store
from mailbot.store.migrate import head_revision
from tests.store.conftest import Backend


def test_migrated_schema_matches_models(store: Store) -> None:
    assert store.schema_revision() == head_revision() == "0002"
    assert store.schema_diff() == []


def test_migrate_is_repeatable(store: Store, backend: Backend) -> None:
    store.migrate()
    backend.open().migrate()            # a second worker starting up
    assert store.schema_diff() == []


def test_fresh_database_has_no_revision(backend: Backend) -> None:
    store = backend.open()
    assert store.schema_revision() is None
    assert store.schema_diff() != []    # every table is missing


def test_in_memory_sqlite_migrates() -> None:
    store = Store.open("sqlite://")
    try:
        store.migrate()
        assert store.schema_diff() == []
        assert store.get_checkpoint("INBOX") is None
    finally:
        store.close()


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'm.db'}", busy_timeout=12.5)
    try:
        with store.db.engine.connect() as connection:
            def pragma(name: str) -> object:
                return connection.execute(text(f"PRAGMA {name}")).scalar()
            assert pragma("journal_mode") == "wal"
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == 12500
    finally:
        store.close()
