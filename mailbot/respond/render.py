"""Rendering macro templates safely: Jinja2's immutable sandbox, ``StrictUndefined``, and a
loader that can load snippets and nothing else.

Macro templates are compiled from the macro files themselves; ``{% include %}`` goes through
``SnippetLoader``, which knows only ``macros/snippets/*.j2``. Customer text reaches a template
only as a value in the context, so it is printed, never executed. Every failure while
rendering becomes a ``RenderError`` that names the file, the line and the variable.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, Environment, StrictUndefined, Template, TemplateNotFound, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from mailbot.errors import RenderError

SNIPPET_SUFFIX = ".j2"
_UNDEFINED = re.compile(r"^'([^']+)' is undefined")
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a compiled template's text came from, so an error can point at the file line."""

    file: str           # as messages name it
    first_line: int     # the file line of the template's line 1
    source: str

    def file_line(self, template_line: int) -> int:
        return self.first_line + max(template_line, 1) - 1

    def text_of(self, template_line: int) -> str:
        lines = self.source.splitlines()
        return lines[template_line - 1].strip() if 0 < template_line <= len(lines) else ""


@dataclass(frozen=True, slots=True)
class Snippet:
    """``macros/snippets/greeting.nl.j2``, included as ``"greeting.nl"``."""

    name: str
    shown: str          # the file as messages name it
    source: str
    data: bytes


class SnippetLoader(BaseLoader):
    """Loads snippets only: there is no way for a template to load anything else."""

    def __init__(self, snippets: Mapping[str, Snippet]) -> None:
        self._snippets = dict(snippets)

    def get_source(self, environment: Environment, template: str
                   ) -> tuple[str, str | None, Callable[[], bool] | None]:
        snippet = self._snippets.get(template)
        if snippet is None:
            raise TemplateNotFound(template)
        return snippet.source, snippet.shown, lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self._snippets)


def make_environment(snippets: Mapping[str, Snippet]) -> ImmutableSandboxedEnvironment:
    """One environment per loaded macro set (it caches that set's snippets).

    Plain text mail, so no autoescaping; the rendered body is tidied afterwards (``tidy``), so
    admins may write block tags on lines of their own without leaving blank lines behind.
    """
    return ImmutableSandboxedEnvironment(
        loader=SnippetLoader(snippets),
        undefined=StrictUndefined,
        autoescape=False,
        auto_reload=False,
    )


def compile_template(env: Environment, source: str, *, name: str, filename: str) -> Template:
    """Compile macro template text. ``filename`` is how a failure finds its way back to the
    file and line (see ``render``). Raises jinja2.TemplateSyntaxError."""
    code = env.compile(source, name=name, filename=filename)
    return env.template_class.from_code(env, code, env.make_globals(None))


def render(template: Template, context: Mapping[str, Any], *, macro_id: str, macro_file: str,
           origins: Mapping[str, Origin]) -> str:
    """Render one template. ``origins`` maps every template filename (the macro's parts and
    the snippets) to where its text came from, so the error names the file line and quotes it.

    Raises RenderError, never anything else: an admin's template must not crash the worker.
    """
    try:
        return template.render(context)
    except Exception as exc:  # translated: UndefinedError, SecurityError, TypeError, ...
        file, line, text = _where(exc, origins)
        variable = None
        if isinstance(exc, UndefinedError):
            match = _UNDEFINED.match(str(exc))
            variable = match.group(1) if match else None
            problem = str(exc)
        elif isinstance(exc, SecurityError):
            problem = f"not allowed in the sandbox: {exc}"
        elif isinstance(exc, TemplateNotFound):
            problem = f"no snippet named {exc.name!r}"
        else:
            problem = f"{type(exc).__name__}: {exc}"
        if text:
            problem += f" (in: {text})"
        raise RenderError(problem, macro_id=macro_id, file=file or macro_file, line=line,
                          variable=variable) from exc


def _where(exc: BaseException, origins: Mapping[str, Origin]) -> tuple[str | None, int | None, str]:
    """The innermost template frame of the traceback (Jinja2 rewrites tracebacks so template
    frames carry the template's filename and line): file, file line, the template line."""
    found: tuple[str | None, int | None, str] = (None, None, "")
    for frame in traceback.extract_tb(exc.__traceback__):
        origin = origins.get(frame.filename)
        if origin is not None:
            line = frame.lineno or 1
            found = (origin.file, origin.file_line(line), origin.text_of(line))
    return found


def tidy(text: str, *, one_line: bool = False) -> str:
    """Trailing spaces off, runs of blank lines to one, no blank lines at the ends.

    >>> tidy("Beste Jan,  \\n\\n\\n\\nDank.\\n\\n")
    'Beste Jan,\\n\\nDank.'
    """
    if one_line:
        return " ".join(text.split())
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n")


def snippet_name(path: Path) -> str:
    """``greeting.nl.j2`` -> ``greeting.nl``."""
    return path.name[: -len(SNIPPET_SUFFIX)]
