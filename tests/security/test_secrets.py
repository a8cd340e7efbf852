"""Secrets (IMAP and SMTP passwords, OAuth2 tokens, the database password) never appear in
logs, error messages or the store: checked through the real command line with debug
logging on, against real servers that refuse the login (dovecot, aiosmtpd, a PostgreSQL
that checks passwords), and through ``mailbot check-config`` for good and bad files.

Each secret is looked for in every form it takes on the wire (base64 AUTH PLAIN / LOGIN,
XOAUTH2) as well as in plain text. The unit-level checks of the IMAP source
(tests/mail/test_imap.py) and of check-config with one password (tests/app/test_config.py)
stay where they are; these go through whole processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mailbot.store import Store
from tests.hostile.conftest import write_policy_without_hours
from tests.hostile.corpus import PRAISE, message
from tests.security.conftest import SCRAM_PASSWORD, assert_no_secret, run_cli, secret_forms
from tests.support.dovecot import DovecotServer
from tests.support.postgres import PostgresCluster
from tests.support.smtpd import SmtpServer

ROOT = Path(__file__).resolve().parents[2]
IMAP_WRONG = "imap-Wr0ng-pw-5521"
SMTP_WRONG = "smtp-Wr0ng-pw-8813"
TOKEN_WRONG = "ya29.wrong-token-0042"
DB_WRONG = "db-Wr0ng-pw-3307"


def _write(root: Path, config: dict[str, Any]) -> Path:
    config.setdefault("respond", {"macros": str(ROOT / "macros"),
                                  "policy": str(write_policy_without_hours(root))})
    path = root / "mailbot.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _maildir_box(root: Path, name: str, transport: dict[str, Any]) -> dict[str, Any]:
    """A Maildir mailbox holding one praise mail, which the policy answers automatically,
    so the transport has to log in."""
    inbox = root / name
    for sub in ("new", "cur", "tmp"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)
    (inbox / "new" / f"1.{name}.praise").write_bytes(
        message(body=PRAISE, sender=f"Jan <jan-{name}@example.nl>", subject="Bedankt!", n=1))
    return {"name": name, "address": f"{name}@shop.example",
            "source": {"kind": "maildir", "path": str(inbox)}, "transport": transport}


def _imap_box(name: str, dovecot: DovecotServer, **auth: Any) -> dict[str, Any]:
    return {"name": name, "address": f"{name}@shop.example",
            "source": {"kind": "imap", "host": dovecot.host, "port": dovecot.port, "security": "none",
                       "username": dovecot.user, "timeout": 10, **auth},
            "transport": {"kind": "outbox", "path": "outbox"}}


def _smtp(smtpd: SmtpServer, **auth: Any) -> dict[str, Any]:
    return {"kind": "smtp", "host": smtpd.host, "port": smtpd.port, "security": "none",
            "username": smtpd.user, "timeout": 5, **auth}


def _everything(done: Any, db: Path | None) -> list[tuple[str, str | bytes]]:
    places: list[tuple[str, str | bytes]] = [("stdout", done.stdout), ("stderr", done.stderr)]
    if db is not None and db.exists():
        for path in db.parent.glob(db.name + "*"):       # the WAL holds recent writes
            places.append((path.name, path.read_bytes()))
    return places


@pytest.mark.slow
@pytest.mark.dovecot
def test_refused_logins_do_not_reveal_the_passwords(tmp_path: Path, dovecot: DovecotServer,
                                                     smtpd: SmtpServer) -> None:
    """A wrong IMAP password (dovecot refuses it) and a wrong SMTP password (aiosmtpd
    answers 535 to the automatic reply): the errors are reported and stored, the secrets not."""
    db = tmp_path / "mailbot.db"
    config = _write(tmp_path, {
        "database": {"url": f"sqlite:///{db}"},
        "mailboxes": [_imap_box("imapbox", dovecot, password="${IMAP_PW}"),
                      _maildir_box(tmp_path, "smtpbox", _smtp(smtpd, password="${SMTP_PW}"))],
        "sending": {"max_attempts": 1},
    })
    done = run_cli(config, "run", "--once", env={"IMAP_PW": IMAP_WRONG, "SMTP_PW": SMTP_WRONG})
    assert done.returncode == 1, done.stderr[-2000:]                    # a mailbox failed
    assert "login as 'alice' refused" in done.stdout + done.stderr
    store = Store.open(f"sqlite:///{db}")
    try:
        [draft] = store.list_drafts()
    finally:
        store.close()
    # The failure is on record with the server's reason, so an admin can act on it ...
    assert draft.state.value == "failed" and draft.smtp_code == 535, draft
    # ... and nowhere is either password, in any encoding.
    secrets = secret_forms(IMAP_WRONG, dovecot.user) | secret_forms(SMTP_WRONG, smtpd.user)
    for where, text in _everything(done, db):
        assert_no_secret(where, text, secrets)


@pytest.mark.slow
@pytest.mark.dovecot
def test_accepted_passwords_stay_out_of_debug_logs(tmp_path: Path, dovecot: DovecotServer,
                                                   smtpd: SmtpServer) -> None:
    db = tmp_path / "mailbot.db"
    dovecot.append("INBOX", message(body=PRAISE, sender="Jan <jan@example.nl>", subject="Bedankt!", n=2))
    config = _write(tmp_path, {
        "database": {"url": f"sqlite:///{db}"},
        "mailboxes": [{**_imap_box("support", dovecot, password=dovecot.password),
                       "transport": _smtp(smtpd, password=smtpd.password)}],
    })
    done = run_cli(config, "run", "--once")
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(smtpd.wait_for(1, timeout=10)) == 1                     # it did log in and send
    assert "LOGIN" in done.stderr                                       # imapclient's debug log is on
    secrets = secret_forms(dovecot.password, dovecot.user) | secret_forms(smtpd.password, smtpd.user)
    for where, text in _everything(done, db):
        assert_no_secret(where, text, secrets)


@pytest.mark.slow
@pytest.mark.dovecot
@pytest.mark.parametrize("good", [True, False], ids=["accepted", "refused"])
def test_oauth2_tokens_stay_out_of_logs_and_errors(tmp_path: Path, dovecot_factory: Any, smtpd: SmtpServer,
                                                   good: bool) -> None:
    """XOAUTH2 for IMAP (dovecot asking a token-introspection endpoint) and SMTP: the token
    comes from a command, is sent base64-encoded, and is never logged, accepted or not."""
    server: DovecotServer = dovecot_factory(oauth2=True)
    assert server.oauth2_token is not None
    imap_token = server.oauth2_token if good else TOKEN_WRONG
    smtp_token = smtpd.token if good else TOKEN_WRONG + "-smtp"
    (tmp_path / "imap.token").write_text(imap_token)
    (tmp_path / "smtp.token").write_text(smtp_token)
    db = tmp_path / "mailbot.db"
    config = _write(tmp_path, {
        "database": {"url": f"sqlite:///{db}"},
        "mailboxes": [
            _imap_box("imapbox", server, auth="xoauth2",
                      oauth2_token_command=f"cat {tmp_path / 'imap.token'}"),
            _maildir_box(tmp_path, "smtpbox", _smtp(smtpd, auth="xoauth2",
                                                    oauth2_token_command=f"cat {tmp_path / 'smtp.token'}")),
        ],
        "sending": {"max_attempts": 1},
    })
    done = run_cli(config, "run", "--once")
    if good:
        assert done.returncode == 0, done.stderr[-3000:]
        assert len(smtpd.wait_for(1, timeout=10)) == 1
        assert server.introspection is not None and server.introspection.requests >= 1
    else:
        assert done.returncode == 1, done.stderr[-3000:]
        assert "refused" in done.stdout + done.stderr
    secrets = secret_forms(imap_token, server.user) | secret_forms(smtp_token, smtpd.user)
    for where, text in _everything(done, db):
        assert_no_secret(where, text, secrets)


@pytest.mark.postgres
@pytest.mark.parametrize("good", [True, False], ids=["accepted", "refused"])
def test_the_database_password_stays_out_of_logs_and_errors(tmp_path: Path, scram_postgres: PostgresCluster,
                                                             good: bool) -> None:
    """A PostgreSQL that checks passwords: a wrong one makes `mailbot run --once` fail with
    the reason; a right one works. Neither password shows, also not in debug logs (which
    include SQLAlchemy's engine and pool logging)."""
    password = SCRAM_PASSWORD if good else DB_WRONG
    url = f"postgresql+psycopg://mailbot:${{DB_PW}}@127.0.0.1:{scram_postgres.port}/mailbot"
    config = _write(tmp_path, {
        "database": {"url": url},
        "nlp": {"enabled": False},
        "mailboxes": [_maildir_box(tmp_path, "support", {"kind": "outbox", "path": str(tmp_path / "out")})],
    })
    done = run_cli(config, "run", "--once", env={"DB_PW": password})
    if good:
        assert done.returncode == 0, done.stderr[-3000:]
        assert "1 new mail(s) recorded" in done.stdout
    else:
        assert done.returncode != 0
        assert "password authentication failed" in done.stdout + done.stderr, done.stderr[-2000:]
    for where, text in _everything(done, None):
        assert_no_secret(where, text, secret_forms(password, "mailbot"))


def test_check_config_prints_no_secret(tmp_path: Path) -> None:
    """Every place a secret can sit: ${VAR} in the file, MAILBOT_ overrides, the database
    URL (user:password@ and ?password=), passwords of IMAP and SMTP, a token command."""
    secrets = {"IMAP_PW": "imap-S3cret-111", "SMTP_PW": "smtp-S3cret-222", "DB_PW": "db-S3cret-333",
               "MAILBOT_MAILBOXES__OTHER__SOURCE__PASSWORD": "override-S3cret-444",
               "MAILBOT_MAILBOXES__OTHER__TRANSPORT__PASSWORD": "override-S3cret-555"}
    box = {"source": {"kind": "imap", "host": "imap.example", "username": "u", "password": "${IMAP_PW}"},
           "transport": {"kind": "smtp", "host": "smtp.example", "username": "u", "password": "${SMTP_PW}"}}
    for url in ("postgresql+psycopg://mailbot:${DB_PW}@db.example/mailbot",
                "postgresql+psycopg://mailbot@db.example/mailbot?password=${DB_PW}",
                "postgresql+psycopg://mailbot:${DB_PW}@db.example/mailbot?sslmode=require&x=a@b"):
        config = _write(tmp_path, {
            "database": {"url": url},
            "mailboxes": [{"name": "support", "address": "support@shop.example", **box},
                          {"name": "other", "address": "other@shop.example",
                           "source": {"kind": "imap", "host": "imap.example", "username": "u",
                                      "auth": "xoauth2", "oauth2_token_command": "cat /nonexistent"},
                           "transport": {"kind": "smtp", "host": "smtp.example", "username": "u"}}],
        })
        done = run_cli(config, "check-config", env=secrets)
        assert done.returncode == 0, done.stderr
        assert "OK" in done.stdout and "mailbox other" in done.stdout
        for name, value in secrets.items():
            for where, text in (("stdout", done.stdout), ("stderr", done.stderr)):
                assert_no_secret(f"{where} ({url}, {name})", text, secret_forms(value))


@pytest.mark.parametrize("lines", [
    "    password: {nested: SECRET}\n",            # wrong type
    "    pasword: SECRET\n",                       # unknown key holding it
    '    password: "SECRET\n',                     # a YAML error on its line
    "    password: SECRET\n    port: SECRET\n",    # a bad value in the same section
    "    password: SECRET${NOT_SET_VAR}\n",        # a missing variable
], ids=["wrong-type", "unknown-key", "yaml-error", "bad-port", "unset-variable"])
def test_check_config_errors_do_not_quote_secrets(tmp_path: Path, lines: str) -> None:
    secret = "cfg-S3cret-666"
    (tmp_path / "mailbot.yaml").write_text(
        "mailboxes:\n- name: support\n  address: support@shop.example\n"
        "  source:\n    kind: imap\n    host: imap.example\n    username: u\n"
        + lines.replace("SECRET", secret)
        + "  transport: {kind: outbox, path: out}\n", encoding="utf-8")
    done = run_cli(tmp_path / "mailbot.yaml", "check-config")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "configuration error" in done.stderr
    assert_no_secret("check-config error", done.stdout + done.stderr, secret_forms(secret))


def test_a_malformed_database_url_is_reported_without_its_password(tmp_path: Path) -> None:
    secret = "url-S3cret-777"
    for url in (f"postgresql+psycopg//mailbot:{secret}@db/mailbot",        # missing ':'
                f"postgresql+psycopg://mailbot:{secret}@db:notaport/mailbot",
                f"mysql://mailbot:{secret}@db/mailbot"):
        config = _write(tmp_path, {
            "database": {"url": url}, "nlp": {"enabled": False},
            "mailboxes": [_maildir_box(tmp_path, "support", {"kind": "outbox", "path": str(tmp_path / "o")})],
        })
        done = run_cli(config, "run", "--once")
        assert done.returncode != 0
        assert_no_secret(f"run with {url.split(':')[0]}", done.stdout + done.stderr, secret_forms(secret))
