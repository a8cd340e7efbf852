"""The queue's filters as they travel in the URL (``?state=open&tone=frustrated&q=1234``).

Unknown or malformed values are dropped rather than refused: a bookmarked URL from an older
version still opens the queue. Label values are checked against ``[a-z_]`` because admins may
train their own categories, so a fixed list would be too strict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from mailbot.models import DraftState
from mailbot.store.queue import OPEN_STATES, QueueFilter

_LABEL = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
STATE_CHOICES = ("open", "all", *(s.value for s in DraftState))
PAGE_SIZE = 100
FIELDS = ("state", "mailbox", "category", "tone", "signal", "language", "assigned", "q")


@dataclass(frozen=True, slots=True)
class QueueQuery:
    """The filter plus how it was written, for links and form values."""

    params: dict[str, str]
    filter: QueueFilter
    page: int

    def url(self, path: str = "/", **changes: str | int | None) -> str:
        """``path`` with these parameters, some changed (None removes one)."""
        params: dict[str, str] = dict(self.params)
        if self.page > 1:
            params["page"] = str(self.page)
        for key, value in changes.items():
            if value is None or value == "":
                params.pop(key, None)
            else:
                params[key] = str(value)
        return path + ("?" + urlencode(params) if params else "")

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE


def parse_query(values: Mapping[str, str], *, username: str) -> QueueQuery:
    """Read the query string; ``assigned=me`` means the signed-in user."""
    params: dict[str, str] = {}
    state = values.get("state", "open")
    if state not in STATE_CHOICES:
        state = "open"
    if state != "open":
        params["state"] = state
    states: tuple[DraftState, ...] | None = (
        OPEN_STATES if state == "open" else None if state == "all" else (DraftState(state),))
    labels: dict[str, str | None] = {}
    for key in ("category", "tone", "signal", "language"):
        value = values.get(key, "").strip()
        labels[key] = value if _LABEL.match(value) else None
        if labels[key]:
            params[key] = value
    mailbox = values.get("mailbox", "").strip()
    if mailbox and _NAME.match(mailbox):
        params["mailbox"] = mailbox
    else:
        mailbox = ""
    assigned_param = values.get("assigned", "").strip()
    assigned: str | None = None
    if assigned_param == "me":
        assigned = username
    elif assigned_param == "none":
        assigned = ""
    elif assigned_param and _NAME.match(assigned_param):
        assigned = assigned_param.lower()
    else:
        assigned_param = ""
    if assigned_param:
        params["assigned"] = assigned_param
    search = " ".join(values.get("q", "").split())[:200]
    if search:
        params["q"] = search
    try:
        page = max(1, min(int(values.get("page", "1")), 10_000))
    except ValueError:
        page = 1
    return QueueQuery(
        params=params,
        filter=QueueFilter(states=states, mailbox=mailbox or None, category=labels["category"],
                           tone=labels["tone"], signal=labels["signal"],
                           language=labels["language"], assigned_to=assigned, search=search),
        page=page,
    )
