"""Which drafts must be read one by one: never approved in bulk.

DESIGN.md: threats and legal threats go to a human, abuse gets a calm boundary, distress
gets a personal answer. A bulk approval is still a person's decision, but not a careful
one, so these drafts are left out of it (in the list the page offers, and again on the
server for a hand-made request).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CAREFUL_TONES = frozenset({"abusive", "threatening", "distressed"})
CAREFUL_SIGNALS = frozenset({"legal_threat", "public_threat"})


def needs_a_careful_read(analysis: Mapping[str, Any] | None) -> str:
    """Why a mail with this analysis must be approved on its own ('' when it need not).

    >>> needs_a_careful_read({"tone": "abusive", "signals": []})
    'the customer is abusive'
    >>> needs_a_careful_read({"tone": "neutral", "signals": ["legal_threat"]})
    'legal_threat'
    >>> needs_a_careful_read({"tone": "neutral", "signals": ["urgent"]})
    ''
    """
    if not analysis:
        return ""
    if analysis.get("tone") in CAREFUL_TONES:
        return f"the customer is {analysis['tone']}"
    flagged = sorted(CAREFUL_SIGNALS & set(analysis.get("signals") or ()))
    return ", ".join(flagged)
