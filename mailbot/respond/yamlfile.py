"""Reading a YAML file so that every later error can name the line it is about.

PyYAML's ``safe_load`` forgets where values came from; its node tree (``yaml.compose``) keeps
start marks. We read both and keep a map from key path (``("when", "categories", 0)``) to the
1-based line, plus where each string scalar's text starts, so a Jinja2 error on line 3 of a
``body: |`` block becomes a line of the YAML file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from mailbot.errors import MacroError
from mailbot.respond.findings import Finding, error

_M = TypeVar("_M", bound=BaseModel)

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlDoc:
    file: str                                   # as shown in messages
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)        # key (or list item) -> line
    text_lines: dict[KeyPath, int] = field(default_factory=dict)   # string value -> its first line
    duplicates: tuple[tuple[KeyPath, int], ...] = ()               # keys given twice

    def line(self, path: Sequence[str | int]) -> int | None:
        """The line of ``path``, or of the nearest enclosing key that has one."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return 1 if self.data is not None else None

    def text_line(self, path: Sequence[str | int], template_line: int = 1) -> int | None:
        """The file line of line ``template_line`` of the string at ``path`` (a template).

        Exact for block scalars (``|``); for quoted one-liners it is the value's line.
        """
        start = self.text_lines.get(tuple(path))
        if start is None:
            return self.line(path)
        return start + max(template_line, 1) - 1


def key_text(path: Sequence[str | int]) -> str:
    """``("rules", 2, "when", "tones")`` -> ``rules[2].when.tones``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_text(path: Path, shown: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise MacroError("file not found", file=shown) from exc
    except UnicodeDecodeError as exc:
        raise MacroError(f"not UTF-8 text ({exc.reason})", file=shown) from exc
    except OSError as exc:
        raise MacroError(f"cannot read: {exc.strerror}", file=shown) from exc


def parse_yaml(text: str, shown: str) -> YamlDoc:
    """Parse one YAML document; a syntax error raises MacroError with the line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = f"column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        start = exc.context_mark
        if exc.context and start is not None and mark is not None and start.line != mark.line:
            problem += f" ({exc.context} that starts on line {start.line + 1})"
        raise MacroError(f"YAML syntax error: {column}{problem}", file=shown, line=line) from exc
    except yaml.YAMLError as exc:
        raise MacroError(f"YAML syntax error: {exc}", file=shown) from exc
    lines: dict[KeyPath, int] = {}
    text_lines: dict[KeyPath, int] = {}
    duplicates: list[tuple[KeyPath, int]] = []
    if node is not None:
        _walk(node, (), lines, text_lines, duplicates)
    return YamlDoc(shown, data, lines, text_lines, tuple(duplicates))


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], text_lines: dict[KeyPath, int],
          duplicates: list[tuple[KeyPath, int]]) -> None:
    if isinstance(node, yaml.ScalarNode):
        # Block scalars (| and >) start on the line after the indicator.
        text_lines[path] = node.start_mark.line + (2 if node.style in ("|", ">") else 1)
    elif isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            sub = (*path, key)
            if key in seen:
                duplicates.append((sub, key_node.start_mark.line + 1))
            seen.add(key)
            lines[sub] = key_node.start_mark.line + 1
            _walk(value_node, sub, lines, text_lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            sub = (*path, index)
            lines[sub] = item.start_mark.line + 1
            _walk(item, sub, lines, text_lines, duplicates)


def read_spec(text: str, shown: str, model: type[_M],
              what: str) -> tuple[_M | None, YamlDoc | None, list[Finding]]:
    """Parse ``text`` and validate it as ``model``: the spec (None on errors), the document
    (for line numbers) and the findings, each with file and line. ``what`` says what the top
    level must be ("a macro file must be a mapping with ...")."""
    try:
        doc = parse_yaml(text, shown)
    except MacroError as exc:
        return None, None, [error(shown, exc.line, exc.problem)]
    findings = [error(shown, line, "key given twice (the later value would silently win)", key_text(path))
                for path, line in doc.duplicates]
    if not isinstance(doc.data, dict):
        return None, doc, [*findings, error(shown, doc.line(()), what)]
    try:
        spec = model.model_validate(doc.data)
    except ValidationError as exc:
        return None, doc, [*findings, *schema_findings(exc, doc)]
    return spec, doc, findings


def schema_findings(exc: ValidationError, doc: YamlDoc) -> list[Finding]:
    out = []
    for problem in exc.errors():
        loc: KeyPath = tuple(p for p in problem["loc"] if isinstance(p, str | int))
        kind = problem["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = problem["msg"]
            if "input" in problem and not isinstance(problem["input"], dict | list):
                message += f" (got {problem['input']!r})"
        out.append(error(doc.file, doc.line(loc), message, key_text(loc)))
    return out
