"""What linting a macro set found: one ``Finding`` per problem, each naming file and line.

Errors stop a set from being used (the last good set stays); warnings are shown but do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: ``macros/refund.yaml:12: when.categories[0]: unknown category 'refnud'``."""

    severity: Severity
    file: str
    line: int | None
    message: str
    key: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"severity": self.severity.value, "file": self.file, "line": self.line,
                "key": self.key, "message": self.message}


class SortsFindings:
    """Mixin for results that hold ``findings``: the errors and the warnings among them."""

    findings: tuple[Finding, ...]

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)


def error(file: str, line: int | None, message: str, key: str | None = None) -> Finding:
    return Finding(Severity.ERROR, file, line, message, key)


def warning(file: str, line: int | None, message: str, key: str | None = None) -> Finding:
    return Finding(Severity.WARNING, file, line, message, key)
