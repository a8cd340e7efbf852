"""The page in a real browser: Debian's chromium driven by Playwright, against a real
`mailbot run` process (web.enabled) reading a private dovecot and sending to aiosmtpd.

One daemon serves the whole module (starting one costs seconds: the spaCy model loads);
each test uses its own mails and users, so the order does not matter.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml
from playwright import sync_api  # a dev dependency: missing it must fail, not skip

from mailbot.models import DraftState
from mailbot.store import Draft
from tests.e2e.conftest import Deployment, customer_mail, write_config
from tests.support.dovecot import DovecotServer
from tests.support.smtpd import SmtpServer

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.dovecot]

CHROMIUM = os.environ.get("MAILBOT_CHROMIUM", "/usr/bin/chromium")
USERS = {"bob": ("approver", "wachtwoord-b-111"), "anna": ("agent", "wachtwoord-a-222")}



def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def chromium() -> Iterator[sync_api.Browser]:
    if not Path(CHROMIUM).exists():
        message = ("Debian's chromium is not installed: run `apt-get install -y --no-install-recommends "
                   "chromium` (scripts/setup.sh --dev does), or set MAILBOT_ALLOW_SKIP=1")
        if os.environ.get("MAILBOT_ALLOW_SKIP") == "1":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@dataclass
class Stack:
    dep: Deployment
    url: str

    @property
    def dovecot(self) -> DovecotServer:
        return self.dep.dovecot

    @property
    def smtpd(self) -> SmtpServer:
        return self.dep.smtpd

    def draft_for(self, message_id: str, timeout: float = 30) -> Draft:
        """The draft of the mail with this Message-ID, once the daemon recorded it."""
        found: list[Draft] = []

        def recorded() -> bool:
            store = self.dep.store()
            try:
                for mail in store.list_mails(limit=10_000):
                    if mail.message_id == message_id:
                        found[:] = [d for d in store.list_drafts(limit=10_000) if d.mail_id == mail.id]
                        return bool(found)
                return False
            finally:
                store.close()

        self.dep.wait_until(f"a draft for {message_id}", recorded, timeout)
        return found[0]

    def draft(self, draft_id: int) -> Draft:
        store = self.dep.store()
        try:
            return store.get_draft(draft_id)
        finally:
            store.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, dovecot_factory: Callable[..., DovecotServer],
          smtpd_factory: Callable[..., SmtpServer]) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("browser")
    dovecot, smtpd = dovecot_factory(), smtpd_factory()
    db_url = f"sqlite:///{root / 'mailbot.db'}"
    config = write_config(root, dovecot, smtpd, db_url=db_url)
    data = yaml.safe_load(config.read_text())
    port = _free_port()
    # No macros: every mail waits for a person, so the tests decide what is sent. No model:
    # these tests are about the page, and the daemon starts seconds sooner without spaCy.
    data.update(web={"enabled": True, "host": "127.0.0.1", "port": port}, respond={"enabled": False},
                nlp={"enabled": False})
    config.write_text(yaml.safe_dump(data))
    dep = Deployment(root, dovecot, smtpd, config, db_url)
    for name, (role, password) in USERS.items():
        dep.cli("users", "add", name, "--role", role, stdin=password + "\n")
    proc = dep.start()
    url = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).text == "ok"
        except httpx.HTTPError:
            return False

    dep.wait_until("the web page of `mailbot run`", serving, timeout=90)
    yield Stack(dep, url)
    dep.stop(proc)
    assert proc.returncode == 0, dep.logs()
    dovecot.stop()
    smtpd.stop()
    shutil.rmtree(dovecot.root, ignore_errors=True)


@pytest.fixture
def page_for(chromium: sync_api.Browser, stack: Stack) -> Iterator[Callable[[str], sync_api.Page]]:
    """``page_for("bob")``: a fresh browser context, signed in through the login form."""
    contexts: list[sync_api.BrowserContext] = []

    def open_page(user: str) -> sync_api.Page:
        context = chromium.new_context(viewport={"width": 1366, "height": 800})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"{stack.url}/login")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", USERS[user][1])
        page.click("button[type=submit]")
        page.wait_for_selector("table.queue")
        return page

    yield open_page
    for context in contexts:
        context.close()


# ---------------------------------------------------------------- tests


def test_new_mail_appears_live_and_an_approver_edits_and_sends_it(stack: Stack, page_for: Callable[
        [str], sync_api.Page]) -> None:
    page = page_for("bob")
    page.evaluate("window.__sameDocument = 'yes'")
    sync_api.expect(page.locator("#live-status")).to_have_class(re.compile(r"\bon\b"))
    stack.dovecot.append("INBOX", customer_mail(801, subject="Kapotte stoel, bestelling 1801",
                                                body="Mijn stoel is kapot aangekomen. Bestelling 1801."))
    row = page.wait_for_selector("#queue-rows tr[data-id]:has-text('Kapotte stoel, bestelling 1801')",
                                 timeout=30_000)
    assert row is not None
    # It arrived without a reload: the same document is still on screen.
    assert page.evaluate("window.__sameDocument") == "yes"
    assert page.locator(".tabs .count[data-count=open]").inner_text() != "0"

    # Keyboard only: select the row, open it, write the reply, approve, confirm.
    draft_id = int(row.get_attribute("data-id") or 0)
    while page.locator("#queue-rows tr.selected").get_attribute("data-id") != str(draft_id):
        page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"body[data-draft='{draft_id}']")
    page.keyboard.press("e")
    assert page.evaluate("document.activeElement.id") == "body"
    page.fill("#body", "Beste klant,\n\nWe sturen vandaag een nieuwe stoel, zonder kosten.\n\nGroet, Bob")
    page.keyboard.press("Escape")
    page.keyboard.press("a")
    page.wait_for_selector("#confirm:not([hidden])")
    page.keyboard.press("Enter")
    page.wait_for_selector("#flash:has-text('edited and approved')")

    received = stack.smtpd.wait_for(1, timeout=30)
    mine = [r for r in received if b"mail-801@example.nl" in r.content]
    assert len(mine) == 1
    reply = email.message_from_bytes(mine[0].content, policy=policy.default)
    assert mine[0].rcpt_tos == ["klant801@example.nl"]
    assert reply["In-Reply-To"] == "<mail-801@example.nl>"
    assert "<mail-801@example.nl>" in reply["References"]
    assert reply["Subject"] == "Re: Kapotte stoel, bestelling 1801"
    assert "We sturen vandaag een nieuwe stoel, zonder kosten." in reply.get_content()  # type: ignore[attr-defined]
    # The page follows the draft to "sent" by itself, and shows who did what.
    # (expect polls over the protocol: no string eval, which the page's CSP forbids)
    sync_api.expect(page.locator("#draft-state")).to_have_text("sent", timeout=30_000)
    audit = page.locator("#audit").inner_text()
    assert re.search(r"bob\s+edited", audit)
    assert stack.draft(draft_id).state is DraftState.SENT


def test_an_agent_cannot_send_from_the_page(stack: Stack, page_for: Callable[[str], sync_api.Page]) -> None:
    before = len(stack.smtpd.received)
    stack.dovecot.append("INBOX", customer_mail(802, subject="Vraag over levering 1802"))
    draft = stack.draft_for("mail-802@example.nl")
    page = page_for("anna")
    page.goto(f"{stack.url}/drafts/{draft.id}")
    assert page.locator("#approve-button").count() == 0
    assert page.locator("text=An approver sends it.").count() == 1
    page.fill("#body", "Beste klant, uw pakket komt morgen.")
    page.keyboard.press("Escape")
    page.keyboard.press("a")                                  # the shortcut does nothing for agents
    assert page.locator("#confirm").is_hidden()
    page.keyboard.press("?")                                  # the shortcuts are explained ...
    assert page.locator("#help").is_visible()
    page.keyboard.press("Escape")                             # ... and the help goes away again
    assert page.locator("#help").is_hidden()
    page.click("#save-button")
    page.wait_for_selector("#flash:has-text('saved')")
    # Even a hand-made request with her valid session and CSRF token is refused.
    status = page.evaluate(
        """async ([id, version]) => (await fetch(`/drafts/${id}/approve`, {method: 'POST',
             headers: {'X-CSRF-Token': document.body.dataset.csrf,
                       'Content-Type': 'application/x-www-form-urlencoded'},
             body: `version=${version}&seen=0`})).status""",
        [draft.id, stack.draft(draft.id).version])
    assert status == 403
    time.sleep(2)                                             # a send would have happened by now
    assert len(stack.smtpd.received) == before
    after = stack.draft(draft.id)
    assert after.state is DraftState.PENDING and after.body == "Beste klant, uw pakket komt morgen."


class Tripwire:
    """A local HTTP server that records every request: the page must never call it."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        wire = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                wire.hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.end_headers()
                self.wfile.write(b"GIF89a")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tripwire() -> Iterator[Tripwire]:
    wire = Tripwire()
    yield wire
    wire.close()


def hostile_mail(port: int) -> bytes:
    base = f"http://127.0.0.1:{port}"
    text = (f"Hallo <script>window.__pwned = 1; console.log('PWNED-MARKER')</script>\r\n"
            f"<img src={base}/text.gif onerror=\"console.log('PWNED-MARKER')\">\r\nBestelling 1803")
    html = (f"<html><head><link rel=stylesheet href='{base}/style.css'>"
            f"<style>body{{background:url({base}/bg)}}"
            f"</style></head><body onload=\"alert('PWNED-MARKER')\"><p>Hallo</p>"
            f"<script>alert('PWNED-MARKER')</script><img src='{base}/html.gif' onerror=\"alert(1)\">"
            f"<div style=\"background-image:url('{base}/div.png')\">x</div>"
            f"<iframe src='{base}/frame'></iframe>"
            f"<a href='{base}/link'>klik</a></body></html>")
    lines = ["From: Mallory <mallory@example.nl>", "To: Support <support@shop.example>",
             f"Subject: Bestelling 1803 <img src={base}/subject.gif onerror=alert(1)>",
             "Message-ID: <mail-803@example.nl>", "Date: Mon, 02 Nov 2026 09:00:00 +0000",
             'Content-Type: multipart/alternative; boundary="xx"', "", "--xx",
             "Content-Type: text/plain; charset=utf-8", "", text, "--xx",
             "Content-Type: text/html; charset=utf-8", "", html, "--xx--", ""]
    return "\r\n".join(lines).encode()


def test_hostile_mail_shows_as_text_runs_nothing_and_fetches_nothing(
        stack: Stack, page_for: Callable[[str], sync_api.Page], tripwire: Tripwire) -> None:
    stack.dovecot.append("INBOX", hostile_mail(tripwire.port))
    draft = stack.draft_for("mail-803@example.nl")
    page = page_for("bob")
    dialogs: list[str] = []
    console: list[str] = []
    requests: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: console.append(m.text))
    page.context.on("request", lambda r: requests.append(r.url))
    page.goto(f"{stack.url}/?state=all")                 # the subject in the queue
    page.wait_for_selector("#queue-rows tr:has-text('Bestelling 1803')")
    page.goto(f"{stack.url}/drafts/{draft.id}")
    shown = page.locator("#mail-body").inner_text()
    assert "<script>window.__pwned = 1;" in shown           # shown as text ...
    assert "onerror=" in shown
    page.click("#html-version summary")                      # ... and the HTML version, sandboxed
    frame = page.frame_locator("iframe.mail-html")
    assert frame.locator("p").inner_text() == "Hallo"
    assert "remote item(s) blocked" in page.locator("#html-version summary").inner_text()
    page.wait_for_timeout(1500)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []
    assert not [m for m in console if "PWNED-MARKER" in m]
    assert tripwire.hits == [], tripwire.hits
    assert not [u for u in requests if f":{tripwire.port}" in u]
    assert all(u.startswith((stack.url, "data:", "about:srcdoc")) for u in requests), requests
