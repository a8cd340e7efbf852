"""End-to-end fixtures: a real ``mailbot run`` process against a private dovecot and aiosmtpd."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest
import yaml

from mailbot.errors import StoreError
from mailbot.store import Mail, Store
from tests.support.dovecot import DovecotServer
from tests.support.smtpd import SmtpServer

ROOT = Path(__file__).resolve().parents[2]


def customer_mail(n: int, *, subject: str | None = None, body: str | None = None,
                  sender: str | None = None, headers: dict[str, str] | None = None,
                  message_id: str | None = "auto") -> bytes:
    """A plain customer mail with CRLF line ends; ``message_id=None`` leaves the header out."""
    lines = [
        f"From: {sender or f'Klant {n} <klant{n}@example.nl>'}",
        "To: Support <support@shop.example>",
        f"Subject: {subject if subject is not None else f'Bestelling {1000 + n} kapot'}",
        f"Date: {format_datetime(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))}",
    ]
    if message_id == "auto":
        lines.append(f"Message-ID: <mail-{n}@example.nl>")
    elif message_id:
        lines.append(f"Message-ID: <{message_id}>")
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    lines += ["Content-Type: text/plain; charset=utf-8", "",
              body if body is not None else f"Mijn bestelling {1000 + n} is kapot aangekomen.", ""]
    return "\r\n".join(lines).encode()


@dataclass
class Deployment:
    """A config file for dovecot + aiosmtpd + SQLite, and helpers to run mailbot on it."""

    root: Path
    dovecot: DovecotServer
    smtpd: SmtpServer
    config: Path
    db_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
        env["MAILBOT_CONFIG"] = str(self.config)
        return env

    def cli(self, *args: str, check: bool = True,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "mailbot.cli", *args], env=self.env(), text=True,
                              capture_output=True, timeout=120, input=stdin, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"mailbot {' '.join(args)} exited {done.returncode}\n"
                                 f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}")
        return done

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.root / f"daemon-{len(self.processes)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "mailbot.cli", "run"], env=self.env(),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.processes.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], *, kill: bool = False) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            proc.wait(timeout=30)

    def logs(self) -> str:
        return "\n".join((p.read_text(errors="replace")[-5000:])
                         for p in sorted(self.root.glob("daemon-*.log")))

    def store(self) -> Store:
        return Store.open(self.db_url)

    def mails(self) -> list[Mail]:
        store = self.store()
        try:
            return store.list_mails(limit=100_000)
        except StoreError:  # the daemon has not created the schema yet
            return []
        finally:
            store.close()

    def wait_until(self, what: str, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n--- daemon logs ---\n{self.logs()}")

    def wait_for_mails(self, count: int, timeout: float = 30.0) -> list[Mail]:
        self.wait_until(f"{count} recorded mails", lambda: len(self.mails()) >= count, timeout)
        return self.mails()


def write_config(root: Path, dovecot: DovecotServer, smtpd: SmtpServer, *, db_url: str,
                 source: dict[str, object] | None = None, limits: dict[str, object] | None = None) -> Path:
    config = {
        "database": {"url": db_url},
        "mailboxes": [{
            "name": "support",
            "address": "support@shop.example",
            "display_name": "Shop klantenservice",
            "source": {"kind": "imap", "host": dovecot.host, "port": dovecot.port, "security": "none",
                       "username": dovecot.user, "password": dovecot.password, "idle_timeout": 60,
                       "poll_interval": 1.0, "after": "flag", "sent_folder": "Sent", "timeout": 10,
                       **(source or {})},
            "transport": {"kind": "smtp", "host": smtpd.host, "port": smtpd.port, "security": "none",
                          "username": smtpd.user, "password": smtpd.password, "timeout": 5},
        }],
        "sending": {"backoff_initial": 0.5, "backoff_max": 2, "max_attempts": 5},
        "limits": limits or {},
    }
    path = root / "mailbot.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def deployment(tmp_path: Path, dovecot: DovecotServer, smtpd: SmtpServer) -> Iterator[Deployment]:
    db_url = f"sqlite:///{tmp_path / 'mailbot.db'}"
    dep = Deployment(tmp_path, dovecot, smtpd, write_config(tmp_path, dovecot, smtpd, db_url=db_url), db_url)
    yield dep
    for proc in dep.processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
