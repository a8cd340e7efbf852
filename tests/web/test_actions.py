"""Actions on drafts over HTTP, against a real store and a real sender (outbox or aiosmtpd)."""

from __future__ import annotations

import email
import re
import threading
import time
from collections.abc import Iterator
from email import policy
from pathlib import Path

import httpx
import pytest

from mailbot.models import DraftState
from tests.support.smtpd import SmtpServer
from tests.web.conftest import ANALYSIS, Browser, Web, add_mail, start_web, stop_web

S = DraftState


def _outbox(web: Web) -> list[email.message.EmailMessage]:
    folder = web.root / "outbox"
    files = sorted(folder.glob("*.eml")) if folder.exists() else []
    return [email.message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]  # type: ignore[misc]


def _wait_state(web: Web, draft_id: int, state: DraftState, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if web.store.get_draft(draft_id).state is state:
            return
        time.sleep(0.05)
    raise AssertionError(f"draft {draft_id} is {web.store.get_draft(draft_id).state}, not {state}")


def _post(browser: Browser, draft_id: int, action: str, form: dict[str, str] | None = None,
          **fields: str) -> httpx.Response:
    return browser.post(f"/drafts/{draft_id}/{action}", {**(form or browser.draft_form(draft_id)), **fields})


def test_approve_sends_at_once_and_is_audited(web: Web) -> None:
    draft = add_mail(web.store)
    bob = web.signed_in("bob")
    response = _post(bob, draft.id, "approve")
    assert response.status_code == 303
    _wait_state(web, draft.id, S.SENT)
    [sent] = _outbox(web)
    assert sent["In-Reply-To"] == draft.in_reply_to or sent["In-Reply-To"] == f"<{draft.in_reply_to}>"
    assert "Ik begrijp dat u uw geld terug wilt" in sent.get_content()
    page = bob.get(response.headers["location"])
    assert "approved; sending now" in page.text                     # the one-time message
    events = [(e.actor, e.action) for e in web.store.audit_for_draft(draft.id)]
    assert ("bob", "approved") in events and events[-1][1] == "sent"
    assert 'id="audit"' in page.text and ">bob<" in page.text       # shown on the draft


def test_edit_then_send_sends_the_edited_text(web: Web) -> None:
    draft = add_mail(web.store)
    bob = web.signed_in("bob")
    response = _post(bob, draft.id, "approve", subject="Re: uw terugbetaling",
                     body="Beste Jan,\r\n\r\nHet geld staat morgen op uw rekening.\r\n\r\nBob")
    assert response.status_code == 303
    _wait_state(web, draft.id, S.SENT)
    [sent] = _outbox(web)
    assert sent["Subject"] == "Re: uw terugbetaling"
    assert "Het geld staat morgen op uw rekening." in sent.get_content()
    assert "\r\r" not in sent.get_content()
    assert [e.action for e in web.store.audit_for_draft(draft.id)][1] == "edited"


def test_an_empty_draft_cannot_be_approved(web: Web) -> None:
    draft = add_mail(web.store, draft_body="")
    bob = web.signed_in("bob")
    response = _post(bob, draft.id, "approve")
    assert response.status_code == 422
    assert "has no text yet" in response.text
    assert web.store.get_draft(draft.id).state is S.PENDING


def test_an_agent_saves_text_and_an_approver_sends_it(web: Web) -> None:
    draft = add_mail(web.store, draft_body="")
    anna = web.signed_in("anna")
    response = _post(anna, draft.id, "save", body="Beste Jan,\n\nAnna schreef dit.\n")
    assert response.status_code == 303
    saved = web.store.get_draft(draft.id)
    assert saved.state is S.PENDING and saved.body == "Beste Jan,\n\nAnna schreef dit.\n"
    assert _outbox(web) == []
    bob = web.signed_in("bob")
    assert _post(bob, draft.id, "approve").status_code == 303
    _wait_state(web, draft.id, S.SENT)
    assert "Anna schreef dit." in _outbox(web)[0].get_content()
    actors = [(e.actor, e.action) for e in web.store.audit_for_draft(draft.id)]
    assert ("anna", "revised") in actors and ("bob", "approved") in actors


def test_saving_an_approved_draft_takes_the_approval_back(web: Web) -> None:
    draft = add_mail(web.store)
    web.store.transition(draft.id, S.APPROVED, actor="bob")   # approved, not yet claimed
    anna = web.signed_in("anna")
    response = _post(anna, draft.id, "save", body="Toch anders.")
    assert response.status_code == 303
    assert web.store.get_draft(draft.id).state is S.PENDING
    assert "needs approving again" in anna.get(response.headers["location"]).text


def test_reject_needs_a_reason(web: Web) -> None:
    draft = add_mail(web.store)
    bob = web.signed_in("bob")
    missing = _post(bob, draft.id, "reject", reason="   ")
    assert missing.status_code == 422 and "Say why" in missing.text
    assert _post(bob, draft.id, "reject", reason="spam").status_code == 303
    after = web.store.get_draft(draft.id)
    assert after.state is S.REJECTED
    assert web.store.audit_for_draft(draft.id)[-1].reason == "spam"


def test_escalate_and_assign(web: Web) -> None:
    draft = add_mail(web.store)
    anna = web.signed_in("anna")
    response = _post(anna, draft.id, "escalate", reason="juridische dreiging", assignee="carol")
    assert response.status_code == 303
    after = web.store.get_draft(draft.id)
    assert (after.state, after.assigned_to) == (S.ESCALATED, "carol")
    assert _post(anna, draft.id, "assign", assignee="nobody-here").status_code == 422
    assert _post(anna, draft.id, "assign", assignee="bob").status_code == 303
    assert web.store.get_draft(draft.id).assigned_to == "bob"
    actions = [(e.actor, e.action) for e in web.store.audit_for_draft(draft.id)]
    assert actions[-3:] == [("anna", "escalated"), ("anna", "assigned"), ("anna", "assigned")]
    mine = web.signed_in("bob").get("/?assigned=me&state=all")
    assert f'data-id="{draft.id}"' in mine.text


def test_bulk_approve_of_a_filtered_list(web: Web) -> None:
    calm = {**ANALYSIS, "tone": "neutral", "signals": []}
    refunds = [add_mail(web.store, analysis=calm) for _ in range(3)]
    flagged = add_mail(web.store)                        # a legal threat: never in bulk
    empty = add_mail(web.store, draft_body="", analysis=calm)
    other = add_mail(web.store, analysis={"language": "en", "category": "question", "tone": "neutral",
                                          "signals": [], "entities": {}, "explanation": []})
    changed = refunds[2]
    bob = web.signed_in("bob")
    page = bob.get("/?category=refund")
    items = re.findall(r'name="item" value="(\d+:\d+)"', page.text)
    assert sorted(items) == sorted(f"{d.id}:{d.version}" for d in refunds)   # no empty, no other
    web.store.queue.revise(changed.id, actor="carol", action="revised", expected_version=changed.version,
                           body="Carol paste dit aan.")
    assert "1 flagged draft(s) need a look each" in page.text
    back = "/?category=refund"
    forced = [f"{empty.id}:{empty.version}", f"{flagged.id}:{flagged.version}"]   # a hand-made request
    response = bob.post("/queue/approve", {"item": [*items, *forced], "back": back})
    assert response.status_code == 303 and response.headers["location"] == back
    result = bob.get(back).text
    assert "Approved 2 draft(s)" in result
    assert f"#{changed.id} was changed by someone else" in result and f"#{empty.id} has no text" in result
    assert f"#{flagged.id} needs approving on its own (legal_threat)" in result
    for draft in refunds[:2]:
        _wait_state(web, draft.id, S.SENT)
    assert web.store.get_draft(changed.id).state is S.PENDING
    assert web.store.get_draft(other.id).state is S.PENDING
    assert web.store.get_draft(flagged.id).state is S.PENDING
    assert len(_outbox(web)) == 2


# ---------------------------------------------------------------- bad input: races


@pytest.fixture
def smtp_web(tmp_path: Path, password_hashes: dict[str, str], smtpd: SmtpServer) -> Iterator[Web]:
    running = start_web(tmp_path, password_hashes, smtp=(smtpd.host, smtpd.port))
    yield running
    stop_web(running)


def test_two_approvers_at_once_send_exactly_one_reply(smtp_web: Web, smtpd: SmtpServer) -> None:
    web = smtp_web
    for _ in range(3):                  # a few rounds: the race must never produce two sends
        draft = add_mail(web.store)
        bob, carol = web.signed_in("bob"), web.signed_in("carol")
        forms = {"bob": bob.draft_form(draft.id), "carol": carol.draft_form(draft.id)}
        start = threading.Barrier(2)
        results: dict[str, httpx.Response] = {}

        def approve(name: str, browser: Browser, draft_id: int, barrier: threading.Barrier,
                    form: dict[str, str], out: dict[str, httpx.Response]) -> None:
            barrier.wait()                  # both requests leave at the same moment
            out[name] = _post(browser, draft_id, "approve", form)

        threads = [threading.Thread(target=approve, args=(n, b, draft.id, start, forms[n], results))
                   for n, b in (("bob", bob), ("carol", carol))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        codes = sorted(r.status_code for r in results.values())
        assert codes == [303, 409], {n: (r.status_code, r.text[:300]) for n, r in results.items()}
        winner = next(n for n, r in results.items() if r.status_code == 303)
        loser = next(r for r in results.values() if r.status_code == 409)
        assert f"{winner} approved it at" in loser.text, loser.text    # the other sees why
        assert "Your change was not applied" in loser.text
        _wait_state(web, draft.id, S.SENT)
    time.sleep(1.0)                     # a second send would arrive by now
    received = smtpd.received
    assert len(received) == 3
    assert len({email.message_from_bytes(r.content)["In-Reply-To"] for r in received}) == 3


def test_a_macro_change_while_an_agent_edits_keeps_the_agents_text(smtp_web: Web, smtpd: SmtpServer) -> None:
    web = smtp_web
    draft = add_mail(web.store)
    anna = web.signed_in("anna")
    form = anna.draft_form(draft.id)            # Anna opens the draft and starts typing ...
    # ... meanwhile the draft is re-rendered with another macro (a colleague's choice, or a
    # macro that changed):
    web.store.queue.revise(draft.id, actor="bob", action="rerendered", expected_version=draft.version,
                           body="Tekst van de nieuwe macro.", macro={"macro_id": "refund_overdue"},
                           reason="re-rendered with macro refund_overdue")
    response = _post(anna, draft.id, "save", form, body="Anna's eigen antwoord.")
    assert response.status_code == 303, response.text[:500]
    kept = web.store.get_draft(draft.id)
    assert kept.body == "Anna's eigen antwoord." and kept.state is S.PENDING
    # An approver who had the page open before the macro change sends Anna's text as well.
    bob = web.signed_in("bob")
    assert _post(bob, draft.id, "approve").status_code == 303
    [received] = smtpd.wait_for(1, timeout=15)
    assert "Anna's eigen antwoord." in email.message_from_bytes(received.content, policy=policy.default) \
        .get_content()  # type: ignore[attr-defined]
    assert "nieuwe macro" not in received.content.decode()


def test_an_approver_edit_wins_over_a_macro_change_too(web: Web) -> None:
    draft = add_mail(web.store)
    bob = web.signed_in("bob")
    form = bob.draft_form(draft.id)
    web.store.queue.revise(draft.id, actor="mailbot", action="rerendered", expected_version=draft.version,
                           body="Macro-tekst.")
    assert _post(bob, draft.id, "approve", form, body="Bobs tekst.").status_code == 303
    _wait_state(web, draft.id, S.SENT)
    assert "Bobs tekst." in _outbox(web)[0].get_content()


def test_a_colleagues_edit_is_never_overwritten(web: Web) -> None:
    draft = add_mail(web.store)
    anna = web.signed_in("anna")
    form = anna.draft_form(draft.id)
    web.store.queue.revise(draft.id, actor="carol", action="revised", expected_version=draft.version,
                           body="Carols tekst.")
    response = _post(anna, draft.id, "save", form, body="Annas tekst.")
    assert response.status_code == 409
    assert "carol revised it at" in response.text
    assert "Annas tekst." in response.text             # her text is still in the editor
    assert web.store.get_draft(draft.id).body == "Carols tekst."
    # Approving what she saw (not what Carol wrote) is refused as well.
    stale = _post(web.signed_in("bob"), draft.id, "approve", form)
    assert stale.status_code == 409 and "carol revised it" in stale.text
    assert web.store.get_draft(draft.id).state is S.PENDING


def test_unknown_and_malformed_drafts(web: Web) -> None:
    bob = web.signed_in("bob")
    assert bob.get("/drafts/999999").status_code == 404
    assert bob.get("/drafts/abc").status_code == 404
    draft = add_mail(web.store)
    assert bob.post(f"/drafts/{draft.id}/approve", {"version": "x"}).status_code == 400
    huge = bob.post(f"/drafts/{draft.id}/save", {**bob.draft_form(draft.id), "body": "x" * 300_000})
    assert huge.status_code == 413
    assert web.store.get_draft(draft.id).version == draft.version
