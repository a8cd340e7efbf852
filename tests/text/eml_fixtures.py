"""The real-client .eml fixtures in tests/fixtures/eml and their expectations.

Each ``name.eml`` has a ``name.expected.json`` next to it. Every key is optional; a test
checks the keys it knows about and ignores the rest:

    subject, from_addr, from_name, message_id, in_reply_to, reply_to, date (ISO 8601),
    content_type, report_type          InboundMail fields, compared exactly
    attachments                        [{"filename", "content_type", "size"}]; size null = any
    defects                            substrings each of which some defect must contain;
                                       [] means the mail must parse without any defect
    text_contains, text_excludes       substrings of InboundMail.text
    body, sign_off_name                CleanText of clean(mail.text), compared exactly
    html_body                          clean(html_to_text(mail.html)).body, compared exactly
    quoted_contains                    substrings of CleanText.quoted
    verdict                            "proceed" or a SkipReason value, with SCREEN_DEFAULTS
    screen_args                        overrides of SCREEN_DEFAULTS for this mail
    detail_contains                    substring of Verdict.detail
    note                               for the reader only
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "eml"

SCREEN_DEFAULTS: dict[str, Any] = {
    "own_addresses": ("support@webwinkel.nl", "klantenservice@webwinkel.nl"),
    "own_domains": ("webwinkel.nl",),
    "auto_replies_last_day": 0,
    "daily_limit": 3,
}


@dataclass(frozen=True)
class EmlFixture:
    name: str
    raw: bytes
    expected: dict[str, Any]

    def screen_args(self) -> dict[str, Any]:
        return {**SCREEN_DEFAULTS, **self.expected.get("screen_args", {})}


def load_fixtures() -> list[EmlFixture]:
    fixtures = []
    for path in sorted(FIXTURE_DIR.glob("*.eml")):
        expected_path = path.with_suffix(".expected.json")
        expected = json.loads(expected_path.read_text(encoding="utf-8"))
        fixtures.append(EmlFixture(path.stem, path.read_bytes(), expected))
    return fixtures


def fixtures_with(*keys: str) -> list[Any]:
    """pytest params (id = fixture name) for the fixtures whose expectation has any of ``keys``."""
    return [pytest.param(fixture, id=fixture.name) for fixture in load_fixtures()
            if any(key in fixture.expected for key in keys)]


def pick(expected: dict[str, Any], actual: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The expected keys that ``actual`` knows, side by side, for one readable assert diff."""
    keys = [key for key in expected if key in actual]
    return {key: expected[key] for key in keys}, {key: actual[key] for key in keys}
