"""``mailbot macros lint|test|preview`` and ``mailbot respond``.

``add_parsers`` is called by ``mailbot.cli.build_parser``. The macros folder and the policy
file come from ``--macros`` / ``--policy``, else the configuration (``respond.macros``,
``respond.policy``), else ``macros/`` and ``config/policy.yaml`` in the working directory.
Exit codes as for every mailbot command: 0 ok, 1 failed (a golden case, a render, an
input), 2 invalid macros / policy / usage, 3 no such macro.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from mailbot.config import Company, Mailbox, Settings, config_path
from mailbot.config import load as load_config
from mailbot.errors import ConfigError, DataError, UnknownMacroError
from mailbot.models import LANGUAGES
from mailbot.respond.catalog import MacroSet
from mailbot.respond.engine import Signature
from mailbot.respond.lint import LintResult, load_set, macro_files

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3
BATCH = 256


@dataclass(frozen=True)
class _Where:
    settings: Settings | None
    macros: Path
    policy: Path

    @property
    def signature(self) -> Signature:
        company = (self.settings.company if self.settings else Company()).model_dump()
        agent = self.settings.respond.agent if self.settings else ""
        return Signature(company, agent or company.get("contact_person", ""))

    def mailbox(self, name: str | None) -> Mailbox:
        from mailbot.respond.dryrun import dry_run_mailbox

        if self.settings is None:
            if name:
                raise ConfigError(f"--mailbox {name} needs a configuration file")
            return dry_run_mailbox()
        return self.settings.mailbox(name) if name else self.settings.mailboxes[0]

    def model(self, explicit: str | None) -> Path | None:
        if explicit:
            return Path(explicit)
        return self.settings.nlp.model if self.settings else None


def _where(args: argparse.Namespace) -> _Where:
    settings = None
    path = config_path(args.config)
    if args.config or os.environ.get("MAILBOT_CONFIG") or path.exists():
        settings = load_config(path)
    macros = Path(args.macros) if args.macros else settings.respond.macros if settings else Path("macros")
    policy = (Path(args.policy) if args.policy else settings.respond.policy if settings
              else Path("config/policy.yaml"))
    return _Where(settings, macros, policy)


def _load_or_report(where: _Where) -> MacroSet | None:
    result = load_set(where.macros, where.policy)
    if result.macro_set is None:
        for finding in result.errors:
            print(f"mailbot: {finding}", file=sys.stderr)
        print(f"mailbot: the macros in {where.macros} (policy {where.policy}) have "
              f"{len(result.errors)} error(s); run `mailbot macros lint`", file=sys.stderr)
    return result.macro_set


def _analyzer(where: _Where, model: str | None) -> Any:
    from mailbot.nlp.analyzer import Analyzer

    return Analyzer.load(where.model(model))


# ------------------------------------------------------------------ macros lint


def cmd_lint(args: argparse.Namespace, out: TextIO) -> int:
    where = _where(args)
    result = load_set(where.macros, where.policy)
    if args.json:
        out.write(json.dumps(_lint_json(result, where), ensure_ascii=False, indent=2) + "\n")
    else:
        for finding in result.findings:
            out.write(f"{finding.severity}: {finding}\n")
        count = len(result.macro_set.macros) if result.macro_set else len(macro_files(where.macros))
        summary = f"{len(result.errors)} error(s), {len(result.warnings)} warning(s) in {count} macro(s)"
        out.write(("OK: " if not result.errors else "") + summary + f" ({where.macros}, {where.policy})\n")
    return EXIT_USAGE if result.errors else EXIT_OK


def _lint_json(result: LintResult, where: _Where) -> dict[str, Any]:
    return {"macros": str(where.macros), "policy": str(where.policy), "ok": not result.errors,
            "errors": [f.to_dict() for f in result.errors],
            "warnings": [f.to_dict() for f in result.warnings]}


# ------------------------------------------------------------------ macros test


def cmd_test(args: argparse.Namespace, out: TextIO) -> int:
    from mailbot.respond.goldens import load_cases, run_cases

    where = _where(args)
    paths = [Path(p) for p in args.paths] or [where.macros / "tests"]
    cases = load_cases(paths)
    if not cases:
        out.write(f"no golden cases in {', '.join(map(str, paths))}\n")
        return EXIT_FAIL
    macro_set = _load_or_report(where)
    if macro_set is None:
        return EXIT_USAGE
    results = run_cases(cases, macro_set, _analyzer(where, args.model), signature=where.signature,
                        mailbox=where.mailbox(args.mailbox))
    failed = 0
    for result in results:
        loaded = result.loaded
        if result.passed:
            out.write(f"PASS {loaded.where} {loaded.case.name}\n")
            continue
        failed += 1
        out.write(f"FAIL {loaded.where} {loaded.case.name}\n")
        for problem in result.problems:
            out.write(f"     {problem}\n")
        a = result.analysis
        out.write(f"     (analysis: {a.language}, {a.category} {a.confidence:.2f}, {a.tone}, "
                  f"signals: {', '.join(a.signals) or 'none'})\n")
    out.write(f"{len(results) - failed} passed, {failed} failed\n")
    return EXIT_FAIL if failed else EXIT_OK


# ------------------------------------------------------------------ macros preview


def cmd_preview(args: argparse.Namespace, out: TextIO) -> int:
    from mailbot.respond import dryrun, engine

    where = _where(args)
    macro_set = _load_or_report(where)
    if macro_set is None:
        return EXIT_USAGE
    try:
        macro = macro_set.get(args.id)
    except UnknownMacroError as exc:
        known = ", ".join(m.id for m in macro_set.macros)
        print(f"mailbot: {exc} (macros: {known})", file=sys.stderr)
        return EXIT_NOT_FOUND
    try:
        data = Path(args.mail).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror}", file=args.mail) from exc
    item = dryrun.prepare(data, where.mailbox(args.mailbox))
    analysis = dryrun.analyse_all(_analyzer(where, args.model), [item])[0]
    rendering = engine.try_render(macro, item.mail, item.cleaned, analysis, signature=where.signature,
                                  language=args.language)
    out.write(f"macro {macro.id} ({macro.file}, version {macro.hash}), language {rendering.language}\n")
    out.write(f"analysis: {analysis.language}, {analysis.category} {analysis.confidence:.2f}, "
              f"{analysis.tone}, signals: {', '.join(analysis.signals) or 'none'}\n")
    chosen = dryrun.decide(macro_set, item, analysis, signature=where.signature, now=datetime.now(UTC))
    out.write(f"for this mail the engine would choose: macro {chosen.macro_id}, {chosen.action.value} "
              f"({chosen.rule})\n\n")
    draft = rendering.draft(item.mail)
    out.write(f"Subject: {draft.subject}\n\n{draft.body}\n\n")
    out.write("variables used:\n")
    for name, value in draft.variables.items():
        out.write(f"  {name}: {json.dumps(value, ensure_ascii=False)}\n")
    warnings = [w for w in macro_set.warnings if w.file == macro.file
                or any(w.file == macro_set.snippets[s].shown for s in macro.snippets)]
    if warnings:
        out.write("warnings:\n")
        for finding in warnings:
            out.write(f"  {finding}\n")
    if rendering.error is not None:
        print(f"mailbot: {rendering.error}", file=sys.stderr)
        out.write(f"RENDER ERROR: {rendering.error}\n")
        return EXIT_FAIL
    return EXIT_OK


# ------------------------------------------------------------------ respond


def cmd_respond(args: argparse.Namespace, out: TextIO) -> int:
    """.eml paths or JSON lines on stdin in, one JSON line out per mail, in input order."""
    from mailbot.nlp.data import unlabelled_lines
    from mailbot.respond import dryrun

    where = _where(args)
    macro_set = _load_or_report(where)
    if macro_set is None:
        return EXIT_USAGE
    mailbox = where.mailbox(args.mailbox)
    now = _at(args.at, macro_set)
    items: list[tuple[dryrun.Prepared | None, str]] = []
    if args.paths:
        for path in args.paths:
            try:
                items.append((dryrun.prepare(Path(path).read_bytes(), mailbox), ""))
            except OSError as exc:
                items.append((None, f"{path}: cannot read: {exc.strerror}"))
    else:
        for ex, problem in unlabelled_lines(sys.stdin):
            sender = ex.extra.get("from") if ex is not None else None
            if ex is None or (sender is not None and not isinstance(sender, str)):
                items.append((None, problem or str(DataError("must be a string", file="<stdin>",
                                                             line=ex.line if ex else None, field="from"))))
                continue
            items.append((dryrun.prepare(dryrun.mail_bytes(ex.subject, ex.body, sender), mailbox), ""))
    analyzer = _analyzer(where, args.model)
    failed = 0
    for start in range(0, len(items), BATCH):
        chunk = items[start:start + BATCH]
        analyses = iter(dryrun.analyse_all(analyzer, [i for i, _ in chunk if i is not None]))
        for item, problem in chunk:
            if item is None:
                failed += 1
                out.write(json.dumps({"error": problem}, ensure_ascii=False) + "\n")
                continue
            analysis = next(analyses)
            decision = dryrun.decide(macro_set, item, analysis, signature=where.signature, now=now)
            out.write(json.dumps(dryrun.respond_record(analysis, decision), ensure_ascii=False) + "\n")
    out.flush()
    return EXIT_FAIL if failed else EXIT_OK


def _at(value: str | None, macro_set: MacroSet) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"--at takes an ISO date and time such as 2026-11-23T10:00, not {value!r}") from exc
    return when if when.tzinfo else when.replace(tzinfo=macro_set.policy.zone)


# ------------------------------------------------------------------ parser


def _locations(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--macros", metavar="DIR", help="the macros folder (default: respond.macros from the "
                                                        "configuration, else ./macros)")
    parser.add_argument("--policy", metavar="FILE", help="the policy file (default: respond.policy, else "
                                                         "./config/policy.yaml)")


def add_parsers(sub: Any) -> None:
    """Add ``macros`` and ``respond`` to the ``mailbot`` command's subparsers."""
    p = sub.add_parser("macros", help="check, test and preview the reply macros and the policy")
    msub = p.add_subparsers(dest="macros_action", required=True, metavar="ACTION")

    m = msub.add_parser("lint", help="check every macro, snippet and the policy; exit 2 on errors")
    _locations(m)
    m.add_argument("--json", action="store_true", help="the findings as one JSON object")
    m.set_defaults(func=cmd_lint)

    m = msub.add_parser("test", help="run the golden mails (default: the macros folder's tests/); "
                                     "exit 1 when any fails")
    m.add_argument("paths", nargs="*", metavar="PATH", help="golden test files or folders")
    _locations(m)
    m.add_argument("--model", help="a model folder (default: the configured or shipped model)")
    m.add_argument("--mailbox", help="screen as this configured mailbox (default: the first)")
    m.set_defaults(func=cmd_test)

    m = msub.add_parser("preview", help="render one macro for one mail in the terminal")
    m.add_argument("id", help="the macro id")
    m.add_argument("--mail", required=True, metavar="FILE.eml", help="the mail to render it for")
    m.add_argument("--language", choices=LANGUAGES, help="render this variant (default: the mail's)")
    _locations(m)
    m.add_argument("--model", help="a model folder (default: the configured or shipped model)")
    m.add_argument("--mailbox", help="screen as this configured mailbox (default: the first)")
    m.set_defaults(func=cmd_preview)

    p = sub.add_parser("respond", help="the whole pipeline without sending: .eml paths or JSON lines on "
                                       "stdin in, one JSON line per mail out")
    p.add_argument("paths", nargs="*", metavar="FILE.eml",
                   help=".eml files (default: JSON lines on stdin with subject, body and optionally from)")
    _locations(p)
    p.add_argument("--model", help="a model folder (default: the configured or shipped model)")
    p.add_argument("--mailbox", help="screen as this configured mailbox (default: the first)")
    p.add_argument("--at", help="decide as if it were this time (ISO; default: now), for business hours")
    p.set_defaults(func=cmd_respond)

