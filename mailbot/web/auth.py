"""Signing in and out, and finding the session behind a cookie. Synchronous: the web layer
calls it from its thread pool (Argon2 is slow on purpose and must not block the event loop).

Sessions are server-side rows (``store.accounts``): the cookie is 32 random bytes, the
database keeps its SHA-256. Compared with a signed cookie (itsdangerous) this costs one
query per request, and buys what an internal tool needs: signing out, disabling a user or
changing a password ends their sessions at once, and there is no signing key to keep secret.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbot.config import Web
from mailbot.store import Store
from mailbot.store.accounts import WebSession
from mailbot.web.passwords import Passwords

log = logging.getLogger(__name__)


def token_hash(token: str) -> str:
    """What the database keeps of a session cookie."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True)
class LoginResult:
    """``session`` and ``cookie`` on success; otherwise ``error`` for the person at the
    keyboard (never saying whether the name exists) and, when throttled, ``retry_after``
    seconds."""

    session: WebSession | None = None
    cookie: str | None = None
    error: str = ""
    retry_after: int = 0


class Authenticator:
    def __init__(self, store: Store, settings: Web, passwords: Passwords,
                 clock: Callable[[], datetime]) -> None:
        self._accounts = store.accounts
        self._settings = settings
        self._passwords = passwords
        self._clock = clock

    def login(self, username: str, password: str, ip: str) -> LoginResult:
        """Check the password (unless throttled) and open a session."""
        name = username.strip().lower()[:64]
        window = timedelta(minutes=self._settings.login_window_minutes)
        by_user, by_ip = self._accounts.login_failures(name, ip, self._clock() - window)
        if by_user >= self._settings.login_failures_per_user or by_ip >= self._settings.login_failures_per_ip:
            # Refused without checking the password, so guessing gains nothing while it lasts.
            log.warning("login throttled for %r from %s (%d/%d failures)", name, ip, by_user, by_ip)
            minutes = math.ceil(self._settings.login_window_minutes)
            return LoginResult(error=f"Too many failed sign-ins. Wait {minutes} minutes and try again.",
                               retry_after=minutes * 60)
        found = self._accounts.credentials(name) if name else None
        if found is None:
            self._passwords.waste_time(password)
            ok = False
        else:
            user, stored = found
            ok = self._passwords.verify(stored, password) and user.active
        self._accounts.record_login(name, ip, success=ok)
        if not ok or found is None:
            log.info("failed sign-in for %r from %s", name, ip)
            return LoginResult(error="Wrong user name or password, or the account is disabled.")
        user, stored = found
        if self._passwords.needs_rehash(stored):
            self._accounts.update_user(user.username, password_hash=self._passwords.hash(password))
        cookie = secrets.token_urlsafe(32)
        session = self._accounts.open_session(
            user.id, token_hash(cookie), secrets.token_urlsafe(32), ip=ip,
            lifetime=timedelta(hours=self._settings.session_hours))
        log.info("%s signed in from %s", user.username, ip)
        return LoginResult(session=session, cookie=cookie)

    def session(self, cookie: str | None) -> WebSession | None:
        """The live session for a cookie value, or None."""
        if not cookie or len(cookie) > 128:
            return None
        return self._accounts.session(token_hash(cookie),
                                      idle=timedelta(minutes=self._settings.idle_minutes))

    def logout(self, cookie: str) -> None:
        self._accounts.end_session(token_hash(cookie))
