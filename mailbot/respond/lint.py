"""Loading a macro folder and a policy file as one set, and every check on it.

``load_set`` reads everything, reports every problem it finds (not just the first), and
returns a usable ``MacroSet`` only when there are no errors. Warnings do not block a set.

Per file: YAML syntax, schema (unknown and missing keys, wrong types), vocabulary (categories,
tones, signals, languages, entity kinds), templates that do not compile, unknown variables,
variables that may be undefined read without a guard, unknown snippets, missing ``nl``/``en``
variants. Across files: duplicate ids, macros that always tie (same priority, equivalent
``when``: an error), macros that may tie or can never be chosen (warnings), policy rules
that name unknown macros or can never be reached.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, TemplateSyntaxError

from mailbot.models import LANGUAGES
from mailbot.respond.catalog import MacroSet
from mailbot.respond.conditions import When
from mailbot.respond.findings import Finding, Severity, SortsFindings, error, warning
from mailbot.respond.macros import Macro, MacroFile, compile_macro, read_macro
from mailbot.respond.policy import Policy, lint_policy, read_policy
from mailbot.respond.render import SNIPPET_SUFFIX, Snippet, make_environment, snippet_name
from mailbot.respond.usage import TemplateUsage, analyse
from mailbot.respond.variables import KNOWN

SNIPPETS_DIR = "snippets"
MACRO_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LintResult(SortsFindings):
    macro_set: MacroSet | None       # None when there are errors
    findings: tuple[Finding, ...]


def shown_path(path: Path) -> str:
    """How messages name a file: relative to the working directory when it is below it."""
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except (OSError, ValueError):
        return str(path)


def macro_files(macros_dir: Path) -> list[Path]:
    """The macro files of a folder (not its snippets/ and tests/ subfolders)."""
    if not macros_dir.is_dir():
        return []
    return sorted(p for p in macros_dir.iterdir() if p.suffix in MACRO_SUFFIXES and p.is_file())


def snippet_files(macros_dir: Path) -> list[Path]:
    folder = macros_dir / SNIPPETS_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith(SNIPPET_SUFFIX) and p.is_file())


def load_set(macros_dir: Path, policy_file: Path, *, now: datetime | None = None) -> LintResult:
    findings: list[Finding] = []
    if not macros_dir.is_dir():
        findings.append(error(shown_path(macros_dir), None, "the macros folder does not exist"))
        return LintResult(None, tuple(findings))

    snippets = _read_snippets(macros_dir, findings)
    env = make_environment(snippets)
    snippet_usage = _snippet_usage(env, snippets, findings)

    policy: Policy | None = None
    policy_shown = shown_path(policy_file)
    text = _read(policy_file, policy_shown, findings)
    if text is not None:
        policy, found = read_policy(text[0], text[1], policy_shown)
        findings.extend(found)
    fallback = policy.spec.fallback_macro if policy else None

    files: list[MacroFile] = []
    unreadable = 0
    paths = macro_files(macros_dir)
    if not paths:
        findings.append(error(shown_path(macros_dir), None, "no macro files (*.yaml) in the macros folder"))
    for path in paths:
        shown = shown_path(path)
        text = _read(path, shown, findings)
        if text is None:
            unreadable += 1
            continue
        mf, found = read_macro(text[0], text[1], shown)
        findings.extend(found)
        if mf is not None:
            files.append(mf)
        else:
            unreadable += 1

    files = _unique_ids(files, findings)
    macros: list[Macro] = []
    for mf in files:
        must_have = LANGUAGES if mf.spec.id == fallback else None
        macro, found = compile_macro(mf, env, snippets, snippet_usage, must_have=must_have)
        findings.extend(found)
        if macro is not None:
            macros.append(macro)

    macros.sort(key=lambda m: (-m.priority, m.id))
    findings.extend(_cross_check(macros, fallback))
    used = set().union(*(m.snippets for m in macros)) if macros else set()
    for name, snippet in sorted(snippets.items()):
        if macros and len(macros) == len(files) and name not in used:  # else: maybe used by a broken one
            findings.append(warning(snippet.shown, None, f"snippet {name!r} is not used by any macro"))
    if policy is not None:
        findings.extend(lint_policy(policy, None if unreadable else {mf.spec.id for mf in files}))

    if policy is None or any(f.severity is Severity.ERROR for f in findings):
        return LintResult(None, tuple(findings))
    macro_set = MacroSet(
        macros=tuple(macros), policy=policy, env=env, snippets=snippets,
        loaded_at=now or datetime.now(UTC),
        warnings=tuple(f for f in findings if f.severity is Severity.WARNING),
    )
    return LintResult(macro_set, tuple(findings))


def _read(path: Path, shown: str, findings: list[Finding]) -> tuple[str, bytes] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        findings.append(error(shown, None, "file not found"))
        return None
    except OSError as exc:
        findings.append(error(shown, None, f"cannot read: {exc.strerror}"))
        return None
    try:
        return data.decode("utf-8"), data
    except UnicodeDecodeError as exc:
        findings.append(error(shown, None, f"not UTF-8 text ({exc.reason})"))
        return None


def _read_snippets(macros_dir: Path, findings: list[Finding]) -> dict[str, Snippet]:
    snippets: dict[str, Snippet] = {}
    for path in snippet_files(macros_dir):
        shown = shown_path(path)
        text = _read(path, shown, findings)
        if text is not None:
            snippets[snippet_name(path)] = Snippet(snippet_name(path), shown, text[0], text[1])
    return snippets


def _snippet_usage(env: Environment, snippets: dict[str, Snippet], findings: list[Finding]
                   ) -> dict[str, TemplateUsage]:
    allowed = KNOWN | frozenset(env.globals)
    usage: dict[str, TemplateUsage] = {}
    for name, snippet in snippets.items():
        try:
            found = analyse(env, snippet.source)
        except TemplateSyntaxError as exc:
            findings.append(error(snippet.shown, exc.lineno, f"template does not compile: {exc.message}"))
            continue
        for var in sorted(found.free - allowed):
            findings.append(error(snippet.shown, found.first_line(var),
                                  f"unknown variable {var!r} (see the variable table in docs/macros.md)"))
        usage[name] = found
    return usage


def _unique_ids(files: list[MacroFile], findings: list[Finding]) -> list[MacroFile]:
    first: dict[str, MacroFile] = {}
    for mf in files:
        other = first.get(mf.spec.id)
        if other is not None:
            findings.append(error(mf.shown, mf.line("id"), f"macro id {mf.spec.id!r} is already used by "
                                                           f"{other.shown}:{other.line('id')}", "id"))
        else:
            first[mf.spec.id] = mf
    return list(first.values())


def _cross_check(macros: Sequence[Macro], fallback: str | None) -> list[Finding]:
    """Ties and shadowing. ``macros`` is in selection order (priority, then id)."""
    out: list[Finding] = []
    flagged: set[str] = set()
    for macro in macros:
        if macro.id == fallback:
            flagged.add(macro.id)  # it never competes (MacroSet.select)
            if macro.when != When():
                out.append(warning(macro.file, macro.lines.get("when"),
                                   "this is the policy's fallback_macro: it is used only when no other "
                                   "macro matches, so its when is ignored", "when"))
            continue
        if not macro.when.satisfiable():
            out.append(warning(macro.file, macro.lines.get("when"), "this macro can never match "
                               "(an empty list, or a signal both required and excluded)", "when"))
            flagged.add(macro.id)
    for index, later in enumerate(macros):
        if later.id in flagged:
            continue
        for earlier in macros[:index]:
            if earlier.id in flagged:
                continue
            same = earlier.priority == later.priority
            if same and earlier.when.covers(later.when) and later.when.covers(earlier.when):
                out.append(error(
                    later.file, later.lines.get("when") or later.lines.get("priority"),
                    f"always ties with macro {earlier.id!r} ({earlier.file}:{earlier.lines.get('when', 1)}): "
                    f"same priority {later.priority} and the same conditions; give one a higher priority "
                    f"or narrow its when", "when"))
                flagged.add(later.id)
                break
            if earlier.when.covers(later.when):
                why = (f"has a higher priority ({earlier.priority})" if not same else
                       "has the same priority and its id sorts first")
                out.append(warning(
                    later.file, later.lines.get("when") or later.lines.get("priority"),
                    f"unreachable: macro {earlier.id!r} ({earlier.file}) matches every mail this one matches "
                    f"and {why}", "when"))
                flagged.add(later.id)
                break
            if same and earlier.when.overlaps(later.when):
                out.append(warning(
                    later.file, later.lines.get("priority") or later.lines.get("when"),
                    f"may tie with macro {earlier.id!r} ({earlier.file}): same priority {later.priority} and "
                    f"some mails match both; the tie goes to {earlier.id!r}", "priority"))
    return out
