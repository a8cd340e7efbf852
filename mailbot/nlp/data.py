"""Reading labelled mail (JSON lines) with errors that name the file, the line and the field.

One mail per line::

    {"subject": "...", "body": "...", "language": "nl", "category": "refund",
     "tone": "frustrated", "signals": ["repeat_contact"]}

``subject`` and ``body`` are required (one may be empty); ``category`` is required for
training; ``tone``, ``signals`` and ``language`` are optional (a line without a tone trains
only the category; a line without a language is detected).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailbot.errors import DataError


@dataclass(frozen=True, slots=True)
class Example:
    subject: str
    body: str
    language: str | None = None
    category: str | None = None
    tone: str | None = None
    signals: tuple[str, ...] | None = None
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return join_text(self.subject, self.body)


def join_text(subject: str, body: str) -> str:
    """What the model reads: the subject line, a blank line, the body."""
    subject, body = subject.strip(), body.strip()
    if subject and body:
        return f"{subject}\n\n{body}"
    return subject or body


def _str_field(obj: dict[str, Any], name: str, file: str, line: int, *, required: bool) -> str | None:
    if name not in obj or obj[name] is None:
        if required:
            raise DataError("missing", file=file, line=line, field=name)
        return None
    value = obj[name]
    if not isinstance(value, str):
        raise DataError(f"must be a string, not {type(value).__name__}", file=file, line=line, field=name)
    return value


def unlabelled_lines(stream: Any, *, file: str = "<stdin>") -> Iterator[tuple[Example | None, str]]:
    """Mails as JSON lines (``{"subject", "body", ...}``) from ``stream``, blank lines skipped:
    each as (example, "") or, when the line is bad, (None, the error naming line and field)."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            yield parse_line(line, file=file, line=number, labelled=False), ""
        except DataError as exc:
            yield None, str(exc) if exc.line else f"{file}:{number}: {exc}"


def parse_line(text: str, *, file: str = "<stdin>", line: int = 0, labelled: bool = True) -> Example:
    """One JSON line to an Example. Raises DataError naming the line and field."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc.msg} at column {exc.colno}", file=file, line=line) from exc
    if not isinstance(obj, dict):
        raise DataError("each line must be a JSON object", file=file, line=line)
    if "subject" not in obj and "body" not in obj:
        raise DataError("needs at least one of 'subject' and 'body'", file=file, line=line, field="body")
    subject = _str_field(obj, "subject", file, line, required=False) or ""
    body = _str_field(obj, "body", file, line, required=False) or ""
    language = _str_field(obj, "language", file, line, required=False)
    category = _str_field(obj, "category", file, line, required=labelled)
    tone = _str_field(obj, "tone", file, line, required=False)
    if category is not None and not category.strip():
        raise DataError("must not be empty", file=file, line=line, field="category")
    if tone is not None and not tone.strip():
        tone = None
    signals: tuple[str, ...] | None = None
    if obj.get("signals") is not None:
        raw = obj["signals"]
        if not isinstance(raw, list) or not all(isinstance(s, str) and s for s in raw):
            raise DataError("must be a list of non-empty strings", file=file, line=line, field="signals")
        signals = tuple(dict.fromkeys(raw))
    known = {"subject", "body", "language", "category", "tone", "signals"}
    extra = {k: v for k, v in obj.items() if k not in known}
    return Example(subject=subject, body=body, language=language, category=category, tone=tone,
                   signals=signals, line=line, extra=extra)


def read_jsonl(path: str | Path, *, labelled: bool = True) -> list[Example]:
    """All examples of a file; blank lines are skipped; the first bad line raises DataError."""
    file = str(path)
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed below, errors translated
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror}", file=file) from exc
    with handle:
        try:
            return list(_iter_lines(handle, file, labelled))
        except UnicodeDecodeError as exc:
            raise DataError(f"not UTF-8 text ({exc.reason})", file=file) from exc


def _iter_lines(handle: Any, file: str, labelled: bool) -> Iterator[Example]:
    for number, text in enumerate(handle, start=1):
        if text.strip():
            yield parse_line(text, file=file, line=number, labelled=labelled)
