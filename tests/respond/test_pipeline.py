"""The Responder inside the real pipeline: Processor + SQLite store + the shipped model, and
the wiring of App.from_config and `mailbot run --once`."""

from __future__ import annotations

import io
from pathlib import Path

from mailbot.app import App
from mailbot.cli import main
from mailbot.config import load as load_config
from mailbot.models import DraftState, MailOutcome, RawMail
from mailbot.nlp.analyzer import Analyzer
from mailbot.pipeline import Processor
from mailbot.respond import Responder
from mailbot.respond.dryrun import mail_bytes
from mailbot.store import Store
from tests.respond.conftest import MONDAY_10, MacroWorld

CONFIG = """\
database: {{url: "sqlite:///{db}"}}
mailboxes:
  - name: support
    address: support@shop.example
    source: {{kind: maildir, path: inbox}}
    transport: {{kind: outbox, path: outbox}}
company: {{name: Example Shop, contact_person: Sanne de Vries}}
respond:
  macros: ../macros
  agent: Piet Jansen
"""


def write_config(world: MacroWorld) -> Path:
    path = world.root / "config" / "mailbot.yaml"
    path.write_text(CONFIG.format(db=world.root / "db.sqlite"), encoding="utf-8")
    return path


DEFECT = mail_bytes(
    "Koffiezetapparaat kapot",
    "Beste,\n\nMijn koffiezetapparaat uit bestelling 12345678 is kapot aangekomen. Het apparaat lekt en "
    "gaat niet meer aan. Kunnen jullie een nieuwe sturen?\n\nMet vriendelijke groet,\nAnneke de Vries\n",
    "Anneke de Vries <anneke@example.nl>",
)


def test_the_processor_stores_macro_hash_rule_variables_and_explanation(world: MacroWorld,
                                                                        analyzer: Analyzer) -> None:
    config = write_config(world)
    settings = load_config(config, environ={})
    store = Store.open(settings.database.url)
    store.migrate()
    try:
        responder = Responder.from_settings(settings)
        processor = Processor(settings, settings.mailboxes[0], store, analyzer=analyzer, decider=responder,
                              clock=lambda: MONDAY_10)
        done = processor.process(RawMail("support", "k1", DEFECT))
        mail = store.list_mails()[0]
        [draft] = store.list_drafts()
    finally:
        store.close()
    assert mail.analysis is not None and mail.analysis["category"] == "defect", mail.analysis
    assert draft.macro_id == "defect_replace"
    assert draft.macro_hash == responder.macro_hash("defect_replace")
    assert draft.rule is not None and draft.rule.startswith("rules[3] defects")
    assert draft.variables["problem"].startswith("Ik begrijp dat uw koffiezetapparaat uit bestelling "
                                                 "12345678")
    assert draft.variables["salutation"] == "Beste Anneke de Vries,"
    assert draft.explanation == mail.analysis["explanation"] and draft.explanation
    assert draft.body.startswith("Beste Anneke de Vries,\n\nIk begrijp dat")
    assert "Piet Jansen" in draft.body
    assert mail.decision is not None and mail.decision["macro_hash"] == draft.macro_hash
    # Sent or drafted depends only on the model's confidence and tone for this mail; either way
    # the stored outcome and the draft agree with the rule.
    if draft.rule == "rules[3] defects":
        assert done.outcome is MailOutcome.AUTO_REPLY and draft.auto and draft.state is DraftState.APPROVED
    else:
        assert done.outcome is MailOutcome.DRAFTED and not draft.auto and draft.state is DraftState.PENDING


def test_app_from_config_wires_the_responder(world: MacroWorld) -> None:
    app = App.from_config(write_config(world), analysis=False)
    try:
        assert isinstance(app.responder, Responder) and app.decider is app.responder
        assert ("refund", "The refund macro.") in app.responder.macros()
    finally:
        app.close()


def test_without_a_macros_folder_mail_goes_to_an_agent_as_before(tmp_path: Path) -> None:
    world = MacroWorld(tmp_path)
    (tmp_path / "config").mkdir()
    app = App.from_config(write_config(world), analysis=False)
    try:
        assert app.decider is None and app.responder is None
    finally:
        app.close()


def test_run_once_drafts_and_sends_with_the_macros(world: MacroWorld) -> None:
    # No business hours, so the outcome does not depend on when the test runs.
    text = world.policy.read_text()
    world.policy.write_text(text[: text.index("business_hours:")] + text[text.index("auto_send"):])
    config = write_config(world)
    inbox = world.root / "config" / "inbox"
    for sub in ("new", "cur", "tmp"):
        (inbox / sub).mkdir(parents=True)
    (inbox / "new" / "defect").write_bytes(DEFECT)
    (inbox / "new" / "praise").write_bytes(mail_bytes(
        "Dank!", "Wat een geweldige service, mijn pakket was er binnen een dag. Dank jullie wel!",
        "Jan de Boer <jan@example.nl>"))
    assert main(["--config", str(config), "run", "--once"], out=io.StringIO()) == 0
    store = Store.open(f"sqlite:///{world.root / 'db.sqlite'}")
    try:
        drafts = {d.macro_id: d for d in store.list_drafts()}
    finally:
        store.close()
    assert set(drafts) == {"defect_replace", "praise_thanks"}
    praise = drafts["praise_thanks"]
    assert praise.rule is not None and praise.rule.startswith("rules[1] praise")
    assert drafts["defect_replace"].rule is not None
    assert drafts["defect_replace"].rule.startswith("rules[3] defects")
    sent = [p.read_bytes() for p in (world.root / "config" / "outbox").glob("*.eml")]
    assert len(sent) == sum(d.state is DraftState.SENT for d in drafts.values())
    if praise.rule == "rules[1] praise":   # confident and calm: sent to the outbox
        assert praise.state is DraftState.SENT
        assert any(b"Beste Jan de Boer," in eml for eml in sent)
