"""Accounts, browser sessions and login attempts: what the web page and `mailbot users` keep.

Reached as ``store.accounts`` (an ``Accounts``); every method is one short transaction, like
the rest of the store. Passwords arrive already hashed (``mailbot.web.passwords`` runs the
KDF) and session cookies arrive as their SHA-256, so this module never holds a secret that
would let someone in.

    add_user / get_user / list_users / update_user / credentials
    open_session / session / end_session              (web_sessions)
    record_login / login_failures                      (login_attempts, for throttling)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from mailbot.errors import NotFoundError, StoreError
from mailbot.store.coltypes import require_utc
from mailbot.store.db import Database
from mailbot.store.schema import LoginAttemptRow, Role, UserRow, WebSessionRow

# A session's last_seen_at is written at most this often: a page full of requests costs
# one write, not one per request.
TOUCH_EVERY = timedelta(seconds=60)
# Login attempts older than this are deleted; throttling windows are far shorter.
KEEP_ATTEMPTS = timedelta(days=1)


class UserExistsError(StoreError):
    """``add_user`` for a name that is taken."""

    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"user {username!r} exists already")


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role
    active: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WebSession:
    token_hash: str
    user: User
    csrf_token: str
    ip: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def _user(row: UserRow) -> User:
    return User(row.id, row.username, row.role, row.active, row.created_at)


def _load_user(session: Session, username: str) -> UserRow:
    row = session.scalars(select(UserRow).where(UserRow.username == username)).one_or_none()
    if row is None:
        raise NotFoundError("user", username)
    return row


class Accounts:
    """Users, their browser sessions and the login log. Thread-safe, like ``Store``."""

    def __init__(self, db: Database, now: Callable[[], datetime]) -> None:
        self._db = db
        self._now = now

    # ------------------------------------------------------------ users

    def add_user(self, username: str, password_hash: str, role: Role) -> User:
        """A new, active user; ``UserExistsError`` if the name is taken."""
        now = self._now()

        def unit(session: Session) -> User:
            if session.scalar(select(UserRow.id).where(UserRow.username == username)) is not None:
                raise UserExistsError(username)
            row = UserRow(username=username, password_hash=password_hash, role=Role(role),
                          active=True, created_at=now)
            session.add(row)
            session.flush()
            return _user(row)

        return self._db.write(unit, what="add_user")

    def get_user(self, username: str) -> User:
        """The user, or ``NotFoundError``."""
        return self._db.read(lambda s: _user(_load_user(s, username)), what="get_user")

    def list_users(self) -> list[User]:
        """Every user, by name."""
        return self._db.read(
            lambda s: [_user(r) for r in s.scalars(select(UserRow).order_by(UserRow.username))],
            what="list_users",
        )

    def credentials(self, username: str) -> tuple[User, str] | None:
        """``(user, password_hash)`` for a login check, or None for an unknown name."""
        def unit(session: Session) -> tuple[User, str] | None:
            row = session.scalars(select(UserRow).where(UserRow.username == username)).one_or_none()
            return None if row is None else (_user(row), row.password_hash)
        return self._db.read(unit, what="credentials")

    def update_user(self, username: str, *, role: Role | None = None, active: bool | None = None,
                    password_hash: str | None = None) -> User:
        """Change what is given. Disabling a user or changing their password ends every
        session they have open, so the change takes effect at their next request."""
        def unit(session: Session) -> User:
            row = _load_user(session, username)
            if role is not None:
                row.role = Role(role)
            if active is not None:
                row.active = active
            if password_hash is not None:
                row.password_hash = password_hash
            if active is False or password_hash is not None:
                session.execute(delete(WebSessionRow).where(WebSessionRow.user_id == row.id))
            session.flush()
            return _user(row)

        return self._db.write(unit, what="update_user")

    # ------------------------------------------------------------ sessions

    def open_session(self, user_id: int, token_hash: str, csrf_token: str, *, ip: str,
                     lifetime: timedelta) -> WebSession:
        """Record a new signed-in browser; also drops expired sessions and old attempts."""
        now = self._now()

        def unit(session: Session) -> WebSession:
            session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at < now))
            session.execute(delete(LoginAttemptRow).where(LoginAttemptRow.at < now - KEEP_ATTEMPTS))
            user = session.get(UserRow, user_id)
            if user is None:
                raise NotFoundError("user", user_id)
            row = WebSessionRow(id=token_hash, user_id=user_id, csrf_token=csrf_token, ip=ip,
                                created_at=now, last_seen_at=now, expires_at=now + lifetime)
            session.add(row)
            session.flush()
            return _web_session(row, user)

        return self._db.write(unit, what="open_session")

    def session(self, token_hash: str, *, idle: timedelta) -> WebSession | None:
        """The live session for a cookie, or None when it is unknown, expired, idle for
        longer than ``idle``, or its user is disabled."""
        now = self._now()

        def unit(session: Session) -> WebSession | None:
            found = session.execute(
                select(WebSessionRow, UserRow)
                .join(UserRow, UserRow.id == WebSessionRow.user_id)
                .where(WebSessionRow.id == token_hash)
            ).one_or_none()
            if found is None:
                return None
            row, user = found
            if not user.active or row.expires_at <= now or row.last_seen_at + idle <= now:
                return None
            return _web_session(row, user)

        found = self._db.read(unit, what="session")
        if found is not None and now - found.last_seen_at >= TOUCH_EVERY:
            self._db.write(
                lambda s: s.execute(update(WebSessionRow).where(WebSessionRow.id == token_hash)
                                    .values(last_seen_at=now)),
                what="touch_session",
            )
        return found

    def end_session(self, token_hash: str) -> None:
        """Sign out: the cookie is worthless from now on."""
        self._db.write(lambda s: s.execute(delete(WebSessionRow).where(WebSessionRow.id == token_hash)),
                       what="end_session")

    # ------------------------------------------------------------ login attempts

    def record_login(self, username: str, ip: str, *, success: bool) -> None:
        now = self._now()
        self._db.write(
            lambda s: s.add(LoginAttemptRow(at=now, username=username, ip=ip, success=success)),
            what="record_login",
        )

    def login_failures(self, username: str, ip: str, since: datetime) -> tuple[int, int]:
        """``(failures for this user, failures from this address)`` since ``since``.

        A user's count starts again after their last successful login; an address's does
        not, so one working password does not reset an attacker's budget.
        """
        since = require_utc(since, "since")

        def unit(session: Session) -> tuple[int, int]:
            last_ok = session.scalar(
                select(func.max(LoginAttemptRow.at))
                .where(LoginAttemptRow.username == username, LoginAttemptRow.success.is_(True))
            )
            user_since = max(since, last_ok) if last_ok is not None else since
            by_user = session.scalar(
                select(func.count()).select_from(LoginAttemptRow).where(
                    LoginAttemptRow.username == username, LoginAttemptRow.success.is_(False),
                    LoginAttemptRow.at >= user_since,
                    *([LoginAttemptRow.at > last_ok] if last_ok is not None else []),
                )
            ) or 0
            by_ip = session.scalar(
                select(func.count()).select_from(LoginAttemptRow).where(
                    LoginAttemptRow.ip == ip, LoginAttemptRow.success.is_(False),
                    LoginAttemptRow.at >= since,
                )
            ) or 0
            return by_user, by_ip

        return self._db.read(unit, what="login_failures")


def _web_session(row: WebSessionRow, user: UserRow) -> WebSession:
    return WebSession(row.id, _user(user), row.csrf_token, row.ip, row.created_at,
                      row.last_seen_at, row.expires_at)
