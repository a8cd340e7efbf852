"""A private dovecot IMAP server for tests (pytest plugin "tests.support.dovecot").

Each test gets a fresh server: own config, own Maildir, own port on 127.0.0.1, no TLS,
one user with a plain password. It runs in the foreground (``dovecot -F``) as an ordinary
child process; as root it drops to uid/gid 65534 with ``setpriv`` first, because dovecot
refuses to run mail processes as root. Fixtures:

    dovecot           a running server with IDLE and MOVE
    dovecot_factory   make_server(capabilities_without=("IDLE",)) for other variants

Variants of ``make_server``:

    tls=True              STARTTLS on ``port`` plus implicit TLS (imaps) on ``tls_port``, with a
                          self-signed certificate for 127.0.0.1/127.0.0.2/localhost
                          (``cert_file``; ``client_tls_context()`` trusts it)
    plaintext_auth=False  ``disable_plaintext_auth = yes`` (needs tls=True): LOGIN only after
                          STARTTLS. Dovecot treats a connection whose local and remote address
                          are equal as secure, so this server listens on 127.0.0.2 instead.
    oauth2=True           XOAUTH2/OAUTHBEARER through dovecot's oauth2 passdb, which asks a
                          local token-introspection endpoint (http.server in a thread) that
                          accepts exactly ``oauth2_token`` for ``user``

If dovecot is missing the tests fail with the apt command to run (MAILBOT_ALLOW_SKIP=1
skips them instead).
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from imapclient import IMAPClient

from mailbot.config import ImapSource

DOVECOT = os.environ.get("MAILBOT_DOVECOT", "/usr/sbin/dovecot")
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
RUN_AS = 65534                      # nobody/nogroup on Debian
USER = "alice"
PASSWORD = "correct horse battery staple"
OAUTH2_TOKEN = "imap-oauth2-test-token-7f3a"    # the one token the introspection endpoint accepts
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
listen = {host}
protocols = imap
{ssl_lines}
disable_plaintext_auth = {disable_plaintext_auth}
auth_mechanisms = {auth_mechanisms}
auth_failure_delay = 0
default_internal_user = {user_name}
default_internal_group = {group_name}
default_login_user = {user_name}
mail_location = maildir:{root}/mail/%u/Maildir
# inotify normally wakes IDLE at once; this bounds the delay where inotify is unavailable.
mailbox_idle_check_interval = 1 secs
{capability_line}
{oauth2_passdb}passdb {{
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
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
{imaps_lines}
  }}
}}
service anvil {{
  chroot =
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
"""

_NO_TLS = "ssl = no"
_TLS = """\
ssl = yes
ssl_cert = <{cert_file}
ssl_key = <{key_file}"""
_NO_IMAPS = "    port = 0"
_IMAPS = """\
    address = {host}
    port = {tls_port}
    ssl = yes"""
# First, and only for the token mechanisms: LOGIN and AUTHENTICATE PLAIN go to passwd-file.
_OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/dovecot-oauth2.conf.ext
}}
"""
_OAUTH2_CONFIG = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
"""


class TokenIntrospection:
    """An RFC 7662 token-introspection endpoint: ``POST token=T`` answers
    ``{"active": true, "username": user}`` for ``token`` and ``{"active": false}`` for any
    other. ``requests`` counts the questions, so a test can tell the passdb really asked."""

    def __init__(self, token: str, user: str) -> None:
        self.token = token
        self.user = user
        self.requests = 0
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
                with endpoint._lock:
                    endpoint.requests += 1
                if form.get("token") == [endpoint.token]:
                    answer: dict[str, object] = {"active": True, "username": endpoint.user}
                else:
                    answer = {"active": False}
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass    # quiet: no request lines on the test output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/introspect"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="dovecot-token-introspection")
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class DovecotServer:
    """One private dovecot. ``start()``/``stop()`` keep port and data, for fault tests;
    ``close()`` also stops the token-introspection endpoint of an ``oauth2`` server."""

    def __init__(
        self,
        root: Path,
        *,
        capabilities_without: Iterable[str] = (),
        certificate: tuple[Path, Path] | None = None,
        plaintext_auth: bool = True,
        oauth2: bool = False,
    ) -> None:
        if not plaintext_auth and certificate is None:
            raise ValueError("plaintext_auth=False needs TLS: nobody could log in")
        self.root = root
        # 127.0.0.2: connections from 127.0.0.1 then count as not secured (see module doc).
        self.host = "127.0.0.1" if plaintext_auth else "127.0.0.2"
        self.port = _free_port(self.host)
        self.user = USER
        self.password = PASSWORD
        self.maildir = root / "mail" / USER / "Maildir"
        self.capabilities_without = tuple(c.upper() for c in capabilities_without)
        self.plaintext_auth = plaintext_auth
        self.tls = certificate is not None
        self.tls_port: int | None = _free_port(self.host) if certificate is not None else None
        self.cert_file: Path | None = None
        self._key_file: Path | None = None
        if certificate is not None:
            (root / "tls").mkdir(parents=True, exist_ok=True)
            self.cert_file, self._key_file = root / "tls" / "cert.pem", root / "tls" / "key.pem"
            shutil.copyfile(certificate[0], self.cert_file)
            shutil.copyfile(certificate[1], self._key_file)
            self._key_file.chmod(0o600)
        self.introspection = TokenIntrospection(OAUTH2_TOKEN, USER) if oauth2 else None
        self.oauth2_token: str | None = OAUTH2_TOKEN if oauth2 else None
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
        waiting = [port for port in (self.port, self.tls_port) if port is not None]
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self._proc.returncode}\n{self.log()}")
            try:
                socket.create_connection((self.host, waiting[0]), timeout=0.5).close()
            except OSError:
                time.sleep(0.01)
                continue
            waiting.pop(0)
            if not waiting:
                return
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

    def close(self) -> None:
        """Stop the server and its token-introspection endpoint, if any (not restartable)."""
        self.stop()
        if self.introspection is not None:
            self.introspection.close()

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
        """An ImapSource for this server (security none, password login). With
        ``security="tls"`` and no ``port`` the port is ``tls_port``."""
        values: dict[str, object] = {
            "kind": "imap", "host": self.host, "port": self.port, "security": "none",
            "username": self.user, "password": self.password, "timeout": 10.0,
        }
        if overrides.get("security") == "tls" and "port" not in overrides and self.tls_port:
            values["port"] = self.tls_port
        values.update(overrides)
        return ImapSource.model_validate(values)

    def client_tls_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this server's self-signed certificate."""
        if self.cert_file is None:
            raise RuntimeError("this dovecot was started without tls=True")
        return ssl.create_default_context(cafile=str(self.cert_file))

    def client(self, folder: str | None = "INBOX") -> IMAPClient:
        """A logged-in imapclient connection of its own (use as a context manager); on a
        TLS server it uses STARTTLS first."""
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        if self.tls:
            client.starttls(self.client_tls_context())
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
        ssl_lines, imaps_lines = _NO_TLS, _NO_IMAPS
        if self.cert_file is not None and self._key_file is not None:
            ssl_lines = _TLS.format(cert_file=self.cert_file, key_file=self._key_file)
            imaps_lines = _IMAPS.format(host=self.host, tls_port=self.tls_port)
        mechanisms, oauth2_passdb = "plain login", ""
        if self.introspection is not None:
            mechanisms += " xoauth2 oauthbearer"
            oauth2_passdb = _OAUTH2_PASSDB.format(root=self.root)
            (self.root / "dovecot-oauth2.conf.ext").write_text(
                _OAUTH2_CONFIG.format(url=self.introspection.url))
        (self.root / "dovecot.conf").write_text(_CONFIG.format(
            root=self.root, host=self.host, port=self.port, uid=self._uid, gid=self._gid,
            user_name=pwd.getpwuid(self._uid).pw_name, group_name=grp.getgrgid(self._gid).gr_name,
            capability_line=capability_line, ssl_lines=ssl_lines, imaps_lines=imaps_lines,
            disable_plaintext_auth="no" if self.plaintext_auth else "yes",
            auth_mechanisms=mechanisms, oauth2_passdb=oauth2_passdb,
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


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, 127.0.0.2 and localhost: (cert, key), as
    tests/support/smtpd.py makes its own."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed for the IMAP TLS tests: apt-get install -y openssl",
                    pytrace=False)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


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
    """``make_server(capabilities_without=(), tls=False, plaintext_auth=True, oauth2=False)``
    starts a new private dovecot (see the module doc); all are stopped and deleted at the end
    of the session (the function fixtures stop theirs earlier). The TLS certificate is made
    once, at the first ``tls=True``."""
    servers: list[DovecotServer] = []
    certificates: list[tuple[Path, Path]] = []
    cert_dir: list[Path] = []

    def make_server(
        *,
        capabilities_without: Iterable[str] = (),
        tls: bool = False,
        plaintext_auth: bool = True,
        oauth2: bool = False,
    ) -> DovecotServer:
        _require_dovecot()
        certificate = None
        if tls:
            if not certificates:
                cert_dir.append(Path(tempfile.mkdtemp(prefix="mailbot-dovecot-tls-")))
                certificates.append(_make_certificate(cert_dir[0]))
            certificate = certificates[0]
        # Not under pytest's tmp_path: that lives in a 0700 directory of root's, which
        # dovecot running as 65534 could not enter.
        root = Path(tempfile.mkdtemp(prefix="mailbot-dovecot-"))
        server = DovecotServer(root, capabilities_without=capabilities_without,
                               certificate=certificate, plaintext_auth=plaintext_auth,
                               oauth2=oauth2)
        servers.append(server)
        server.start()
        return server

    yield make_server
    for server in servers:
        server.close()
        shutil.rmtree(server.root, ignore_errors=True)
    for folder in cert_dir:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def dovecot(dovecot_factory: Callable[..., DovecotServer]) -> Iterator[DovecotServer]:
    """A fresh, running dovecot with the default capabilities (IDLE, MOVE, UIDPLUS)."""
    server = dovecot_factory()
    yield server
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)
