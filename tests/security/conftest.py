"""Helpers for the security tests: running the real CLI, the forms a secret can take on the
wire or in a log, and a PostgreSQL cluster that really checks passwords.

    run_cli(config, *args, env=...)   ``python -m mailbot.cli -v --config CONFIG ARGS``
    secret_forms(secret, user)        the secret as it would appear if leaked: plain, URL-
                                      quoted, base64, AUTH PLAIN, AUTH LOGIN, XOAUTH2
    assert_no_secret(where, text, secrets)
    scram_postgres                    (session) a private cluster with scram-sha-256 for
                                      role ``mailbot`` (password SCRAM_PASSWORD)
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

# The real analyzer, the repository's macros and the policy without business hours, as the
# hostile-mail tests build them: imported so pytest offers these session fixtures here too.
from tests.hostile.conftest import analyzer, policy_without_hours, responder  # noqa: F401
from tests.support.postgres import PG_BIN, PostgresCluster, _free_port, _unavailable

SCRAM_PASSWORD = "Db-S3cret-only-in-env-71"


def run_cli(config: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The real command line, with debug logging on (``-v``): the most a log ever shows."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    return subprocess.run([sys.executable, "-m", "mailbot.cli", "-v", "--config", str(config), *args],
                          env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout,
                          check=False)


def secret_forms(secret: str, user: str = "") -> set[str]:
    """How ``secret`` looks in every encoding a protocol or a careless log might use."""
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    forms = {secret, urllib.parse.quote(secret, safe=""), b64(secret), repr(secret)[1:-1]}
    if user:
        forms |= {b64(f"\0{user}\0{secret}"), b64(f"{user}\0{user}\0{secret}"),
                  b64(f"user={user}\x01auth=Bearer {secret}\x01\x01")}
    return forms


def assert_no_secret(where: str, text: str | bytes, secrets: Iterable[str]) -> None:
    haystack = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    for secret in secrets:
        assert secret not in haystack, f"{where} contains a secret ({secret[:3]}...)"


@pytest.fixture(scope="session")
def scram_postgres() -> Iterator[PostgresCluster]:
    """A private PostgreSQL whose role ``mailbot`` must log in with SCRAM_PASSWORD.

    The shared test cluster trusts every connection, so a wrong password would pass there;
    this one keeps trust only for the ``postgres`` superuser the helpers use.
    """
    missing = [name for name in ("initdb", "pg_ctl", "postgres") if not (PG_BIN / name).is_file()]
    if missing:
        _unavailable(f"{', '.join(missing)} not found in {PG_BIN}")
    cluster = PostgresCluster(PG_BIN, Path(tempfile.mkdtemp(prefix="mailbot-pg-scram-")), _free_port())
    try:
        cluster.init()
        (cluster.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n")
        cluster.start()
        with cluster._admin() as admin:
            admin.execute(f"CREATE ROLE mailbot LOGIN PASSWORD '{SCRAM_PASSWORD}'")
            admin.execute("CREATE DATABASE mailbot OWNER mailbot")
        yield cluster
    finally:
        cluster.destroy()
