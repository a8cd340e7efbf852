"""Screenshots of the queue and the draft view for the README, taken in chromium.

    MAILBOT_UPDATE_SCREENSHOTS=1 .venv/bin/pytest tests/web/test_screenshots.py

writes docs/screenshots/queue.png and draft.png; without the variable they go to a temporary
folder, so the normal test run checks that they can be made without touching the repository.

The mails are the sample mails of examples/mail, run through the real pipeline (parse,
clean, screen, the macro engine on macros/ and config/policy.yaml, the store). Only the
analysis is frozen (``FROZEN``, what the shipped model says about these mails), so the
pictures do not change each time the model is retrained.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright import sync_api  # a dev dependency: missing it must fail, not skip

from mailbot.models import Analysis, DraftState, RawMail
from mailbot.pipeline import Processor
from tests.web.conftest import PASSWORDS, ROOT, Web, start_web, stop_web

pytestmark = [pytest.mark.slow, pytest.mark.browser]
CHROMIUM = os.environ.get("MAILBOT_CHROMIUM", "/usr/bin/chromium")


def _a(language: str, category: str, score: float, tone: str, signals: tuple[str, ...],
       orders: list[str], why: list[str], amounts: list[str] | None = None) -> Analysis:
    return Analysis(language=language, category=category,
                    category_scores={category: score, "other": round(1 - score, 2)}, tone=tone,
                    tone_scores={tone: 0.8, "neutral": 0.2}, signals=signals,
                    entities={"orders": orders, "amounts": amounts or [], "dates": [], "products": [],
                              "customer_name": None},
                    explanation=[f"language {language} (function words)",
                                 f"category {category} ({score:.2f}) because of: {why[0]}",
                                 f"tone {tone} because of: {why[1]}", *why[2:]])


# example file -> (hours ago it arrived, the analysis)
FROZEN: dict[str, tuple[float, Analysis]] = {
    "01-nl-refund-overdue": (27, _a("nl", "refund", 0.93, "frustrated", ("repeat_contact",),
                                    ["2026-004512"],
                                    ["terug, euro, teruggestuurd, weken", "nog steeds, al, inmiddels",
                                     "rule repeat_contact: 'vorige week ook al gebeld'"],
                                    ["249,00 euro"])),
    "02-en-defect": (20.5, _a("en", "defect", 0.88, "neutral", (), ["558213"],
                              ["won't switch on, replacement, repaired", "thanks, hi"])),
    "03-nl-abusive-delivery": (19, _a("nl", "delivery", 0.81, "abusive", ("public_threat", "urgent"),
                                      ["NL-88231"],
                                      ["pakket, wacht, bestelling", "oplichters, prutsers",
                                       "rule public_threat: 'op facebook'"])),
    "06-nl-legal-threat": (9, _a("nl", "delivery", 0.77, "frustrated", ("legal_threat", "repeat_contact"),
                                 ["7781234"], ["geleverd, besteld, levering", "ondanks, nog altijd",
                                               "rule legal_threat: 'in gebreke'"], ["649 euro"])),
    "07-en-question": (6, _a("en", "question", 0.9, "neutral", (), [],
                             ["ship, delivery, how long", "hello"])),
    "09-nl-distressed": (3.5, _a("nl", "defect", 0.84, "distressed", ("repeat_contact", "urgent"),
                                 ["2026-003871"],
                                 ["accu, laadt niet, rijdt niet", "ten einde raad, echt niet meer"])),
    "10-en-praise": (1.2, _a("en", "praise", 0.95, "neutral", (), [], ["thanks, great service", "thanks"])),
    "11-en-reply-thread": (0.3, _a("en", "wrong_item", 0.79, "frustrated", ("repeat_contact",), ["66120"],
                                   ["wrong colour, ordered, navy", "still did not"])),
}


class FrozenAnalysis:
    """The pipeline's Analyzer, answering from ``FROZEN`` (looked up by subject)."""

    def __init__(self, by_subject: dict[str, Analysis]) -> None:
        self._by_subject = by_subject

    def analyse(self, subject: str, body: str, *, from_name: str = "",
                sign_off_name: str | None = None) -> Analysis:
        from dataclasses import replace

        from mailbot.nlp.analyzer import customer_name

        # The name comes from the mail, as the real analyzer finds it.
        analysis = self._by_subject[subject]
        name = customer_name(from_name, sign_off_name)
        return replace(analysis, entities={**analysis.entities, "customer_name": name})


@pytest.fixture
def demo(tmp_path: Path, password_hashes: dict[str, str]) -> Iterator[Web]:
    from mailbot.text.mime import parse

    web = start_web(tmp_path, password_hashes, macros=True)
    now = datetime.now(UTC)
    by_subject = {}
    raws = []
    for name, (hours, analysis) in FROZEN.items():
        data = (ROOT / "examples" / "mail" / f"{name}.eml").read_bytes()
        by_subject[parse(data).subject] = analysis
        raws.append(RawMail("support", name, data, received_at=now - timedelta(hours=hours)))
    box = web.app.settings.mailbox("support")
    processor = Processor(web.app.settings, box, web.store, analyzer=FrozenAnalysis(by_subject),
                          decider=web.app.decider, clock=lambda: now)
    for raw in raws:
        processor.process(raw)
    drafts = {d.mail_id: d for d in web.store.list_drafts(limit=100)}
    mails = {m.source_key: m for m in web.store.list_mails()}
    legal = drafts[mails["06-nl-legal-threat"].id]
    if legal.state is DraftState.PENDING:
        web.store.transition(legal.id, DraftState.ESCALATED, actor="anna", reason="juridische dreiging")
    web.store.queue.assign(drafts[mails["09-nl-distressed"].id].id, "carol", actor="anna",
                           expected_version=None)
    yield web
    stop_web(web)


def test_screenshots_of_the_queue_and_a_draft(demo: Web, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: apt-get install -y chromium", pytrace=False)
    update = os.environ.get("MAILBOT_UPDATE_SCREENSHOTS") == "1"
    target = ROOT / "docs" / "screenshots" if update else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    refund = next(m for m in demo.store.list_mails() if m.source_key == "01-nl-refund-overdue")
    draft = next(d for d in demo.store.list_drafts(limit=100) if d.mail_id == refund.id)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768}, device_scale_factor=1)
            page.goto(f"{demo.url}/login")
            page.fill("input[name=username]", "bob")
            page.fill("input[name=password]", PASSWORDS["bob"])
            page.click("button[type=submit]")
            page.wait_for_selector("#queue-rows tr[data-id]")
            sync_api.expect(page.locator("#live-status")).to_have_class(re.compile(r"\bon\b"))
            rows = page.locator("#queue-rows tr[data-id]")
            assert rows.count() >= 5
            assert page.locator("#queue-rows .tone-abusive").count() == 1
            page.keyboard.press("j")
            page.screenshot(path=str(target / "queue.png"))
            page.goto(f"{demo.url}/drafts/{draft.id}")
            page.wait_for_selector("#reply textarea")
            assert "249,00 euro" in page.locator("#body").input_value()   # the macro's text
            assert "repeat_contact" in page.locator("#analysis").inner_text()
            page.screenshot(path=str(target / "draft.png"))
        finally:
            browser.close()
    for name in ("queue.png", "draft.png"):
        data = (target / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, name
