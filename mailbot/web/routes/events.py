"""``GET /events``: Server-Sent Events telling open pages that drafts arrived or changed.

Each message is ``event: change`` with ``id:`` the newest audit event it carries and a JSON
list of changes (ids, action, actor, new state: no customer text). The page passes the
event id it was rendered at as ``?after=``; the browser's automatic reconnect sends
``Last-Event-ID``. ``event: reload`` means "you missed too much, reload".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from mailbot.store import Role
from mailbot.web.context import context
from mailbot.web.security import requires

HEARTBEAT = 15.0            # seconds; keeps proxies from closing an idle stream


def _after(request: Request) -> int:
    for value in (request.headers.get("last-event-id"), request.query_params.get("after")):
        if value and value.isdigit() and len(value) < 19:
            return int(value)
    return 0


@requires(Role.AGENT)
async def events(request: Request) -> Response:
    feed = context(request).feed
    after = _after(request)

    async def stream() -> AsyncIterator[str]:
        yield "retry: 3000\n\n"
        async with feed.subscribe(after) as queue:
            while True:
                try:
                    batch = await asyncio.wait_for(queue.get(), HEARTBEAT)
                except TimeoutError:
                    if feed.closed:
                        return
                    yield ": ping\n\n"
                    continue
                if batch is None:
                    if not feed.closed:     # fell behind: the page reloads itself
                        yield "event: reload\ndata: {}\n\n"
                    return                  # closing: the browser reconnects on its own
                data = json.dumps([change.to_json() for change in batch])
                yield f"id: {batch[-1].id}\nevent: change\ndata: {data}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


ROUTES = [Route("/events", events, methods=["GET"])]
