"""Running the shipped alembic migrations from code, and checking the result.

No alembic.ini: the Config is built here, ``script_location`` points into this package, and
the caller's connection is passed to ``migrations/env.py`` through ``config.attributes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from mailbot.store.schema import Base

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# Any fixed number: PostgreSQL advisory lock that keeps two workers from migrating at once.
_PG_MIGRATION_LOCK = 0x6D61696C


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic Config for the shipped migrations, optionally bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Migrate the database behind ``connection`` (inside its open transaction)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
    command.upgrade(alembic_config(connection), revision)


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def schema_diff(connection: Connection) -> list[Any]:
    """Differences between the database and the models, as alembic's autogenerate sees
    them: ``[]`` when the migrations and ``schema.py`` agree."""
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))
