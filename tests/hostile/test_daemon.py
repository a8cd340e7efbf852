"""A sample of the hostile corpus through a real ``mailbot run`` process: dovecot delivers
it over IMAP IDLE, aiosmtpd receives the automatic replies. Every mail gets one outcome, the
daemon keeps running (a normal mail sent afterwards is still picked up), the replies that
leave carry no injected header and go to the customer alone, and SIGTERM ends it cleanly."""

from __future__ import annotations

import email
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest
import yaml

from mailbot.models import MailOutcome
from mailbot.store import Mail, Store
from tests.hostile import corpus
from tests.hostile.conftest import write_policy_without_hours
from tests.hostile.test_injection import ALLOWED
from tests.support.dovecot import DovecotServer
from tests.support.smtpd import SmtpServer

ROOT = Path(__file__).resolve().parents[2]
# Broken structure, codec tricks, depth, size, recipients, scripts, bombs, template syntax,
# and every header-injection variant (those are praise: the policy answers them by itself).
SAMPLE = ("missing_boundary", "binary_junk", "header_soup", "codec_tricks", "rfc2231_mixed",
          "nesting_200", "many_parts", "recipients_5000", "script_html", "bomb_attachments",
          "template_0", "text_25mb")


class Daemon:
    def __init__(self, root: Path, dovecot: DovecotServer, smtpd: SmtpServer) -> None:
        self.root = root
        self.db_url = f"sqlite:///{root / 'mailbot.db'}"
        config = {
            "database": {"url": self.db_url},
            "mailboxes": [{
                "name": "support", "address": "support@shop.example", "display_name": "Shop",
                "source": {"kind": "imap", "host": dovecot.host, "port": dovecot.port, "security": "none",
                           "username": dovecot.user, "password": dovecot.password, "poll_interval": 1.0,
                           "after": "flag", "sent_folder": "Sent", "timeout": 30},
                "transport": {"kind": "smtp", "host": smtpd.host, "port": smtpd.port, "security": "none",
                              "username": smtpd.user, "password": smtpd.password, "timeout": 10},
            }],
            "respond": {"macros": str(ROOT / "macros"), "policy": str(write_policy_without_hours(root))},
            "sending": {"backoff_initial": 0.5, "backoff_max": 2},
        }
        self.config = root / "mailbot.yaml"
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log = root / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "wb") as out:
            command = [sys.executable, "-m", "mailbot.cli", "--config", str(self.config), "run"]
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def mails(self) -> list[Mail]:
        store = Store.open(self.db_url)
        try:
            return store.list_mails(limit=1000)
        except Exception:  # the daemon has not created the schema yet
            return []
        finally:
            store.close()

    def wait_for(self, count: int, timeout: float) -> list[Mail]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mails = self.mails()
            if len(mails) >= count:
                return mails
            assert self.proc is not None and self.proc.poll() is None, self.logs()
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {count} mails\n{self.logs()}")

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""


@pytest.fixture
def daemon(tmp_path: Path, dovecot: DovecotServer, smtpd: SmtpServer) -> Iterator[Daemon]:
    running = Daemon(tmp_path, dovecot, smtpd)
    yield running
    if running.proc is not None and running.proc.poll() is None:
        running.proc.kill()
        running.proc.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.dovecot
def test_the_daemon_survives_hostile_mail_and_keeps_going(daemon: Daemon, dovecot: DovecotServer,
                                                         smtpd: SmtpServer) -> None:
    cases = {c.name: c for c in corpus.cases()}
    sample = [(name, cases[name].data) for name in SAMPLE]
    sample += [(name, corpus.injection_mail(i)) for i, (name, *_r) in enumerate(corpus.INJECTIONS)]
    daemon.start()
    time.sleep(1.5)       # let it reach IDLE, so the mail arrives while it waits
    for _name, data in sample:
        dovecot.append("INBOX", data)
    mails = daemon.wait_for(len(sample), timeout=180)
    assert len(mails) == len(sample), [(m.subject[:40], m.outcome) for m in mails]
    for mail in mails:
        assert mail.outcome is not MailOutcome.FAILED and "internal error" not in mail.reason, mail.reason

    # Still alive and still reading: a normal mail after the hostile ones is picked up.
    dovecot.append("INBOX", corpus.message(subject="Gewoon een vraag", n=500,
                                           body="Leveren jullie ook in Belgie?"))
    assert len(daemon.wait_for(len(sample) + 1, timeout=60)) == len(sample) + 1

    # The automatic replies: every injection mail and the one with 5,000 recipients.
    expected = len(corpus.INJECTIONS) + 1
    received = smtpd.wait_for(expected, timeout=90)
    for item in received:
        assert len(item.rcpt_tos) == 1, item.rcpt_tos
        assert not item.rcpt_tos[0].endswith("evil.example")
        reply = email.message_from_bytes(item.content, policy=policy.compat32)
        assert {name.lower() for name in reply} <= ALLOWED, reply.keys()
        assert reply["Bcc"] is None and reply["Cc"] is None
    with dovecot.client("INBOX") as client:
        flags = client.get_flags(client.search(["ALL"]))
        assert len(flags) == len(sample) + 1
        assert all(b"\\Seen" in f for f in flags.values())      # every mail was handled
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=30) == 0, daemon.logs()
