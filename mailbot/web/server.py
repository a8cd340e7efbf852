"""Serving the page with uvicorn, on its own (`mailbot web`) or inside the daemon.

Embedded in `mailbot run`, uvicorn must not take over SIGTERM/SIGINT (the daemon owns them)
and the daemon stops it; on its own, uvicorn handles the signals. In both cases open
live-update streams are ended first, so a stop does not wait for browsers to hang up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Generator
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from mailbot.app import App
from mailbot.errors import MailbotError
from mailbot.web.app import create_app

log = logging.getLogger(__name__)


class WebServerError(MailbotError):
    """The page could not be served (the port is taken, the address is wrong)."""


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, asgi: Starlette, *, embedded: bool) -> None:
        super().__init__(config)
        self._asgi = asgi
        self._embedded = embedded

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if self._embedded or threading.current_thread() is not threading.main_thread():
            yield               # the daemon handles signals and calls stop()
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        # Unlike uvicorn's own version, the signal is not raised again afterwards: a stop on
        # request is a normal end (exit code 0), as for `mailbot run`.

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._asgi.state.mailbot.feed.close()
        super().handle_exit(sig, frame)


class WebServer:
    def __init__(self, app: App, *, host: str | None = None, port: int | None = None,
                 send_now: Callable[[], None] | None = None, embedded: bool = False,
                 live_interval: float = 1.0) -> None:
        web = app.settings.web
        self.asgi = create_app(app, send_now=send_now, live_interval=live_interval)
        config = uvicorn.Config(
            self.asgi, host=host or web.host, port=web.port if port is None else port,
            lifespan="on", access_log=False, log_config=None, server_header=False,
            proxy_headers=True, forwarded_allow_ips=list(web.trusted_proxies),
            # Live-update streams are closed first; this bounds waiting for anything else.
            timeout_graceful_shutdown=5,
        )
        self._server = _Server(config, self.asgi, embedded=embedded)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port actually listened on (useful with port 0)."""
        for server in self._server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self._server.config.port

    async def serve(self) -> None:
        """Serve until a signal (standalone) or ``stop()``."""
        try:
            await self._server.serve()
        except SystemExit as exc:  # uvicorn exits the process when it cannot bind
            raise WebServerError(f"cannot serve the web page on {self._server.config.host}:"
                                 f"{self._server.config.port} (see the log above)") from exc

    async def start(self) -> None:
        """Start serving in the background; returns once the port accepts connections."""
        self._task = asyncio.create_task(self.serve(), name="web-server")
        while not self._server.started:
            if self._task.done():
                await self._task            # raises WebServerError
                raise WebServerError("the web server stopped while starting")
            await asyncio.sleep(0.05)
        log.info("web page on http://%s:%d/", self._server.config.host, self.port)

    async def stop(self) -> None:
        self.asgi.state.mailbot.feed.close()
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(WebServerError):
                await self._task
