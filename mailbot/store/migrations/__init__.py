"""Alembic migrations for the store, shipped inside the package; run by ``Store.migrate()``."""
