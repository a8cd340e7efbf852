"""A database that is briefly unavailable is waited for, not reported as a failure.

SQLite: another process holds an exclusive lock for a second. PostgreSQL: the server is
stopped and started again while the call retries. Either way the call returns normally; only
past ``retry_for`` does it raise ``StoreError``.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError

from mailbot.errors import StoreError
from mailbot.models import MailOutcome
from mailbot.store import Store
from tests.store.conftest import Backend
from tests.store.factories import new_draft, new_mail
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("busy_timeout", [30.0, 0.05], ids=["busy-timeout", "retry-loop"])
def test_a_write_waits_out_an_outage(backend: Backend, busy_timeout: float) -> None:
    # busy_timeout 30 s: SQLite itself waits for the lock. 0.05 s: SQLite gives up at once
    # with "database is locked" and the store's retry loop does the waiting.
    store = backend.open(busy_timeout=busy_timeout)
    store.migrate()
    store.record_mail(new_mail(), outcome=MailOutcome.IGNORED)   # pool holds a connection
    with backend.outage(1.0):
        started = time.monotonic()
        result = store.record_mail(new_mail(), outcome=MailOutcome.DRAFTED, draft=new_draft())
        waited = time.monotonic() - started
    assert result.created and result.draft is not None
    assert waited >= 0.8
    assert store.get_draft(result.draft.id).mail_id == result.mail.id


def test_a_read_during_an_outage(backend: Backend) -> None:
    store = backend.open(busy_timeout=0.05)
    store.migrate()
    recorded = store.record_mail(new_mail(), outcome=MailOutcome.IGNORED)
    with backend.outage(1.0):
        # SQLite in WAL mode: readers are not blocked by a writer; PostgreSQL: down.
        assert store.get_mail(recorded.mail.id).id == recorded.mail.id


def test_gives_up_with_store_error_after_retry_for(backend: Backend) -> None:
    store = backend.open(busy_timeout=0.05, retry_for=0.5)
    store.migrate()
    with backend.outage(2.0), pytest.raises(StoreError, match="database unavailable") as info:
        store.record_mail(new_mail(), outcome=MailOutcome.IGNORED)
    assert isinstance(info.value.__cause__, OperationalError)
    # Once the database is back the same store works again.
    assert store.record_mail(new_mail(), outcome=MailOutcome.IGNORED).created


@pytest.mark.postgres
def test_pooled_connections_survive_a_postgres_restart(
    postgres_cluster: PostgresCluster, postgres_fresh_url: str
) -> None:
    store = Store.open(postgres_fresh_url)
    try:
        store.migrate()
        first = store.record_mail(new_mail(), outcome=MailOutcome.IGNORED)
        postgres_cluster.restart()        # every pooled connection is now dead
        assert store.get_mail(first.mail.id) == first.mail
        assert store.record_mail(new_mail(), outcome=MailOutcome.IGNORED).created
    finally:
        store.close()


def test_other_database_errors_are_translated(store: Store) -> None:
    with store.db.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE leases")
    with pytest.raises(StoreError, match="acquire_lease") as info:
        store.acquire_lease("x", "w", timedelta(seconds=5))
    assert info.value.__cause__ is not None
