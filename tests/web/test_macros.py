"""Re-rendering with another macro and the admins' macro view, with the real macro engine
(mailbot.respond on the repository's macros/ and config/policy.yaml), and without one."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbot.models import DraftState
from tests.web.conftest import ROOT, Web, add_mail, start_web, stop_web


@pytest.fixture
def macro_web(tmp_path: Path, password_hashes: dict[str, str]) -> Iterator[Web]:
    running = start_web(tmp_path, password_hashes, macros=True)
    yield running
    stop_web(running)


def test_rerender_with_another_macro(macro_web: Web) -> None:
    web = macro_web
    draft = add_mail(web.store, draft_body="Oude tekst.", macro_id="acknowledge_apologise")
    anna = web.signed_in("anna")
    page = anna.get(f"/drafts/{draft.id}")
    assert '<option value="refund"' in page.text and "macro engine not configured" not in page.text
    response = anna.post(f"/drafts/{draft.id}/rerender", {**anna.draft_form(draft.id), "macro": "refund"})
    assert response.status_code == 303, response.text[:500]
    after = web.store.get_draft(draft.id)
    assert after.macro_id == "refund" and after.macro_hash
    assert "49,95 euro" in after.body and "12345678" in after.body   # rendered for this mail
    assert after.state is DraftState.PENDING
    event = web.store.audit_for_draft(draft.id)[-1]
    assert (event.actor, event.action, event.detail) == ("anna", "rerendered", {"macro_id": "refund"})
    unknown = anna.post(f"/drafts/{draft.id}/rerender", {**anna.draft_form(draft.id), "macro": "nope"})
    assert unknown.status_code == 422 and "no macro" in unknown.text
    assert web.store.get_draft(draft.id).body == after.body


def test_admin_sees_macros_and_their_lint_status(macro_web: Web) -> None:
    page = macro_web.signed_in("root").get("/admin/macros")
    assert page.status_code == 200
    assert 'id="lint-summary">OK<' in page.text
    for macro in ("refund", "abusive_boundary", "legal_threat_escalate"):
        assert f"<code>{macro}</code>" in page.text
    assert "policy.yaml" in page.text
    assert 'id="policy"' in page.text and "fallback_macro" in page.text      # the policy, read-only
    assert "<summary>refund.yaml</summary>" in page.text                      # each macro's file
    assert "<form" not in page.text.split('id="lint-summary"')[1].split("</main>")[0]  # nothing to edit


def test_lint_errors_are_shown_with_file_and_line(tmp_path: Path, password_hashes: dict[str, str]) -> None:
    macros = tmp_path / "macros"
    shutil.copytree(ROOT / "macros", macros)
    text = (macros / "refund.yaml").read_text()
    (macros / "refund.yaml").write_text(text.replace("categories: [refund]", "categories: [refnud]"))
    web = start_web(tmp_path / "web", password_hashes, macros=macros)
    try:
        page = web.signed_in("root").get("/admin/macros")
        assert "error(s)" in page.text
        assert "refund.yaml" in page.text and "refnud" in page.text
        assert "<td>10</td>" in page.text                       # the line of the bad category
    finally:
        stop_web(web)


def test_without_a_macro_engine_the_page_says_so(web: Web) -> None:
    draft = add_mail(web.store)
    anna = web.signed_in("anna")
    assert "Re-render: macro engine not configured." in anna.get(f"/drafts/{draft.id}").text
    response = anna.post(f"/drafts/{draft.id}/rerender", {**anna.draft_form(draft.id), "macro": "refund"})
    assert response.status_code == 422 and "macro engine not configured" in response.text
    assert web.store.get_draft(draft.id).version == draft.version
    admin = web.signed_in("root").get("/admin/macros")
    assert "Macro engine not configured" in admin.text
