"""Alembic environment for mailbot's store.

Online migrations run through ``Store.migrate()``, which opens the transaction and hands the
connection in as ``config.attributes["connection"]``: that way the same code serves SQLite
files, in-memory SQLite (whose data lives only on that one connection) and PostgreSQL, and
the store's connection settings (WAL, foreign keys, busy timeout) apply to migrations too.
Offline mode (``--sql``) renders the DDL for a DBA from ``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context

from mailbot.store.schema import Base


def run_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=Base.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "mailbot's migrations run through Store.migrate(), which passes the connection in"
        )
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


# Alembic executes this file under a private module name; imported normally (by a tool that
# walks the package, such as pytest --doctest-modules) it must do nothing.
if __name__ != "mailbot.store.migrations.env":
    if context.is_offline_mode():
        run_offline()
    else:
        run_online()
