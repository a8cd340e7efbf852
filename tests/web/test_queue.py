"""The queue: filters, search, order, counts and SLA, on SQLite and PostgreSQL (store level)
and as the page shows them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbot.models import DraftState
from mailbot.store import Store
from mailbot.store.queue import QueueFilter
from tests.web.conftest import ANALYSIS, Web, add_mail

S = DraftState
NOW = datetime.now(UTC)


def _analysis(language: str, category: str, tone: str, signals: list[str]) -> dict[str, object]:
    return {**ANALYSIS, "language": language, "category": category, "tone": tone, "signals": signals}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = (f"sqlite:///{tmp_path / 'q.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_fresh_url"))
    opened = Store.open(url)
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def mails(store: Store) -> dict[str, int]:
    """Five drafts, arrived one hour apart (the first is the oldest)."""
    specs = {
        "refund": dict(subject="Geld terug", body="Bestelling 55501234 retour", sender="Jan <jan@example.nl>",
                       analysis=_analysis("nl", "refund", "frustrated", ["legal_threat", "urgent"])),
        "delivery": dict(subject="Where is my parcel", body="Order 77700011 is late",
                         sender="Amy <amy@example.com>",
                         analysis=_analysis("en", "delivery", "neutral", [])),
        "abuse": dict(subject="Waardeloos bedrijf", body="Jullie zijn ...", sender="Piet <piet@example.nl>",
                      analysis=_analysis("nl", "service", "abusive", ["public_threat"])),
        "question": dict(subject="Openingstijden 100%_ vraag", body="Wanneer open?",
                         sender="Ann <ann@example.be>",
                         analysis=_analysis("nl", "question", "neutral", [])),
        "unanalysed": dict(subject="Zonder analyse", body="...", sender="x@example.org", analysis={}),
    }
    ids = {}
    for hours, (name, spec) in zip(range(10, 5, -1), specs.items(), strict=True):
        ids[name] = add_mail(store, received_at=NOW - timedelta(hours=hours), **spec).id  # type: ignore[arg-type]
    return ids


def _ids(store: Store, **kwargs: object) -> list[int]:
    page = store.queue.search(QueueFilter(**kwargs))  # type: ignore[arg-type]
    assert page.total == len(page.items)
    return [item.draft.id for item in page.items]


def test_filters_and_search(store: Store, mails: dict[str, int]) -> None:
    m = mails
    # Oldest first.
    assert _ids(store) == [m["refund"], m["delivery"], m["abuse"], m["question"], m["unanalysed"]]
    assert _ids(store, category="refund") == [m["refund"]]
    assert _ids(store, tone="neutral") == [m["delivery"], m["question"]]
    assert _ids(store, signal="urgent") == [m["refund"]]
    assert _ids(store, signal="public_threat") == [m["abuse"]]
    assert _ids(store, signal="churn_threat") == []
    assert _ids(store, language="en") == [m["delivery"]]
    assert _ids(store, language="nl", tone="neutral") == [m["question"]]
    assert _ids(store, search="AMY@example") == [m["delivery"]]          # sender address
    assert _ids(store, search="piet") == [m["abuse"]]                    # sender name
    assert _ids(store, search="parcel") == [m["delivery"]]               # subject
    assert _ids(store, search="55501234") == [m["refund"]]               # order number in the text
    assert _ids(store, search="100%_") == [m["question"]]                # LIKE wildcards are literal
    assert _ids(store, search="%") == [m["question"]]
    assert _ids(store, mailbox="other") == []


def test_states_assignment_and_paging(store: Store, mails: dict[str, int]) -> None:
    m = mails
    store.transition(m["delivery"], S.REJECTED, actor="bob", reason="spam")
    store.transition(m["abuse"], S.ESCALATED, actor="anna")
    store.queue.assign(m["question"], "carol", actor="anna", expected_version=None)
    assert m["delivery"] not in _ids(store)                              # open = pending/escalated/failed
    assert _ids(store, states=(S.REJECTED,)) == [m["delivery"]]
    assert _ids(store, states=(S.ESCALATED,)) == [m["abuse"]]
    assert len(_ids(store, states=None)) == 5
    assert _ids(store, assigned_to="carol") == [m["question"]]
    assert m["question"] not in _ids(store, assigned_to="")
    page = store.queue.search(QueueFilter(states=None), limit=2, offset=2)
    assert [i.draft.id for i in page.items] == [m["abuse"], m["question"]] and page.total == 5
    assert store.queue.ids(QueueFilter()) == [m["refund"], m["abuse"], m["question"], m["unanalysed"]]


def test_history_finds_the_thread_and_the_customer(store: Store) -> None:
    first = add_mail(store, subject="Kapot", sender="Jan <jan@example.nl>",
                     received_at=NOW - timedelta(days=3))
    store.transition(first.id, S.APPROVED, actor="bob")
    other_customer = add_mail(store, sender="Kees <kees@example.nl>", received_at=NOW - timedelta(days=2))
    # A reply in the thread from another address of the same person.
    follow_up = add_mail(store, subject="Re: Kapot", sender="Jan Werk <jan@werk.example>",
                         references=first.message_id)
    history = store.queue.history(store.get_draft(follow_up.id))
    assert [(h.mail.id, h.in_thread) for h in history] == [(first.mail_id, True)]
    assert history[0].draft is not None and history[0].draft.state is S.APPROVED
    later = add_mail(store, subject="Nog iets", sender="Jan <jan@example.nl>")
    found = {h.mail.id: h.in_thread for h in store.queue.history(store.get_draft(later.id))}
    assert found == {first.mail_id: False}
    assert other_customer.mail_id not in found


def test_live_feed_counter(store: Store) -> None:
    before = store.queue.last_event_id()
    draft = add_mail(store)
    events = store.queue.events_after(before)
    assert [e.action for e in events] == ["recorded", "drafted"]
    assert store.queue.last_event_id() == events[-1].id
    assert events[-1].draft_id == draft.id


# ---------------------------------------------------------------- the page


def test_queue_page_shows_filters_counts_and_sla(web: Web) -> None:
    now = datetime.now(UTC)
    old = add_mail(web.store, subject="Heel oud", received_at=now - timedelta(hours=30, minutes=30),
                   analysis=_analysis("nl", "refund", "frustrated", ["legal_threat"]))
    due = add_mail(web.store, subject="Bijna te laat", received_at=now - timedelta(hours=20, minutes=30),
                   analysis=_analysis("en", "delivery", "neutral", []))
    fresh = add_mail(web.store, subject="Net binnen <b>vet</b>", received_at=now - timedelta(minutes=5))
    web.store.transition(fresh.id, S.REJECTED, actor="bob", reason="spam")
    anna = web.signed_in("anna")
    page = anna.get("/")
    rows = re.findall(r'<tr data-id="(\d+)"', page.text)
    assert rows == [str(old.id), str(due.id)]
    # 24 h to answer: 30.5 h old is 6.5 h over; 20.5 h old has 3.5 h left, the last quarter.
    assert re.search(r'class="sla-over">6h 30m over<', page.text)
    assert re.search(r'class="sla-due">3h 29m left<', page.text)
    assert '<span class="count" data-count="open">2</span>' in page.text
    assert '<span class="count" data-count="rejected">1</span>' in page.text
    filtered = anna.get("/?tone=neutral&language=en")
    assert re.findall(r'<tr data-id="(\d+)"', filtered.text) == [str(due.id)]
    assert '<option value="neutral" selected>' in filtered.text
    rejected = anna.get("/?state=rejected")
    assert "Net binnen &lt;b&gt;vet&lt;/b&gt;" in rejected.text           # escaped, not markup
    searched = anna.get("/?q=heel+oud&state=all&tone=bogus%27)--")
    assert re.findall(r'<tr data-id="(\d+)"', searched.text) == [str(old.id)]
    fragment = anna.get("/queue/rows?tone=neutral")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert re.findall(r'<tr data-id="(\d+)"', fragment.text) == [str(due.id)]
    assert '"open": 2' in fragment.text and '"rejected": 1' in fragment.text


def test_bulk_button_only_for_approvers_and_never_for_flagged_mail(web: Web) -> None:
    calm = add_mail(web.store, analysis=_analysis("nl", "refund", "frustrated", []))
    add_mail(web.store, analysis=_analysis("nl", "refund", "distressed", []))
    add_mail(web.store, analysis=_analysis("nl", "refund", "neutral", ["public_threat"]))
    assert 'id="bulk-form"' not in web.signed_in("anna").get("/").text
    page = web.signed_in("bob").get("/").text
    assert "Approve &amp; send 1 listed" in page and "2 flagged draft(s) need a look each" in page
    assert re.findall(r'name="item" value="(\d+):', page) == [str(calm.id)]


def test_draft_page_shows_everything_an_agent_needs(web: Web) -> None:
    earlier = add_mail(web.store, subject="Eerste mail", received_at=NOW - timedelta(days=1))
    web.store.transition(earlier.id, S.EDITED, actor="bob", body="Ons eerdere antwoord aan Jan.")
    draft = add_mail(web.store, subject="Re: Eerste mail", references=earlier.message_id)
    page = web.signed_in("anna").get(f"/drafts/{draft.id}")
    text = page.text
    for expected in ("Jan Klant &lt;jan@example.nl&gt;", "Ik wil mijn geld terug",   # the original
                     "refund", "frustrated", "91%", "legal_threat", "12345678", "49,95 euro",  # analysis
                     "rule legal_threat: &#39;advocaat&#39;",
                     "Macro: <strong>refund_late</strong>", "rule: <strong>refund.default</strong>",
                     "Ik begrijp dat u uw geld terug wilt",                             # the draft
                     "this thread", "Ons eerdere antwoord aan Jan.",                   # history
                     ">drafted<", "test mail"):                                          # audit
        assert expected in text, expected
