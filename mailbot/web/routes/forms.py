"""Reading form fields defensively: everything arrives as untrusted text of any size."""

from __future__ import annotations

from starlette.datastructures import FormData

from mailbot.web.actions import Refused, Seen


def text(form: FormData, key: str, *, limit: int = 10_000) -> str:
    """The field as a string ('' when missing or a file); longer than ``limit`` is refused."""
    value = form.get(key)
    if not isinstance(value, str):
        return ""
    if len(value) > limit:
        raise Refused(f"The field {key!r} is too long.", 413)
    return value


def optional(form: FormData, key: str, *, limit: int = 200_000) -> str | None:
    """The field, or None when the form did not have it (not the same as empty)."""
    if key not in form:
        return None
    return text(form, key, limit=limit)


def number(form: FormData, key: str) -> int:
    try:
        return int(text(form, key, limit=20))
    except ValueError as exc:
        raise Refused(f"The field {key!r} must be a number; reload the page.", 400) from exc


def seen(form: FormData) -> Seen:
    """The draft version and newest audit event the person had on screen."""
    event = text(form, "seen", limit=20)
    return Seen(version=number(form, "version"), event=int(event) if event.isdigit() else 0)
