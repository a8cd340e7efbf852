"""The `mailbot` command.

Exit codes (documented in the README):
    0  success
    1  the work failed (a mailbox unreachable, a send failed, ...)
    2  bad usage or invalid configuration
    3  no such draft / mail
    4  the draft's state does not allow that (or someone else changed it first)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mailbot import __version__
from mailbot.config import config_path, redact_url
from mailbot.config import load as load_config
from mailbot.errors import (
    ConcurrentUpdateError,
    ConfigError,
    DataError,
    DraftStateError,
    MailbotError,
    NotFoundError,
)
from mailbot.models import DraftState

if TYPE_CHECKING:
    from mailbot.app import App

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_STATE = 0, 1, 2, 3, 4

log = logging.getLogger("mailbot")


def _actor(args: argparse.Namespace) -> str:
    return getattr(args, "by", None) or os.environ.get("USER") or "cli"


# ------------------------------------------------------------------ commands


def cmd_check_config(args: argparse.Namespace, out: TextIO) -> int:
    path = config_path(args.config)
    settings = load_config(path)
    out.write(f"{path}: OK\n")
    out.write(f"  database: {redact_url(settings.database.url)}\n")
    for box in settings.mailboxes:
        src, tr = box.source, box.transport
        where = getattr(src, "host", None) or getattr(src, "path", "")
        to = getattr(tr, "host", None) or getattr(tr, "path", "")
        out.write(f"  mailbox {box.name} <{box.address}>: {src.kind} {where} -> {tr.kind} {to}\n")
    return EXIT_OK


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    from mailbot.app import App
    from mailbot.daemon import Daemon, run_once

    app = App.from_config(args.config)
    try:
        if args.once:
            started = datetime.now(UTC)
            report = asyncio.run(run_once(app))
            _print_once(app, report, started, out)
            return EXIT_FAIL if report.errors else EXIT_OK
        asyncio.run(Daemon(app).run())
        return EXIT_OK
    finally:
        app.close()


def _print_once(app: App, report: Any, started: datetime, out: TextIO) -> None:
    for name, count in report.recorded.items():
        out.write(f"mailbox {name}: {count} new mail(s) recorded\n")
    for name, error in report.errors.items():
        out.write(f"mailbox {name}: ERROR {error}\n")
    mails = app.store.list_mails(since=started)
    if mails:
        out.write(f"\n{'id':>4}  {'outcome':<12} {'from':<32} subject / reason\n")
        for mail in mails:
            out.write(f"{mail.id:>4}  {mail.outcome:<12} {_cut(mail.from_addr or '-', 32):<32} "
                      f"{_cut(mail.subject or '(no subject)', 60)}\n")
            out.write(f"{'':>4}  {'':<12} {'':<32} -> {_cut(mail.reason, 90)}\n")
    send = report.send
    out.write(f"\nsent {send.sent}, retrying {send.retried}, failed {send.failed}\n")
    counts = app.store.count_by_state()
    if counts:
        out.write("drafts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + "\n")


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _draft_dict(app: App, draft: Any, *, full: bool = False) -> dict[str, Any]:
    data = {
        "id": draft.id,
        "mail_id": draft.mail_id,
        "mailbox": draft.mailbox,
        "state": draft.state,
        "auto": draft.auto,
        "to": draft.to_addr,
        "subject": draft.subject,
        "created_at": draft.created_at.isoformat() if draft.created_at else None,
        "macro_id": draft.macro_id,
        "rule": draft.rule,
        "version": draft.version,
    }
    if full:
        mail = app.store.get_mail(draft.mail_id)
        data.update(
            body=draft.body,
            message_id=draft.message_id,
            in_reply_to=draft.in_reply_to,
            last_error=draft.last_error,
            original={"from": mail.from_addr, "subject": mail.subject, "text": mail.text,
                      "outcome": mail.outcome, "reason": mail.reason, "analysis": mail.analysis},
            audit=[{"at": e.at.isoformat(), "actor": e.actor, "action": e.action,
                    "from": e.from_state, "to": e.to_state, "reason": e.reason}
                   for e in app.store.audit_for_draft(draft.id)],
        )
    return data


def with_store_app(args: argparse.Namespace, out: TextIO,
                   work: Callable[[App, argparse.Namespace, TextIO], int]) -> int:
    """Run ``work`` with an app opened without the model (commands that only read or change
    the store), and close it afterwards."""
    from mailbot.app import App

    app = App.from_config(args.config, analysis=False)
    try:
        return work(app, args, out)
    finally:
        app.close()


def cmd_drafts(args: argparse.Namespace, out: TextIO) -> int:
    return with_store_app(args, out, _drafts)


def _drafts(app: App, args: argparse.Namespace, out: TextIO) -> int:
    store = app.store
    actor = _actor(args)
    if args.action == "list":
        states = [DraftState(s) for s in args.state] if args.state else None
        drafts = store.list_drafts(states=states, mailbox=args.mailbox, limit=args.limit)
        if args.json:
            for d in drafts:
                out.write(json.dumps(_draft_dict(app, d), ensure_ascii=False) + "\n")
            return EXIT_OK
        if not drafts:
            out.write("no drafts\n")
            return EXIT_OK
        out.write(f"{'id':>5}  {'state':<10} {'mailbox':<10} {'to':<30} subject\n")
        for d in drafts:
            out.write(f"{d.id:>5}  {d.state:<10} {_cut(d.mailbox, 10):<10} {_cut(d.to_addr, 30):<30} "
                      f"{_cut(d.subject, 60)}\n")
        return EXIT_OK

    if args.action == "show":
        return _show_draft(app, args, out)
    body = _read_body(args) if args.action == "edit" else None
    worst = EXIT_OK
    for draft_id in args.ids:
        try:
            draft = _change_draft(app, args, draft_id, body, actor)
        except NotFoundError as exc:
            print(f"mailbot: {exc}", file=sys.stderr)
            worst = max(worst, EXIT_NOT_FOUND)
            continue
        except (DraftStateError, ConcurrentUpdateError) as exc:
            print(f"mailbot: {exc}", file=sys.stderr)
            worst = max(worst, EXIT_STATE)
            continue
        out.write(f"draft {draft.id} is now {draft.state}\n")
    if args.action in ("approve", "edit") and args.send_now:
        report = asyncio.run(app.send_worker().send_due())
        for draft_id in args.ids:
            draft = store.get_draft(draft_id)
            out.write(f"draft {draft.id} is now {draft.state}"
                      + (f": {draft.last_error}" if draft.last_error else "") + "\n")
        if report.failed:
            worst = max(worst, EXIT_FAIL)
    return worst


def _change_draft(app: App, args: argparse.Namespace, draft_id: int, body: str | None, actor: str) -> Any:
    store = app.store
    draft = store.get_draft(draft_id)
    if args.action == "approve":
        return store.transition(draft.id, DraftState.APPROVED, actor=actor, reason=args.reason or "",
                                expected_version=draft.version)
    if args.action == "edit":
        return store.transition(draft.id, DraftState.EDITED, actor=actor, reason=args.reason or "edited",
                                expected_version=draft.version, subject=args.subject, body=body)
    return store.transition(draft.id, DraftState.REJECTED, actor=actor, reason=args.reason,
                            expected_version=draft.version)


def _show_draft(app: App, args: argparse.Namespace, out: TextIO) -> int:
    draft = app.store.get_draft(args.id)
    data = _draft_dict(app, draft, full=True)
    if args.json:
        out.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return EXIT_OK
    out.write(f"draft {data['id']} [{data['state']}] to {data['to']} (mail {data['mail_id']}, "
              f"mailbox {data['mailbox']})\n")
    orig = data["original"]
    out.write(f"original from {orig['from']}: {orig['subject']}\n  outcome: {orig['outcome']}: "
              f"{orig['reason']}\n")
    analysis = orig.get("analysis")
    if analysis:
        out.write(f"  analysis: language {analysis['language']}, category {analysis['category']}, "
                  f"tone {analysis['tone']}, signals {', '.join(analysis['signals']) or 'none'}\n")
        for line in analysis.get("explanation", [])[:8]:
            out.write(f"    - {line}\n")
    for line in (orig["text"] or "(body purged or empty)").splitlines()[:40]:
        out.write(f"  | {line}\n")
    out.write(f"\nSubject: {data['subject']}\n\n{data['body'] or '(no text yet: edit the draft)'}\n")
    out.write("\nhistory:\n")
    for e in data["audit"]:
        out.write(f"  {e['at']}  {e['actor']:<12} {e['action']:<12} {e['from'] or ''}->{e['to'] or ''}"
                  f"  {e['reason'] or ''}\n")
    return EXIT_OK


def _read_body(args: argparse.Namespace) -> str | None:
    if args.body is not None:
        return str(args.body)
    if args.body_file:
        if args.body_file == "-":
            return sys.stdin.read()
        try:
            return Path(args.body_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the body file: {exc.strerror}", file=args.body_file) from exc
    return None


# ------------------------------------------------------------------ NLP


def _load_analyzer(model: str | None) -> Any:
    from mailbot.nlp.analyzer import Analyzer

    return Analyzer.load(model)


def cmd_classify(args: argparse.Namespace, out: TextIO) -> int:
    """JSON lines in (stdin) or .eml paths, one JSON analysis line out per input, in order."""
    from mailbot.nlp.analyzer import MailText
    from mailbot.nlp.data import unlabelled_lines

    analyzer = _load_analyzer(args.model)
    failed = 0
    items: list[tuple[MailText | None, str]] = []
    if args.paths:
        for path in args.paths:
            items.append(_eml_item(path))
    else:
        for ex, problem in unlabelled_lines(sys.stdin):
            items.append((MailText(ex.subject, ex.body), "") if ex is not None else (None, problem))
    # Analyse in batches, but print in input order with errors in their place.
    batch = 512
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        mails = [m for m, _ in chunk if m is not None]
        results = iter(analyzer.analyse_many(mails))
        for mail, error in chunk:
            if mail is None:
                failed += 1
                out.write(json.dumps({"error": error}, ensure_ascii=False) + "\n")
            else:
                out.write(json.dumps(next(results).to_dict(), ensure_ascii=False) + "\n")
    out.flush()
    return EXIT_FAIL if failed else EXIT_OK


def _eml_item(path: str) -> tuple[Any, str]:
    from mailbot.nlp.analyzer import MailText
    from mailbot.text.clean import clean
    from mailbot.text.mime import parse

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return None, f"{path}: cannot read: {exc.strerror}"
    mail = parse(data)
    cleaned = clean(mail.text)
    return MailText(mail.subject, mail.text, mail.from_name, cleaned.sign_off_name), ""


def cmd_train(args: argparse.Namespace, out: TextIO) -> int:
    from mailbot.nlp.data import read_jsonl
    from mailbot.nlp.train import train

    overrides = _overrides(args.set or [])
    data = read_jsonl(args.data)
    dev = read_jsonl(args.dev) if args.dev else None

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    report = train(data, dev, args.output, overrides=overrides, progress=progress)
    for lang, info in report.languages.items():
        out.write(f"{lang}: trained on {info['train']} mails, dev category macro-F1 "
                  f"{info['dev_category_macro_f1']:.3f}, tone macro-F1 {info['dev_tone_macro_f1']:.3f}\n")
    out.write(f"model saved to {report.output}\n")
    return EXIT_OK


def _overrides(items: list[str]) -> dict[str, Any]:
    """--set section.key=value (value parsed as JSON when it can be, else a string)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set takes section.key=value, not {item!r}")
        try:
            overrides[key] = json.loads(value)
        except ValueError:
            overrides[key] = value
    return overrides


def cmd_eval(args: argparse.Namespace, out: TextIO) -> int:
    from mailbot.nlp.data import read_jsonl
    from mailbot.nlp.evaluate import evaluate, load_baseline_train

    analyzer = _load_analyzer(args.model)
    data = read_jsonl(args.data)
    baseline_train = None if args.no_baseline else load_baseline_train(args.train)
    result = evaluate(analyzer, data, baseline_train=baseline_train)
    out.write((json.dumps(result.to_dict(), indent=2) if args.json else result.format()) + "\n")
    return EXIT_OK


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailbot",
        description="Email auto-response and macro engine for customer-support teams.",
        epilog="Exit codes: 0 ok, 1 failed, 2 usage or config error, 3 not found, 4 state conflict.",
    )
    parser.add_argument("--version", action="version", version=f"mailbot {__version__}")
    parser.add_argument("-c", "--config", help="config file (default: $MAILBOT_CONFIG or "
                                               "config/mailbot.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon (or --once: work through the backlog and exit)")
    p.add_argument("--once", action="store_true", help="handle what is waiting, send what is due, exit")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate the configuration and exit")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("drafts", help="list, show, approve, edit or reject reply drafts")
    dsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    d = dsub.add_parser("list", help="drafts, oldest first")
    d.add_argument("--state", action="append", choices=[s.value for s in DraftState],
                   help="only this state (repeatable)")
    d.add_argument("--mailbox")
    d.add_argument("--limit", type=int, default=100)
    d.add_argument("--json", action="store_true", help="one JSON object per line")
    d = dsub.add_parser("show", help="one draft with its original mail and history")
    d.add_argument("id", type=int)
    d.add_argument("--json", action="store_true")
    for name, helptext in (("approve", "approve a draft for sending"),
                           ("edit", "change a draft's text (and approve it)"),
                           ("reject", "decide not to reply")):
        d = dsub.add_parser(name, help=helptext)
        d.add_argument("ids", type=int, nargs="+", metavar="ID", help="one or more draft ids")
        d.add_argument("--by", help="who does this (default: $USER)")
        d.add_argument("--reason", required=name == "reject", help="why (kept in the audit log)")
        if name == "edit":
            d.add_argument("--subject")
            group = d.add_mutually_exclusive_group(required=True)
            group.add_argument("--body", help="the new body text")
            group.add_argument("--body-file", help="read the new body from a file ('-' for stdin)")
        if name in ("approve", "edit"):
            d.add_argument("--send-now", action="store_true",
                           help="send at once instead of leaving it to the running daemon")
    p.set_defaults(func=cmd_drafts)

    p = sub.add_parser("classify", help="analyse mail: JSON lines on stdin, or .eml paths; JSON lines out")
    p.add_argument("paths", nargs="*", help=".eml files (default: JSON lines on stdin with subject and body)")
    p.add_argument("--model", help="a model folder (default: the model shipped with mailbot)")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("train", help="train a model from labelled JSON lines")
    p.add_argument("--data", required=True, help="training data, one JSON mail per line")
    p.add_argument("--output", required=True, help="folder to write the model to")
    p.add_argument("--dev", help="development data for choosing the best epoch and thresholds")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override a value of mailbot/nlp/config.cfg (repeatable)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="precision, recall, F1 and confusion matrix, next to a baseline")
    p.add_argument("--data", required=True, help="labelled test data, one JSON mail per line")
    p.add_argument("--model", help="a model folder (default: the model shipped with mailbot)")
    p.add_argument("--train", help="training data for the TF-IDF baseline (default: the model's corpus)")
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=cmd_eval)

    from mailbot.web.commands import add_commands  # `web` and `users`: the agents' page

    add_commands(sub)
    from mailbot.respond.cli import add_parsers  # `macros lint|test|preview` and `respond`

    add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Migrations run at every start; their step-by-step log is noise for operators.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    stream = out or sys.stdout
    try:
        return int(args.func(args, stream))
    except ConfigError as exc:
        print(f"mailbot: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NotFoundError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except DataError as exc:
        print(f"mailbot: invalid data: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (DraftStateError, ConcurrentUpdateError) as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return EXIT_STATE
    except MailbotError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
