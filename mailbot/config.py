"""Loading and validating config/mailbot.yaml.

The file is YAML; ``${VAR}`` inside a string is replaced by the environment variable VAR (so
secrets stay out of the file), and any setting can be overridden by an environment variable
``MAILBOT_<PATH>`` where PATH is the key path joined by double underscores, mailboxes addressed
by name::

    MAILBOT_DATABASE__URL=postgresql+psycopg://mailbot@db/mailbot
    MAILBOT_MAILBOXES__SUPPORT__SOURCE__PASSWORD=secret
    MAILBOT_LIMITS__REPLIES_PER_SENDER_PER_DAY=5

Every error names the file, the key and the problem (``ConfigError``).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from mailbot.errors import ConfigError

ENV_PREFIX = "MAILBOT_"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Model(BaseModel):
    # Unknown keys are errors: a typo such as "pasword" must not be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Credentials(_Model):
    """How to log in: a password, or an OAuth2 bearer token printed by a command (XOAUTH2).

    The token command is run each time a connection is made, as mail clients such as mutt
    and msmtp do (``passwordeval``), so a token refresher (oama, a cloud CLI) keeps it fresh.
    """

    username: str = ""
    auth: Literal["password", "xoauth2", "none"] = "password"
    password: SecretStr | None = None
    oauth2_token_command: str | None = None

    @model_validator(mode="after")
    def _check_auth(self) -> Credentials:
        if self.auth == "xoauth2" and not self.oauth2_token_command:
            raise ValueError("auth is xoauth2 but oauth2_token_command is not set")
        if self.auth != "none" and not self.username:
            raise ValueError(f"auth is {self.auth} but username is empty")
        return self

    def secret(self) -> str:
        """The password or a fresh OAuth2 token. Raises ConfigError if the command fails."""
        if self.auth == "xoauth2":
            assert self.oauth2_token_command is not None
            try:
                done = subprocess.run(
                    self.oauth2_token_command, shell=True, capture_output=True, text=True,
                    timeout=30, check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise ConfigError("oauth2_token_command timed out after 30 s") from exc
            if done.returncode != 0:
                raise ConfigError(
                    f"oauth2_token_command exited with {done.returncode}"
                    f" (stderr: {done.stderr.strip()[:200]!r})"
                )
            token = done.stdout.strip()
            if not token:
                raise ConfigError("oauth2_token_command printed no token")
            return token
        return self.password.get_secret_value() if self.password else ""


class ImapSource(Credentials):
    kind: Literal["imap"]
    host: str
    port: int | None = None                 # default: 993 for tls, 143 otherwise
    security: Literal["tls", "starttls", "none"] = "tls"
    folder: str = "INBOX"
    idle: bool = True                       # use IDLE when the server offers it
    idle_timeout: Annotated[float, Field(gt=0, le=300)] = 240.0  # re-issue IDLE before 5 min
    poll_interval: Annotated[float, Field(gt=0)] = 30.0           # when the server lacks IDLE
    after: Literal["flag", "move", "none"] = "flag"
    flag: str = "\\Seen"
    move_to: str = "Processed"
    sent_folder: str | None = "Sent"        # a copy of every reply is appended here
    timeout: Annotated[float, Field(gt=0)] = 30.0

    def effective_port(self) -> int:
        return self.port or (993 if self.security == "tls" else 143)


class MaildirSource(_Model):
    kind: Literal["maildir"]
    path: Path
    after: Literal["flag", "move", "none"] = "flag"
    move_to: str = "Processed"
    sent_folder: str | None = "Sent"
    poll_interval: Annotated[float, Field(gt=0)] = 1.0


class SmtpTransport(Credentials):
    kind: Literal["smtp"]
    host: str
    port: int | None = None                 # default: 465 for tls, 587 for starttls, 25 for none
    security: Literal["tls", "starttls", "none"] = "starttls"
    timeout: Annotated[float, Field(gt=0)] = 30.0

    def effective_port(self) -> int:
        return self.port or {"tls": 465, "starttls": 587, "none": 25}[self.security]


class OutboxTransport(_Model):
    """Replies are written as .eml files to a folder instead of being sent (the embedded default)."""

    kind: Literal["outbox"]
    path: Path


class Mailbox(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    address: str                            # the support address replies come from
    display_name: str = ""
    aliases: tuple[str, ...] = ()           # other addresses of ours (loop protection)
    source: Annotated[ImapSource | MaildirSource, Field(discriminator="kind")]
    transport: Annotated[SmtpTransport | OutboxTransport, Field(discriminator="kind")]

    @property
    def own_addresses(self) -> tuple[str, ...]:
        return tuple(a.lower() for a in (self.address, *self.aliases))

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()


class Database(_Model):
    url: str = "sqlite:///var/mailbot.db"


class Limits(_Model):
    replies_per_sender_per_day: Annotated[int, Field(ge=0)] = 3
    max_mail_bytes: Annotated[int, Field(gt=0)] = 50 * 1024 * 1024


class Sending(_Model):
    max_attempts: Annotated[int, Field(ge=1)] = 8
    backoff_initial: Annotated[float, Field(gt=0)] = 30.0   # seconds; doubled each attempt
    backoff_max: Annotated[float, Field(gt=0)] = 3600.0


class Company(_Model):
    name: str = "Example Shop"
    contact_person: str = ""        # the fixed, named contact person; replies fall back to "the team"
    phone: str = ""
    website: str = ""


class Nlp(_Model):
    enabled: bool = True            # analyse every mail (language, category, tone, signals, entities)
    model: Path | None = None       # a model folder from `mailbot train`; default: the shipped model


class Respond(_Model):
    """Reply macros and the policy (docs/macros.md). Relative paths are relative to the config
    file; without the macros folder every mail goes to an agent."""

    enabled: bool = True
    macros: Path = Path("../macros")       # macros/*.yaml, macros/snippets/*.j2, macros/tests/
    policy: Path = Path("policy.yaml")     # send / draft / escalate / ignore rules
    agent: str = ""                        # signs automatic replies; default: company.contact_person


class Web(_Model):
    """The agents' web page (``mailbot web``, or inside ``mailbot run`` with ``enabled``).

    No secret key: sessions are random tokens whose SHA-256 is kept in the database, so
    there is nothing to sign and nothing to rotate when a deployment is copied.
    """

    enabled: bool = False           # also serve the page from `mailbot run` (same process, same store)
    host: str = "127.0.0.1"         # put a TLS-terminating proxy in front for anything but localhost
    port: Annotated[int, Field(ge=0, le=65535)] = 8080   # 0: any free port (tests)
    sla_hours: Annotated[float, Field(gt=0)] = 24.0      # a customer waits at most this long for an answer
    session_hours: Annotated[float, Field(gt=0)] = 12.0  # a login lasts at most this long
    idle_minutes: Annotated[float, Field(gt=0)] = 120.0  # ... and ends after this long without a request
    secure_cookies: bool = False    # set true when the page is served over https
    login_failures_per_user: Annotated[int, Field(ge=1)] = 5   # then that account waits ...
    login_failures_per_ip: Annotated[int, Field(ge=1)] = 20    # ... or that address waits ...
    login_window_minutes: Annotated[float, Field(gt=0)] = 15.0  # ... until failures leave this window
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)  # whose X-Forwarded-For names the client


class Settings(_Model):
    database: Database = Database()
    nlp: Nlp = Nlp()
    respond: Respond = Respond()
    web: Web = Web()
    mailboxes: Annotated[tuple[Mailbox, ...], Field(min_length=1)]
    limits: Limits = Limits()
    sending: Sending = Sending()
    company: Company = Company()
    retention_days: Annotated[int, Field(ge=0)] = 90       # 0 keeps mail bodies forever
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        seen: set[str] = set()
        for box in self.mailboxes:
            if box.name in seen:
                raise ValueError(f"mailbox name {box.name!r} is used twice")
            seen.add(box.name)
        return self

    def mailbox(self, name: str) -> Mailbox:
        for box in self.mailboxes:
            if box.name == name:
                return box
        raise ConfigError(f"no mailbox named {name!r}", key="mailboxes")


# Query parameters of a database URL that may carry a secret (libpq takes ?password=).
_SECRET_URL_PARAMS = ("pass", "pwd", "secret", "token", "key")
_SCHEME = re.compile(r"[A-Za-z0-9+._-]*")


def redact_url(url: str) -> str:
    """A database URL fit to show: the password of ``user:password@`` and query parameters
    such as ``?password=`` hidden. What cannot be parsed is hidden after its scheme.

    >>> redact_url("postgresql+psycopg://bot:p%40ss@db/mail?password=pw&sslmode=require")
    'postgresql+psycopg://bot:***@db/mail?password=***&sslmode=require'
    >>> redact_url("sqlite:///var/mailbot.db"), redact_url("postgres//bot:pw@db")
    ('sqlite:///var/mailbot.db', 'postgres (the rest hidden: not a valid URL)')
    >>> redact_url("postgresql://bot:p@ss@db/mail")     # "@" in a password must be %40
    'postgresql (the rest hidden: not a valid URL)'
    """
    from sqlalchemy.engine import make_url  # only the commands that show settings need it

    hidden = f"{_SCHEME.match(url).group()} (the rest hidden: not a valid URL)"  # type: ignore[union-attr]
    try:
        parsed = make_url(url)
    except Exception:  # not a URL SQLAlchemy can read: its parts cannot be told apart
        return hidden
    if "@" in (parsed.host or ""):
        return hidden   # a raw "@" in the password: part of it would show as the host
    query = {key: "***" if any(word in key.lower() for word in _SECRET_URL_PARAMS) else value
             for key, value in parsed.query.items()}
    shown = parsed.set(query=query).render_as_string(hide_password=True)
    return shown.replace("=%2A%2A%2A", "=***")


# ------------------------------------------------------------------ loading

DEFAULT_CONFIG = Path("config/mailbot.yaml")


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config, else $MAILBOT_CONFIG, else config/mailbot.yaml in the working directory."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("MAILBOT_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG


def load(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, interpolate, override and validate a config file.

    Relative paths inside the file (SQLite database, Maildir, outbox) are resolved against the
    directory of the config file, so the daemon behaves the same whatever the working directory.
    """
    env = os.environ if environ is None else environ
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("file not found", file=str(file)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(file)) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"YAML syntax error: {where}{problem}", file=str(file)) from exc
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of settings", file=str(file))
    data = _interpolate(data, env, file, ())
    _apply_env_overrides(data, env, file)
    base = file.resolve().parent
    _resolve_paths(data, base)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        others = "; ".join(f"{_key_path(e['loc'], data)}: {e['msg']}" for e in errors[1:6])
        more = f" (also {others})" if others else ""
        raise ConfigError(f"{first['msg']}{more}", file=str(file),
                          key=_key_path(first["loc"], data)) from exc


def _interpolate(value: Any, env: Mapping[str, str], file: Path, at: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env, file, (*at, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, file, (*at, str(i))) for i, v in enumerate(value)]
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(
                    f"environment variable {name} is not set", file=str(file), key=".".join(at)
                )
            return env[name]
        return _VAR.sub(sub, value)
    return value


def _apply_env_overrides(data: dict[str, Any], env: Mapping[str, str], file: Path) -> None:
    """Apply MAILBOT_A__B__C=value. Only names whose first part is a top-level setting count,
    so other MAILBOT_* variables (MAILBOT_CONFIG, MAILBOT_HOME) are left alone."""
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        if parts[0] not in Settings.model_fields or not all(parts):
            continue
        node: Any = data
        for part in parts[:-1]:
            if isinstance(node, list):
                node = _by_name(node, part, name, file)
            else:
                if not isinstance(node.get(part), dict | list):
                    node[part] = {}
                node = node[part]
        if isinstance(node, list):
            raise ConfigError(f"{name} must name a setting inside a mailbox", file=str(file))
        node[parts[-1]] = yaml.safe_load(env[name]) if env[name] else ""


def _by_name(items: list[Any], name: str, var: str, file: Path) -> Any:
    for item in items:
        if isinstance(item, dict) and str(item.get("name", "")).lower() == name:
            return item
    raise ConfigError(f"{var} names mailbox {name!r}, which the file does not define", file=str(file))


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    nlp = data.get("nlp")
    if isinstance(nlp, dict) and isinstance(nlp.get("model"), str):
        model = Path(nlp["model"])
        nlp["model"] = str(model if model.is_absolute() else (base / model).resolve())
    if data.get("respond") is None:
        data["respond"] = {}  # the defaults are paths too, relative to this file like the rest
    respond = data["respond"]
    if isinstance(respond, dict):
        for key in ("macros", "policy"):
            value = respond.get(key, str(Respond.model_fields[key].default))
            if isinstance(value, str):
                respond[key] = str(Path(value) if Path(value).is_absolute() else (base / value).resolve())
    db = data.get("database")
    if isinstance(db, dict) and isinstance(db.get("url"), str):
        url = db["url"]
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
            db["url"] = "sqlite:///" + str((base / url[len("sqlite:///"):]).resolve())
    boxes = data.get("mailboxes")
    for box in boxes if isinstance(boxes, list) else []:
        if not isinstance(box, dict):
            continue
        for part in ("source", "transport"):
            section = box.get(part)
            if isinstance(section, dict) and isinstance(section.get("path"), str):
                path = Path(section["path"])
                section["path"] = str(path if path.is_absolute() else (base / path).resolve())


def _key_path(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    """Turn pydantic's location into a readable key, mailboxes by name: mailboxes[support].source.host."""
    out: list[str] = []
    node: Any = data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list):
            item = node[part] if part < len(node) else None
            label = item.get("name") if isinstance(item, dict) else None
            out[-1:] = [f"{out[-1] if out else ''}[{label or part}]"]
            node = item
            continue
        if part in ("imap", "maildir", "smtp", "outbox") and out and out[-1] in ("source", "transport"):
            continue  # pydantic adds the discriminator tag; the user never wrote it
        out.append(str(part))
        node = node.get(part) if isinstance(node, dict) else None
    return ".".join(out)
