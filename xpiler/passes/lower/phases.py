"""Splitting a canonical body into phases, each one parallel loop nest or serial code.

A phase is what one kernel launch does. Phases run in order, and a launch boundary is a
global barrier, which is what sequential loop nests need between them. Side-effect-free
scalar declarations at the top (sizes, constants) are replicated into every phase so
each kernel is self-contained.
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ...ir.visitor import walk


@dataclasses.dataclass
class Loop:
    var: str
    dtype: T.Type
    start: N.Expr
    step: N.Expr
    extent: N.Expr  # trip count


@dataclasses.dataclass
class Phase:
    loops: list  # collapsed parallel loops, outermost first (empty: serial phase)
    body: N.Block  # what one iteration (or the serial phase) executes
    prelude: list  # replicated scalar declarations

    @property
    def parallel(self) -> bool:
        return bool(self.loops)

    def total(self) -> N.Expr:
        e = None
        for l in self.loops:
            ext = l.extent
            if len(self.loops) > 1 and not isinstance(try_fold(ext), int):
                # a loop that runs zero times must not turn a product of extents positive
                ext = N.Select(N.Binary(">", ext, N.Const(0, T.I32)), ext, N.Const(0, T.I32))
            e = ext if e is None else N.Binary("*", e, ext)
        v = try_fold(e) if e is not None else 1
        return N.Const(v, T.I64) if isinstance(v, int) else e


def trip_count(f: N.For) -> N.Expr | None:
    step = try_fold(f.step)
    if not isinstance(step, int) or step == 0:
        return None
    if f.cmp == "<" and step > 0:
        span = N.Binary("-", f.bound, f.start)
    elif f.cmp == "<=" and step > 0:
        span = N.Binary("+", N.Binary("-", f.bound, f.start), N.Const(1, T.I32))
    elif f.cmp == ">" and step < 0:
        span = N.Binary("-", f.start, f.bound)
    elif f.cmp == ">=" and step < 0:
        span = N.Binary("+", N.Binary("-", f.start, f.bound), N.Const(1, T.I32))
    else:
        return None
    if try_fold(f.start) == 0 and f.cmp == "<":
        span = f.bound
    a = abs(step)
    count = span if a == 1 else N.Binary("/", N.Binary("+", span, N.Const(a - 1, T.I32)), N.Const(a, T.I32))
    v = try_fold(count)
    if isinstance(v, int):
        return N.Const(max(v, 0), T.I64)
    return count  # may be negative: Phase.total() clamps where it matters


def _uses(node, names: set[str]) -> bool:
    return any(isinstance(n, N.Var) and n.name in names for n in walk(node))


def parallel_nest(f: N.For) -> tuple[list[Loop], N.Block] | None:
    """The perfectly nested parallel loops starting at ``f`` (rectangular: no extent
    depends on an outer collapsed variable)."""
    loops, body, names = [], None, set()
    cur = f
    while isinstance(cur, N.For) and cur.kind == "parallel":
        count = trip_count(cur)
        if count is None or _uses(cur.start, names) or _uses(cur.bound, names) or _uses(cur.step, names):
            break
        loops.append(Loop(cur.var, cur.dtype, cur.start, cur.step, count))
        names.add(cur.var)
        body = cur.body
        inner = [s for s in cur.body.body]
        if len(inner) == 1 and isinstance(inner[0], N.For) and inner[0].kind == "parallel":
            cur = inner[0]
        else:
            break
    if not loops:
        return None
    return loops, body


def _pure_scalar_decl(s) -> bool:
    from ..loops.dependence import is_pure_call

    return (isinstance(s, N.Decl) and not isinstance(s.dtype, (T.ArrayType, T.PointerType))
            and s.init is not None and not any(isinstance(n, (N.Load, N.Deref)) or isinstance(n, N.Call)
                                               and not is_pure_call(n.func) for n in walk(s.init)))


def split_phases(body: N.Block) -> list[Phase]:
    prelude: list[N.Stmt] = []
    phases: list[Phase] = []
    serial: list[N.Stmt] = []

    def flush():
        if serial:
            phases.append(Phase([], N.Block(tuple(serial)), list(prelude)))
            serial.clear()

    serial_names: set[str] = set()  # declared by serial code: a later kernel cannot see them
    for s in body.body:
        if _pure_scalar_decl(s) and not serial:
            prelude.append(s)  # replicated into every later phase that may use it
            continue
        if isinstance(s, N.For) and s.kind == "parallel" and not _uses(s, serial_names):
            nest = parallel_nest(s)
            if nest is not None:
                flush()
                phases.append(Phase(nest[0], nest[1], list(prelude)))
                continue
        if isinstance(s, N.Decl):
            serial_names.add(s.name)
        serial.append(s)
    flush()
    return phases


def index_decls(loops: list[Loop], flat: N.Expr) -> list[N.Stmt]:
    """Recover each collapsed loop variable from the flat index."""
    out = []
    inner = N.Const(1, T.I64)
    sizes = []
    for l in reversed(loops):
        sizes.append(inner)
        inner = N.Binary("*", inner, l.extent)
        folded = try_fold(inner)
        if isinstance(folded, int):
            inner = N.Const(folded, T.I64)
    sizes.reverse()
    for l, below in zip(loops, sizes):
        q = flat if try_fold(below) == 1 else N.Binary("/", flat, below)
        k = q if l is loops[0] else N.Binary("%", q, l.extent)
        value = k
        if try_fold(l.step) != 1:
            value = N.Binary("*", value, l.step)
        if try_fold(l.start) != 0:
            value = N.Binary("+", l.start, value)
        out.append(N.Decl(l.var, l.dtype, N.Cast(l.dtype, value, "c")))
    return out
