"""What each page shows, gathered from the store in one synchronous call per page (the
routes run these in the thread pool). Pure data in, template variables out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailbot.models import CATEGORIES, LANGUAGES, SIGNALS, TONES, DraftState
from mailbot.store import AuditEvent, Mail
from mailbot.store.queue import OPEN_STATES, HistoryItem, QueueItem
from mailbot.web.careful import needs_a_careful_read
from mailbot.web.context import WebContext
from mailbot.web.filters import PAGE_SIZE, STATE_CHOICES, QueueQuery
from mailbot.web.formatting import Sla, sla
from mailbot.web.mailview import OriginalView, original_view

# The customer is no longer waiting on us for these: the SLA clock stops.
FINAL_STATES_FOR_SLA = frozenset({DraftState.SENDING, DraftState.SENT, DraftState.REJECTED})


@dataclass(frozen=True, slots=True)
class Row:
    """One queue row: the item plus what the table shows about it."""

    item: QueueItem
    sla: Sla

    @property
    def analysis(self) -> dict[str, Any]:
        return self.item.mail.analysis or {}


def bulk_eligible(row: Row) -> bool:
    """A draft the bulk button may approve: pending, with text, nothing alarming."""
    return (row.item.draft.state is DraftState.PENDING and bool(row.item.draft.body.strip())
            and not needs_a_careful_read(row.analysis))


def _rows(ctx: WebContext, items: list[QueueItem], now: datetime) -> list[Row]:
    hours = ctx.settings.web.sla_hours
    return [Row(item, sla(item.mail.arrived_at, now, hours,
                          done=item.draft.state in FINAL_STATES_FOR_SLA)) for item in items]


def queue_page(ctx: WebContext, query: QueueQuery) -> dict[str, Any]:
    store = ctx.store
    # Read the event counter first: a change after it reaches the page through the feed.
    last_event = store.queue.last_event_id()
    page = store.queue.search(query.filter, limit=PAGE_SIZE, offset=query.offset)
    counts = store.count_by_state(query.filter.mailbox)
    now = ctx.clock()
    rows = _rows(ctx, page.items, now)
    bulk = [row for row in rows if bulk_eligible(row)]
    return {
        "query": query,
        "rows": rows,
        "bulk": bulk,
        "bulk_held_back": sum(1 for row in rows if row.item.draft.state is DraftState.PENDING
                              and row.item.draft.body.strip() and row not in bulk),
        "total": page.total,
        "page_size": PAGE_SIZE,
        "open_count": sum(counts[s] for s in OPEN_STATES),
        # Per tab of the state bar: "open", "all" and each state.
        "tab_counts": {"open": sum(counts[s] for s in OPEN_STATES), "all": sum(counts.values()),
                       **{state.value: n for state, n in counts.items()}},
        "state": query.params.get("state", "open"),
        "states": STATE_CHOICES,
        "mailboxes": [box.name for box in ctx.settings.mailboxes],
        "categories": CATEGORIES, "tones": TONES, "signals": SIGNALS, "languages": LANGUAGES,
        "users": [u.username for u in store.accounts.list_users() if u.active],
        "last_event": last_event,
        "sla_hours": ctx.settings.web.sla_hours,
        "now": now,
    }


@dataclass(frozen=True, slots=True)
class DraftPage:
    item: QueueItem
    mail: Mail
    original: OriginalView
    events: list[AuditEvent]
    history: list[HistoryItem]
    seen_event: int
    prev_id: int | None
    next_id: int | None
    position: int | None
    queue_total: int


def draft_page(ctx: WebContext, draft_id: int, query: QueueQuery) -> dict[str, Any]:
    store = ctx.store
    last_event = store.queue.last_event_id()
    item = store.queue.item(draft_id)
    mail = store.get_mail(item.draft.mail_id)
    events = store.audit_for_mail(mail.id)
    ids = store.queue.ids(query.filter)
    position = ids.index(draft_id) if draft_id in ids else None
    prev_id = ids[position - 1] if position is not None and position > 0 else None
    if position is None:
        next_id = ids[0] if ids else None
    else:
        next_id = ids[position + 1] if position + 1 < len(ids) else None
    page = DraftPage(
        item=item, mail=mail, original=original_view(mail), events=events,
        history=store.queue.history(item.draft),
        seen_event=max((e.id for e in events), default=0),
        prev_id=prev_id, next_id=next_id, position=position, queue_total=len(ids),
    )
    now = ctx.clock()
    return {
        "page": page,
        "draft": item.draft,
        "analysis": mail.analysis or {},
        "sla": sla(item.mail.arrived_at, now, ctx.settings.web.sla_hours,
                   done=item.draft.state in FINAL_STATES_FOR_SLA),
        "query": query,
        "macros": ctx.macros.choices(),
        "macros_configured": ctx.macros.configured,
        "users": [u.username for u in store.accounts.list_users() if u.active],
        "editable": item.draft.state in (DraftState.PENDING, DraftState.ESCALATED,
                                         DraftState.APPROVED, DraftState.EDITED, DraftState.FAILED),
        "last_event": last_event,
        "now": now,
    }
