"""pytest plugin: a throwaway PostgreSQL 15 cluster for the tests that need a real server.

Fixtures
    postgres_cluster     (session)  the running ``PostgresCluster``: url(), stop(), start(),
                                    restart() for fault tests
    postgres_url         (session)  "postgresql+psycopg://postgres@127.0.0.1:PORT/mailbot_test"
    postgres_fresh_url   (function) the same URL, but the database was just dropped and
                                    created again: use it for tests that must not see
                                    another test's rows

The cluster is created with the binaries in /usr/lib/postgresql/15/bin (override with
MAILBOT_PG_BIN) in a temporary directory, listens on 127.0.0.1 only, on a free port, with
trust authentication and its unix socket inside that directory, and is stopped and deleted
at the end of the session. initdb refuses to run as root, so as root every server command
runs as the ``postgres`` user through ``runuser``.

Missing binaries fail the tests that need them, loudly: CI must not pass by skipping. Set
MAILBOT_ALLOW_SKIP=1 to skip them instead (a developer machine without PostgreSQL).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

PG_BIN = Path(os.environ.get("MAILBOT_PG_BIN", "/usr/lib/postgresql/15/bin"))
DATABASE = "mailbot_test"
SERVER_USER = "postgres"


class PostgresCluster:
    """One private PostgreSQL server: ``init()`` once, then ``start()`` / ``stop()`` /
    ``restart()`` as often as a test needs, ``destroy()`` at the end."""

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir = bindir
        self.root = root
        self.port = port
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.log = root / "server.log"
        # initdb and postgres refuse to run as root.
        self._as_server = ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []

    # ------------------------------------------------------------ addresses

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                               dbname="postgres", autocommit=True, connect_timeout=5)

    # ------------------------------------------------------------ life cycle

    def init(self) -> None:
        self.sockets.mkdir()
        if self._as_server:
            user = pwd.getpwnam(SERVER_USER)
            for path in (self.root, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "--auth=trust", "--username=postgres",
                  "--encoding=UTF8", "--locale=C", "--no-sync")

    def start(self) -> None:
        self._pg_ctl("start", "-l", str(self.log), "-o", self._server_options())
        self.wait_ready()

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "fast")

    def restart(self) -> None:
        """Stop (fast: disconnects every client) and start again on the same port."""
        self._pg_ctl("restart", "-m", "fast", "-l", str(self.log),
                     "-o", self._server_options())
        self.wait_ready()

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self._admin():
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not come up; see {self.log}") from None
                time.sleep(0.1)

    # ------------------------------------------------------------ databases

    def recreate_database(self, name: str = DATABASE) -> None:
        """Drop ``name`` (disconnecting anyone still on it) and create it empty."""
        with self._admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')

    # ------------------------------------------------------------ helpers

    def _server_options(self) -> str:
        # fsync off: a throwaway cluster need not survive a power cut, and tests run faster.
        return (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockets} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", *args)

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as_server, str(self.bindir / program), *args]
        # cwd: the server user may not be allowed into the directory pytest runs in.
        result = subprocess.run(command, cwd=self.root, capture_output=True, text=True,
                                timeout=120, check=False)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{log}"
            )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _unavailable(reason: str) -> None:
    if os.environ.get("MAILBOT_ALLOW_SKIP") == "1":
        pytest.skip(f"PostgreSQL unavailable: {reason}")
    pytest.fail(
        f"PostgreSQL unavailable: {reason}. Install postgresql-15 (or set MAILBOT_PG_BIN), "
        "or set MAILBOT_ALLOW_SKIP=1 to skip the PostgreSQL tests.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A running private PostgreSQL cluster with an empty ``mailbot_test`` database."""
    missing = [name for name in ("initdb", "pg_ctl", "postgres")
               if not (PG_BIN / name).is_file()]
    if missing:
        _unavailable(f"{', '.join(missing)} not found in {PG_BIN}")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            _unavailable(f"running as root and there is no {SERVER_USER!r} user to run initdb")
        if shutil.which("runuser") is None:
            _unavailable("running as root and runuser is missing")
    cluster = PostgresCluster(PG_BIN, Path(tempfile.mkdtemp(prefix="mailbot-pg-")),
                              _free_port())
    try:
        cluster.init()
        cluster.start()
        cluster.recreate_database()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """URL of the ``mailbot_test`` database, shared by the whole session."""
    return postgres_cluster.url()


@pytest.fixture
def postgres_fresh_url(postgres_cluster: PostgresCluster) -> str:
    """URL of a ``mailbot_test`` database that was emptied for this test."""
    postgres_cluster.recreate_database()
    return postgres_cluster.url()
