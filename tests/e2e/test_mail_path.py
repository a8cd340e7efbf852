"""The mail path end to end: a real `mailbot run` process, a private dovecot, aiosmtpd."""

from __future__ import annotations

import email
import json
import time
from email import policy
from pathlib import Path

from mailbot.models import MailOutcome
from tests.e2e.conftest import ROOT, Deployment, customer_mail, write_config
from tests.support.dovecot import DovecotServer

EXAMPLES = ROOT / "examples" / "mail"


def _drafts(dep: Deployment, *states: str) -> list[dict[str, object]]:
    args = ["drafts", "list", "--json"]
    for state in states:
        args += ["--state", state]
    out = dep.cli(*args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_idle_pickup_agent_approval_and_threaded_reply(deployment: Deployment) -> None:
    dep = deployment
    proc = dep.start()
    # Mail APPENDed while the daemon idles is picked up.
    time.sleep(1.5)
    started = time.monotonic()
    dep.dovecot.append("INBOX", customer_mail(1, subject="Kapotte stoel, bestelling 1001"))
    mails = dep.wait_for_mails(1, timeout=15)
    pickup = time.monotonic() - started
    assert pickup < 10, f"pick-up took {pickup:.1f} s"
    assert mails[0].outcome is MailOutcome.NEEDS_AGENT
    [draft] = _drafts(dep, "pending")
    assert draft["to"] == "klant1@example.nl"

    # An agent writes and approves the reply on the command line; the running daemon sends it.
    dep.cli("drafts", "edit", str(draft["id"]), "--by", "anna",
            "--body", "Beste klant,\n\nWe sturen vandaag een nieuwe stoel.\n\nGroet, Anna")
    [received] = dep.smtpd.wait_for(1, timeout=30)
    reply = email.message_from_bytes(received.content, policy=policy.default)
    assert received.rcpt_tos == ["klant1@example.nl"]
    assert reply["In-Reply-To"] == "<mail-1@example.nl>"
    assert "<mail-1@example.nl>" in reply["References"]
    assert reply["Subject"] == "Re: Kapotte stoel, bestelling 1001"
    assert reply["Auto-Submitted"] is None  # a person approved it: not an automatic reply
    assert "nieuwe stoel" in reply.get_content()
    dep.wait_until("the draft to be sent", lambda: _drafts(dep, "sent") != [])
    shown = json.loads(dep.cli("drafts", "show", str(draft["id"]), "--json").stdout)
    actions = [(e["actor"], e["to"]) for e in shown["audit"]]
    assert ("anna", "edited") in actions and ("sent" in [to for _, to in actions])
    # A copy lands in Sent and the original is flagged \Answered.
    with dep.dovecot.client("Sent") as client:
        found = client.search(["HEADER", "Message-ID", reply["Message-ID"].strip("<>")])
        assert found, "no copy of the reply in Sent"
    with dep.dovecot.client("INBOX") as client:
        flags = client.get_flags(client.search(["ALL"]))
        assert any(b"\\Answered" in f for f in flags.values())
    dep.stop(proc)
    assert proc.returncode == 0


def test_screening_gives_no_reply_to_machines(deployment: Deployment) -> None:
    dep = deployment
    for name in ("04-en-out-of-office", "05-nl-newsletter", "08-bounce"):
        dep.dovecot.append("INBOX", (EXAMPLES / f"{name}.eml").read_bytes())
    dep.dovecot.append("INBOX", customer_mail(1, sender="Shop <support@shop.example>"))  # our own
    dep.dovecot.append("INBOX", customer_mail(2, subject="Afwezig: Re: uw bestelling",
                                              body="Ik ben afwezig tot en met 12 november."))
    dep.dovecot.append("INBOX", customer_mail(3, headers={"List-Id": "<klanten.lists.example>"}))
    dep.dovecot.append("INBOX", customer_mail(4, sender="Mailer <no-reply@bank.example>"))
    dep.dovecot.append("INBOX", customer_mail(5, headers={"Return-Path": "<>"}))
    dep.dovecot.append("INBOX", customer_mail(6))   # the one real customer
    dep.cli("run", "--once")
    mails = dep.mails()
    assert len(mails) == 9
    outcomes = {m.subject: (m.outcome, m.reason) for m in mails}
    skipped = [m for m in mails if m.outcome is MailOutcome.SKIPPED]
    assert len(skipped) == 8, outcomes
    reasons = {m.reason.split(":")[0] for m in skipped}
    assert {"auto_submitted", "precedence", "out_of_office", "list_mail", "system_sender",
            "own_mail", "empty_return_path"} <= reasons, reasons
    assert [d["to"] for d in _drafts(dep)] == ["klant6@example.nl"]
    assert dep.smtpd.received == []


def test_restart_in_the_middle_of_a_backlog_loses_nothing_and_sends_nothing_twice(
        deployment: Deployment) -> None:
    dep = deployment
    total = 60
    for n in range(total):
        dep.dovecot.append("INBOX", customer_mail(100 + n))
    # Kill -9 the daemon several times while it works through the backlog.
    for _ in range(3):
        proc = dep.start()
        dep.wait_until("some progress", lambda: len(dep.mails()) > 0, timeout=30)
        time.sleep(0.3)
        dep.stop(proc, kill=True)
    proc = dep.start()
    mails = dep.wait_for_mails(total, timeout=60)
    assert len(mails) == total
    assert len({m.message_id for m in mails}) == total
    assert all(m.outcome is MailOutcome.NEEDS_AGENT for m in mails)
    # Approve everything, kill the daemon while it sends, restart: each reply exactly once.
    ids = [str(d["id"]) for d in _drafts(dep, "pending")]
    dep.cli("drafts", "edit", *ids, "--body", "Beste klant, het is geregeld.")
    time.sleep(0.5)
    dep.stop(proc, kill=True)
    proc = dep.start()
    dep.wait_until("all replies sent", lambda: len(_drafts(dep, "sent")) == total, timeout=90)
    time.sleep(2)
    received = dep.smtpd.received
    ids = [email.message_from_bytes(r.content, policy=policy.default)["In-Reply-To"] for r in received]
    assert len(ids) == total, f"{len(ids)} replies for {total} mails"
    assert len(set(ids)) == total
    dep.stop(proc)


def test_changed_uidvalidity_does_not_reanswer_old_mail(deployment: Deployment) -> None:
    dep = deployment
    for n in range(5):
        dep.dovecot.append("INBOX", customer_mail(200 + n))
    dep.cli("run", "--once")
    assert len(_drafts(dep)) == 5
    old, new = dep.dovecot.change_uidvalidity()
    assert old != new
    dep.dovecot.append("INBOX", customer_mail(300))
    dep.cli("run", "--once")
    mails = dep.mails()
    duplicates = [m for m in mails if m.outcome is MailOutcome.DUPLICATE]
    assert len(duplicates) == 5
    assert len(_drafts(dep)) == 6  # only the new mail got a draft


def test_bad_input_is_recorded_and_the_batch_goes_on(deployment: Deployment) -> None:
    dep = deployment
    bad = {
        "malformed": (b"From: a@example.nl\r\nSubject: kapot\r\nContent-Type: multipart/mixed; "
                      b"boundary=\"nope\"\r\nMessage-ID: <bad1@example.nl>\r\n\r\n--other\r\nno end"),
        "undecodable": (b"From: b@example.nl\r\nSubject: =?utf-8?B?////?=\r\n"
                        b"Message-ID: <bad2@example.nl>\r\n"
                        b"Content-Type: text/plain; charset=utf-8\r\n\r\n\xff\xfe\xfa kapot \x80\x81\r\n"),
        "huge": customer_mail(7, body="x" * (20 * 1024 * 1024)),
        "no-message-id": customer_mail(8, message_id=None),
        "no-from": b"Subject: zonder afzender\r\nMessage-ID: <bad3@example.nl>\r\n\r\nhallo\r\n",
    }
    for data in bad.values():
        dep.dovecot.append("INBOX", data)
    dep.dovecot.append("INBOX", customer_mail(9))  # a normal mail after the bad ones
    done = dep.cli("run", "--once")
    assert done.returncode == 0
    mails = dep.mails()
    assert len(mails) == 6, [(m.subject, m.outcome) for m in mails]
    for mail in mails:
        assert mail.outcome in set(MailOutcome)
        assert mail.reason, f"mail {mail.id} has no reason"
    by_id = {m.message_id: m for m in mails}
    assert by_id["bad3@example.nl"].outcome is MailOutcome.SKIPPED
    assert by_id["bad3@example.nl"].reason.startswith("no_sender")
    assert by_id["mail-9@example.nl"].outcome is MailOutcome.NEEDS_AGENT
    assert any(m.size > 20 * 1024 * 1024 for m in mails)
    no_id = [m for m in mails if m.message_id is None]
    assert len(no_id) == 1 and no_id[0].dedupe_key.startswith("sha256:")


def test_polling_fallback_without_idle(tmp_path: Path, dovecot_factory, smtpd) -> None:  # type: ignore[no-untyped-def]
    server: DovecotServer = dovecot_factory(capabilities_without=("IDLE",))
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    dep = Deployment(tmp_path, server, smtpd, write_config(tmp_path, server, smtpd, db_url=db_url), db_url)
    proc = dep.start()
    try:
        time.sleep(1.5)
        server.append("INBOX", customer_mail(400))
        dep.wait_for_mails(1, timeout=20)
    finally:
        dep.stop(proc)


def test_daemon_reconnects_after_the_imap_server_restarts(deployment: Deployment) -> None:
    dep = deployment
    proc = dep.start()
    dep.dovecot.append("INBOX", customer_mail(500))
    dep.wait_for_mails(1, timeout=15)
    dep.dovecot.stop()          # the daemon is in IDLE: the connection drops under it
    time.sleep(1.0)
    dep.dovecot.start()
    dep.dovecot.append("INBOX", customer_mail(501))
    dep.wait_for_mails(2, timeout=60)
    assert proc.poll() is None, "the daemon died instead of reconnecting"
    assert "reconnecting" in dep.logs()
    dep.stop(proc)


def test_the_same_code_runs_on_postgresql(tmp_path: Path, dovecot: DovecotServer, smtpd,  # type: ignore[no-untyped-def]
                                          postgres_fresh_url: str) -> None:
    dep = Deployment(tmp_path, dovecot, smtpd,
                     write_config(tmp_path, dovecot, smtpd, db_url=postgres_fresh_url), postgres_fresh_url)
    for n in range(3):
        dovecot.append("INBOX", customer_mail(600 + n))
    dovecot.append("INBOX", (EXAMPLES / "08-bounce.eml").read_bytes())
    dep.cli("run", "--once")
    mails = dep.mails()
    assert sorted(m.outcome.value for m in mails) == ["needs_agent"] * 3 + ["skipped"]
    [first, *_] = _drafts(dep, "pending")
    dep.cli("drafts", "edit", str(first["id"]), "--body", "Beste klant, geregeld.", "--send-now")
    assert len(smtpd.wait_for(1, timeout=15)) == 1
    assert [d["id"] for d in _drafts(dep, "sent")] == [first["id"]]
