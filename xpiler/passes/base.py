"""What every pass shares: declining with a reason, fresh names, substitution."""
from __future__ import annotations

from ..errors import XpilerError
from ..ir import nodes as N
from ..ir.visitor import Transformer, walk


class Declined(XpilerError):
    """A pass cannot (or may not) transform this program. ``where`` is a source span."""

    def __init__(self, pass_name: str, reason: str, where=None):
        loc = f"{where}: " if where is not None else ""
        super().__init__(f"{loc}{pass_name} declined: {reason}")
        self.pass_name = pass_name
        self.reason = reason
        self.where = where


class Substitute(Transformer):
    """Replace variables by expressions (by name), and index values (by Special name)."""

    def __init__(self, vars: dict | None = None, specials: dict | None = None):
        self.vars = vars or {}
        self.specials = specials or {}

    def visit_Var(self, v):
        return self.vars.get(v.name, v)

    def visit_Special(self, s):
        return self.specials.get(s.name, s)


def substitute(node, vars: dict | None = None, specials: dict | None = None):
    if not vars and not specials:
        return node
    return Substitute(vars, specials)(node)


def names_in(node) -> set[str]:
    """Every variable name used or declared below ``node``."""
    out = set()
    for n in walk(node):
        if isinstance(n, N.Var):
            out.add(n.name)
        elif isinstance(n, N.Decl):
            out.add(n.name)
        elif isinstance(n, N.For):
            out.add(n.var)
        elif isinstance(n, N.Param):
            out.add(n.name)
    return out


class Namer:
    """Fresh identifiers that collide with nothing already in the program."""

    def __init__(self, taken: set[str]):
        self.taken = set(taken)

    def fresh(self, base: str) -> str:
        base = base.replace(".", "_")
        name, i = base, 1
        while name in self.taken:
            name = f"{base}_{i}"
            i += 1
        self.taken.add(name)
        return name


def assigned_names(node) -> set[str]:
    """Variables assigned (not just declared) below ``node``."""
    out = set()
    for n in walk(node):
        if isinstance(n, N.Assign) and isinstance(n.target, N.Var):
            out.add(n.target.name)
        elif isinstance(n, N.For) and not n.declared:
            out.add(n.var)
    return out


def flatten_blocks(node):
    """Splice nested blocks that declare nothing into their parent (readability only)."""
    import dataclasses

    class F(Transformer):
        def visit_Block(self, b):
            out = []
            changed = False
            for s in b.body:
                if isinstance(s, N.Block) and not any(isinstance(x, (N.Decl, N.TypeAlias)) for x in s.body):
                    out.extend(s.body)
                    changed = True
                else:
                    out.append(s)
            if len(out) == 1 and isinstance(out[0], N.Block):
                out = list(out[0].body)
                changed = True
            return dataclasses.replace(b, body=tuple(out)) if changed else b

    return F()(node)
