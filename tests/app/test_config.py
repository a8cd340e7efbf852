"""config/mailbot.yaml: loading, ${VAR} interpolation, MAILBOT_* overrides, precise errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mailbot import config
from mailbot.cli import main
from mailbot.config import ImapSource, MaildirSource, OutboxTransport, SmtpTransport
from mailbot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

IMAP_CONFIG = """
database:
  url: sqlite:///db.sqlite
mailboxes:
  - name: support
    address: support@example.com
    source:
      kind: imap
      host: imap.example.com
      username: support@example.com
      password: ${IMAP_PW}
    transport:
      kind: smtp
      host: smtp.example.com
      username: support@example.com
      password: plain-in-file
  - name: billing
    address: billing@example.com
    source: {kind: maildir, path: boxes/billing}
    transport: {kind: outbox, path: out}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailbot.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_shipped_default_config_is_valid() -> None:
    settings = config.load(ROOT / "config" / "mailbot.yaml", environ={})
    box = settings.mailboxes[0]
    assert isinstance(box.source, MaildirSource)
    assert isinstance(box.transport, OutboxTransport)
    assert settings.database.url.startswith("sqlite:////")  # made absolute
    assert box.source.path == (ROOT / "var" / "inbox").resolve()


def test_production_example_is_valid_with_its_variables() -> None:
    env = {"MAILBOT_DB_URL": "postgresql+psycopg://u:p@db/mailbot",
           "SUPPORT_IMAP_PASSWORD": "a", "SUPPORT_SMTP_PASSWORD": "b"}
    settings = config.load(ROOT / "config" / "production.example.yaml", environ=env)
    assert [b.name for b in settings.mailboxes] == ["support", "billing"]
    assert settings.mailboxes[1].source.auth == "xoauth2"  # type: ignore[union-attr]


def test_interpolation_defaults_and_relative_paths(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, IMAP_CONFIG), environ={"IMAP_PW": "s3cret"})
    imap = settings.mailboxes[0].source
    assert isinstance(imap, ImapSource)
    assert imap.password is not None and imap.password.get_secret_value() == "s3cret"
    assert imap.effective_port() == 993 and imap.idle_timeout <= 300
    smtp = settings.mailboxes[0].transport
    assert isinstance(smtp, SmtpTransport) and smtp.effective_port() == 587
    assert settings.database.url == f"sqlite:///{tmp_path}/db.sqlite"
    billing = settings.mailbox("billing").source
    assert isinstance(billing, MaildirSource) and billing.path == tmp_path / "boxes" / "billing"
    assert "s3cret" not in repr(settings)  # SecretStr keeps it out of reprs and logs


def test_environment_overrides_by_key_path_and_mailbox_name(tmp_path: Path) -> None:
    env = {
        "IMAP_PW": "x",
        "MAILBOT_DATABASE__URL": "postgresql+psycopg://u@h/db",
        "MAILBOT_MAILBOXES__SUPPORT__SOURCE__PASSWORD": "from-env",
        "MAILBOT_MAILBOXES__SUPPORT__SOURCE__PORT": "1143",
        "MAILBOT_LIMITS__REPLIES_PER_SENDER_PER_DAY": "5",
        "MAILBOT_CONFIG": "ignored: names the file",
    }
    settings = config.load(write(tmp_path, IMAP_CONFIG), environ=env)
    assert settings.database.url == "postgresql+psycopg://u@h/db"
    src = settings.mailbox("support").source
    assert isinstance(src, ImapSource)
    assert src.password is not None and src.password.get_secret_value() == "from-env"
    assert src.port == 1143
    assert settings.limits.replies_per_sender_per_day == 5


@pytest.mark.parametrize(
    ("text", "env", "key", "problem"),
    [
        (IMAP_CONFIG, {}, "mailboxes.0.source.password", "IMAP_PW is not set"),
        (IMAP_CONFIG.replace("host: imap.example.com", "hots: imap.example.com"), {"IMAP_PW": "x"},
         "mailboxes[support].source", "hots"),
        (IMAP_CONFIG.replace("kind: smtp", "kind: carrier-pigeon"), {"IMAP_PW": "x"},
         "mailboxes[support].transport", "carrier-pigeon"),
        (IMAP_CONFIG + "limits:\n  replies_per_sender_per_day: -1\n", {"IMAP_PW": "x"},
         "limits.replies_per_sender_per_day", "greater than or equal to 0"),
        ("mailboxes: []\n", {}, "mailboxes", "at least 1"),
    ],
)
def test_errors_name_file_key_and_problem(tmp_path: Path, text: str, env: dict[str, str], key: str,
                                          problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load(path, environ=env)
    message = str(info.value)
    assert str(path) in message
    assert key in message, message
    assert problem in message, message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  url: [unclosed\nmailboxes: x\n")
    with pytest.raises(ConfigError, match=r"YAML syntax error: line \d+"):
        config.load(path, environ={})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="file not found"):
        config.load("/nonexistent/mailbot.yaml", environ={})


def test_unknown_mailbox_in_override(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MAILBOT_MAILBOXES__NOPE__SOURCE__HOST names mailbox 'nope'"):
        config.load(write(tmp_path, IMAP_CONFIG),
                    environ={"IMAP_PW": "x", "MAILBOT_MAILBOXES__NOPE__SOURCE__HOST": "h"})


def test_xoauth2_token_comes_from_the_command(tmp_path: Path) -> None:
    text = IMAP_CONFIG.replace("      password: ${IMAP_PW}\n",
                               "      auth: xoauth2\n      oauth2_token_command: echo tok-123\n")
    src = config.load(write(tmp_path, text), environ={}).mailbox("support").source
    assert isinstance(src, ImapSource)
    assert src.secret() == "tok-123"


def test_xoauth2_failing_command_is_a_config_error(tmp_path: Path) -> None:
    text = IMAP_CONFIG.replace("      password: ${IMAP_PW}\n",
                               "      auth: xoauth2\n      oauth2_token_command: 'exit 3'\n")
    src = config.load(write(tmp_path, text), environ={}).mailbox("support").source
    assert isinstance(src, ImapSource)
    with pytest.raises(ConfigError, match="exited with 3"):
        src.secret()


def test_xoauth2_without_command_is_rejected(tmp_path: Path) -> None:
    text = IMAP_CONFIG.replace("      password: ${IMAP_PW}\n", "      auth: xoauth2\n")
    with pytest.raises(ConfigError, match="oauth2_token_command is not set"):
        config.load(write(tmp_path, text), environ={})


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAP_PW", "hunter2")
    path = write(tmp_path, IMAP_CONFIG)
    assert main(["--config", str(path), "check-config"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "mailbox support" in out and "hunter2" not in out
    bad = write(tmp_path, "mailboxes: 3\n")
    assert main(["--config", str(bad), "check-config"]) == 2
    assert "configuration error" in capsys.readouterr().err
