"""A private dovecot IMAP server for tests (pytest plugin "tests.support.dovecot").

Each test gets a fresh server: own config, own Maildir, own port on 127.0.0.1, no TLS,
one user with a plain password. It runs in the foreground (``dovecot -F``) as an ordinary
child process; as root it drops to uid/gid 65534 with ``setpriv`` first, because dovecot
refuses to run mail processes as root. Fixtures:

    dovecot           a running server with IDLE and MOVE
    dovecot_factory   make_server(capabilities_without=("IDLE",)) for other variants

If dovecot is missing the tests fail with the apt command to run (MAILBOT_ALLOW_SKIP=1
skips them instead).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from mailbot.config import ImapSource

DOVECOT = os.environ.get("MAILBOT_DOVECOT", "/usr/sbin/dovecot")
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
RUN_AS = 65534                      # nobody/nogroup on Debian
USER = "alice"
PASSWORD = "correct horse battery staple"
START_TIMEOUT = 10.0

# Dovecot 2.3's post-login capabilities; imap_capability replaces the whole list, so a
# variant "without IDLE" is this list minus IDLE.
_CAPABILITIES_TEXT = """
    IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES
    THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN
    NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES
    WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW
    STATUS=SIZE SAVEDATE LITERAL+ NOTIFY
"""
DEFAULT_CAPABILITIES = tuple(_CAPABILITIES_TEXT.split())

_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {user_name}
default_internal_group = {group_name}
default_login_user = {user_name}
mail_location = maildir:{root}/mail/%u/Maildir
# inotify normally wakes IDLE at once; this bounds the delay where inotify is unavailable.
mailbox_idle_check_interval = 1 secs
{capability_line}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
"""


class DovecotServer:
    """One private dovecot. ``start()``/``stop()`` keep port and data, for fault tests."""

    def __init__(self, root: Path, *, capabilities_without: Iterable[str] = ()) -> None:
        self.root = root
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.user = USER
        self.password = PASSWORD
        self.maildir = root / "mail" / USER / "Maildir"
        self.capabilities_without = tuple(c.upper() for c in capabilities_without)
        self._proc: subprocess.Popen[bytes] | None = None
        self._as_root = os.geteuid() == 0
        self._uid = RUN_AS if self._as_root else os.getuid()
        self._gid = RUN_AS if self._as_root else os.getgid()
        self._write_config()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start (again) and return once the port accepts connections."""
        if self.running:
            return
        self._chown()
        command = [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")]
        if self._as_root:
            command = [SETPRIV, f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--clear-groups", *command]
        with open(self.root / "stdout.log", "ab") as out:
            # Its own process group, so stop() reaches dovecot's children (imap, auth) too.
            self._proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self._proc.returncode}\n{self.log()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"dovecot did not listen on port {self.port} within "
                           f"{START_TIMEOUT} s\n{self.log()}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); clients see the drop."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        # SIGTERM to the whole group at once: the master alone would wait about a second for
        # its imap processes to go.
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=5)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        parts = []
        for name in ("dovecot.log", "stdout.log"):
            path = self.root / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    # ------------------------------------------------------------------ helpers for tests

    def source_config(self, **overrides: object) -> ImapSource:
        """An ImapSource for this server (security none, password login)."""
        values: dict[str, object] = {
            "kind": "imap", "host": self.host, "port": self.port, "security": "none",
            "username": self.user, "password": self.password, "timeout": 10.0,
        }
        values.update(overrides)
        return ImapSource.model_validate(values)

    def client(self, folder: str | None = "INBOX") -> IMAPClient:
        """A logged-in imapclient connection of its own (use as a context manager)."""
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        if folder:
            client.select_folder(folder)
        return client

    def append(self, folder: str, message: bytes, flags: Iterable[str] = ()) -> int:
        """APPEND ``message`` from a separate connection; returns its UID."""
        with self.client(folder=None) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            answer = client.append(folder, message, flags=tuple(flags))
        match = re.search(rb"APPENDUID \d+ (\d+)", answer)
        assert match, answer
        return int(match.group(1))

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.client(folder=None) as client:
            return int(client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def change_uidvalidity(self) -> tuple[int, int]:
        """Make dovecot renumber INBOX (as after a server migration): stop, delete its UID
        list and indexes, start. Returns (old, new); asserts they differ."""
        old = self.uidvalidity()
        for attempt in range(5):
            self.stop()
            for pattern in ("dovecot-uidlist*", "dovecot.index*", "dovecot.list.index*"):
                for path in self.maildir.glob(pattern):
                    path.unlink()
            self.start()
            new = self.uidvalidity()
            if new != old:
                return old, new
            # UIDVALIDITY is derived from the clock in seconds: try again a second later.
            time.sleep(1.0 + attempt * 0.1)
        raise AssertionError(f"UIDVALIDITY stayed {old}")

    # ------------------------------------------------------------------ plumbing

    def _write_config(self) -> None:
        (self.root / "run").mkdir(parents=True, exist_ok=True)
        (self.root / "state").mkdir(exist_ok=True)
        (self.root / "mail").mkdir(exist_ok=True)
        capability_line = ""
        if self.capabilities_without:
            kept = [c for c in DEFAULT_CAPABILITIES if c.upper() not in self.capabilities_without]
            capability_line = "imap_capability = " + " ".join(kept)
        (self.root / "dovecot.conf").write_text(_CONFIG.format(
            root=self.root, port=self.port, uid=self._uid, gid=self._gid,
            user_name=pwd.getpwuid(self._uid).pw_name, group_name=grp.getgrgid(self._gid).gr_name,
            capability_line=capability_line,
        ))
        (self.root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")

    def _chown(self) -> None:
        if not self._as_root:
            return
        # Dovecot (as 65534) must own everything it writes; done at every start because tests
        # running as root may have created files in the Maildir.
        for dirpath, dirnames, filenames in os.walk(self.root):
            os.chown(dirpath, self._uid, self._gid)
            for name in (*dirnames, *filenames):
                os.chown(os.path.join(dirpath, name), self._uid, self._gid, follow_symlinks=False)


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _require_dovecot() -> None:
    if os.path.exists(DOVECOT):
        return
    message = ("dovecot is not installed: run `apt-get install -y dovecot-imapd` "
               "(or set MAILBOT_ALLOW_SKIP=1 to skip these tests)")
    if os.environ.get("MAILBOT_ALLOW_SKIP") == "1":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def dovecot_factory() -> Iterator[Callable[..., DovecotServer]]:
    """``make_server(capabilities_without=())`` starts a new private dovecot; all are
    stopped and deleted at the end of the session (the function fixtures stop theirs
    earlier)."""
    servers: list[DovecotServer] = []

    def make_server(*, capabilities_without: Iterable[str] = ()) -> DovecotServer:
        _require_dovecot()
        # Not under pytest's tmp_path: that lives in a 0700 directory of root's, which
        # dovecot running as 65534 could not enter.
        root = Path(tempfile.mkdtemp(prefix="mailbot-dovecot-"))
        server = DovecotServer(root, capabilities_without=capabilities_without)
        servers.append(server)
        server.start()
        return server

    yield make_server
    for server in servers:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def dovecot(dovecot_factory: Callable[..., DovecotServer]) -> Iterator[DovecotServer]:
    """A fresh, running dovecot with the default capabilities (IDLE, MOVE, UIDPLUS)."""
    server = dovecot_factory()
    yield server
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)
