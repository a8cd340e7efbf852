"""The fault-injection rig: a real ``mailbot run`` against a private dovecot and aiosmtpd, with
the seed macros and policy answering mail on their own, and the bookkeeping that tells whether
a fault lost a mail or sent a reply twice.

The pieces, all real servers and processes (nothing is mocked):

    Rig            config + daemon processes (start, kill -9, stop) + read-only views of the store
    backlog()      customer mails that the seed macros and policy answer automatically (praise,
                   plain questions, calm cancellations) or leave as drafts (defects, returns)
    Tally          what the store and aiosmtpd say, and every broken promise in it
    SmtpTap        a TCP relay in front of aiosmtpd that counts connections (one per send
                   attempt), can lose or hold back the relay's answer to the message data,
                   and with a SentFiler files what the relay accepted in Sent (as Gmail does)
    ImapTap        a TCP relay in front of dovecot that tells when a command is being answered
    Figures        per-scenario numbers for scripts/reliability_faults.py

The policy is config/policy.yaml without its business hours: automatic sends are only allowed
inside them, and a test must not depend on the hour it runs at.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import yaml
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailbot.errors import StoreError
from mailbot.models import DraftState, MailOutcome
from mailbot.store import Store
from mailbot.store.schema import DraftRow, MailRow
from tests.support.dovecot import DovecotServer
from tests.support.smtpd import SmtpServer

ROOT = Path(__file__).resolve().parents[2]
MACROS = ROOT / "macros"
POLICY = ROOT / "config" / "policy.yaml"
REPORT_ENV = "MAILBOT_FAULTS_REPORT"   # scripts/reliability_faults.py collects figures here
SEED_ENV = "MAILBOT_FAULT_SEED"        # draw a kill -9 schedule again


# ---------------------------------------------------------------------------- config


def write_policy(folder: Path) -> Path:
    """config/policy.yaml without ``business_hours`` (any time is business time), in ``folder``."""
    policy = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    policy.pop("business_hours", None)
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def write_config(root: Path, dovecot: DovecotServer, smtpd: SmtpServer, *, db_url: str,
                 smtp_port: int | None = None, imap_port: int | None = None,
                 sending: dict[str, Any] | None = None) -> Path:
    """mailbot.yaml for one IMAP mailbox on ``dovecot`` that sends through ``smtpd`` (or taps
    in front of them on ``imap_port`` / ``smtp_port``), with the seed macros and the policy
    of ``write_policy``."""
    write_policy(root)
    config = {
        "database": {"url": db_url},
        "respond": {"macros": str(MACROS), "policy": "policy.yaml", "agent": "Sanne de Vries"},
        "company": {"name": "Example Shop", "contact_person": "Sanne de Vries",
                    "phone": "+31 20 123 4567", "website": "https://www.example.com"},
        "mailboxes": [{
            "name": "support",
            "address": "support@shop.example",
            "display_name": "Shop klantenservice",
            "source": {"kind": "imap", "host": dovecot.host, "port": imap_port or dovecot.port,
                       "security": "none", "username": dovecot.user, "password": dovecot.password,
                       "idle_timeout": 60, "poll_interval": 1.0, "after": "flag",
                       "sent_folder": "Sent", "timeout": 10},
            "transport": {"kind": "smtp", "host": smtpd.host, "port": smtp_port or smtpd.port,
                          "security": "none", "username": smtpd.user, "password": smtpd.password,
                          "timeout": 5},
        }],
        # Small backoff so a retried reply goes out within seconds, not the production minutes.
        "sending": {"backoff_initial": 0.3, "backoff_max": 1.0, "max_attempts": 8, **(sending or {})},
        # Every test mail has its own sender; the limit stays at its default to show it holds.
        "limits": {"replies_per_sender_per_day": 3},
    }
    path = root / "mailbot.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- mail


@dataclass(frozen=True)
class Kind:
    """One sort of customer mail and what the seed macros + policy do with it."""

    name: str
    subject: str
    body: str
    automatic: bool          # action "send" (checked with `mailbot respond`), else a draft


_FIRST = ("Anneke", "Jeroen", "Sanne", "Pieter", "Fatima", "Youssef", "Emma", "Lucas", "Sophie",
          "Daan", "Priya", "George", "Emily", "Hans", "Nadia", "Ellen", "Mark", "Lisa", "Tom", "Eva")
_LAST = ("de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder", "Bos",
         "Vos", "Miller", "Watson", "Brown", "Willems", "Peters")
_PRODUCTS_NL = ("eettafel", "stoel", "lamp", "bank", "kast", "boekenkast", "bureau")
_PRODUCTS_EN = ("table", "chair", "lamp", "sofa", "cabinet", "bookcase", "desk")

# Six kinds that go out on their own and three that wait for an agent: 2/3 automatic.
KINDS: tuple[Kind, ...] = (
    Kind("praise_nl", "Complimenten!",
         "Hallo allemaal,\n\nGisteren is onze nieuwe {product} bezorgd. Wat een prachtig product, "
         "en de bezorgers waren ontzettend vriendelijk. Echt top, dank jullie wel!\n\n"
         "Hartelijke groet,\n{name}", True),
    Kind("question_nl", "Vraag over garantie",
         "Goedendag,\n\nIk overweeg bij u een {product} te kopen. Hoe lang is de garantie, en moet "
         "ik daarvoor de doos bewaren?\n\nMet vriendelijke groet,\n{name}", True),
    Kind("defect_nl", "Bestelling {order} kapot",
         "Beste klantenservice,\n\nMijn {product} uit bestelling {order} is kapot aangekomen. De "
         "poot is afgebroken. Kunt u een nieuwe sturen?\n\nGroet,\n{name}", False),
    Kind("cancel_nl", "Annuleren bestelling {order}",
         "Beste klantenservice,\n\nIk heb gisteravond per ongeluk twee keer dezelfde bestelling "
         "geplaatst. Wilt u bestelling {order} annuleren? De andere bestelling wil ik gewoon "
         "houden.\n\nMet vriendelijke groet,\n{name}", True),
    Kind("praise_en", "Thank you!",
         "Just wanted to say thanks to your team who sorted out my exchange so quickly last week. "
         "The new {product} is perfect. Great service!\n\n{name}", True),
    Kind("return_nl", "Retour",
         "Hallo,\n\nIk wil de {product} uit bestelling {order} graag terugsturen, hij past niet in "
         "de kamer. Hoe gaat dat?\n\nGroet,\n{name}", False),
    Kind("question_en", "Do you deliver to Belgium?",
         "Hello,\n\nDo you ship to Belgium, and if so how long does delivery usually take? I'd "
         "like to order the {product} for my sister's birthday.\n\nKind regards,\n{name}", True),
    Kind("cancel_en", "Cancel my order please",
         "Hi,\n\nI'd like to cancel order {order} for the {product}, I found one that suits the "
         "room better. Sorry for the trouble!\n\n{name}", True),
    Kind("defect_en", "Broken {product}",
         "Hello,\n\nThe {product} from order {order} arrived damaged, the glass is cracked. Could "
         "you send a replacement?\n\nThanks,\n{name}", False),
)


@dataclass(frozen=True)
class CustomerMail:
    n: int
    kind: Kind
    message_id: str          # without angle brackets, as the store keeps it
    data: bytes


def customer_mail(n: int, *, attachment: int = 0) -> CustomerMail:
    """Mail number ``n``: its kind cycles through KINDS; its sender, name, order number and
    product follow from ``n``, so every sender is distinct (the per-sender limit of
    automatic replies never comes into play) and a rerun builds the same bytes.
    ``attachment`` adds a photo of that many bytes (base64), to make the mail big."""
    kind = KINDS[n % len(KINDS)]
    name = f"{_FIRST[n % len(_FIRST)]} {_LAST[(n // len(_FIRST)) % len(_LAST)]}"
    products = _PRODUCTS_EN if kind.name.endswith("_en") else _PRODUCTS_NL
    values = {"name": name, "order": str(30_000_000 + n * 7919), "product": products[n % len(products)]}
    message_id = f"fault-{n}@customers.example"
    lines = [
        f"From: {name} <klant{n}@customers.example>",
        "To: Support <support@shop.example>",
        f"Subject: {kind.subject.format(**values)}",
        f"Date: {format_datetime(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))}",
        f"Message-ID: <{message_id}>",
        "MIME-Version: 1.0",
    ]
    text = kind.body.format(**values).replace("\n", "\r\n")
    if not attachment:
        lines += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit",
                  "", text, ""]
        return CustomerMail(n, kind, message_id, "\r\n".join(lines).encode())
    photo = base64.encodebytes(random.Random(n).randbytes(attachment)).replace(b"\n", b"\r\n")
    lines += [
        'Content-Type: multipart/mixed; boundary="fault-boundary"', "",
        "--fault-boundary", "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit", "", text, "",
        "--fault-boundary", "Content-Type: image/jpeg",
        f'Content-Disposition: attachment; filename="foto-{n}.jpg"',
        "Content-Transfer-Encoding: base64", "", "",
    ]
    data = "\r\n".join(lines).encode() + photo + b"--fault-boundary--\r\n"
    return CustomerMail(n, kind, message_id, data)


def backlog(count: int, *, start: int = 0, attachment: int = 0) -> list[CustomerMail]:
    return [customer_mail(n, attachment=attachment) for n in range(start, start + count)]


def append_all(dovecot: DovecotServer, mails: Iterable[CustomerMail], folder: str = "INBOX") -> None:
    """APPEND over one connection: a login per mail would make a 1,000-mail backlog slow."""
    with dovecot.client(folder=None) as client:
        for mail in mails:
            client.append(folder, mail.data)


def deliver_to_maildir(dovecot: DovecotServer, mails: Iterable[CustomerMail]) -> None:
    """Put mail straight into the Maildir, as the MTA's local delivery does while the IMAP
    server is down; dovecot gives it UIDs when it next looks (``start`` fixes ownership)."""
    new = dovecot.maildir / "new"
    tmp = dovecot.maildir / "tmp"
    new.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    for mail in mails:
        name = f"{time.time_ns()}.fault{mail.n}.{socket.gethostname()}"
        (tmp / name).write_bytes(mail.data.replace(b"\r\n", b"\n"))
        (tmp / name).rename(new / name)   # tmp -> new: the Maildir way to appear atomically


# ---------------------------------------------------------------------------- replies


_HEADERS = BytesHeaderParser()


@dataclass(frozen=True)
class Reply:
    message_id: str          # the deterministic Message-ID the daemon gave the reply
    in_reply_to: str         # the customer's Message-ID
    to: tuple[str, ...]


def replies(smtpd: SmtpServer) -> list[Reply]:
    """What aiosmtpd received, in order, reduced to the ids that identify a reply."""
    out = []
    for received in smtpd.received:
        headers = _HEADERS.parsebytes(received.content)
        out.append(Reply(_bare(headers.get("Message-ID")), _bare(headers.get("In-Reply-To")),
                         tuple(received.rcpt_tos)))
    return out


def _bare(value: object) -> str:
    return str(value or "").strip().strip("<>")


# ---------------------------------------------------------------------------- the store's view


@dataclass(frozen=True)
class DraftView:
    mail_id: int
    state: DraftState
    auto: bool
    message_id: str
    in_reply_to: str
    attempts: int
    last_error: str | None
    smtp_code: int | None
    claimed_by: str | None       # "host:pid" of the daemon that took it to send


@dataclass
class Tally:
    """The store and aiosmtpd at one moment, and every broken promise between them.

    ``problems(expected)`` lists what must never happen, at any moment (the daemon may still
    be running): a mail recorded twice or with a duplicate outcome, a mail with more than one
    draft, a drafted mail without a pending draft, a reply received twice, a draft marked
    sent that the server never received. ``unfinished(expected)`` lists what is only fine
    while the daemon is still at work: mails not yet recorded, automatic replies not yet sent.
    """

    outcomes: dict[str, list[MailOutcome]]         # customer Message-ID -> every recording of it
    mail_ids: dict[int, str]                       # store id -> customer Message-ID
    drafts: list[DraftView]
    received: list[Reply]

    @property
    def recorded(self) -> int:
        return sum(len(v) for v in self.outcomes.values())

    def outcome_counts(self) -> Counter[str]:
        return Counter(o.value for outs in self.outcomes.values() for o in outs)

    def state_counts(self) -> Counter[str]:
        return Counter(d.state.value for d in self.drafts)

    def duplicate_replies(self) -> int:
        """Replies received more than once (counted by their deterministic Message-ID)."""
        return sum(n - 1 for n in Counter(r.message_id for r in self.received).values() if n > 1)

    def problems(self, expected: Iterable[CustomerMail]) -> list[str]:
        wanted = {m.message_id for m in expected}
        found: list[str] = []
        for mid, outs in self.outcomes.items():
            if len(outs) != 1:
                found.append(f"mail {mid} recorded {len(outs)} times: {[o.value for o in outs]}")
            if mid not in wanted:
                found.append(f"mail {mid} recorded but never delivered to the inbox")
            if any(o in (MailOutcome.DUPLICATE, MailOutcome.FAILED) for o in outs):
                found.append(f"mail {mid} has outcome {[o.value for o in outs]}")
        per_mail = Counter(d.mail_id for d in self.drafts)
        found += [f"mail {self.mail_ids.get(m, m)} has {n} drafts" for m, n in per_mail.items() if n > 1]
        outcome_of = {mid: outs[0] for mid, outs in self.outcomes.items() if outs}
        draft_of = {self.mail_ids[d.mail_id]: d for d in self.drafts if d.mail_id in self.mail_ids}
        for mid, outcome in outcome_of.items():
            draft = draft_of.get(mid)
            if outcome is MailOutcome.DRAFTED and (draft is None or draft.state is not DraftState.PENDING):
                found.append(f"drafted mail {mid} lost its draft: {draft}")
            if outcome is MailOutcome.AUTO_REPLY and (draft is None or not draft.auto):
                found.append(f"automatic reply to {mid} has no automatic draft: {draft}")
        counts = Counter(r.message_id for r in self.received)
        found += [f"reply {mid} received {n} times" for mid, n in counts.items() if n > 1]
        received = set(counts)
        found += [f"draft for {d.in_reply_to} marked sent but never received"
                  for d in self.drafts if d.state is DraftState.SENT and d.message_id not in received]
        ours = {d.message_id for d in self.drafts}
        found += [f"received reply {r.message_id} that no draft knows" for r in self.received
                  if r.message_id not in ours]
        return found

    def unfinished(self, expected: Iterable[CustomerMail]) -> list[str]:
        wanted = [m.message_id for m in expected]
        missing = [mid for mid in wanted if mid not in self.outcomes]
        out = [f"{len(missing)} mails not recorded, e.g. {missing[:3]}"] if missing else []
        received = {r.message_id for r in self.received}
        unsent = [d for d in self.drafts if d.auto and d.message_id not in received]
        if unsent:
            out.append(f"{len(unsent)} automatic replies not received, e.g. "
                       f"{[(d.in_reply_to, d.state.value) for d in unsent[:3]]}")
        not_final = [d for d in self.drafts if d.auto and d.state is not DraftState.SENT]
        if not_final:
            out.append(f"{len(not_final)} automatic drafts not yet marked sent")
        return out


# ---------------------------------------------------------------------------- the deployment


@dataclass
class Rig:
    """One mailbot deployment: config, daemon processes and a read-only view of its store."""

    root: Path
    dovecot: DovecotServer
    smtpd: SmtpServer
    config: Path
    db_url: str
    tap: SmtpTap | None = None
    imap_tap: ImapTap | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _store: Store | None = None

    # ------------------------------------------------------------------ processes

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
        env["MAILBOT_CONFIG"] = str(self.config)
        return env

    def start(self) -> subprocess.Popen[bytes]:
        """``mailbot run`` in the background, its log in daemon-N.log."""
        command = [sys.executable, "-m", "mailbot.cli", "run"]
        with open(self.root / f"daemon-{len(self.processes)}.log", "wb") as log:
            proc = subprocess.Popen(command, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=self.root)
        self.processes.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """kill -9: no handler runs, nothing is flushed or rolled back by the daemon itself."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self, proc: subprocess.Popen[bytes]) -> int:
        """SIGTERM and wait; returns the exit code (0 for a clean stop)."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=60)

    def close(self) -> None:
        """Kill every daemon this rig started that still runs, and close the store view."""
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        if self._store is not None:
            self._store.close()
            self._store = None
        for tap in (self.tap, self.imap_tap):
            if tap is not None:
                tap.close()

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}"
                         for p in sorted(self.root.glob("daemon-*.log")))

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.root.glob("daemon-*.log")))

    # ------------------------------------------------------------------ the store

    def store(self) -> Store:
        if self._store is None:
            # A short retry window: the rig only reads, and a test that reads during an outage
            # it caused itself wants to know at once rather than after the default minute.
            self._store = Store.open(self.db_url, retry_for=15.0)
        return self._store

    def recorded(self) -> int:
        """How many mails the store holds (0 before the daemon created the schema)."""
        try:
            return self.store().db.read(
                lambda s: s.scalar(select(func.count()).select_from(MailRow)) or 0, what="count")
        except StoreError:
            return 0

    def sent(self) -> int:
        """Drafts in state sent."""
        try:
            return self.store().db.read(
                lambda s: s.scalar(select(func.count()).select_from(DraftRow)
                                   .where(DraftRow.state == DraftState.SENT)) or 0, what="count")
        except StoreError:
            return 0

    def tally(self) -> Tally:
        # aiosmtpd first: a reply the server got after the store was read would otherwise look
        # like "received but no draft knows it"; this order can only err the other way round.
        received_before = replies(self.smtpd)

        def unit(session: Session) -> tuple[list[Any], list[Any]]:
            mails = session.execute(select(MailRow.id, MailRow.message_id, MailRow.outcome)).all()
            drafts = session.execute(select(
                DraftRow.mail_id, DraftRow.state, DraftRow.auto, DraftRow.message_id,
                DraftRow.in_reply_to, DraftRow.attempts, DraftRow.last_error, DraftRow.smtp_code,
                DraftRow.claimed_by,
            )).all()
            return list(mails), list(drafts)

        try:
            mails, drafts = self.store().db.read(unit, what="tally")
        except StoreError:
            mails, drafts = [], []
        outcomes: dict[str, list[MailOutcome]] = {}
        for _id, mid, outcome in mails:
            outcomes.setdefault(mid or f"(no id {_id})", []).append(outcome)
        # Replies that arrived while the store was read are sent drafts too: take them in, so
        # "marked sent but never received" cannot be a false alarm.
        received = replies(self.smtpd)
        assert received[:len(received_before)] == received_before
        return Tally(
            outcomes=outcomes,
            mail_ids={_id: mid for _id, mid, _o in mails},
            drafts=[DraftView(m, st, bool(a), _bare(mid), _bare(irt), att, err, code, by)
                    for m, st, a, mid, irt, att, err, code, by in drafts],
            received=received,
        )

    # ------------------------------------------------------------------ waiting

    def wait_until(self, what: str, predicate: Callable[[], bool], timeout: float = 60.0,
                   interval: float = 0.05) -> float:
        """Poll ``predicate`` until true; returns the seconds it took. AssertionError with the
        daemon logs on timeout."""
        started = time.monotonic()
        deadline = started + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n"
                                     f"{self.logs()}")
            time.sleep(interval)
        return time.monotonic() - started

    def wait_done(self, expected: list[CustomerMail], timeout: float = 120.0) -> Tally:
        """Wait until every expected mail is recorded and every automatic reply was received
        and marked sent; returns that tally."""
        last: list[Tally] = []

        def done() -> bool:
            tally = self.tally()
            last[:] = [tally]
            return not tally.unfinished(expected)

        try:
            self.wait_until("every mail recorded and every automatic reply sent", done, timeout, 0.5)
        except AssertionError as exc:
            unfinished = last[0].unfinished(expected) if last else ["no tally"]
            raise AssertionError(f"{unfinished}\n{exc}") from None
        return last[0]


# ---------------------------------------------------------------------------- SMTP tap


class SentFiler:
    """Files a copy of what the relay accepted in dovecot's Sent folder, as Gmail and Microsoft
    365 do for mail submitted to them: the copy the daemon looks for before a retry.

    Keeps one IMAP connection (a login per reply would slow every send down) and opens a new
    one when dovecot dropped it."""

    def __init__(self, dovecot: DovecotServer, folder: str = "Sent") -> None:
        self.dovecot = dovecot
        self.folder = folder
        self.filed = 0
        self._lock = threading.Lock()
        self._client: IMAPClient | None = None

    def __call__(self, message: bytes) -> None:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._client is None:
                        self._client = self.dovecot.client(folder=None)
                        if not self._client.folder_exists(self.folder):
                            self._client.create_folder(self.folder)
                    self._client.append(self.folder, message)
                    break
                except (OSError, IMAPClientError):
                    self._drop()
                    if attempt == 2:
                        raise
            self.filed += 1

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()


@dataclass
class _Connection:
    answer: str                                  # "forward" | "lose" | "hold"
    in_data: bool = False
    data: bytearray = field(default_factory=bytearray)
    data_sent: threading.Event = field(default_factory=threading.Event)


class SmtpTap:
    """A TCP relay between the daemon and aiosmtpd.

    ``connections`` counts the connections the daemon opened and ``opened_at`` their times:
    mailbot uses one connection per send attempt, so these are the attempts as the network saw
    them, independent of what the daemon says it did.

    ``filer``: gets the message after the relay accepted it (250) and before that answer is
    passed on, to file a copy in Sent the way big providers' relays do.

    What happens to the relay's answer to the message data on the next connection:

    - ``lose_answer_to_data()``: the relay took the message, the answer never arrives, the
      connection is cut: a drop mid-DATA, the ambiguous case;
    - ``hold_answer_to_data()``: the answer is held back and the connection stays open, so
      a test can kill the daemon exactly between "the relay has it" and "the daemon knows".
      ``held`` is set once an answer is being held.
    """

    def __init__(self, target_host: str, target_port: int, *,
                 filer: SentFiler | None = None) -> None:
        self._target = (target_host, target_port)
        self.filer = filer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = "127.0.0.1"
        self.port = int(self._listener.getsockname()[1])
        self.opened_at: list[float] = []
        self.held = threading.Event()
        self._answers: list[str] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        accept = threading.Thread(target=self._accept, name="smtp-tap", daemon=True)
        accept.start()
        self._threads.append(accept)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self.opened_at)

    def lose_answer_to_data(self) -> None:
        with self._lock:
            self._answers.append("lose")

    def hold_answer_to_data(self) -> None:
        with self._lock:
            self._answers.append("hold")

    def close(self) -> None:
        self._closing.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.filer is not None:
            self.filer.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _addr = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._target, timeout=10)
            except OSError:
                _close(client)      # the relay is down: the daemon sees its connect fail
                continue
            server.settimeout(None)
            with self._lock:
                self.opened_at.append(time.monotonic())
                conn = _Connection(self._answers.pop(0) if self._answers else "forward")
                self._sockets += [client, server]
            for target in (self._from_client, self._from_server):
                thread = threading.Thread(target=target, args=(client, server, conn), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _from_client(self, client: socket.socket, server: socket.socket, conn: _Connection) -> None:
        """Client to relay; notices the message data (after DATA, up to CRLF.CRLF)."""
        tail = b""
        try:
            while chunk := client.recv(65536):
                if conn.in_data:
                    conn.data += chunk
                    if conn.data.endswith(b"\r\n.\r\n"):
                        conn.data_sent.set()   # before forwarding: the answer cannot outrun it
                elif re.search(rb"(?im)^DATA\r\n", tail + chunk):
                    # The client sends the message only after the relay's 354, so nothing of
                    # it can be in this chunk.
                    conn.in_data = True
                tail = chunk[-8:]
                server.sendall(chunk)
        except OSError:
            pass
        finally:
            _close(client, server)

    def _from_server(self, client: socket.socket, server: socket.socket, conn: _Connection) -> None:
        """Relay to client; deals with the answer to the message data as programmed."""
        try:
            while chunk := server.recv(65536):
                if conn.data_sent.is_set():
                    message = _unstuff(bytes(conn.data[:-3]))   # keep the last CRLF, drop ".\r\n"
                    conn.in_data, conn.data = False, bytearray()
                    conn.data_sent.clear()
                    if chunk.startswith(b"250") and self.filer is not None:
                        self.filer(message)
                    if conn.answer == "lose":
                        break              # the relay has the message; the daemon never hears
                    if conn.answer == "hold":
                        self.held.set()    # keep the connection open, say nothing
                        continue
                client.sendall(chunk)
        except OSError:
            pass
        finally:
            _close(client, server)


def _unstuff(data: bytes) -> bytes:
    """Undo SMTP dot-stuffing (RFC 5321 4.5.2): a line's leading ".." was "."."""
    return b"\r\n".join(line[1:] if line.startswith(b"..") else line for line in data.split(b"\r\n"))


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


class ImapTap:
    """A TCP relay between the daemon and dovecot that tells when the server starts answering
    a given command, so a test can stop dovecot during an IDLE or in the middle of a FETCH.

    ``answering(b"UID FETCH")`` returns an event that is set once the next command the
    daemon sends that contains those bytes is being answered (its first bytes have passed).
    While dovecot is down the tap refuses too: it closes each connection it cannot relay.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._armed: list[tuple[bytes, threading.Event]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        accept = threading.Thread(target=self._accept, name="imap-tap", daemon=True)
        accept.start()
        self._threads.append(accept)

    def answering(self, command: bytes) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._armed.append((command, event))
        return event

    def close(self) -> None:
        self._closing.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        _close(*sockets)
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _addr = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._target, timeout=5)
            except OSError:
                _close(client)      # dovecot is down: the daemon sees its connect fail
                continue
            server.settimeout(None)
            pending: list[threading.Event] = []
            with self._lock:
                self._sockets += [client, server]
            for args in ((client, server, pending, True), (server, client, pending, False)):
                thread = threading.Thread(target=self._pump, args=args, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, src: socket.socket, dst: socket.socket, pending: list[threading.Event],
              from_client: bool) -> None:
        try:
            while chunk := src.recv(65536):
                if from_client:
                    with self._lock:
                        hits = [armed for armed in self._armed if armed[0] in chunk]
                        for armed in hits:
                            self._armed.remove(armed)
                        # Noted before the command goes on, so its answer cannot outrun it.
                        pending += [event for _command, event in hits]
                dst.sendall(chunk)
                if not from_client:
                    with self._lock:
                        answered, pending[:] = list(pending), []
                    for event in answered:
                        event.set()
        except OSError:
            pass
        finally:
            _close(src, dst)


# ---------------------------------------------------------------------------- figures


@dataclass
class Figures:
    """Numbers of one scenario, printed and (for scripts/reliability_faults.py) appended as one
    JSON line to $MAILBOT_FAULTS_REPORT."""

    scenario: str
    values: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def set(self, **values: Any) -> None:
        self.values.update(values)

    def add(self, key: str, amount: int = 1) -> None:
        self.values[key] = int(self.values.get(key, 0)) + amount

    def emit(self, *, passed: bool) -> None:
        record = {"scenario": self.scenario, "passed": passed,
                  "seconds": round(time.monotonic() - self.started, 1), **self.values}
        print(f"fault figures: {json.dumps(record, sort_keys=True)}")
        target = os.environ.get(REPORT_ENV)
        if target:
            with open(target, "a", encoding="utf-8") as out:
                out.write(json.dumps(record, sort_keys=True) + "\n")


@contextlib.contextmanager
def sqlite_write_lock(path: Path) -> Iterator[None]:
    """Hold SQLite's write lock on ``path`` from another connection for the ``with`` body.

    ``BEGIN EXCLUSIVE`` in WAL mode shuts out every other writer; readers go on, as they do
    against any writer. (The lock is taken at once: nothing else in the test writes.)
    """
    import sqlite3

    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def flagged(dovecot: DovecotServer, flag: bytes, folder: str = "INBOX") -> set[str]:
    """Message-IDs (without brackets) of the messages in ``folder`` that carry ``flag``."""
    with dovecot.client(folder) as client:
        uids = client.search(["ALL"])
        if not uids:
            return set()
        items = client.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    out = set()
    for item in items.values():
        if flag in item[b"FLAGS"]:
            header = _HEADERS.parsebytes(item[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"])
            out.add(_bare(header.get("Message-ID")))
    return out


def message_ids(dovecot: DovecotServer, folder: str) -> Counter[str]:
    """How often each Message-ID occurs in ``folder`` (empty when it does not exist)."""
    with dovecot.client(folder=None) as client:
        if not client.folder_exists(folder):
            return Counter()
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        items = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]) if uids else {}
    return Counter(_bare(_HEADERS.parsebytes(item[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]).get("Message-ID"))
                   for item in items.values())
