"""One draft: the page, and every action on it.

Actions redirect back to the draft with a one-line message (post/redirect/get). When an
action is refused, the page is shown again at once with the reason and with the person's
own subject and text still in the editor, so nothing they typed is lost.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailbot.errors import NotFoundError
from mailbot.store import Role
from mailbot.store.accounts import User
from mailbot.web.actions import Done, DraftActions, Refused
from mailbot.web.context import context, session_of
from mailbot.web.filters import parse_query
from mailbot.web.pages import error_page, redirect, render
from mailbot.web.routes import forms
from mailbot.web.security import requires
from mailbot.web.views import draft_page

Action = Callable[[DraftActions, int, User, FormData], Done]


def _draft_id(request: Request) -> int | None:
    raw = request.path_params.get("draft_id", "")
    return int(raw) if str(raw).isdigit() and len(str(raw)) < 13 else None


async def _show(request: Request, draft_id: int, *, status: int = 200, error: str = "",
                typed: dict[str, str] | None = None) -> Response:
    ctx = context(request)
    query = parse_query(request.query_params, username=session_of(request).user.username)
    try:
        data = await run_in_threadpool(draft_page, ctx, draft_id, query)
    except NotFoundError:
        return error_page(request, 404, f"There is no draft #{draft_id}.")
    data["error"] = error
    data["typed"] = typed or {}
    return render(request, "draft.html", data, status)


@requires(Role.AGENT)
async def show(request: Request) -> Response:
    draft_id = _draft_id(request)
    if draft_id is None:
        return error_page(request, 404, "There is no such draft.")
    return await _show(request, draft_id)


# Each action: the DraftActions call for one form. Run in the thread pool.
def _approve(a: DraftActions, draft_id: int, user: User, form: FormData) -> Done:
    return a.approve(draft_id, user, forms.seen(form),
                     subject=forms.optional(form, "subject", limit=1000), body=forms.optional(form, "body"))


def _save(a: DraftActions, draft_id: int, user: User, form: FormData) -> Done:
    return a.save(draft_id, user, forms.seen(form),
                  subject=forms.optional(form, "subject", limit=1000), body=forms.optional(form, "body"))


def _rerender(a: DraftActions, draft_id: int, user: User, form: FormData) -> Done:
    return a.rerender(draft_id, user, forms.seen(form), forms.text(form, "macro", limit=200))


def _reject(a: DraftActions, draft_id: int, user: User, form: FormData) -> Done:
    return a.reject(draft_id, user, forms.seen(form), forms.text(form, "reason"))


def _escalate(a: DraftActions, draft_id: int, user: User, form: FormData) -> Done:
    return a.escalate(draft_id, user, forms.seen(form), forms.text(form, "reason"),
                      forms.text(form, "assignee", limit=64).strip().lower())


def _assign(a: DraftActions, draft_id: int, user: User, form: FormData) -> Done:
    return a.assign(draft_id, user, forms.seen(form), forms.text(form, "assignee", limit=64).strip().lower())


async def _run(request: Request, action: Action) -> Response:
    """Read the form, run ``action``, then redirect with its message or explain the refusal."""
    ctx = context(request)
    draft_id = _draft_id(request)
    if draft_id is None:
        return error_page(request, 404, "There is no such draft.")
    form = await request.form()
    user = session_of(request).user
    try:
        done = await run_in_threadpool(action, ctx.actions, draft_id, user, form)
    except NotFoundError:
        return error_page(request, 404, f"There is no draft #{draft_id}.")
    except Refused as exc:
        typed = {key: value for key in ("subject", "body") if isinstance(value := form.get(key), str)}
        return await _show(request, draft_id, status=exc.status, error=exc.message, typed=typed)
    if done.send:
        ctx.send_now()
    back = f"/drafts/{draft_id}" + (f"?{request.url.query}" if request.url.query else "")
    return redirect(request, back, done.message)


@requires(Role.APPROVER)
async def approve(request: Request) -> Response:
    """Approve and send; with changed text, edit then send."""
    return await _run(request, _approve)


@requires(Role.AGENT)
async def save(request: Request) -> Response:
    return await _run(request, _save)


@requires(Role.AGENT)
async def rerender(request: Request) -> Response:
    return await _run(request, _rerender)


@requires(Role.APPROVER)
async def reject(request: Request) -> Response:
    return await _run(request, _reject)


@requires(Role.AGENT)
async def escalate(request: Request) -> Response:
    return await _run(request, _escalate)


@requires(Role.AGENT)
async def assign(request: Request) -> Response:
    return await _run(request, _assign)


ROUTES = [
    Route("/drafts/{draft_id}", show, methods=["GET"], name="draft"),
    Route("/drafts/{draft_id}/approve", approve, methods=["POST"]),
    Route("/drafts/{draft_id}/save", save, methods=["POST"]),
    Route("/drafts/{draft_id}/rerender", rerender, methods=["POST"]),
    Route("/drafts/{draft_id}/reject", reject, methods=["POST"]),
    Route("/drafts/{draft_id}/escalate", escalate, methods=["POST"]),
    Route("/drafts/{draft_id}/assign", assign, methods=["POST"]),
]
