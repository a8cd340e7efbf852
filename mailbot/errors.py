"""The exceptions mailbot raises, as one small tree.

Third-party exceptions (imaplib/imapclient, aiosmtplib, SQLAlchemy, YAML, Jinja2) are
translated at the adapter that talks to them and never leak upward; the original is kept
as ``__cause__`` (``raise ... from exc``).

    MailbotError
     +-- ConfigError                 config file or environment is invalid (file, key, problem)
     |    +-- MacroError             a macro, snippet or policy file is invalid (file, line, key)
     |         +-- UnknownMacroError (also LookupError) no macro with that id in the loaded set
     |         +-- RenderError       a macro's template failed for one mail (file, line, variable)
     +-- SourceError                 reading the inbox failed
     |    +-- SourceConnectionError  (also ConnectionError) network drop, refused, timeout
     |    +-- SourceAuthError        login refused
     +-- SendError                   handing a reply to the relay failed (carries the SMTP code)
     |    +-- TemporarySendError     4xx or connection trouble: retry later
     |    +-- PermanentSendError     5xx: do not retry, record the server's reason
     +-- StoreError                  the database refused or is unreachable
     |    +-- NotFoundError          (also LookupError) no such draft / mail / user
     |    +-- DraftStateError        a transition the state machine does not allow
     |    +-- ConcurrentUpdateError  someone else changed the row first
     +-- ModelError                  the NLP model is missing or cannot load / train
     +-- DataError                   an input file (training data, golden mail) is invalid
"""

from __future__ import annotations


class MailbotError(Exception):
    """Root of every error mailbot raises on purpose."""


class ConfigError(MailbotError):
    """The configuration is invalid. Names the file, the key and the problem."""

    def __init__(self, problem: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {problem}" if where else problem)


class MacroError(ConfigError):
    """A macro, snippet or policy file is invalid. Names the file, the line and the key."""

    def __init__(self, problem: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        where = f"{file}:{line}" if file and line is not None else file
        super().__init__(problem, file=where, key=key)
        self.file = file
        self.line = line


class UnknownMacroError(MacroError, LookupError):
    def __init__(self, macro_id: str) -> None:
        super().__init__(f"no macro with id {macro_id!r} in the loaded set")
        self.macro_id = macro_id


class RenderError(MacroError):
    """A template could not be rendered for a mail (undefined variable, sandbox violation).

    The draft then goes to an agent with this message as the reason; it is never sent.
    """

    def __init__(self, problem: str, *, macro_id: str, file: str | None = None,
                 line: int | None = None, variable: str | None = None) -> None:
        super().__init__(f"template error in macro {macro_id}: {problem}", file=file, line=line)
        self.macro_id = macro_id
        self.variable = variable


class SourceError(MailbotError):
    """Reading from a mailbox failed."""

    def __init__(self, mailbox: str, problem: str) -> None:
        self.mailbox = mailbox
        self.problem = problem
        super().__init__(f"mailbox {mailbox!r}: {problem}")


class SourceConnectionError(SourceError, ConnectionError):
    """The connection to the mail server dropped, timed out or was refused."""


class SourceAuthError(SourceError):
    """The mail server refused the login."""


class SendError(MailbotError):
    """The relay did not accept a reply."""

    def __init__(self, problem: str, *, code: int | None = None) -> None:
        self.code = code
        self.problem = problem
        super().__init__(f"SMTP {code}: {problem}" if code else problem)


class TemporarySendError(SendError):
    """A 4xx answer or a dropped connection: the send may be retried later."""


class PermanentSendError(SendError):
    """A 5xx answer: retrying will not help; the reason is recorded on the draft."""


class StoreError(MailbotError):
    """The database refused an operation or could not be reached."""


class NotFoundError(StoreError, LookupError):
    def __init__(self, what: str, ident: object) -> None:
        self.what = what
        self.ident = ident
        super().__init__(f"no {what} with id {ident}")


class DraftStateError(StoreError):
    """A draft cannot move from its current state to the requested one."""

    def __init__(self, draft_id: int, current: str, wanted: str) -> None:
        self.draft_id = draft_id
        self.current = current
        self.wanted = wanted
        super().__init__(f"draft {draft_id} is {current}; it cannot become {wanted}")


class ConcurrentUpdateError(StoreError):
    """Another agent or worker changed the row between read and write."""

    def __init__(self, what: str, ident: object) -> None:
        self.what = what
        self.ident = ident
        super().__init__(f"{what} {ident} was changed by someone else; reload and try again")


class ModelError(MailbotError):
    """The NLP model could not be found, loaded or trained."""


class DataError(MailbotError):
    """An input data file is invalid; names the file, line and field."""

    def __init__(self, problem: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.problem = problem
        where = "".join(
            part for part in (
                file or "",
                f":{line}" if line is not None else "",
                f": field {field!r}" if field else "",
            )
        )
        super().__init__(f"{where}: {problem}" if where else problem)
