"""Macro files (``macros/*.yaml``, one macro per file): reading, validating, compiling.

``read_macro`` checks the YAML and the schema (pydantic), ``compile_macro`` compiles the
templates and checks what they read. Both return findings rather than raising, so one run of
the linter reports every problem of every file, each with file and line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from jinja2 import Environment, Template, TemplateSyntaxError
from pydantic import BaseModel, ConfigDict, Field

from mailbot.models import LANGUAGES
from mailbot.respond.conditions import When
from mailbot.respond.findings import Finding, error, warning
from mailbot.respond.render import Origin, Snippet, compile_template
from mailbot.respond.usage import TemplateUsage, analyse
from mailbot.respond.variables import ALWAYS_SET, ENTITY_VARIABLE, KNOWN, MAYBE_SET
from mailbot.respond.yamlfile import KeyPath, YamlDoc, key_text, read_spec

PARTS: tuple[str, ...] = ("subject", "body")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Offer(BaseModel):
    """What the macro offers. Extra keys (``days: 14``) are passed to the templates as ``offer``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str                                               # refund | voucher | replacement | ...
    max_amount: Annotated[float, Field(ge=0)] | None = None  # above it: never sent automatically


class Do(_Model):
    action: Literal["reply", "escalate"] = "reply"
    tags: tuple[str, ...] = ()
    offer: Offer | None = None


class Variant(_Model):
    subject: str
    body: str


class MacroSpec(_Model):
    id: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    description: Annotated[str, Field(min_length=1)]
    priority: int = 0
    when: When = When()
    do: Do = Do()
    templates: dict[str, Variant] = Field(default_factory=dict)


@dataclass(frozen=True)
class MacroFile:
    """A macro file that passed the YAML and schema checks."""

    spec: MacroSpec
    doc: YamlDoc
    data: bytes

    @property
    def shown(self) -> str:
        return self.doc.file

    def line(self, *path: str | int) -> int | None:
        return self.doc.line(path)


@dataclass(frozen=True)
class Macro:
    """A compiled macro, ready to render. Immutable; a reload builds new ones."""

    spec: MacroSpec
    file: str
    templates: Mapping[tuple[str, str], Template]       # (language, "subject" | "body")
    origins: Mapping[str, Origin]                       # template filename -> its file and line
    snippets: frozenset[str]                            # used, directly or through other snippets
    variables: Mapping[str, frozenset[str]]             # per language: the variables it reads
    hash: str                                           # sha256 of the file + snippets, 12 hex
    lines: Mapping[str, int] = field(default_factory=dict)   # "when", "priority", "id" -> line

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def priority(self) -> int:
        return self.spec.priority

    @property
    def when(self) -> When:
        return self.spec.when

    def languages(self) -> tuple[str, ...]:
        return tuple(lang for lang in LANGUAGES if (lang, "body") in self.templates)


# ------------------------------------------------------------------ reading


def read_macro(text: str, data: bytes, shown: str) -> tuple[MacroFile | None, list[Finding]]:
    spec, doc, findings = read_spec(text, shown, MacroSpec, "a macro file must be a mapping with id, "
                                    "description, when, do and templates")
    if spec is None or doc is None:
        return None, findings
    for path, message in spec.when.vocabulary_problems():
        full = ("when", *path)
        findings.append(error(shown, doc.line(full), message, key_text(full)))
    for lang in spec.templates:
        if lang not in LANGUAGES:
            findings.append(error(shown, doc.line(("templates", lang)),
                                  f"unknown language {lang!r} (one of: {', '.join(LANGUAGES)})",
                                  key_text(("templates", lang))))
    if any(f.severity == "error" for f in findings):
        return None, findings
    return MacroFile(spec, doc, data), findings


# ------------------------------------------------------------------ compiling


@dataclass
class _Check:
    """What compiling one macro collects."""

    findings: list[Finding] = field(default_factory=list)
    snippets: set[str] = field(default_factory=set)
    dynamic: bool = False


def compile_macro(mf: MacroFile, env: Environment, snippets: Mapping[str, Snippet],
                  snippet_usage: Mapping[str, TemplateUsage], *,
                  must_have: tuple[str, ...] | None = None) -> tuple[Macro | None, list[Finding]]:
    """Compile the templates and check what they read.

    ``must_have``: the languages the macro needs variants for (default: every language its
    ``when`` can match).
    """
    spec, shown = mf.spec, mf.shown
    check = _Check()
    templates: dict[tuple[str, str], Template] = {}
    origins: dict[str, Origin] = {s.shown: Origin(s.shown, 1, s.source) for s in snippets.values()}
    variables: dict[str, set[str]] = {}
    allowed = KNOWN | frozenset(env.globals)
    guaranteed = ALWAYS_SET | {ENTITY_VARIABLE[k] for k in spec.when.entities if k in ENTITY_VARIABLE}
    if spec.do.offer is not None:
        guaranteed |= {"offer"}
    maybe = MAYBE_SET - guaranteed

    for lang, variant in spec.templates.items():
        for part in PARTS:
            path: KeyPath = ("templates", lang, part)
            source = getattr(variant, part)
            filename = f"{shown}#{key_text(path)}"
            first = mf.doc.text_line(path) or 1
            try:
                usage = analyse(env, source)
                templates[(lang, part)] = compile_template(env, source, name=filename, filename=filename)
            except TemplateSyntaxError as exc:
                check.findings.append(error(shown, first + (exc.lineno or 1) - 1,
                                            f"template does not compile: {exc.message}", key_text(path)))
                continue
            origins[filename] = Origin(shown, first, source)
            names = variables.setdefault(lang, set())
            names.update(usage.free & KNOWN)
            for name in sorted(usage.free - allowed):
                check.findings.append(error(
                    shown, first + usage.first_line(name) - 1,
                    f"unknown variable {name!r} (see the variable table in docs/macros.md)", key_text(path)))
            for use in usage.unguarded(maybe):
                check.findings.append(error(shown, first + use.line - 1, _maybe_undefined(use.name),
                                            key_text(path)))
            _check_includes(usage, shown, first, key_text(path), spec.id, maybe, snippets, snippet_usage,
                            check, names, ())

    wanted = must_have if must_have is not None else (spec.when.languages or LANGUAGES)
    if spec.templates or spec.do.action == "reply":
        for lang in wanted:
            if lang in LANGUAGES and lang not in spec.templates:
                at = ("templates",) if "templates" in mf.doc.data else ()
                check.findings.append(error(shown, mf.doc.line(at), f"missing {lang} variant "
                                            f"(subject and body)", "templates"))
    if check.dynamic:
        check.snippets.update(snippets)  # any snippet may be used: all are part of the version
        check.findings.append(warning(shown, mf.doc.line(("templates",)),
                                      "an include with a computed name: the snippet it loads cannot be "
                                      "checked; prefer a literal name such as \"greeting.nl\""))
    if any(f.severity == "error" for f in check.findings):
        return None, check.findings
    digest = hashlib.sha256(mf.data)
    for name in sorted(check.snippets):
        digest.update(b"\0snippet\0" + name.encode() + b"\0" + snippets[name].data)
    lines = {key: line for key in ("id", "priority", "when", "templates")
             if (line := mf.doc.lines.get((key,))) is not None}
    macro = Macro(spec=spec, file=shown, templates=templates, origins=origins,
                  snippets=frozenset(check.snippets),
                  variables={k: frozenset(v) for k, v in variables.items()},
                  hash=digest.hexdigest()[:12], lines=lines)
    return macro, check.findings


def _maybe_undefined(name: str) -> str:
    hint = next((f" or require it with when.entities: [{kind}]" for kind, var in ENTITY_VARIABLE.items()
                 if var == name), "")
    return (f"{name!r} may be undefined for some mails; use it inside "
            f"{{% if {name} is defined %}} ... {{% endif %}}{hint}")


def _check_includes(usage: TemplateUsage, shown: str, first: int, key: str, macro_id: str,
                    maybe: frozenset[str], snippets: Mapping[str, Snippet],
                    snippet_usage: Mapping[str, TemplateUsage], check: _Check, names: set[str],
                    stack: tuple[str, ...], outer_guards: frozenset[str] = frozenset()) -> None:
    """Follow includes into snippets, carrying the guards in force at the include."""
    for inc in usage.includes:
        guards = outer_guards | inc.guards
        if inc.name is None:
            check.dynamic = True
            continue
        if inc.name not in snippets:
            where_file, where_line = (shown, first + inc.line - 1) if not stack else \
                (snippets[stack[-1]].shown, inc.line)
            known = ", ".join(sorted(snippets)) or "none"
            check.findings.append(error(where_file, where_line,
                                        f"no snippet named {inc.name!r} (snippets: {known})", key))
            continue
        if inc.name in stack:
            check.findings.append(error(snippets[inc.name].shown, inc.line,
                                        f"snippet {inc.name!r} includes itself (via {' -> '.join(stack)})"))
            continue
        check.snippets.add(inc.name)
        sub = snippet_usage.get(inc.name)
        if sub is None:  # the snippet did not compile; that is reported for the snippet itself
            continue
        names.update(sub.free & KNOWN)
        snippet = snippets[inc.name]
        for use in sub.unguarded(maybe, guards):
            check.findings.append(error(snippet.shown, use.line,
                                        f"{_maybe_undefined(use.name)} (included by macro {macro_id})"))
        _check_includes(sub, shown, first, key, macro_id, maybe, snippets, snippet_usage, check, names,
                        (*stack, inc.name), guards)


def describe_offer(offer: Offer | None) -> dict[str, Any] | None:
    return offer.model_dump() if offer is not None else None
