"""Password hashing (Argon2id through argon2-cffi, its RFC 9106 defaults) and the rules for
user names and new passwords. Used by the web login and by `mailbot users`.
"""

from __future__ import annotations

import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024        # Argon2 takes any length; this bounds the work per attempt
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")


def check_username(username: str) -> str:
    """The name as stored (lower-case), or ``ValueError`` saying what is wrong.

    >>> check_username("Anna.de-Vries")
    'anna.de-vries'
    >>> check_username("a b")
    Traceback (most recent call last):
    ...
    ValueError: a user name is 2-32 characters: a-z, 0-9, '.', '_', '-', starting with a letter or digit
    """
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise ValueError("a user name is 2-32 characters: a-z, 0-9, '.', '_', '-', "
                         "starting with a letter or digit")
    return name


def check_new_password(password: str, username: str) -> None:
    """``ValueError`` for a password that is too short, too long or the user's own name."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    if username and username.lower() in password.lower():
        raise ValueError("a password must not contain the user name")


class Passwords:
    """Hash and verify. One per process: holds the hasher's parameters and a dummy hash, so
    a login for an unknown name costs as much time as one for a real name (no user-name
    probing by timing)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """True when ``password`` matches; False for a mismatch or an unreadable hash."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True after the hasher's parameters were raised: store a fresh hash at login."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def waste_time(self, password: str) -> None:
        """Spend what a real verification costs; for names that do not exist."""
        self.verify(self._dummy, password)
