"""The queue: the full page, the live-refreshed part of it, and bulk approval."""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailbot.store import Role
from mailbot.web.actions import Refused
from mailbot.web.context import context, session_of
from mailbot.web.filters import parse_query
from mailbot.web.pages import error_page, redirect, render
from mailbot.web.routes.auth import safe_next
from mailbot.web.routes.forms import text
from mailbot.web.security import requires
from mailbot.web.views import queue_page

_ITEM = re.compile(r"^(\d{1,12}):(\d{1,9})$")
MAX_BULK = 500


async def _queue(request: Request, template: str) -> Response:
    query = parse_query(request.query_params, username=session_of(request).user.username)
    data = await run_in_threadpool(queue_page, context(request), query)
    return render(request, template, data)


@requires(Role.AGENT)
async def queue(request: Request) -> Response:
    return await _queue(request, "queue.html")


@requires(Role.AGENT)
async def queue_rows(request: Request) -> Response:
    """The counts and the table only, for the live refresh (same filters as the page)."""
    return await _queue(request, "_queue_live.html")


@requires(Role.APPROVER)
async def bulk_approve(request: Request) -> Response:
    """Approve the drafts the person saw listed, each at the version they saw."""
    ctx = context(request)
    form = await request.form()
    back = safe_next(text(form, "back", limit=2000) or "/")
    items: list[tuple[int, int]] = []
    for value in form.getlist("item")[:MAX_BULK]:
        match = _ITEM.match(value) if isinstance(value, str) else None
        if match:
            items.append((int(match.group(1)), int(match.group(2))))
    if not items:
        return error_page(request, 422, "Nothing to approve: the list was empty.")
    try:
        result = await run_in_threadpool(ctx.actions.bulk_approve, items, session_of(request).user)
    except Refused as exc:
        return error_page(request, exc.status, exc.message)
    if result.approved:
        ctx.send_now()
    message = f"Approved {len(result.approved)} draft(s); sending now."
    if result.skipped:
        message += " Skipped: " + "; ".join(f"#{i} {why}" for i, why in result.skipped[:20])
        if len(result.skipped) > 20:
            message += f"; and {len(result.skipped) - 20} more"
        message += "."
    return redirect(request, back, message)


ROUTES = [
    Route("/", queue, methods=["GET"], name="queue"),
    Route("/queue/rows", queue_rows, methods=["GET"]),
    Route("/queue/approve", bulk_approve, methods=["POST"]),
]
