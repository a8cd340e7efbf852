"""What a template reads, and where it reads a variable that may be undefined.

Under ``StrictUndefined`` a variable that is not set fails the render (the draft then goes to
an agent). The linter catches that earlier: it walks the Jinja2 syntax tree and tracks which
names are known to be defined at each point:

- inside ``{% if x is defined %}`` (and the ``else`` of ``{% if x is not defined %}``),
- in ``x if x is defined else ...`` and the right side of ``x is defined and ...``,
- as the argument of ``x | default(...)``.

Includes are recorded with the guards in force where they appear, so a snippet included
under ``{% if order is defined %}`` may use ``order``.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment, meta, nodes

_DEFAULT_FILTERS = ("default", "d")


@dataclass(frozen=True, slots=True)
class Use:
    name: str
    line: int           # line inside the template
    guarded: bool


@dataclass(frozen=True, slots=True)
class Include:
    name: str | None    # None: the name is computed ({% include "greeting." ~ language %})
    line: int
    guards: frozenset[str]


@dataclass(frozen=True, slots=True)
class TemplateUsage:
    free: frozenset[str]            # variables the template reads from the context
    uses: tuple[Use, ...]           # every read of a free variable, in order
    includes: tuple[Include, ...]

    def first_line(self, name: str) -> int:
        return next((u.line for u in self.uses if u.name == name), 1)

    def unguarded(self, names: frozenset[str], extra_guards: frozenset[str] = frozenset()) -> list[Use]:
        """Reads of ``names`` that no guard protects (one per name, the first)."""
        seen: set[str] = set()
        out = []
        for use in self.uses:
            if (use.name in names and not use.guarded and use.name not in extra_guards
                    and use.name not in seen):
                seen.add(use.name)
                out.append(use)
        return out


def analyse(env: Environment, source: str) -> TemplateUsage:
    """Raises jinja2.TemplateSyntaxError when ``source`` does not parse."""
    tree = env.parse(source)
    free = frozenset(meta.find_undeclared_variables(tree))
    walker = _Walker(free)
    walker.visit(tree, frozenset())
    return TemplateUsage(free, tuple(walker.uses), tuple(walker.includes))


def _positive(test: nodes.Node) -> frozenset[str]:
    """Names that are defined whenever ``test`` is true."""
    if isinstance(test, nodes.Test) and isinstance(test.node, nodes.Name) and test.name == "defined":
        return frozenset({test.node.name})
    if isinstance(test, nodes.Not):
        return _negative(test.node)
    if isinstance(test, nodes.And):
        return _positive(test.left) | _positive(test.right)
    return frozenset()


def _negative(test: nodes.Node) -> frozenset[str]:
    """Names that are defined whenever ``test`` is false."""
    if isinstance(test, nodes.Test) and isinstance(test.node, nodes.Name) and test.name == "undefined":
        return frozenset({test.node.name})
    if isinstance(test, nodes.Not):
        return _positive(test.node)
    if isinstance(test, nodes.Or):
        return _negative(test.left) | _negative(test.right)
    return frozenset()


class _Walker:
    def __init__(self, free: frozenset[str]) -> None:
        self.free = free
        self.uses: list[Use] = []
        self.includes: list[Include] = []

    def visit(self, node: nodes.Node, guards: frozenset[str]) -> None:
        if isinstance(node, nodes.Name):
            if node.ctx == "load" and node.name in self.free:
                self.uses.append(Use(node.name, node.lineno, node.name in guards))
            return
        if isinstance(node, nodes.Test) and isinstance(node.node, nodes.Name) \
                and node.name in ("defined", "undefined"):
            return  # asking whether it is defined is not a read
        if isinstance(node, nodes.Filter) and node.name in _DEFAULT_FILTERS \
                and isinstance(node.node, nodes.Name):
            self.visit(node.node, guards | {node.node.name})
            for child in (*node.args, *node.kwargs):
                self.visit(child, guards)
            return
        if isinstance(node, nodes.If):
            self._visit_if(node, guards)
            return
        if isinstance(node, nodes.CondExpr):
            self.visit(node.test, guards)
            self.visit(node.expr1, guards | _positive(node.test))
            if node.expr2 is not None:
                self.visit(node.expr2, guards | _negative(node.test))
            return
        if isinstance(node, nodes.And):
            self.visit(node.left, guards)
            self.visit(node.right, guards | _positive(node.left))
            return
        if isinstance(node, nodes.Or):
            self.visit(node.left, guards)
            self.visit(node.right, guards | _negative(node.left))
            return
        if isinstance(node, nodes.Include):
            name = node.template.value if isinstance(node.template, nodes.Const) else None
            self.includes.append(Include(str(name) if name is not None else None, node.lineno, guards))
        for child in node.iter_child_nodes():
            self.visit(child, guards)

    def _visit_if(self, node: nodes.If, guards: frozenset[str]) -> None:
        # if / elif / else: each branch knows its own test held and the earlier ones did not.
        failed: frozenset[str] = frozenset()
        for branch in (node, *node.elif_):
            self.visit(branch.test, guards | failed)
            for child in branch.body:
                self.visit(child, guards | failed | _positive(branch.test))
            failed = failed | _negative(branch.test)
        for child in node.else_:
            self.visit(child, guards | failed)
