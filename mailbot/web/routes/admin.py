"""Admin pages: users (add, change role, disable, set password), the effective settings
(read-only, secrets hidden), and the macros and policy with their lint status (read-only:
macros live in git and are edited there)."""

from __future__ import annotations

import logging

import yaml
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailbot.config import Settings, redact_url
from mailbot.errors import NotFoundError
from mailbot.store import Role
from mailbot.store.accounts import UserExistsError
from mailbot.web.actions import Refused
from mailbot.web.context import WebContext, context, session_of
from mailbot.web.macros import source_files
from mailbot.web.pages import redirect, render
from mailbot.web.passwords import check_new_password, check_username
from mailbot.web.routes.forms import text
from mailbot.web.security import requires

log = logging.getLogger(__name__)


@requires(Role.ADMIN)
async def users(request: Request) -> Response:
    ctx = context(request)
    listed = await run_in_threadpool(ctx.store.accounts.list_users)
    return render(request, "admin_users.html", {"users": listed, "roles": [r.value for r in Role]})


def _add(ctx: WebContext, username: str, role: str, password: str, repeat: str) -> str:
    try:
        name = check_username(username)
        check_new_password(password, name)
        if password != repeat:
            raise ValueError("the two passwords differ")
        role_value = Role(role)
    except ValueError as exc:
        raise Refused(f"Not added: {exc}.", 422) from exc
    try:
        ctx.store.accounts.add_user(name, ctx.passwords.hash(password), role_value)
    except UserExistsError as exc:
        raise Refused(f"Not added: {exc}.", 409) from exc
    return f"User {name} added as {role_value}."


def _update(ctx: WebContext, admin: str, username: str, change: str, value: str) -> str:
    if username == admin and change in ("disable", "role"):
        raise Refused("You cannot disable yourself or change your own role.", 422)
    try:
        if change == "disable":
            ctx.store.accounts.update_user(username, active=False)
            return f"{username} is disabled and signed out everywhere."
        if change == "enable":
            ctx.store.accounts.update_user(username, active=True)
            return f"{username} is enabled."
        if change == "role":
            ctx.store.accounts.update_user(username, role=Role(value))
            return f"{username} is now {value}."
        if change == "password":
            check_new_password(value, username)
            ctx.store.accounts.update_user(username, password_hash=ctx.passwords.hash(value))
            return f"The password of {username} is changed; their sessions are ended."
    except ValueError as exc:
        raise Refused(f"Not changed: {exc}.", 422) from exc
    except NotFoundError as exc:
        raise Refused(f"There is no user {username!r}.", 404) from exc
    raise Refused("Unknown change.", 400)


@requires(Role.ADMIN)
async def users_post(request: Request) -> Response:
    ctx = context(request)
    admin = session_of(request).user.username
    form = await request.form()
    try:
        if text(form, "change", limit=20) == "add":
            message = await run_in_threadpool(
                _add, ctx, text(form, "username", limit=64), text(form, "role", limit=20),
                text(form, "password", limit=2000), text(form, "repeat", limit=2000))
        else:
            message = await run_in_threadpool(
                _update, ctx, admin, text(form, "username", limit=64), text(form, "change", limit=20),
                text(form, "value", limit=2000))
    except Refused as exc:
        listed = await run_in_threadpool(ctx.store.accounts.list_users)
        return render(request, "admin_users.html",
                      {"users": listed, "roles": [r.value for r in Role], "error": exc.message},
                      exc.status)
    log.info("admin %s: %s", admin, message)
    return redirect(request, "/admin/users", message)


def settings_text(settings: Settings) -> str:
    """The effective settings as YAML, with passwords and URL credentials hidden."""
    data = settings.model_dump(mode="json")
    url = data.get("database", {}).get("url", "")
    data["database"]["url"] = redact_url(url)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@requires(Role.ADMIN)
async def settings(request: Request) -> Response:
    ctx = context(request)
    return render(request, "admin_settings.html", {"settings_yaml": settings_text(ctx.settings)})


@requires(Role.ADMIN)
async def macros(request: Request) -> Response:
    ctx = context(request)
    status = await run_in_threadpool(ctx.macros.status)
    policy_text, macro_files = await run_in_threadpool(source_files, status)
    return render(request, "admin_macros.html",
                  {"status": status, "policy_text": policy_text, "macro_files": macro_files})


ROUTES = [
    Route("/admin/users", users, methods=["GET"], name="admin_users"),
    Route("/admin/users", users_post, methods=["POST"]),
    Route("/admin/settings", settings, methods=["GET"], name="admin_settings"),
    Route("/admin/macros", macros, methods=["GET"], name="admin_macros"),
]
