"""Rendering: the common template context, flash messages across a redirect, error pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from mailbot.store import Role
from mailbot.web.context import context

FLASH_COOKIE = "mailbot_flash"
MAX_FLASH = 1500


def render(request: Request, template: str, data: dict[str, Any], status: int = 200,
           headers: dict[str, str] | None = None) -> Response:
    ctx = context(request)
    session = getattr(request.state, "session", None)
    user = session.user if session is not None else None
    flash = unquote(request.cookies.get(FLASH_COOKIE, ""))[:MAX_FLASH]
    base: dict[str, Any] = {
        "user": user,
        "csrf": session.csrf_token if session is not None else "",
        "can_send": user is not None and user.role in (Role.APPROVER, Role.ADMIN),
        "is_admin": user is not None and user.role is Role.ADMIN,
        "flash": flash,
        "error": "",
    }
    response = ctx.templates.TemplateResponse(request, template, {**base, **data},
                                              status_code=status, headers=headers)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(request: Request, url: str, message: str = "") -> Response:
    """303 to ``url``; ``message`` is shown once on the next page."""
    response = RedirectResponse(url, 303)
    if message:
        response.set_cookie(FLASH_COOKIE, quote(message[:MAX_FLASH]), max_age=60, path="/",
                            httponly=True, samesite="strict",
                            secure=context(request).settings.web.secure_cookies)
    return response


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def error_page(request: Request, status: int, message: str) -> Response:
    if not wants_html(request):
        return PlainTextResponse(message, status)
    return render(request, "error.html", {"status": status, "message": message}, status)
