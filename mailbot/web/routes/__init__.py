"""Every route of the page, by area. ``all_routes()`` is what ``create_app`` mounts."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from mailbot.web.routes import admin, auth, drafts, events, queue

STATIC = Path(__file__).resolve().parents[1] / "static"


async def healthz(request: Request) -> Response:
    """For load balancers and compose health checks: the process answers (no data)."""
    return PlainTextResponse("ok")


def all_routes() -> list[BaseRoute]:
    return [
        *auth.ROUTES, *queue.ROUTES, *drafts.ROUTES, *events.ROUTES, *admin.ROUTES,
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
