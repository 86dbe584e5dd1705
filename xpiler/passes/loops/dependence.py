"""Array accesses of a loop nest, and z3 dependence tests between them.

An access is (buffer, subscripts, read/write, enclosing loops). Two accesses *conflict*
when at least one writes and, in some pair of iterations the caller's ordering relation
allows, they may touch the same element. Each iteration instance gets its own counter per
enclosing loop (variable = start + counter*step, condition holding); names the region
never assigns are shared unknowns (symbolic bounds included, any integer value).

Conservative by construction: what the analysis does not understand widens the question
instead of being ignored -- a subscript z3 cannot state matches every element, an
unknown loop bound leaves the counter unbounded, and memory it cannot name (pointer
arithmetic, casts, calls that are not pure math, address-taking, while loops, returns,
barriers) is the buffer "?" which conflicts with everything.

Assumption: distinct buffer names are distinct memory (kernel pointer parameters do not
alias, as the canonical program's own buffers never do).
"""
from __future__ import annotations

from dataclasses import dataclass

import z3

from ...ir import nodes as N
from ...ir import types as T
from ...ir.interp import C_CONSTANTS
from ...ir.visitor import walk
from ...lang.printer import CPrinter
from ..base import assigned_names, substitute
from .smt import Encoder, Unencodable, solve

UNKNOWN = "?"
# Calls known to touch no memory (C math and their CUDA spellings).
PURE_CALLS = {"exp", "log", "sqrt", "tanh", "erf", "fabs", "floor", "ceil", "sin", "cos", "tan",
              "pow", "round", "trunc", "fmod", "log2", "exp2", "atan", "asin", "acos", "log10",
              "erfc", "sinh", "cosh", "cbrt", "rsqrt", "fma", "fmax", "fmin", "ldexp", "atan2",
              "hypot", "rint", "nearbyint", "max", "min", "abs", "fdivide", "lround", "lrint",
              "llround", "llrint", "copysign", "fdim", "expm1", "log1p", "isnan", "isinf", "signbit"}


def is_pure_call(name: str) -> bool:
    base = name.split("::")[-1].lstrip("_")
    return base in PURE_CALLS or base.endswith("f") and base[:-1] in PURE_CALLS


@dataclass(frozen=True)
class Access:
    buffer: str  # UNKNOWN: memory the analysis cannot name
    subscripts: tuple | None  # None: any element; () for a scalar variable
    write: bool
    loops: tuple  # enclosing N.For, outermost first (the region's loops included)
    text: str

    def describe(self) -> str:
        return f"{'write' if self.write else 'read'} {self.text}"


_P = CPrinter()
_LOOPVAR, _OPAQUE, _POINTER = object(), object(), object()


@dataclass(frozen=True)
class _Alias:
    """A local pointer fixed at ``root + offset`` (``float *row = in + i * n;``)."""
    root: str
    offset: N.Expr


def _pointer_sum(e):
    """(root name, offset) of ``root + a + b ...``, or None."""
    offset = N.Const(0, T.I64)
    while isinstance(e, N.Binary) and e.op == "+":
        offset = N.Binary("+", e.rhs, offset)
        e = e.lhs
    return (e.name, offset) if isinstance(e, N.Var) else None


def _root(e) -> str | None:
    """The variable a pointer sum starts from: p in ((p + a) + b)."""
    while isinstance(e, N.Binary) and e.op == "+":
        e = e.lhs
    return e.name if isinstance(e, N.Var) else None


class _Collector:
    """Walks statements recording accesses. ``scopes`` map names declared inside the
    region to: _LOOPVAR, an integer value it always holds (substituted into subscripts),
    _OPAQUE (private storage: not an access) or _POINTER (a local alias of some memory)."""

    def __init__(self, assigned: set[str], pure: frozenset = frozenset(), function: bool = False):
        self.assigned = assigned
        self.pure = pure  # device functions that touch no memory (pure_functions)
        self.function = function  # walking a function body: a return ends it, nothing more
        self.out: list[Access] = []

    def lookup(self, scopes, name):
        for s in reversed(scopes):
            if name in s:
                return s[name]
        return None

    def lets(self, scopes, e):
        env = {}
        for s in scopes:
            # a value naming something this scope redeclares would be captured: drop it
            env = {n: v for n, v in env.items() if not any(isinstance(x, N.Var) and x.name in s for x in walk(v))}
            for name, v in s.items():
                if isinstance(v, N.Expr):
                    env[name] = v
                else:
                    env.pop(name, None)
        return substitute(e, env) if env else e

    def add(self, scopes, loops, buffer, subs, write, text):
        if subs is not None:
            subs = tuple(self.lets(scopes, s) for s in subs)
        self.out.append(Access(buffer, subs, write, tuple(loops), text))

    def unknown(self, loops, text):
        self.out.append(Access(UNKNOWN, None, True, tuple(loops), text))

    # -- lvalues: (buffer, subscripts) of what an expression designates
    def place(self, e, scopes, loops):
        subs = []
        while isinstance(e, N.Load):
            subs.append(e.index)
            self.expr(e.index, scopes, loops)
            e = e.base
        subs.reverse()
        # (p + off)[i] is p[off + i] (flat pointer arithmetic, as lifted tile stores are)
        while (isinstance(e, N.Binary) and e.op == "+" and len(subs) == 1 and isinstance(e.lhs, (N.Var, N.Binary))
               and self.lookup(scopes, _root(e.lhs)) is None):
            self.expr(e.rhs, scopes, loops)
            subs, e = [N.Binary("+", e.rhs, subs[0])], e.lhs
        if isinstance(e, N.Member) and isinstance(e.base, N.Var):
            e, subs = e.base, None
        if not isinstance(e, N.Var):
            if self.private(e, scopes):
                self.parts(e, scopes, loops)
                return None, None  # a view of the iteration's own storage
            self.parts(e, scopes, loops)
            return UNKNOWN, None
        kind = self.lookup(scopes, e.name)
        if kind is _OPAQUE or kind is _LOOPVAR or isinstance(kind, N.Expr):
            return None, None  # private to one iteration
        if isinstance(kind, _Alias) and subs is not None and len(subs) == 1 and kind.root not in self.assigned:
            return kind.root, (N.Binary("+", kind.offset, subs[0]),)
        if kind is _POINTER or isinstance(kind, _Alias) or subs and e.name in self.assigned:
            return UNKNOWN, None  # an alias, or a pointer the region moves
        return e.name, (tuple(subs) if subs is not None else None)

    def access(self, e, scopes, loops, write):
        buf, subs = self.place(e, scopes, loops)
        if buf is not None:
            self.add(scopes, loops, buf, subs, write, _P.expr(e))

    def expr(self, e, scopes, loops):
        if isinstance(e, (N.Load, N.Member)):
            self.access(e, scopes, loops, False)
        elif isinstance(e, N.Var):
            if self.lookup(scopes, e.name) is None and e.name not in C_CONSTANTS:
                self.add(scopes, loops, e.name, (), False, e.name)
        elif isinstance(e, (N.AddressOf, N.Deref)):
            if self.private(e, scopes):
                self.parts(e, scopes, loops)
            else:
                self.unknown(loops, _P.expr(e))
        elif isinstance(e, N.Call) and not is_pure_call(e.func) and e.func not in self.pure:
            self.unknown(loops, f"call {e.func}()")
            for a in e.args:
                self.expr(a, scopes, loops)
        else:
            self.parts(e, scopes, loops)

    def private(self, e, scopes) -> bool:
        """Whether pointer expression ``e`` (casts, address-of, offsets) points into a
        variable declared inside the region: storage private to one iteration."""
        while True:
            if isinstance(e, (N.AddressOf, N.Load)) or isinstance(e, N.Cast) and isinstance(e.dtype, T.PointerType):
                e = e.value if isinstance(e, (N.AddressOf, N.Cast)) else e.base
            elif isinstance(e, N.Deref):
                e = e.pointer
            elif isinstance(e, N.Binary) and e.op in ("+", "-"):
                e = e.lhs
            else:
                break
        kind = self.lookup(scopes, e.name) if isinstance(e, N.Var) else None
        return kind is _OPAQUE

    def parts(self, e, scopes, loops):
        for f in ("lhs", "rhs", "operand", "cond", "then", "other", "value", "base", "index", "pointer"):
            sub = getattr(e, f, None)
            if isinstance(sub, N.Expr):
                self.expr(sub, scopes, loops)
        for a in getattr(e, "args", ()) + getattr(e, "values", ()):
            if isinstance(a, N.Expr):
                self.expr(a, scopes, loops)

    def stmt(self, s, scopes, loops):
        if isinstance(s, N.Block):
            scopes = scopes + [{}]
            for x in s.body:
                self.stmt(x, scopes, loops)
        elif isinstance(s, N.Decl):
            t = s.dtype
            alias = _pointer_sum(s.init) if isinstance(t, T.PointerType) and s.init is not None else None
            if alias is not None and s.name not in self.assigned:
                root = self.lookup(scopes, alias[0])
                if root is None or isinstance(root, _Alias):
                    self.expr(alias[1], scopes, loops)
                    base = (root.root, N.Binary("+", root.offset, alias[1])) if root is not None else alias
                    scopes[-1][s.name] = _Alias(base[0], self.lets(scopes, base[1]))
                    return
            if s.init is not None:
                self.expr(s.init, scopes, loops)
            if isinstance(t, T.PointerType):
                scopes[-1][s.name] = _POINTER
            elif (isinstance(t, T.ScalarType) and t.is_int and s.init is not None
                  and s.name not in self.assigned):
                scopes[-1][s.name] = self.lets(scopes, s.init)
            else:
                scopes[-1][s.name] = _OPAQUE
        elif isinstance(s, N.Assign):
            self.expr(s.value, scopes, loops)
            if s.op != "=":
                self.access(s.target, scopes, loops, False)
            self.access(s.target, scopes, loops, True)
        elif isinstance(s, N.ExprStmt):
            self.expr(s.expr, scopes, loops)
        elif isinstance(s, N.If):
            self.expr(s.cond, scopes, loops)
            self.stmt(s.then, scopes, loops)
            if s.other is not None:
                self.stmt(s.other, scopes, loops)
        elif isinstance(s, N.For):
            for e in (s.start, s.bound, s.step):
                self.expr(e, scopes, loops)
            self.stmt(s.body, scopes + [{s.var: _LOOPVAR}], loops + [s])
        elif isinstance(s, N.Return) and self.function:
            if s.value is not None:
                self.expr(s.value, scopes, loops)
        elif isinstance(s, (N.Break, N.Continue, N.Pragma, N.TypeAlias)):
            pass  # a break/continue here belongs to a nested loop (canonical() checks)
        else:  # while, return, barrier, DMA, launch
            self.unknown(loops, type(s).__name__.lower())


def accesses(stmts, loops: tuple = (), region=None, pure: frozenset = frozenset()) -> list[Access]:
    """Accesses of ``stmts`` (a statement or a sequence), which run inside ``loops``
    (outermost first). ``region``: the whole code being transformed (names it assigns are
    not loop-invariant); defaults to ``stmts``. ``pure``: names of device functions known
    to touch no memory."""
    stmts = (stmts,) if isinstance(stmts, N.Stmt) else tuple(stmts)
    region = N.Block(stmts) if region is None else region
    c = _Collector(assigned_names(region), pure)
    scopes = [{loop.var: _LOOPVAR for loop in loops}]
    for s in stmts:
        c.stmt(s, scopes, list(loops))
    return c.out


def pure_functions(functions, constants: set[str] = frozenset()) -> frozenset:
    """Names of the device functions that read nothing but their scalar parameters,
    their locals and ``constants``, write nothing else, and call only such functions
    (a fixed point): a call to one is a value, not a memory access."""
    pure: set[str] = set()
    changed = True
    while changed:
        changed = False
        for f in functions:
            if f.name in pure or any(not isinstance(p.dtype, T.ScalarType) for p in f.params):
                continue
            c = _Collector(set(), frozenset(pure), function=True)
            c.stmt(f.body, [{p.name: _OPAQUE for p in f.params}], [])
            if all(a.buffer not in (UNKNOWN,) and not a.write and a.buffer in constants for a in c.out):
                pure.add(f.name)
                changed = True
    return frozenset(pure)


# --------------------------------------------------------------------------- the test
def _instance(access: Access, tag: str, varying: set[str]):
    """Counters, domain constraints and an encoder for one iteration of ``access``'s loops."""
    def symbol(name):
        if name in varying:
            raise Unencodable(name)
        return z3.Int(name)

    enc = Encoder(symbol=symbol)
    counters, dom, values = [], [], {}
    for depth, loop in enumerate(access.loops):
        c = z3.Int(f"{loop.var}#{tag}{depth}")
        counters.append(c)
        dom.append(c >= 0)
        try:
            value = enc.int(loop.start) + c * enc.int(loop.step)
        except Unencodable:
            value = z3.Int(f"{loop.var}#{tag}{depth}v")  # unknown: any value
        enc = enc.with_env(**{loop.var: value})
        values[loop.var] = value
        try:
            dom.append(enc.bool(N.Binary(loop.cmp, N.Var(loop.var), loop.bound)))
        except Unencodable:
            pass  # unknown bound: more iterations than real, never fewer
    return counters, dom, enc, values


def conflict(a: Access, b: Access, relation, varying: set[str]) -> str | None:
    """None when z3 proves that ``a`` in iteration I and ``b`` in iteration J never touch
    the same element for counters with ``relation(I, J)`` (lists of counters, outermost
    first); otherwise what may conflict, with a witness when z3 found one."""
    if not (a.write or b.write):
        return None
    if UNKNOWN not in (a.buffer, b.buffer) and a.buffer != b.buffer:
        return None
    c1, d1, e1, v1 = _instance(a, "1.", varying)
    c2, d2, e2, v2 = _instance(b, "2.", varying)
    same, vague = [], False
    if a.subscripts is None or b.subscripts is None or len(a.subscripts) != len(b.subscripts):
        vague = True
    else:
        for x, y in zip(a.subscripts, b.subscripts):
            try:
                same.append(e1.int(x) == e2.int(y))
            except Unencodable:
                vague = True  # may be any element
    r, model = solve(*d1, *d2, relation(c1, c2), *same)
    if r == "unsat":
        return None
    what = f"{a.describe()} and {b.describe()}"
    if r == "unknown":
        return f"{what} (z3 could not decide whether they touch the same element)"
    note = " (a subscript or buffer the analysis cannot express)" if vague or UNKNOWN in (a.buffer, b.buffer) else ""

    def show(values):
        shown = []
        for name, v in values.items():
            x = model.eval(v, model_completion=True)
            shown.append(f"{name}={x}")
        return "(" + ", ".join(shown) + ")"
    return f"{what} in iterations {show(v1)} and {show(v2)}{note}"


def first_conflict(pairs, relation, varying: set[str]) -> str | None:
    for a, b in pairs:
        found = conflict(a, b, relation, varying)
        if found:
            return found
    return None


def region_varying(region) -> set[str]:
    """Names that are not loop-invariant symbols in ``region``: assigned or declared."""
    return assigned_names(region) | {n.name for n in walk(region) if isinstance(n, N.Decl)}
