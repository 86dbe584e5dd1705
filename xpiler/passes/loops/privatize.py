"""Privatizing scratch variables declared before a loop nest.

C kernels often declare scratch storage once, at the top of the function
(``uint8_t tmp[64];``), and rewrite it in every iteration of a loop nest. To the
parallelism test that looks like a dependence carried by every loop, and once lowering
puts the nest in a kernel of its own the declaration would be out of its reach. When
each read of the variable in an iteration of the innermost loop ``L`` containing all its
uses reads bytes written earlier in that same iteration (no upward-exposed read), the
values it carries from one iteration to the next are never observed, so the declaration
moves into ``L``'s body (without its initializer, which is never observed either).

The proof walks one iteration of ``L`` in order, keeping the byte ranges of the variable
written so far (z3 terms over the loop counters of the iteration):
- a store ``x[f]`` (through any pointer-cast view of ``x``) adds ``[f*w, f*w + w)``;
- a loop adds the union of its iterations' ranges when they are contiguous (z3 proves
  ``hi(c) == lo(c + 1)``), i.e. ``[lo(0), lo(n))``, and nothing when its body may leave
  an iteration early (break/continue/return);
- an ``if`` branch's writes hold only inside the branch;
- every read must lie inside one range (z3: no counter values put it outside).
Anything else that touches the variable (its address escaping into a call or a pointer
variable, pointer arithmetic, a while loop) keeps it where it is.
"""
from __future__ import annotations

import dataclasses

import z3

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ...ir.visitor import walk
from ..base import assigned_names, names_in, substitute
from .parallel import known_sizes, without_redeclared
from .smt import Encoder, Unencodable, locked, solve


class _Keep(Exception):
    """The variable cannot be privatized; the message says why."""


@dataclasses.dataclass
class _Ctx:
    enc: Encoder
    dom: list  # constraints on the counters of the loops entered so far
    ranges: list  # (lo, hi) byte ranges of the variable written so far in this iteration
    lets: dict  # integer locals with a fixed value, substituted into subscripts


def _scalar_bytes(t) -> int:
    return t.bytes if isinstance(t, T.ScalarType) and t.bytes > 0 else 0


def _flat_shape(t: T.Type):
    """(element type, [dims]) of a (nested) array type with constant dims, else None."""
    dims = []
    while isinstance(t, T.ArrayType):
        for d in t.shape:
            v = try_fold(d)
            if not isinstance(v, int):
                return None
            dims.append(v)
        t = t.elem
    return (t, dims) if _scalar_bytes(t) else None


class _Scan:
    """One iteration of a loop body, checking that ``name`` is written before read."""

    def __init__(self, name: str, dtype: T.Type, body: N.Block):
        self.name = name
        shape = _flat_shape(dtype) if isinstance(dtype, T.ArrayType) else (dtype, []) if _scalar_bytes(dtype) else None
        if shape is None:
            raise _Keep(f"{name} has no fixed byte size")
        self.elem, self.dims = shape
        self.size = _scalar_bytes(self.elem)
        for d in self.dims:
            self.size *= d
        self.varying = assigned_names(body)
        self.fresh = 0

    # -- subscripts and views
    def symbol(self, name):
        if name in self.varying:
            raise Unencodable(name)
        return z3.Int(name)

    def view(self, e, ctx):
        """(byte offset, width) when ``e`` designates part of the variable, None when it
        does not involve the variable; raises _Keep on a use the proof cannot follow."""
        subs = []
        while isinstance(e, N.Load):
            subs.append(e.index)
            e = e.base
        subs.reverse()
        if isinstance(e, N.Var) and e.name == self.name:
            if len(subs) != len(self.dims):
                if subs or self.dims:
                    raise _Keep(f"{self.name} is used as a pointer")
            flat = N.Const(0, T.I64)
            for s, d in zip(subs, self.dims):
                flat = N.Binary("+", N.Binary("*", flat, N.Const(d, T.I64)), s)
            return self.offset(flat, _scalar_bytes(self.elem), ctx)
        start = self.pointer(e)
        if start is not None:  # a pointer into the variable: (T *)x, x + k, &x ...
            if len(subs) != 1 or start[1] is None:
                raise _Keep(f"{self.name} is read through a view the proof cannot follow")
            return self.offset(N.Binary("+", start[0], N.Binary("*", subs[0], N.Const(start[1], T.I64))), 1, ctx,
                               start[1])
        if self.name in names_in(e):
            raise _Keep(f"{self.name} is reached through a pointer the proof cannot follow")
        return None

    def pointer(self, e):
        """(byte offset of what pointer ``e`` points to, its pointee's bytes or None) when
        ``e`` points into the variable, else None."""
        if isinstance(e, N.Var) and e.name == self.name and len(self.dims) == 1:
            return N.Const(0, T.I64), _scalar_bytes(self.elem)
        if isinstance(e, N.AddressOf) and isinstance(e.value, N.Var) and e.value.name == self.name:
            return N.Const(0, T.I64), None
        if isinstance(e, N.Cast) and isinstance(e.dtype, T.PointerType):
            inner = self.pointer(e.value)
            w = _scalar_bytes(e.dtype.elem) or None
            return (inner[0], w) if inner is not None else None
        if isinstance(e, N.Binary) and e.op == "+":
            inner = self.pointer(e.lhs)
            if inner is not None and inner[1] is not None and self.name not in names_in(e.rhs):
                return N.Binary("+", inner[0], N.Binary("*", e.rhs, N.Const(inner[1], T.I64))), inner[1]
        return None

    def offset(self, index, scale, ctx, width=None):
        """(z3 byte offset, width) of element ``index`` of ``scale``-byte elements."""
        width = width or scale
        try:
            i = ctx.enc.int(substitute(index, ctx.lets) if ctx.lets else index)
        except Unencodable:
            return None, width  # an element the proof cannot name
        return i * scale, width

    # -- reads
    def read(self, e, ctx):
        if isinstance(e, N.Load) or (isinstance(e, N.Cast) and isinstance(e.dtype, T.PointerType)):
            v = self.view(e, ctx)
            if v is not None:
                self.check(v, ctx)
                self.subscripts(e, ctx)
                return
        if isinstance(e, N.AddressOf) and self.name in names_in(e.value):
            raise _Keep(f"the address of {self.name} escapes")
        if isinstance(e, N.Var) and e.name == self.name:
            if self.dims:
                raise _Keep(f"{self.name} is used as a pointer")
            self.check((z3.IntVal(0), self.size), ctx)
            return
        for f in ("lhs", "rhs", "operand", "cond", "then", "other", "value", "base", "index", "pointer"):
            sub = getattr(e, f, None)
            if isinstance(sub, N.Expr):
                self.read(sub, ctx)
        for a in getattr(e, "args", ()) + getattr(e, "values", ()):
            if isinstance(a, N.Expr):
                self.read(a, ctx)

    def subscripts(self, e, ctx):
        while isinstance(e, N.Load):
            self.read(e.index, ctx)
            e = e.base

    def check(self, view, ctx):
        lo, width = view
        if lo is None:
            raise _Keep(f"a read of {self.name} has a subscript the proof cannot state")
        inside = [z3.And(a <= lo, lo + width <= b) for a, b in ctx.ranges]
        r, _ = solve(*ctx.dom, z3.Not(z3.Or(*inside)) if inside else z3.BoolVal(True))
        if r != "unsat":
            raise _Keep(f"{self.name} may be read before it is written in an iteration")

    # -- statements
    def block(self, stmts, ctx):
        for s in stmts:
            self.stmt(s, ctx)

    def stmt(self, s, ctx):
        if isinstance(s, N.Block):
            self.block(s.body, ctx)
        elif isinstance(s, N.Decl):
            if s.name == self.name:
                raise _Keep(f"{self.name} is redeclared inside the loop")
            if s.init is not None:
                self.read(s.init, ctx)
                if isinstance(s.dtype, T.ScalarType) and s.dtype.is_int and s.name not in self.varying:
                    ctx.lets[s.name] = substitute(s.init, ctx.lets) if ctx.lets else s.init
        elif isinstance(s, N.Assign):
            self.read(s.value, ctx)
            v = self.view(s.target, ctx)
            self.subscripts(s.target, ctx)
            if v is None:
                return
            if s.op != "=":
                self.check(v, ctx)
            if v[0] is not None:
                ctx.ranges.append((v[0], v[0] + v[1]))
        elif isinstance(s, N.ExprStmt):
            self.read(s.expr, ctx)
        elif isinstance(s, N.If):
            self.read(s.cond, ctx)
            for branch in (s.then, s.other):
                if branch is not None:  # a branch's writes hold only inside it
                    self.block(branch.body, dataclasses.replace(ctx, ranges=list(ctx.ranges), lets=dict(ctx.lets)))
        elif isinstance(s, N.For):
            self.loop(s, ctx)
        elif isinstance(s, (N.Pragma, N.TypeAlias, N.Break, N.Continue)):
            pass
        elif self.name in names_in(s):
            raise _Keep(f"{self.name} is used in a {type(s).__name__.lower()} statement")

    def loop(self, f: N.For, ctx):
        for e in (f.start, f.bound, f.step):
            self.read(e, ctx)
        step = try_fold(f.step)
        self.fresh += 1
        c = z3.Int(f"{f.var}#c{self.fresh}")
        body_ctx = dataclasses.replace(ctx, ranges=list(ctx.ranges), lets=dict(ctx.lets), dom=list(ctx.dom))
        n = None
        try:
            start, bound = ctx.enc.int(f.start), ctx.enc.int(f.bound)
            if isinstance(step, int) and step > 0 and f.cmp in ("<", "<="):
                span = (bound - start) + (1 if f.cmp == "<=" else 0)
                n = z3.If(span > 0, (span + step - 1) / step, 0)
                body_ctx.enc = ctx.enc.with_env(**{f.var: start + c * step})
                body_ctx.dom += [c >= 0, c < n]
        except Unencodable:
            pass
        if n is None:  # an iteration space the proof cannot state: its writes count for nothing
            body_ctx.enc = ctx.enc.with_env(**{f.var: z3.Int(f"{f.var}#v{self.fresh}")})
        body_ctx.lets.pop(f.var, None)
        self.block(f.body.body, body_ctx)
        if n is None or any(isinstance(x, (N.Break, N.Continue, N.Return)) for x in walk(f.body)):
            return
        for lo, hi in body_ctx.ranges[len(ctx.ranges):]:
            whole = self.union(lo, hi, c, n, ctx)
            if whole is not None:
                ctx.ranges.append(whole)

    def union(self, lo, hi, c, n, ctx):
        """The bytes ``[lo(c), hi(c))`` cover over ``0 <= c < n``, when contiguous."""
        def at(x, v):
            return z3.substitute(x, (c, v))

        if not any(str(c) == str(v) for v in _vars(lo) | _vars(hi)):
            r, _ = solve(*ctx.dom, n < 1)  # the loop may not run: its writes are not certain
            return (lo, hi) if r == "unsat" else None
        r, _ = solve(*ctx.dom, c >= 0, c + 1 < n, at(hi, c) != at(lo, c + 1))
        r2, _ = solve(*ctx.dom, c >= 0, c < n, at(lo, c) > at(hi, c))
        if r != "unsat" or r2 != "unsat":
            return None
        return at(lo, z3.IntVal(0)), at(lo, n)


def _vars(e) -> set:
    out, todo = set(), [e]
    while todo:
        x = todo.pop()
        if z3.is_const(x) and x.decl().kind() == z3.Z3_OP_UNINTERPRETED:
            out.add(x)
        todo.extend(x.children())
    return out


def _uses(s, name: str) -> bool:
    return name in names_in(s)


def _home(loop: N.For, name: str) -> N.For:
    """The innermost loop, starting at ``loop``, whose body holds every use of ``name``."""
    while True:
        users = [s for s in loop.body.body if _uses(s, name)]
        if len(users) == 1 and isinstance(users[0], N.For):
            loop = users[0]
        else:
            return loop


def sink_scratch_declarations(stmts: list) -> tuple[list, list]:
    """Move each declaration (at any depth) whose variable is private to the innermost
    loop holding all its later uses into that loop's body. Returns (stmts, notes)."""
    notes: list = []
    return _sink(list(stmts), notes), notes


def _sink(stmts: list, notes: list) -> list:
    i = 0
    while i < len(stmts):
        d = stmts[i]
        if (not isinstance(d, N.Decl) or isinstance(d.dtype, T.PointerType) or "static" in d.qualifiers
                or not isinstance(d.dtype, T.ArrayType) and d.name not in assigned_names(N.Block(tuple(stmts)))):
            i += 1  # pointers, statics and constants stay
            continue
        users = [j for j in range(i + 1, len(stmts)) if _uses(stmts[j], d.name)]
        if len(users) != 1 or not isinstance(stmts[users[0]], N.For):
            i += 1
            continue
        j = users[0]
        home = _home(stmts[j], d.name)
        why = _iteration_private(substitute(home, without_redeclared(known_sizes(stmts, i), home)), d)
        if why is not None:
            i += 1
            continue
        sunk = N.Decl(d.name, d.dtype, None, d.scope, d.qualifiers, d.span)
        stmts[j] = _insert_at_top(stmts[j], home, sunk)
        notes.append(f"{d.name} is scratch of each iteration of loop {home.var} (written before it is read, z3): "
                     f"declared there")
        del stmts[i]
    return [_sink_inside(s, notes) for s in stmts]


def _sink_inside(s, notes):
    if isinstance(s, N.Block):
        return dataclasses.replace(s, body=tuple(_sink(list(s.body), notes)))
    if isinstance(s, N.For):
        return dataclasses.replace(s, body=_sink_inside(s.body, notes))
    if isinstance(s, N.If):
        return dataclasses.replace(s, then=_sink_inside(s.then, notes),
                                   other=_sink_inside(s.other, notes) if s.other is not None else None)
    return s


def _iteration_private(home: N.For, d: N.Decl) -> str | None:
    """Why ``d`` cannot move into ``home``'s body, or None."""
    try:
        scan = _Scan(d.name, d.dtype, home.body)
    except _Keep as e:
        return str(e)
    for e in (home.start, home.bound, home.step):
        if _uses(e, d.name):
            return f"{d.name} is used in the bounds of loop {home.var}"
    return _locked_body(scan, home)


@locked
def _locked_body(scan: _Scan, home: N.For) -> str | None:
    ctx = _Ctx(Encoder(symbol=scan.symbol), [], [], {})
    try:
        scan.block(home.body.body, ctx)
    except _Keep as e:
        return str(e)
    return None


def _insert_at_top(node, home: N.For, decl: N.Decl):
    """``node`` with ``decl`` as the first statement of ``home``'s body."""
    if node is home:
        return dataclasses.replace(home, body=dataclasses.replace(home.body, body=(decl,) + home.body.body))
    if isinstance(node, N.For):
        return dataclasses.replace(node, body=dataclasses.replace(
            node.body, body=tuple(_insert_at_top(s, home, decl) for s in node.body.body)))
    return node
