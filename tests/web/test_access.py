"""Who may do what: sessions on every route, roles, CSRF, security headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update
from starlette.routing import Mount, Route

from mailbot.models import DraftState
from mailbot.store.schema import WebSessionRow
from tests.web.conftest import Browser, Web, add_mail

PUBLIC = {("/login", "GET"), ("/login", "POST"), ("/healthz", "GET")}


def _routes(web: Web, draft_id: int) -> list[tuple[str, str]]:
    """Every (path, method) the page serves, with a real draft id filled in."""
    found = []
    for route in web.server.asgi.routes:
        if isinstance(route, Mount):
            continue
        assert isinstance(route, Route)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append((route.path.replace("{draft_id}", str(draft_id)), method))
    return found


def test_every_route_but_login_needs_a_valid_session(web: Web) -> None:
    draft = add_mail(web.store, subject="Geheim onderwerp 4711", body="Vertrouwelijke klanttekst")
    routes = _routes(web, draft.id)
    assert len(routes) >= 15, routes
    assert set(routes) >= PUBLIC
    forged = {"mailbot_session": "forged-" + "x" * 40}
    expired = web.signed_in("bob")   # a real session, expired below
    web.store.db.write(lambda s: s.execute(update(WebSessionRow).values(
        expires_at=datetime.now(UTC) - timedelta(minutes=1))), what="expire")
    for path, method in routes:
        if (path.split("?")[0], method) in PUBLIC:
            continue
        for label, client in (("no cookie", httpx.Client(base_url=web.url)),
                              ("forged cookie", httpx.Client(base_url=web.url, cookies=forged)),
                              ("expired session", expired.http)):
            form = {"csrf": expired.csrf, "version": "1", "body": "hacked", "reason": "x",
                    "item": f"{draft.id}:1"}
            response = client.request(method, path, headers={"Accept": "text/html"},
                                      data=form if method == "POST" else None, follow_redirects=False)
            if method == "GET" and path not in ("/events", "/queue/rows"):
                assert response.status_code == 303, (label, path, response.status_code)
                assert response.headers["location"].startswith("/login?next=")
            else:
                assert response.status_code == 401, (label, method, path, response.status_code)
            assert "Vertrouwelijke" not in response.text and "4711" not in response.text
    after = web.store.get_draft(draft.id)
    assert (after.state, after.body, after.version) == (DraftState.PENDING, draft.body, draft.version)


def test_every_protected_handler_declares_its_role(web: Web) -> None:
    for route in web.server.asgi.routes:
        if isinstance(route, Route) and not any((route.path, m) in PUBLIC for m in route.methods or ()):
            assert hasattr(route.endpoint, "required_role"), route.path


def test_sessions_end_when_idle_on_logout_and_when_the_user_is_disabled(web: Web) -> None:
    idle = web.signed_in("anna")
    assert idle.get("/").status_code == 200
    web.store.db.write(lambda s: s.execute(update(WebSessionRow).values(
        last_seen_at=datetime.now(UTC) - timedelta(hours=3))), what="idle")
    assert idle.get("/").status_code == 303

    out = web.signed_in("anna")
    cookie = out.http.cookies["mailbot_session"]
    assert out.post("/logout").status_code == 303
    replay = httpx.Client(base_url=web.url, cookies={"mailbot_session": cookie})
    assert replay.get("/queue/rows").status_code == 401

    disabled = web.signed_in("carol")
    assert disabled.get("/queue/rows").status_code == 200
    web.store.accounts.update_user("carol", active=False)
    assert disabled.get("/queue/rows").status_code == 401
    assert web.client().login("carol").status_code == 401


@pytest.mark.parametrize(("who", "path", "data", "allowed"), [
    ("anna", "/drafts/{id}/approve", {}, False),
    ("anna", "/drafts/{id}/reject", {"reason": "spam"}, False),
    ("anna", "/queue/approve", {"item": "{id}:1"}, False),
    ("anna", "/admin/users", {"change": "add", "username": "eve", "role": "admin",
                              "password": "eve-password-1", "repeat": "eve-password-1"}, False),
    ("bob", "/admin/users", {"change": "disable", "username": "root"}, False),
    ("anna", "/drafts/{id}/save", {"body": "Nieuwe tekst van Anna"}, True),
    ("anna", "/drafts/{id}/escalate", {"reason": "juridisch"}, True),
    ("bob", "/drafts/{id}/reject", {"reason": "spam"}, True),
])
def test_role_checks(web: Web, who: str, path: str, data: dict[str, str], allowed: bool) -> None:
    draft = add_mail(web.store)
    browser = web.signed_in(who)
    form = {k: v.replace("{id}", str(draft.id)) for k, v in data.items()}
    response = browser.post(path.replace("{id}", str(draft.id)), {**browser.draft_form(draft.id), **form})
    after = web.store.get_draft(draft.id)
    if allowed:
        assert response.status_code == 303, response.text[:400]
        assert after.version > draft.version
    else:
        assert response.status_code == 403, response.text[:400]
        assert "may not do this" in response.text
        assert after.version == draft.version
        assert [u.username for u in web.store.accounts.list_users()] == ["anna", "bob", "carol", "root"]
        assert web.store.accounts.get_user("root").active


def test_an_agent_cannot_send(web: Web) -> None:
    draft = add_mail(web.store)
    anna = web.signed_in("anna")
    page = anna.get(f"/drafts/{draft.id}")
    assert "Approve &amp; send" not in page.text and "An approver sends it" in page.text
    response = anna.post(f"/drafts/{draft.id}/approve", {**anna.draft_form(draft.id), "body": "Verstuurd!"})
    assert response.status_code == 403
    assert web.store.get_draft(draft.id).state is DraftState.PENDING
    assert not (web.root / "outbox").exists() or not list((web.root / "outbox").iterdir())
    assert [e.action for e in web.store.audit_for_draft(draft.id)] == ["drafted"]


def test_admin_pages_are_for_admins_only(web: Web) -> None:
    for who, status in (("anna", 403), ("bob", 403), ("root", 200)):
        browser = web.signed_in(who)
        for path in ("/admin/users", "/admin/settings", "/admin/macros"):
            assert browser.get(path).status_code == status, (who, path)


def _approve(browser: Browser, draft_id: int, **overrides: str) -> httpx.Response:
    form = {**browser.draft_form(draft_id), "csrf": browser.csrf}
    form.update(overrides)
    return browser.post(f"/drafts/{draft_id}/approve", form, csrf=False)


def test_csrf_is_checked_on_every_change(web: Web) -> None:
    draft = add_mail(web.store)
    bob = web.signed_in("bob")
    carol = web.signed_in("carol")
    assert _approve(bob, draft.id, csrf="").status_code == 403
    assert _approve(bob, draft.id, csrf="wrong" * 8).status_code == 403
    assert _approve(bob, draft.id, csrf=carol.csrf).status_code == 403       # another session's token
    form = {**bob.draft_form(draft.id), "csrf": bob.csrf}
    cross = bob.http.post(f"/drafts/{draft.id}/approve", data=form,
                          headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and "CSRF" in cross.text
    assert web.store.get_draft(draft.id).state is DraftState.PENDING
    # The same request with the right token (here as a header) goes through.
    ok = bob.http.post(f"/drafts/{draft.id}/approve", data=bob.draft_form(draft.id),
                       headers={"X-CSRF-Token": bob.csrf, "Origin": web.url})
    assert ok.status_code == 303
    assert web.store.get_draft(draft.id).state in (DraftState.APPROVED, DraftState.SENDING, DraftState.SENT)


def test_logout_needs_the_csrf_token(web: Web) -> None:
    bob = web.signed_in("bob")
    assert bob.post("/logout", csrf=False).status_code == 403
    assert bob.get("/queue/rows").status_code == 200


def test_login_form_needs_its_own_token(web: Web) -> None:
    client = httpx.Client(base_url=web.url)
    response = client.post("/login", data={"username": "bob", "password": "bob-password-22",
                                           "token": "made-up", "next": "/"})
    assert response.status_code == 403
    assert "mailbot_session" not in response.cookies


def test_login_redirects_only_within_the_site(web: Web) -> None:
    browser = web.client()
    form = browser.http.get("/login?next=//evil.example/x")
    assert 'name="next" value="/"' in form.text
    response = browser.login("bob")
    assert response.headers["location"] == "/"


def test_security_headers(web: Web) -> None:
    bob = web.signed_in("bob")
    for response in (bob.get("/"), web.client().http.get("/login")):
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "img-src 'self' data:" in csp
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["cache-control"] == "no-store"
    cookie = next(h for h in web.client().login("bob").headers.get_list("set-cookie")
                  if h.startswith("mailbot_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
