"""`mailbot users ...`, `mailbot web` and `mailbot run` with ``web.enabled``, as real processes."""

from __future__ import annotations

import mailbox
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from mailbot.models import DraftState
from mailbot.store import Store
from tests.web.conftest import Browser, customer_raw


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Install:
    """A config file (Maildir in, outbox out, SQLite) and the `mailbot` command on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.db = root / "mailbot.db"
        self.config = root / "mailbot.yaml"
        self.config.write_text(yaml.safe_dump({
            "database": {"url": f"sqlite:///{self.db}"},
            "nlp": {"enabled": False},
            "respond": {"enabled": False},
            "mailboxes": [{"name": "support", "address": "support@shop.example",
                           "source": {"kind": "maildir", "path": "inbox", "poll_interval": 0.2},
                           "transport": {"kind": "outbox", "path": "outbox"}}],
            "web": {"enabled": True, "host": "127.0.0.1", "port": self.port},   # enabled: for `run`
        }))
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
        env["MAILBOT_CONFIG"] = str(self.config)
        return env

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mailbot.cli", *args], env=self.env(), text=True,
                              input=stdin, capture_output=True, timeout=120, check=False)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.root / f"process-{len(self.processes)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "mailbot.cli", *args], env=self.env(),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.processes.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, self.logs()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).text == "ok":
                    return proc
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"the page did not come up\n{self.logs()}")

    def logs(self) -> str:
        logs = sorted(self.root.glob("process-*.log"))
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in logs)

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 20) -> float:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
        return time.monotonic() - started


@pytest.fixture
def install(tmp_path: Path) -> Iterator[Install]:
    made = Install(tmp_path)
    yield made
    for proc in made.processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_users_add_list_disable(install: Install) -> None:
    secret = install.root / "pw.txt"
    secret.write_text("geheim-wachtwoord-1\n")
    done = install.run("users", "add", "Anna", "--role", "approver", "--password-file", str(secret))
    assert done.returncode == 0, done.stderr
    assert "user anna added as approver" in done.stdout
    from_stdin = install.run("users", "add", "bob", "--password-file", "-", stdin="wachtwoord-22b\n")
    assert from_stdin.returncode == 0
    assert install.run("users", "add", "carol", stdin="wachtwoord-33c\n").returncode == 0  # stdin, no tty
    listed = install.run("users", "list").stdout
    assert "anna" in listed and "approver" in listed and "bob" in listed and "agent" in listed
    store = Store.open(f"sqlite:///{install.db}")
    try:
        found = store.accounts.credentials("anna")
        assert found is not None and found[1].startswith("$argon2id$") and "geheim" not in found[1]
        assert install.run("users", "disable", "bob").returncode == 0
        assert not store.accounts.get_user("bob").active
        assert install.run("users", "enable", "bob").returncode == 0
        assert install.run("users", "role", "bob", "admin").returncode == 0
        assert store.accounts.get_user("bob").role == "admin"
        assert '"role": "admin"' in install.run("users", "list", "--json").stdout
    finally:
        store.close()


def test_users_bad_input_and_exit_codes(install: Install) -> None:
    assert install.run("users", "add", "anna", stdin="wachtwoord-11a\n").returncode == 0
    assert install.run("users", "add", "anna", stdin="wachtwoord-11a\n").returncode == 4   # exists
    assert install.run("users", "disable", "nobody").returncode == 3
    assert install.run("users", "add", "a b", stdin="long-enough-pw\n").returncode == 2
    short = install.run("users", "add", "dave", stdin="kort\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    # A password on the command line is not even accepted.
    plain = install.run("users", "add", "eve", "--password", "wachtwoord-55e")
    assert plain.returncode == 2
    assert "eve" not in install.run("users", "list").stdout
    missing = install.run("users", "add", "frank", "--password-file", str(install.root / "none.txt"))
    assert missing.returncode == 2


def test_mailbot_web_serves_the_store_and_stops_cleanly(install: Install) -> None:
    assert install.run("users", "add", "anna", stdin="wachtwoord-11a\n").returncode == 0
    proc = install.start("web")
    browser = Browser(install.url)
    try:
        assert browser.login("anna", "wachtwoord-11a").status_code == 303
        assert browser.get("/").status_code == 200
        # Disabling on the command line signs her out of the running page.
        assert install.run("users", "disable", "anna").returncode == 0
        assert browser.get("/queue/rows").status_code == 401
        assert install.run("users", "enable", "anna").returncode == 0
        assert browser.login("anna", "wachtwoord-11a").status_code == 303
        # An open live-update stream does not hold up a stop.
        with httpx.Client(base_url=install.url, cookies=browser.http.cookies, timeout=None) as sse, \
                sse.stream("GET", "/events") as stream:
            assert stream.status_code == 200
            took = install.stop(proc)
        assert proc.returncode == 0, install.logs()
        assert took < 8, f"stopping took {took:.1f} s"
    finally:
        browser.close()


def test_the_daemon_serves_the_page_and_sends_what_it_approves(install: Install) -> None:
    assert install.run("users", "add", "bob", "--role", "approver", stdin="wachtwoord-22b\n").returncode == 0
    proc = install.start("run")
    browser = Browser(install.url)
    try:
        assert browser.login("bob", "wachtwoord-22b").status_code == 303
        inbox = mailbox.Maildir(install.root / "inbox", create=True)
        inbox.add(customer_raw(1, subject="Kapotte lamp", body="Mijn lamp is kapot.",
                               sender="Jan <jan@example.nl>"))
        store = Store.open(f"sqlite:///{install.db}")
        try:
            deadline = time.monotonic() + 30
            while not store.list_drafts() and time.monotonic() < deadline:
                time.sleep(0.2)
            [draft] = store.list_drafts()
            assert "Kapotte lamp" in browser.get("/").text
            form = browser.draft_form(draft.id)
            response = browser.post(f"/drafts/{draft.id}/approve",
                                    {**form, "body": "Beste Jan,\n\nEen nieuwe lamp is onderweg.\n"})
            assert response.status_code == 303
            deadline = time.monotonic() + 20      # the daemon's own sender, woken by the page
            while store.get_draft(draft.id).state is not DraftState.SENT and time.monotonic() < deadline:
                time.sleep(0.1)
            assert store.get_draft(draft.id).state is DraftState.SENT, install.logs()
            assert time.monotonic() < deadline - 10, "sent by the 10 s timer, not at once"
        finally:
            store.close()
        [sent] = list((install.root / "outbox").glob("*.eml"))
        assert b"Een nieuwe lamp is onderweg." in sent.read_bytes()
        install.stop(proc)
        assert proc.returncode == 0, install.logs()
    finally:
        browser.close()
