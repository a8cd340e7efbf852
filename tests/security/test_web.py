"""The agents' page, route by route: who may use it, and CSRF on every state change.

tests/web/test_access.py already proves that every route but /login, /healthz and /static
needs a session (it walks all routes), that every protected handler declares a role, CSRF
on approve and logout, and the login form's own token; tests/web/test_login.py proves the
throttling per account and per address. What this adds:

* the route table itself is pinned: a route added without being classified here (public, or
  which role) fails, and so does a handler whose declared role differs from the table;
* every route refuses each role below its own, with a valid session and CSRF token, and
  changes nothing; the role itself gets through;
* every state-changing route (enumerated, not picked) refuses a missing token, a wrong
  token and a foreign Origin;
* the per-address throttle cannot be dodged with X-Forwarded-For, neither from an untrusted
  client nor by prefixing the header a trusted proxy appends to;
* the admin's settings page shows no secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route

from mailbot.app import App
from mailbot.config import Settings
from mailbot.store import Role, Store
from mailbot.web.passwords import Passwords
from tests.web.conftest import PASSWORDS, Browser, LiveServer, Web, add_mail, add_users, start_web, stop_web

PUBLIC = None
# Every route of the page and who may use it. A new route must be added here, with its role,
# before the suite passes again: that is the point.
EXPECTED: dict[tuple[str, str], Role | None] = {
    ("/login", "GET"): PUBLIC,
    ("/login", "POST"): PUBLIC,
    ("/healthz", "GET"): PUBLIC,
    ("/static", "MOUNT"): PUBLIC,
    ("/logout", "POST"): Role.AGENT,
    ("/", "GET"): Role.AGENT,
    ("/queue/rows", "GET"): Role.AGENT,
    ("/queue/approve", "POST"): Role.APPROVER,
    ("/events", "GET"): Role.AGENT,
    ("/drafts/{draft_id}", "GET"): Role.AGENT,
    ("/drafts/{draft_id}/approve", "POST"): Role.APPROVER,
    ("/drafts/{draft_id}/save", "POST"): Role.AGENT,
    ("/drafts/{draft_id}/rerender", "POST"): Role.AGENT,
    ("/drafts/{draft_id}/reject", "POST"): Role.APPROVER,
    ("/drafts/{draft_id}/escalate", "POST"): Role.AGENT,
    ("/drafts/{draft_id}/assign", "POST"): Role.AGENT,
    ("/admin/users", "GET"): Role.ADMIN,
    ("/admin/users", "POST"): Role.ADMIN,
    ("/admin/settings", "GET"): Role.ADMIN,
    ("/admin/macros", "GET"): Role.ADMIN,
}
RANK = {Role.AGENT: 1, Role.APPROVER: 2, Role.ADMIN: 3}
USER_OF = {Role.AGENT: "anna", Role.APPROVER: "bob", Role.ADMIN: "root"}


def _served(web: Web) -> dict[tuple[str, str], Any]:
    """(path, method) -> endpoint for everything the running app serves."""
    found: dict[tuple[str, str], Any] = {}
    for route in web.server.asgi.routes:
        if isinstance(route, Mount):
            found[(route.path, "MOUNT")] = route
            continue
        assert isinstance(route, Route), route
        for method in route.methods or ():
            if method != "HEAD":
                found[(route.path, method)] = route.endpoint
    return found


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    passwords = Passwords()
    return {name: passwords.hash(password) for name, password in PASSWORDS.items()}


@pytest.fixture
def web(tmp_path: Path, hashes: dict[str, str]) -> Iterator[Web]:
    running = start_web(tmp_path, hashes)
    yield running
    stop_web(running)


def _form(browser: Browser, path: str, draft_id: int) -> dict[str, str]:
    """A form that the route would accept from someone allowed to use it."""
    if path.startswith("/drafts/"):
        return {**browser.draft_form(draft_id), "body": "Beste Jan, het is geregeld.", "reason": "test",
                "macro": "refund", "assignee": "bob"}
    if path == "/queue/approve":
        return {"item": f"{draft_id}:1"}
    if path == "/admin/users":
        return {"change": "add", "username": "eve", "role": "admin", "password": "eve-password-1",
                "repeat": "eve-password-1"}
    return {}


def _state(web: Web, draft_id: int) -> tuple[Any, ...]:
    """Everything a refused request must leave as it was."""
    draft = web.store.get_draft(draft_id)
    users = [(u.username, u.role, u.active) for u in web.store.accounts.list_users()]
    return draft.version, draft.state, draft.body, draft.assigned_to, tuple(users), \
        len(web.store.audit_for_draft(draft_id))


def _request(browser: Browser, method: str, path: str, form: dict[str, str],
             **headers: str) -> httpx.Response:
    if method == "GET":
        if path == "/events":     # a stream that never ends: the status line is enough
            with browser.http.stream("GET", path, headers=headers) as response:
                return response
        return browser.http.get(path, headers=headers)
    return browser.http.post(path, data=form, headers=headers)


def test_the_route_table_is_pinned(web: Web) -> None:
    served = _served(web)
    assert set(served) == set(EXPECTED), (
        f"unclassified routes: {sorted(set(served) - set(EXPECTED))}; "
        f"gone: {sorted(set(EXPECTED) - set(served))}")
    for key, role in EXPECTED.items():
        declared = getattr(served[key], "required_role", None)
        assert declared == role, f"{key}: handler requires {declared}, the table says {role}"


@pytest.mark.parametrize("route", [k for k, r in EXPECTED.items() if r is not None and RANK[r] > 1],
                         ids=lambda k: f"{k[1]} {k[0]}")
def test_each_route_refuses_every_lower_role(web: Web, route: tuple[str, str]) -> None:
    path, method = route
    role = EXPECTED[route]
    assert role is not None
    for lower in (r for r in RANK if RANK[r] < RANK[role]):
        draft = add_mail(web.store)
        url = path.replace("{draft_id}", str(draft.id))
        browser = web.signed_in(USER_OF[lower])
        before = _state(web, draft.id)
        response = _request(browser, method, url, {**_form(browser, path, draft.id), "csrf": browser.csrf},
                            **{"X-CSRF-Token": browser.csrf})
        assert response.status_code == 403, (lower, method, url, response.status_code)
        assert _state(web, draft.id) == before, (lower, method, url)


@pytest.mark.parametrize("route", [k for k, r in EXPECTED.items() if r is not None],
                         ids=lambda k: f"{k[1]} {k[0]}")
def test_each_route_admits_its_own_role(web: Web, route: tuple[str, str]) -> None:
    path, method = route
    role = EXPECTED[route]
    assert role is not None
    draft = add_mail(web.store)
    url = path.replace("{draft_id}", str(draft.id))
    browser = web.signed_in(USER_OF[role])
    response = _request(browser, method, url, {**_form(browser, path, draft.id), "csrf": browser.csrf})
    # Through the gate and the role check: a page, a redirect after the action, or the
    # action's own answer (e.g. 409 when the draft moved on) -- never 401 or 403.
    assert response.status_code not in (401, 403), (role, method, url, response.status_code)
    assert response.status_code < 500, response.text[:500]


@pytest.mark.parametrize("route", [k for k, r in EXPECTED.items() if r is not None and k[1] == "POST"],
                         ids=lambda k: f"{k[1]} {k[0]}")
def test_every_state_change_checks_csrf(web: Web, route: tuple[str, str]) -> None:
    path, _method = route
    root = web.signed_in("root")         # the highest role: only the CSRF check can refuse
    other = web.signed_in("bob")
    for label, token, headers in (("no token", "", {}),
                                  ("wrong token", "x" * 43, {}),
                                  ("another session's token", other.csrf, {}),
                                  ("foreign Origin", root.csrf, {"Origin": "https://evil.example"})):
        draft = add_mail(web.store)
        url = path.replace("{draft_id}", str(draft.id))
        before = _state(web, draft.id)
        response = root.http.post(url, data={**_form(root, path, draft.id), "csrf": token}, headers=headers)
        assert response.status_code == 403, (label, url, response.status_code)
        assert _state(web, draft.id) == before, (label, url)
    assert root.get("/queue/rows").status_code == 200        # still signed in (logout refused)


# ------------------------------------------------------------------ throttling behind proxies


@pytest.fixture
def proxied(tmp_path: Path, hashes: dict[str, str]) -> Iterator[Web]:
    running = start_web(tmp_path, hashes, login_failures_per_user=50, login_failures_per_ip=4,
                        login_window_minutes=10)
    yield running
    stop_web(running)


def test_the_address_throttle_survives_forged_forwarded_for(proxied: Web) -> None:
    """127.0.0.1 is the trusted proxy (the default). It appends the real client to
    X-Forwarded-For; what the client itself put in front of that is ignored, so rotating it
    does not reset the count for the real address. Another real address is not affected."""
    def attempt(user: str, password: str, forwarded: str) -> int:
        browser = proxied.client()
        browser.http.headers["X-Forwarded-For"] = forwarded
        return browser.login(user, password).status_code

    for n in range(4):
        assert attempt(f"guess{n}", "wrong", f"10.0.0.{n}, 203.0.113.7") == 401
    assert attempt("root", PASSWORDS["root"], "10.9.9.9, 203.0.113.7") == 429
    assert attempt("root", PASSWORDS["root"], "203.0.113.8") == 303
    since = datetime(2000, 1, 1, tzinfo=UTC)
    failures = proxied.store.accounts.login_failures("x", "203.0.113.7", since=since)
    assert failures[1] == 4


def test_an_untrusted_client_cannot_choose_its_address(tmp_path: Path, hashes: dict[str, str]) -> None:
    """Not behind the trusted proxy: X-Forwarded-For is ignored and the connection's own
    address is throttled, whatever the header claims."""
    web = start_web(tmp_path, hashes, login_failures_per_user=50, login_failures_per_ip=4,
                    login_window_minutes=10, trusted_proxies=["192.0.2.1"])
    try:
        for n in range(4):
            browser = web.client()
            browser.http.headers["X-Forwarded-For"] = f"198.51.100.{n}"
            assert browser.login(f"guess{n}", "wrong").status_code == 401
        browser = web.client()
        browser.http.headers["X-Forwarded-For"] = "198.51.100.200"
        assert browser.login("root").status_code == 429
    finally:
        stop_web(web)


# ------------------------------------------------------------------ the settings page


def test_the_settings_page_shows_no_secret(tmp_path: Path, hashes: dict[str, str]) -> None:
    secrets = ("imap-S3cret-901", "smtp-S3cret-902", "db-S3cret-903", "db-S3cret-904")
    settings = Settings.model_validate({
        # What the page shows; the page's own store is the SQLite file opened below.
        "database": {"url": f"postgresql+psycopg://bot:{secrets[2]}@db.example/mail?password={secrets[3]}"},
        "mailboxes": [{"name": "support", "address": "support@shop.example",
                       "source": {"kind": "imap", "host": "imap.example", "username": "u",
                                  "password": secrets[0]},
                       "transport": {"kind": "smtp", "host": "smtp.example", "username": "u",
                                     "password": secrets[1]}}],
        "web": {"port": 0},
    })
    store = Store.open(f"sqlite:///{tmp_path / 'page.db'}")
    store.migrate()
    add_users(store, hashes)
    server = LiveServer(App(settings=settings, store=store))
    server.start()
    try:
        browser = Browser(server.url)
        assert browser.login("root").status_code == 303
        page = browser.get("/admin/settings")
        assert page.status_code == 200 and "imap.example" in page.text
        for secret in secrets:
            assert secret not in page.text
        assert re.search(r"bot:\*\*\*@db\.example", page.text)
        browser.close()
    finally:
        server.stop()
        store.close()
