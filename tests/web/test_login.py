"""Signing in: password hashing, throttling per account and per address."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from mailbot.web.passwords import Passwords, check_new_password, check_username
from tests.web.conftest import Web, start_web, stop_web


def test_passwords_are_hashed_with_argon2id_and_verified() -> None:
    passwords = Passwords()
    hashed = passwords.hash("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert hashed != passwords.hash("correct horse battery")        # salted
    assert passwords.verify(hashed, "correct horse battery")
    assert not passwords.verify(hashed, "correct horse batterY")
    assert not passwords.verify("not a hash", "x")
    assert not passwords.verify(hashed, "x" * 5000)                   # bounded work
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw")
    assert passwords.needs_rehash(weak) and not passwords.needs_rehash(hashed)


def test_name_and_password_rules() -> None:
    assert check_username("  Anna.B ") == "anna.b"
    for bad in ("a", "-anna", "anna b", "x" * 33, "ännä", ""):
        with pytest.raises(ValueError):
            check_username(bad)
    check_new_password("long enough pw", "anna")
    for bad in ("short", "my-anna-password"):
        with pytest.raises(ValueError):
            check_new_password(bad, "anna")


def test_stored_hash_is_argon2_and_login_upgrades_weak_hashes(web: Web) -> None:
    found = web.store.accounts.credentials("bob")
    assert found is not None and found[1].startswith("$argon2id$")
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("legacy-password-9")
    web.store.accounts.update_user("anna", password_hash=weak)
    assert web.client().login("anna", "legacy-password-9").status_code == 303
    upgraded = web.store.accounts.credentials("anna")
    assert upgraded is not None and upgraded[1] != weak and "m=65536" in upgraded[1]


def test_wrong_password_and_unknown_user_look_the_same(web: Web) -> None:
    wrong = web.client().login("bob", "not-the-password")
    unknown = web.client().login("nobody", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong user name or password" in wrong.text and "Wrong user name or password" in unknown.text
    assert "mailbot_session" not in wrong.cookies


@pytest.fixture
def strict_web(tmp_path: Path, password_hashes: dict[str, str]) -> Iterator[Web]:
    running = start_web(tmp_path, password_hashes, login_failures_per_user=3,
                        login_failures_per_ip=6, login_window_minutes=10)
    yield running
    stop_web(running)


def test_throttling_per_account(strict_web: Web) -> None:
    web = strict_web
    for _ in range(3):
        assert web.client().login("bob", "guess").status_code == 401
    blocked = web.client().login("bob")                 # even the right password now waits
    assert blocked.status_code == 429
    assert "Too many failed sign-ins" in blocked.text
    assert int(blocked.headers["retry-after"]) == 600
    assert web.client().login("carol").status_code == 303   # other accounts are not affected
    attempts = web.store.accounts.login_failures("bob", "127.0.0.1", since=datetime(2000, 1, 1, tzinfo=UTC))
    assert attempts[0] == 3                              # the throttled attempt was not checked


def test_a_good_login_resets_the_account_count(strict_web: Web) -> None:
    web = strict_web
    for _ in range(2):
        web.client().login("anna", "guess")
    assert web.client().login("anna").status_code == 303
    for _ in range(2):
        assert web.client().login("anna", "guess").status_code == 401
    assert web.client().login("anna").status_code == 303


def test_throttling_per_address(strict_web: Web) -> None:
    web = strict_web
    for name in ("u1", "u2", "u3", "u4", "u5", "u6"):     # many names, one address
        assert web.client().login(name, "guess").status_code == 401
    assert web.client().login("root").status_code == 429
