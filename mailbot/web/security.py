"""The page's guards, outermost first:

``SecurityHeaders``  every response: a strict Content-Security-Policy (scripts, styles,
                     frames and fetches from this origin only; images also as ``data:``),
                     no framing, no referrer to other sites, no MIME sniffing, no caching of pages.
``SessionGate``      every path except the login page and static files needs a live
                     session: browsers asking for a page are sent to /login, anything else
                     gets 401. Being a middleware, a new route cannot forget it.
``requires(role)``   on every handler: the role, and for anything but GET/HEAD a CSRF
                     token that matches the session's (form field ``csrf`` or header
                     ``X-CSRF-Token``) and, when the browser sends one, a same-site Origin.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailbot.store import Role
from mailbot.store.accounts import WebSession
from mailbot.web.auth import Authenticator
from mailbot.web.pages import error_page

SESSION_COOKIE = "mailbot_session"
LOGIN_COOKIE = "mailbot_login"          # double-submit token of the login form
PUBLIC_PREFIXES = ("/login", "/static/", "/healthz")
SAFE_METHODS = frozenset({"GET", "HEAD"})
RANK = {Role.AGENT: 1, Role.APPROVER: 2, Role.ADMIN: 3}

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on our own
    # form posts, which the CSRF check must refuse. Other sites still get no referrer.
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)

Handler = Callable[[Request], Awaitable[Response]]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in _HEADERS if k not in present]
                if not static and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class SessionGate:
    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        session = await run_in_threadpool(self.auth.session, request.cookies.get(SESSION_COOKIE))
        if session is None:
            await _sign_in_first(request)(scope, receive, send)
            return
        scope.setdefault("state", {})["session"] = session
        await self.app(scope, receive, send)


def _sign_in_first(request: Request) -> Response:
    wants_page = (request.method in SAFE_METHODS and "text/html" in request.headers.get("accept", "")
                  and request.url.path not in ("/events", "/queue/rows"))
    if wants_page:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response: Response = RedirectResponse(f"/login?next={quote(target, safe='')}", 303)
    else:
        response = PlainTextResponse("Sign in first.", 401)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def has_role(session: WebSession, role: Role) -> bool:
    return RANK[session.user.role] >= RANK[role]


def tokens_match(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


def same_origin(request: Request) -> bool:
    """False only when the browser says the request comes from another site."""
    origin = request.headers.get("origin")
    if origin is None or (origin == "null" and request.method in SAFE_METHODS):
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def requires(role: Role) -> Callable[[Handler], Handler]:
    """Allow the handler to users with at least ``role``; check CSRF on state changes."""
    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            session: WebSession | None = getattr(request.state, "session", None)
            if session is None:  # the gate makes this unreachable; kept as a second lock
                return PlainTextResponse("Sign in first.", 401)
            if not has_role(session, role):
                return error_page(request, 403, f"Your role ({session.user.role}) may not do this; "
                                                f"it needs {role} rights.")
            if request.method not in SAFE_METHODS:
                token: Any = request.headers.get("x-csrf-token")
                if token is None and request.headers.get("content-type", "").startswith(
                        "application/x-www-form-urlencoded"):
                    token = (await request.form()).get("csrf")
                if not tokens_match(session.csrf_token, token if isinstance(token, str) else None) \
                        or not same_origin(request):
                    return error_page(request, 403, "This form is out of date or did not come from "
                                                    "this page (CSRF check). Reload and try again.")
            return await handler(request)

        endpoint.required_role = role  # type: ignore[attr-defined]
        return endpoint
    return wrap
