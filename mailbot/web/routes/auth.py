"""Signing in and out.

The login form has no session to tie a CSRF token to, so it uses a double-submit token: a
random value in a SameSite=Strict cookie that the form must repeat. Another site can neither
read nor set that cookie, so it cannot sign a browser into an account of its choosing.
"""

from __future__ import annotations

import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mailbot.store import Role
from mailbot.web.actions import Refused
from mailbot.web.context import context
from mailbot.web.pages import render
from mailbot.web.routes.forms import text
from mailbot.web.security import LOGIN_COOKIE, SESSION_COOKIE, requires, tokens_match


def safe_next(value: str) -> str:
    """Only paths on this site: never ``//evil.example`` or ``https://...``.

    >>> safe_next("/drafts/3?state=all"), safe_next("//evil.example"), safe_next("https://x")
    ('/drafts/3?state=all', '/', '/')
    """
    if not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 2000:
        return "/"
    return value


def _login_form(request: Request, *, error: str = "", status: int = 200,
                username: str = "", retry_after: int = 0) -> Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    response = render(request, "login.html", {
        "login_token": token, "error": error, "username": username,
        "next": safe_next(request.query_params.get("next", "/")),
    }, status, headers)
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, path="/login", httponly=True,
                        samesite="strict", secure=context(request).settings.web.secure_cookies)
    return response


async def login_page(request: Request) -> Response:
    ctx = context(request)
    if await run_in_threadpool(ctx.auth.session, request.cookies.get(SESSION_COOKIE)):
        return RedirectResponse(safe_next(request.query_params.get("next", "/")), 303)
    return _login_form(request)


async def login(request: Request) -> Response:
    ctx = context(request)
    form = await request.form()
    try:
        username = text(form, "username", limit=200)
        password = text(form, "password", limit=2000)
        token = text(form, "token", limit=200)
        target = safe_next(text(form, "next", limit=2000) or "/")
    except Refused as exc:
        return _login_form(request, error=exc.message, status=exc.status)
    if not tokens_match(request.cookies.get(LOGIN_COOKIE, ""), token):
        return _login_form(request, error="The sign-in form expired; please try again.", status=403,
                           username=username)
    ip = request.client.host if request.client else "unknown"
    result = await run_in_threadpool(ctx.auth.login, username, password, ip)
    if result.cookie is None:
        status = 429 if result.retry_after else 401
        return _login_form(request, error=result.error, status=status, username=username,
                           retry_after=result.retry_after)
    response = RedirectResponse(target, 303)
    response.set_cookie(SESSION_COOKIE, result.cookie, path="/", httponly=True, samesite="lax",
                        secure=ctx.settings.web.secure_cookies,
                        max_age=int(ctx.settings.web.session_hours * 3600))
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@requires(Role.AGENT)
async def logout(request: Request) -> Response:
    ctx = context(request)
    await run_in_threadpool(ctx.auth.logout, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


ROUTES = [
    Route("/login", login_page, methods=["GET"], name="login"),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"], name="logout"),
]
