"""Fixtures for the web page: a real store (SQLite file), a real uvicorn server in a thread,
and an HTTP client that signs in like a browser (login token cookie, session cookie, CSRF
token from the page). Nothing of ours is mocked.

    web            a running page over a fresh store: ``web.url``, ``web.store``, ``web.app``
    users          agent "anna", approver "bob", approver "carol", admin "root"
    web.client()   a new, signed-out ``Browser``; ``browser.login("bob")``
    add_mail(...)  record a customer mail with a draft, as the daemon would
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailbot.app import App
from mailbot.config import Settings
from mailbot.mail.compose import make_message_id
from mailbot.models import MailOutcome
from mailbot.respond import build_responder
from mailbot.store import Draft, NewDraft, NewMail, Role, Store, dedupe_key_for
from mailbot.web.passwords import Passwords
from mailbot.web.server import WebServer

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"anna": "anna-password-1", "bob": "bob-password-22", "carol": "carol-password-3",
             "root": "root-password-44"}
ROLES = {"anna": Role.AGENT, "bob": Role.APPROVER, "carol": Role.APPROVER, "root": Role.ADMIN}
_numbers = itertools.count(1)

ANALYSIS = {
    "language": "nl", "category": "refund",
    "category_scores": {"refund": 0.91, "return": 0.05, "other": 0.04},
    "tone": "frustrated", "tone_scores": {"frustrated": 0.7, "neutral": 0.3},
    "signals": ["legal_threat"],
    "entities": {"orders": ["12345678"], "amounts": ["49,95 euro"], "dates": [], "products": [],
                 "customer_name": "Jan"},
    "explanation": ["language nl (function words)", "category refund (0.91) because of: geld, terug",
                    "rule legal_threat: 'advocaat'"],
}


def settings_for(root: Path, *, smtp: tuple[str, int] | None = None, macros_dir: Path | None = None,
                 **web: Any) -> Settings:
    """One mailbox: a Maildir inbox under ``root``, replies to aiosmtpd at ``smtp`` or to an
    outbox folder."""
    transport: dict[str, Any] = {"kind": "outbox", "path": str(root / "outbox")}
    if smtp is not None:
        transport = {"kind": "smtp", "host": smtp[0], "port": smtp[1], "security": "none",
                     "auth": "none", "timeout": 5}
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    return Settings.model_validate({
        "database": {"url": f"sqlite:///{root / 'mailbot.db'}"},
        "mailboxes": [{"name": "support", "address": "support@shop.example",
                       "display_name": "Shop klantenservice",
                       "source": {"kind": "maildir", "path": str(root / "inbox")},
                       "transport": transport}],
        "sending": {"backoff_initial": 0.5, "backoff_max": 2, "max_attempts": 3},
        "company": {"name": "Example Shop", "contact_person": "Sanne de Vries",
                    "phone": "+31 20 123 4567", "website": "https://www.example.com"},
        "respond": {"macros": str(macros_dir or ROOT / "macros"),
                    "policy": str(ROOT / "config" / "policy.yaml")},
        "web": {"host": "127.0.0.1", "port": 0, **web},
    })


def customer_raw(n: int, *, subject: str, body: str, sender: str, html: str | None = None,
                 message_id: str | None = None, references: str = "") -> bytes:
    lines = [
        f"From: {sender}", "To: Support <support@shop.example>", f"Subject: {subject}",
        f"Date: {format_datetime(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))}",
        f"Message-ID: <{message_id or f'web-{n}@example.nl'}>",
    ]
    if references:
        lines += [f"In-Reply-To: {references.split()[-1]}", f"References: {references}"]
    if html is None:
        lines += ["Content-Type: text/plain; charset=utf-8", "", body, ""]
    else:
        lines += ['Content-Type: multipart/alternative; boundary="b1"', "", "--b1",
                  "Content-Type: text/plain; charset=utf-8", "", body, "--b1",
                  "Content-Type: text/html; charset=utf-8", "", html, "--b1--", ""]
    return "\r\n".join(lines).encode()


def add_mail(store: Store, *, subject: str = "Geld terug voor bestelling 12345678",
             body: str = "Ik wil mijn geld terug, anders ga ik naar de advocaat.",
             draft_body: str = "Beste Jan,\n\nIk begrijp dat u uw geld terug wilt.\n\nGroet, Shop",
             sender: str = "Jan Klant <jan@example.nl>", analysis: dict[str, Any] | None = None,
             html: str | None = None, received_at: datetime | None = None,
             references: str = "", macro_id: str | None = "refund_late") -> Draft:
    """A recorded mail with a pending draft, as the daemon records it."""
    n = next(_numbers)
    raw = customer_raw(n, subject=subject, body=body, sender=sender, html=html, references=references)
    message_id = f"web-{n}@example.nl"
    address = re.search(r"<([^>]+)>", sender)
    to_addr = address.group(1) if address else sender
    result = store.record_mail(
        NewMail(mailbox="support", source_key=f"k{n}", from_addr=to_addr,
                from_name=sender.split("<")[0].strip(),
                subject=subject, size=len(raw), raw=raw, message_id=message_id, text=body,
                received_at=received_at or datetime.now(UTC)),
        outcome=MailOutcome.DRAFTED if draft_body else MailOutcome.NEEDS_AGENT, reason="test mail",
        analysis=ANALYSIS if analysis is None else analysis,
        draft=NewDraft(to_addr=to_addr, to_name="Jan Klant", subject=f"Re: {subject}", body=draft_body,
                       message_id=make_message_id("support", dedupe_key_for(message_id, raw), "shop.example"),
                       in_reply_to=message_id,
                       references=(*references.split(), f"<{message_id}>"), language="nl",
                       macro_id=macro_id if draft_body else None,
                       rule="refund.default" if draft_body else None),
    )
    assert result.draft is not None
    return result.draft


# ---------------------------------------------------------------- a running page


class LiveServer:
    """``WebServer`` on 127.0.0.1:<free port> in a thread with its own event loop."""

    def __init__(self, app: App, *, live_interval: float = 0.2) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._server: WebServer | None = None
        self._live_interval = live_interval
        self._thread = threading.Thread(target=self._loop.run_forever, name="web-test-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

        async def start() -> WebServer:
            server = WebServer(self.app, port=0, embedded=True, live_interval=self._live_interval)
            await server.start()
            return server

        self._server = asyncio.run_coroutine_threadsafe(start(), self._loop).result(30)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def asgi(self) -> Any:
        assert self._server is not None
        return self._server.asgi

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@dataclass
class Browser:
    """An HTTP client that behaves like a browser towards the page."""

    base: str
    http: httpx.Client = field(init=False)
    csrf: str = ""

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.base, follow_redirects=False, timeout=30,
                                 headers={"Accept": "text/html"})

    def login(self, username: str, password: str | None = None) -> httpx.Response:
        form = self.http.get("/login")
        token = re.search(r'name="token" value="([^"]+)"', form.text)
        assert token, form.text
        response = self.http.post("/login", data={
            "username": username, "password": PASSWORDS.get(username, "") if password is None else password,
            "token": token.group(1), "next": "/"})
        if response.status_code == 303:
            self.refresh_csrf()
        return response

    def refresh_csrf(self, path: str = "/") -> str:
        page = self.http.get(path)
        match = re.search(r'data-csrf="([^"]*)"', page.text)
        assert match, page.text[:500]
        self.csrf = match.group(1)
        return self.csrf

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
             **kwargs: Any) -> httpx.Response:
        fields = dict(data or {})
        if csrf:
            fields.setdefault("csrf", self.csrf)
        return self.http.post(path, data=fields, **kwargs)

    def draft_form(self, draft_id: int) -> dict[str, str]:
        """The hidden fields of the reply form as the page renders them now."""
        page = self.get(f"/drafts/{draft_id}")
        assert page.status_code == 200, page.text[:300]
        return {
            "version": re.search(r'name="version" value="(\d+)"', page.text).group(1),  # type: ignore[union-attr]
            "seen": re.search(r'name="seen" value="(\d+)"', page.text).group(1),  # type: ignore[union-attr]
        }

    def close(self) -> None:
        self.http.close()


@dataclass
class Web:
    root: Path
    app: App
    server: LiveServer
    browsers: list[Browser] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def store(self) -> Store:
        return self.app.store

    def client(self) -> Browser:
        browser = Browser(self.url)
        self.browsers.append(browser)
        return browser

    def signed_in(self, username: str) -> Browser:
        browser = self.client()
        response = browser.login(username)
        assert response.status_code == 303, response.text[:500]
        return browser


@pytest.fixture(scope="session")
def password_hashes() -> dict[str, str]:
    """Argon2 is slow on purpose: hash the test users' passwords once per session."""
    passwords = Passwords()
    return {name: passwords.hash(password) for name, password in PASSWORDS.items()}


def add_users(store: Store, hashes: dict[str, str]) -> None:
    for name, role in ROLES.items():
        store.accounts.add_user(name, hashes[name], role)


def start_web(root: Path, hashes: dict[str, str], *, smtp: tuple[str, int] | None = None,
              macros: bool | Path = False, **web: Any) -> Web:
    """A page over a fresh store; ``macros=True`` loads the real macro engine on the
    repository's macros/ and config/policy.yaml, as ``App.from_config`` does (a Path: that
    macros folder instead)."""
    settings = settings_for(root, smtp=smtp, macros_dir=macros if isinstance(macros, Path) else None, **web)
    store = Store.open(settings.database.url)
    store.migrate()
    add_users(store, hashes)
    decider = build_responder(settings) if macros else None
    app = App(settings=settings, store=store, decider=decider)
    server = LiveServer(app)
    server.start()
    return Web(root, app, server)


def stop_web(web: Web) -> None:
    for browser in web.browsers:
        browser.close()
    web.server.stop()
    web.app.close()


@pytest.fixture
def web(tmp_path: Path, password_hashes: dict[str, str]) -> Iterator[Web]:
    running = start_web(tmp_path, password_hashes)
    yield running
    stop_web(running)
