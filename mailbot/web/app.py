"""``create_app(app)``: the agents' web page as an ASGI application over one ``App``.

Everything the handlers share (store, settings, authenticator, live feed, templates, the
sender's "send now") is built here and kept on ``starlette_app.state.mailbot``; nothing is
module-global, so a test can run two pages over two stores side by side.

    create_app(app)                         own sender: approvals are sent at once
    create_app(app, send_now=daemon_wake)   inside `mailbot run`: wake the daemon's sender
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from mailbot.app import App
from mailbot.errors import StoreError
from mailbot.web import formatting
from mailbot.web.actions import DraftActions
from mailbot.web.auth import Authenticator
from mailbot.web.context import WebContext
from mailbot.web.feed import ChangeFeed
from mailbot.web.macros import Macros
from mailbot.web.pages import error_page
from mailbot.web.passwords import Passwords
from mailbot.web.routes import STATIC, all_routes
from mailbot.web.security import SecurityHeaders, SessionGate
from mailbot.web.sendnow import SendNow

log = logging.getLogger(__name__)

MAX_BODY = 2 * 1024 * 1024      # a form with a long reply fits; anything bigger is refused


def _asset_version(folder: Path) -> str:
    """A short hash of the static files, appended to their URLs so browsers refetch them
    after an upgrade (they are otherwise cached)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mailbot.web", "templates"),
        autoescape=True,                    # customer text is hostile: escape everything
        undefined=jinja2.StrictUndefined,   # a typo in a template is an error, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        local_time=formatting.local_time, age=formatting.short_age,
        file_size=formatting.file_size, percent=formatting.percent,
    )
    env.globals["asset_version"] = _asset_version(STATIC)
    return Jinja2Templates(env=env)


def create_app(app: App, *, send_now: Callable[[], None] | None = None,
               clock: Callable[[], datetime] | None = None,
               live_interval: float = 1.0) -> Starlette:
    """The page over ``app.store``. ``send_now`` is called after approvals; without it the
    page runs its own sender. ``live_interval``: seconds between checks for changes."""
    now = clock or (lambda: datetime.now(UTC))
    passwords = Passwords()
    macros = Macros(app.decider)
    feed = ChangeFeed(app.store.queue, interval=live_interval)
    sender = None if send_now is not None else SendNow(app.send_worker)
    ctx = WebContext(
        settings=app.settings, store=app.store,
        auth=Authenticator(app.store, app.settings.web, passwords, now),
        passwords=passwords,
        actions=DraftActions(app.store, app.settings, macros, formatting.local_time),
        macros=macros, feed=feed, templates=_templates(),
        send_now=send_now if send_now is not None else sender.kick,  # type: ignore[union-attr]
        clock=now,
    )

    @asynccontextmanager
    async def lifespan(web: Starlette) -> AsyncIterator[None]:
        try:
            if not await asyncio.to_thread(app.store.accounts.list_users):
                log.warning("the web page has no users yet: add one with "
                            "`mailbot users add NAME --role admin`")
        except StoreError as exc:
            log.warning("the web page cannot read its users yet: %s", exc)
        poller = asyncio.create_task(feed.run(), name="web-live-feed")
        try:
            yield
        finally:
            feed.close()
            await poller
            if sender is not None:
                await sender.close()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_page(request, exc.status_code, exc.detail or "That did not work.")

    async def store_error(request: Request, exc: Exception) -> Response:
        return error_page(request, 503, f"The database is not available right now: {exc}")

    web = Starlette(
        routes=all_routes(),
        middleware=[Middleware(SecurityHeaders), Middleware(SessionGate, auth=ctx.auth)],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, StoreError: store_error},
        max_body_size=MAX_BODY,
    )
    web.state.mailbot = ctx
    return web
