"""Shared fixtures. The real servers (dovecot, aiosmtpd, PostgreSQL) live in tests/support/."""

pytest_plugins = [
    "tests.support.dovecot",
    "tests.support.smtpd",
    "tests.support.postgres",
]
