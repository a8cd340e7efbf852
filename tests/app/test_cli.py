"""The CLI's contract: --help everywhere, exit codes, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.cli import build_parser, main
from mailbot.models import DraftState, MailOutcome
from mailbot.store import NewDraft, NewMail, Store

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
database: {{url: "sqlite:///{db}"}}
mailboxes:
  - name: support
    address: support@shop.example
    source: {{kind: maildir, path: inbox}}
    transport: {{kind: outbox, path: outbox}}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "mailbot.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "db.sqlite"), encoding="utf-8")
    return path


def _one_draft(config: Path) -> int:
    store = Store.open(f"sqlite:///{config.parent / 'db.sqlite'}")
    store.migrate()
    result = store.record_mail(
        NewMail(mailbox="support", source_key="k1", from_addr="jan@example.nl", subject="vraag",
                size=10, raw=b"x", message_id="m1@example.nl"),
        outcome=MailOutcome.NEEDS_AGENT,
        draft=NewDraft(to_addr="jan@example.nl", subject="Re: vraag", body="", message_id="<r1@shop.example>",
                       in_reply_to="m1@example.nl"),
    )
    store.close()
    assert result.draft is not None
    return result.draft.id


@pytest.mark.parametrize("argv", [
    ["--help"], ["run", "--help"], ["check-config", "--help"], ["drafts", "--help"],
    ["drafts", "list", "--help"], ["drafts", "show", "--help"], ["drafts", "approve", "--help"],
    ["drafts", "edit", "--help"], ["drafts", "reject", "--help"], ["classify", "--help"],
    ["train", "--help"], ["eval", "--help"],
])
def test_every_command_has_help(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 0


def test_usage_error_exits_2() -> None:
    done = subprocess.run([sys.executable, "-m", "mailbot", "drafts", "frobnicate"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_draft_commands_and_exit_codes(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    draft_id = _one_draft(config)
    c = ["--config", str(config)]
    assert main([*c, "drafts", "show", "999"]) == 3
    assert "no draft with id 999" in capsys.readouterr().err
    # An empty draft cannot be approved: the agent is told to edit it first.
    assert main([*c, "drafts", "approve", str(draft_id)]) == 4
    assert "edit" in capsys.readouterr().err
    assert main([*c, "drafts", "edit", str(draft_id), "--by", "anna", "--body", "Beste Jan, ..."]) == 0
    assert f"draft {draft_id} is now edited" in capsys.readouterr().out
    assert main([*c, "drafts", "list", "--state", "edited"]) == 0
    assert "jan@example.nl" in capsys.readouterr().out
    assert main([*c, "drafts", "reject", str(draft_id), "--reason", "dubbel"]) == 0
    # Rejected is final.
    assert main([*c, "drafts", "approve", str(draft_id)]) == 4
    assert "rejected" in capsys.readouterr().err
    assert main([*c, "drafts", "show", str(draft_id)]) == 0
    shown = capsys.readouterr().out
    assert "anna" in shown and "dubbel" in shown


def test_send_now_writes_to_the_outbox(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    draft_id = _one_draft(config)
    c = ["--config", str(config)]
    assert main([*c, "drafts", "edit", str(draft_id), "--body", "Beste Jan, geregeld.", "--send-now"]) == 0
    assert "is now sent" in capsys.readouterr().out
    [eml] = list((config.parent / "outbox").glob("*.eml"))
    assert b"In-Reply-To: <m1@example.nl>" in eml.read_bytes()
    store = Store.open(f"sqlite:///{config.parent / 'db.sqlite'}")
    assert store.get_draft(draft_id).state is DraftState.SENT
    store.close()


def test_run_once_on_the_demo_inbox(tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inbox = tmp_path / "inbox"
    for sub in ("new", "cur", "tmp"):
        (inbox / sub).mkdir(parents=True)
    for eml in sorted((ROOT / "examples" / "mail").glob("*.eml")):
        (inbox / "new" / eml.stem).write_bytes(eml.read_bytes())
    assert main(["--config", str(config), "run", "--once"]) == 0
    out = capsys.readouterr().out
    assert "12 new mail(s) recorded" in out
    assert "needs_agent" in out and "skipped" in out
    # Idempotent: a second run finds nothing new.
    assert main(["--config", str(config), "run", "--once"]) == 0
    assert "0 new mail(s) recorded" in capsys.readouterr().out
