"""Everything a request handler needs, built once by ``create_app`` and kept on the Starlette
app's state: no module-level globals, so two apps (two tests, two stores) never mix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.templating import Jinja2Templates

from mailbot.config import Settings
from mailbot.store import Store
from mailbot.store.accounts import WebSession
from mailbot.web.actions import DraftActions
from mailbot.web.auth import Authenticator
from mailbot.web.feed import ChangeFeed
from mailbot.web.macros import Macros
from mailbot.web.passwords import Passwords


@dataclass
class WebContext:
    settings: Settings
    store: Store
    auth: Authenticator
    passwords: Passwords
    actions: DraftActions
    macros: Macros
    feed: ChangeFeed
    templates: Jinja2Templates
    send_now: Callable[[], None]     # ask the sender to run soon (approved drafts)
    clock: Callable[[], datetime]


def context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.mailbot
    return ctx


def session_of(request: Request) -> WebSession:
    """The signed-in session; the gate guarantees one on every non-public route."""
    session: WebSession = request.state.session
    return session
