"""The real pipeline for hostile mail: Processor + SQLite store + the shipped model + the
repository's macros, and the real sender writing replies to an outbox folder.

    analyzer            the shipped spaCy model, loaded once per session
    policy_without_hours  config/policy.yaml minus business_hours (automatic sends at any hour)
    pipeline            Pipeline: .process(name, bytes), .send_all() -> the reply bytes
"""

from __future__ import annotations

import asyncio
import email
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailbot.app import App
from mailbot.config import Settings
from mailbot.models import DraftState, MailOutcome, RawMail
from mailbot.nlp.analyzer import Analyzer
from mailbot.pipeline import Processed, Processor
from mailbot.respond import Responder, build_responder
from mailbot.store import Mail, Store

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = "support@shop.example"


def write_policy_without_hours(folder: Path) -> Path:
    """The shipped policy, minus business hours: automatic sends happen only inside them, and
    these tests must see sends whatever the hour."""
    data = yaml.safe_load((ROOT / "config" / "policy.yaml").read_text(encoding="utf-8"))
    data.pop("business_hours", None)
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def hostile_settings(root: Path, policy_file: Path, **limits: Any) -> Settings:
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    return Settings.model_validate({
        "database": {"url": f"sqlite:///{root / 'mailbot.db'}"},
        "mailboxes": [{"name": "support", "address": SUPPORT, "display_name": "Shop klantenservice",
                       "source": {"kind": "maildir", "path": str(root / "inbox")},
                       "transport": {"kind": "outbox", "path": str(root / "outbox")}}],
        "respond": {"macros": str(ROOT / "macros"), "policy": str(policy_file)},
        "company": {"name": "Example Shop", "contact_person": "Sanne de Vries", "phone": "+31 20 123 4567"},
        "limits": limits,
    })


@dataclass(frozen=True)
class Reply:
    """One reply as the transport wrote it: the bytes, parsed twice (modern and compat32)."""

    raw: bytes
    message: EmailMessage
    legacy: Message

    @property
    def header_names(self) -> list[str]:
        return [name.lower() for name in self.legacy]


@dataclass
class Pipeline:
    root: Path
    settings: Settings
    store: Store
    processor: Processor

    def process(self, key: str, data: bytes) -> Processed:
        return self.processor.process(RawMail("support", key, data))

    def mails_for(self, key: str) -> list[Mail]:
        return [m for m in self.store.list_mails(limit=100_000) if m.source_key == key]

    def send_all(self) -> list[Reply]:
        """Approve every pending or escalated draft that has text (as an agent would), run
        the real sender once, and return every reply file in the outbox."""
        for draft in self.store.list_drafts([DraftState.PENDING, DraftState.ESCALATED], limit=10_000):
            if draft.body.strip():
                self.store.transition(draft.id, DraftState.APPROVED, actor="hostile-test")
        app = App(settings=self.settings, store=self.store)
        asyncio.run(app.send_worker().send_due())
        return [read_reply(path.read_bytes()) for path in sorted((self.root / "outbox").glob("*.eml"))]


def read_reply(raw: bytes) -> Reply:
    modern = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(modern, EmailMessage)
    return Reply(raw, modern, email.message_from_bytes(raw, policy=policy.compat32))


def assert_one_clean_outcome(pipeline: Pipeline, key: str, done: Processed) -> Mail:
    """Exactly one recorded mail for ``key``, with a real outcome and a reason; never the
    Processor's safety net for a crashed stage ("internal error", outcome failed)."""
    [mail] = pipeline.mails_for(key)
    assert mail.outcome is done.outcome and mail.outcome in set(MailOutcome)
    assert mail.outcome is not MailOutcome.FAILED, mail.reason
    assert mail.reason and "internal error" not in mail.reason, mail.reason
    return mail


@pytest.fixture(scope="session")
def analyzer() -> Analyzer:
    return Analyzer.load()


@pytest.fixture(scope="session")
def policy_without_hours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_policy_without_hours(tmp_path_factory.mktemp("policy"))


@pytest.fixture(scope="session")
def responder(tmp_path_factory: pytest.TempPathFactory, policy_without_hours: Path) -> Responder:
    settings = hostile_settings(tmp_path_factory.mktemp("responder"), policy_without_hours)
    built = build_responder(settings)
    assert built is not None and built.status().ok, built and built.status().errors
    return built


def make_pipeline(root: Path, analyzer: Analyzer, responder: Responder, policy_file: Path,
                  **limits: Any) -> Pipeline:
    settings = hostile_settings(root, policy_file, **limits)
    store = Store.open(settings.database.url)
    store.migrate()
    processor = Processor(settings, settings.mailboxes[0], store, analyzer=analyzer, decider=responder)
    return Pipeline(root, settings, store, processor)


@pytest.fixture
def pipeline(tmp_path: Path, analyzer: Analyzer, responder: Responder,
             policy_without_hours: Path) -> Iterator[Pipeline]:
    built = make_pipeline(tmp_path, analyzer, responder, policy_without_hours)
    yield built
    built.store.close()
