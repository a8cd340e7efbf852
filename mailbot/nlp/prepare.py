"""What the model reads of a mail: the subject and the customer's own words, bounded in size."""

from __future__ import annotations

from mailbot.nlp.data import join_text
from mailbot.text.clean import clean

# Enough for any real complaint; a 1 MB paste costs no more to analyse than a long mail.
MAX_BODY_CHARS = 8000


def model_text(subject: str, body: str) -> str:
    """Subject + cleaned body (quotes and signatures stripped), the body cut at MAX_BODY_CHARS."""
    return prepare(subject, body)[0]


def prepare(subject: str, body: str) -> tuple[str, str | None]:
    """``model_text`` and the name in the sign-off ("Groet, Anneke de Vries"), if any."""
    if not body:
        return join_text(subject[:500], ""), None
    cleaned = clean(body[: MAX_BODY_CHARS * 4])
    return join_text(subject[:500], cleaned.body[:MAX_BODY_CHARS]), cleaned.sign_off_name
