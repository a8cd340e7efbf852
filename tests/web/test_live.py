"""Live updates over Server-Sent Events, read from a real streaming HTTP connection."""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import httpx

from mailbot.models import DraftState
from tests.web.conftest import Browser, Web, add_mail


class Listener:
    """Reads ``/events`` in a thread and collects the parsed messages."""

    def __init__(self, browser: Browser, after: int) -> None:
        self.messages: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._client = httpx.Client(base_url=browser.base, cookies=browser.http.cookies, timeout=None)
        self._thread = threading.Thread(target=self._read, args=(after,), daemon=True)
        self._thread.start()

    def _read(self, after: int) -> None:
        try:
            self._read_stream(after)
        except httpx.HTTPError:
            if not self._stop.is_set():      # only closing the client may end the stream
                raise

    def _read_stream(self, after: int) -> None:
        with self._client.stream("GET", f"/events?after={after}") as response:
            self.status = response.status_code
            self.content_type = response.headers.get("content-type", "")
            event, ident, data = "message", "", ""
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("id: "):
                    ident = line[4:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and data:
                    self.messages.put((event, ident, json.loads(data)))
                    event, ident, data = "message", "", ""

    def next(self, timeout: float = 10) -> tuple[str, str, Any]:
        return self.messages.get(timeout=timeout)

    def changes_until(self, predicate: Any, timeout: float = 10) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event, _, data = self.next(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            assert event == "change"
            seen.extend(data)
            if predicate(seen):
                return seen
        raise AssertionError(f"not seen in time; got {seen}")

    def close(self) -> None:
        self._stop.set()
        self._client.close()


def test_new_and_changed_drafts_are_pushed(web: Web) -> None:
    anna = web.signed_in("anna")
    listener = Listener(anna, after=web.store.queue.last_event_id())
    try:
        time.sleep(0.5)
        draft = add_mail(web.store)                 # as the daemon would, from another thread
        seen = listener.changes_until(lambda c: any(x["draft"] == draft.id for x in c))
        assert listener.status == 200 and listener.content_type.startswith("text/event-stream")
        drafted = next(x for x in seen if x["draft"] == draft.id)
        assert drafted["action"] == "drafted" and drafted["state"] == "pending"
        assert set(drafted) == {"id", "mail", "draft", "action", "actor", "state"}   # no customer text
        web.store.transition(draft.id, DraftState.ESCALATED, actor="carol", reason="juridisch")
        seen = listener.changes_until(lambda c: any(x["action"] == "escalated" for x in c))
        assert any(x["actor"] == "carol" and x["state"] == "escalated" for x in seen)
    finally:
        listener.close()


def test_a_page_gets_what_happened_since_it_was_rendered(web: Web) -> None:
    anna = web.signed_in("anna")
    rendered_at = web.store.queue.last_event_id()
    missed = add_mail(web.store)                     # between rendering and subscribing
    listener = Listener(anna, after=rendered_at)
    try:
        event, ident, data = listener.next()
        assert event == "change"
        assert [x["action"] for x in data] == ["recorded", "drafted"]
        assert data[-1]["draft"] == missed.id and int(ident) == data[-1]["id"]
    finally:
        listener.close()
