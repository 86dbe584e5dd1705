"""Which pointer parameters a function reads, writes, or both.

A kernel's outputs are what verification compares and poisons before a run, so roles are
derived from the code itself: stores through a parameter (directly, via a local pointer
derived from it, via a DMA copy, or via an intrinsic whose registry entry says it writes
that argument) make it an output; loads make it an input.
"""
from __future__ import annotations

from ..ir import nodes as N
from ..ir import types as T
from ..ir.visitor import children


def pointer_root(e: N.Expr, aliases: dict[str, str]) -> str | None:
    """The parameter a pointer-valued expression points into, if any."""
    if isinstance(e, N.Var):
        return aliases.get(e.name)
    if isinstance(e, N.Binary) and e.op in ("+", "-"):
        return pointer_root(e.lhs, aliases) or pointer_root(e.rhs, aliases)
    if isinstance(e, N.Cast):
        return pointer_root(e.value, aliases)
    if isinstance(e, N.AddressOf):
        inner = e.value
        while isinstance(inner, N.Load):
            inner = inner.base
        return pointer_root(inner, aliases)
    if isinstance(e, N.Select):
        return pointer_root(e.then, aliases) or pointer_root(e.other, aliases)
    if isinstance(e, N.Load):  # a[i] of a pointer-to-array / multi-dim parameter
        return pointer_root(e.base, aliases)
    return None


class _Access:
    def __init__(self, program: N.Program, dialect: str, params: dict[str, str]):
        self.program = program
        self.dialect = dialect
        self.aliases = dict(params)  # var -> param it points into
        self.reads: set[str] = set()
        self.writes: set[str] = set()

    def read_expr(self, e):
        if isinstance(e, N.Load):
            root = pointer_root(e.base, self.aliases)
            if root:
                self.reads.add(root)
        elif isinstance(e, N.Deref):
            root = pointer_root(e.pointer, self.aliases)
            if root:
                self.reads.add(root)
        elif isinstance(e, N.Call):
            self.call(e)
            return
        for c in children(e):
            if isinstance(c, N.Expr):
                self.read_expr(c)

    def write_target(self, target, compound: bool):
        base = target
        while isinstance(base, N.Member):
            base = base.base
        if isinstance(base, N.Load):
            root = pointer_root(base.base, self.aliases)
            if root:
                self.writes.add(root)
                if compound:
                    self.reads.add(root)
            self.read_expr(base.index)
            for c in children(base.base):
                if isinstance(c, N.Expr):
                    self.read_expr(c)
        elif isinstance(base, N.Deref):
            root = pointer_root(base.pointer, self.aliases)
            if root:
                self.writes.add(root)
                if compound:
                    self.reads.add(root)

    def call(self, call: N.Call):
        from ..platforms.registry import _static_type, resolve

        intrinsic = resolve(self.dialect, call.func, len(call.args), tuple(_static_type(a) for a in call.args))
        callee = self.program.function(call.func)
        for i, a in enumerate(call.args):
            root = pointer_root(a, self.aliases)
            if root is None:
                self.read_expr(a)
                continue
            if intrinsic is not None and i < len(intrinsic.params):
                role = intrinsic.params[i].role
                if role in ("out", "inout"):
                    self.writes.add(root)
                if role in ("in", "inout", "scalar"):
                    self.reads.add(root)
            elif callee is not None and i < len(callee.params):
                sub = param_roles(callee, self.program)
                role = sub.get(callee.params[i].name, "in")
                if role in ("out", "inout"):
                    self.writes.add(root)
                if role in ("in", "inout"):
                    self.reads.add(root)
            else:
                self.reads.add(root)  # unknown function: assume it only reads
            self.read_expr(a)

    def stmt(self, s):
        if isinstance(s, N.Decl):
            if s.init is not None:
                self.read_expr(s.init)
                if isinstance(s.dtype, T.PointerType):
                    root = pointer_root(s.init, self.aliases)
                    if root:
                        self.aliases[s.name] = root
        elif isinstance(s, N.Assign):
            if isinstance(s.target, N.Var):
                if s.target.name in self.aliases and s.op == "=":
                    root = pointer_root(s.value, self.aliases)
                    if root:
                        self.aliases[s.target.name] = root
            else:
                self.write_target(s.target, s.op != "=")
            self.read_expr(s.value)
        elif isinstance(s, N.Dma):
            for e, bucket in ((s.dst, self.writes), (s.src, self.reads)):
                root = pointer_root(e, self.aliases)
                if root:
                    bucket.add(root)
                self.read_expr(e)
            for e in (s.size,) + s.strides:
                self.read_expr(e)
        elif isinstance(s, N.ExprStmt):
            self.read_expr(s.expr)
        else:
            for c in children(s):
                if isinstance(c, N.Stmt):
                    self.stmt(c)
                elif isinstance(c, N.Expr):
                    self.read_expr(c)


def param_roles(fn: N.Function, program: N.Program) -> dict[str, str]:
    """name -> in | out | inout | unused (pointers) | scalar (values)."""
    pointers = {p.name: p.name for p in fn.params if isinstance(p.dtype, (T.PointerType, T.ArrayType))}
    acc = _Access(program, program.dialect, pointers)
    acc.stmt(fn.body)
    roles = {}
    for p in fn.params:
        if p.name not in pointers:
            roles[p.name] = "scalar"
        elif p.name in acc.writes:
            roles[p.name] = "inout" if p.name in acc.reads else "out"
        elif p.name in acc.reads:
            roles[p.name] = "in"
        else:
            roles[p.name] = "unused"
    return roles
