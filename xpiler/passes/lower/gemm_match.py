"""Recognizing GEMM-like phases of the canonical program.

``summarize`` executes one iteration of a phase's parallel nest symbolically: loop
counters stay symbols (nothing is unrolled), index values are affine forms over them
(affine.py), data values are terms over loads of the kernel's buffers. Local arrays are
write maps ("a[16*r + c] = A[...] for r, c in [0, 16)"), so a later read of a tile buffer
is matched to the write that produced it by solving the index equation. A loop whose body
adds to the value it read before (a scalar accumulator, or a tile accumulator such as a
lifted WMMA fragment) becomes a sum over its counter. What comes out is, per store to a
buffer: the counters it ranges over, its index and its value.

``match_gemm`` then reads ``C[c] = epilogue(init + sum_k A[a] * B[b])`` off the summary and
classifies every counter by the operands whose index it appears in (rows: A and C; columns:
B and C; batch: all three; reduction: the sum's counters).

Both decline (``Declined``, with the reason) on anything else: a non-affine index, a
data-dependent branch, a loop-carried value that is not a sum, a read whose writer cannot
be proved. They are pure functions of the IR.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ..base import Declined
from .affine import Lin, Sym, disjoint, div_mod, injective, solve

PASS = "tensorize"


def _decline(reason: str):
    raise Declined(PASS, reason)


def _show(e) -> str:
    from ...lang import PRINTERS

    try:
        return PRINTERS["cpu"]().expr(e)
    except Exception:  # a reason must never fail to print
        return type(e).__name__


# --------------------------------------------------------------------------- data terms
@dataclass(frozen=True)
class TConst:
    value: object
    dtype: T.Type


@dataclass(frozen=True)
class TIdx:  # an index value used as data
    lin: Lin
    dtype: T.Type


@dataclass(frozen=True)
class TLoad:  # buf[index], buf a pointer parameter of the kernel
    buf: str
    index: Lin
    dtype: T.Type


@dataclass(frozen=True)
class TOp:  # + - * / neg cast call:<name> hole
    op: str
    args: tuple
    dtype: T.Type


@dataclass(frozen=True)
class TSum:  # sum over sym in [0, extent) of body, accumulated in dtype
    sym: Sym
    body: object
    dtype: T.Type


@dataclass(frozen=True)
class TOld:  # the value a loop-carried variable had before the current iteration
    key: tuple
    dtype: T.Type


HOLE = "hole"


def _rebuild(t, leaf):
    """Apply ``leaf`` bottom-up (it returns a replacement or None to keep the node)."""
    if isinstance(t, TOp):
        args = tuple(_rebuild(a, leaf) for a in t.args)
        t = t if args == t.args else replace(t, args=args)
    elif isinstance(t, TSum):
        body = _rebuild(t.body, leaf)
        t = t if body is t.body else replace(t, body=body)
    r = leaf(t)
    return t if r is None else r


def subst(t, mapping: dict):
    """Replace counters by affine forms in every index inside ``t``."""
    if not mapping:
        return t
    if isinstance(t, Lin):  # an index value held in a local array or scalar
        return t.subst(mapping)

    def leaf(n):
        if isinstance(n, TLoad):
            return replace(n, index=n.index.subst(mapping))
        if isinstance(n, TIdx):
            return replace(n, lin=n.lin.subst(mapping))
        if isinstance(n, TOld) and n.key[0] == "a":
            return replace(n, key=n.key[:3] + (n.key[3].subst(mapping),) + n.key[4:])
        return None
    return _rebuild(t, leaf)


def replace_olds(t, mapping: dict):
    return _rebuild(t, lambda n: mapping.get(n.key) if isinstance(n, TOld) else None) if mapping else t


def nodes(t):
    yield t
    if isinstance(t, TOp):
        for a in t.args:
            yield from nodes(a)
    elif isinstance(t, TSum):
        yield from nodes(t.body)


def olds(t) -> set:
    return {n.key for n in nodes(t) if isinstance(n, TOld)}


def term_syms(t) -> set:
    if isinstance(t, Lin):
        return set(t.syms)
    out, bound = set(), set()
    for n in nodes(t):
        if isinstance(n, TLoad):
            out |= n.index.syms
        elif isinstance(n, TIdx):
            out |= n.lin.syms
        elif isinstance(n, TSum):
            bound.add(n.sym)
    return out - bound


def _is_term(v) -> bool:
    return isinstance(v, (TConst, TIdx, TLoad, TOp, TSum, TOld))


# --------------------------------------------------------------------------- state
@dataclass(frozen=True)
class LPtr:  # a pointer into a local array: byte offset, pointee type
    arr: str
    off: Lin
    elem: T.Type


@dataclass(frozen=True)
class GPtr:  # a pointer into a buffer parameter: element offset
    buf: str
    off: Lin
    elem: T.Type


@dataclass(frozen=True)
class Opaque:  # a value known only at run time (a scalar parameter)
    name: str


@dataclass(frozen=True)
class Cond:  # lin <op> 0, op in < <= == !=
    lin: Lin
    op: str


@dataclass(frozen=True)
class Write:  # arr[index bytes] = value for every point of dom
    dom: tuple
    index: Lin
    dtype: T.Type
    value: object
    guard: tuple


@dataclass(frozen=True)
class Store:  # buf[index] = value for every point of dom
    dom: tuple
    buf: str
    index: Lin
    dtype: T.Type
    value: object
    guard: tuple


@dataclass
class _Array:
    elem: T.Type
    writes: list = field(default_factory=list)
    clobbered: bool = False


@dataclass
class _Frame:
    id: int
    sym: Sym
    marks: dict  # array -> number of writes when the loop was entered
    store_mark: int
    may_write: set  # arrays the body may write ("*": any)
    carried: dict  # scalar -> value before the loop
    olds: dict = field(default_factory=dict)  # placeholder key -> (array, index, dtype)


@dataclass
class Summary:
    psyms: list  # (Sym, phases.Loop): the parallel counters, outermost first
    stores: list  # [Store]


def nbytes(t: T.Type) -> int:
    if isinstance(t, T.ArrayType):
        n = nbytes(t.elem)
        for d in t.shape:
            v = try_fold(d)
            if not isinstance(v, int):
                _decline("a local array has a size that is not a constant")
            n *= v
        return n
    n = T.byte_size(t)
    if not n:
        _decline(f"the size of {T.type_str(t)} is unknown")
    return n


_WIDE_INTS = ("int32", "int64", "uint32", "uint64")


def _decay(t: T.ArrayType) -> T.Type:
    """What an array decays to a pointer to."""
    return t.elem if len(t.shape) == 1 else T.ArrayType(t.elem, t.shape[1:], t.scope)


def _is_int(t) -> bool:
    return isinstance(t, T.ScalarType) and t.is_int


# --------------------------------------------------------------------------- summarizer
class _Summarizer:
    def __init__(self, params, consts: dict):
        self.env: dict = {}
        self.types: dict = {}
        self.buffers = {p.name: p.dtype.elem for p in params if isinstance(p.dtype, T.PointerType)}
        for p in params:
            if not isinstance(p.dtype, T.PointerType):
                self.env[p.name] = Opaque(p.name)
                self.types[p.name] = p.dtype
        self.consts = dict(consts)
        for k, v in consts.items():
            self.env[k] = Lin((), v) if isinstance(v, int) else TConst(v, T.F64)
        self.arrays: dict = {}
        self.stores: list = []
        self.frames: list = []
        self.guards: tuple = ()
        self.psyms: set = set()
        self.ids = itertools.count()

    def fresh(self, name: str, extent) -> Sym:
        return Sym(f"{name}#{next(self.ids)}", extent)

    # ------------------------------------------------------------------ values
    def lin(self, e) -> Lin:
        v = self.eval(e)
        if isinstance(v, Lin):
            return v
        if isinstance(v, TConst) and isinstance(v.value, int):
            return Lin((), v.value)
        if isinstance(v, Opaque):
            _decline(f"{_show(e)} is a run-time value (shapes must be constants)")
        _decline(f"index {_show(e)} is not an affine function of the loop counters")

    def eval(self, e):
        m = getattr(self, "e_" + type(e).__name__, None)
        if m is None:
            _decline(f"{type(e).__name__} expression {_show(e)}")
        return m(e)

    def e_Const(self, e):
        if isinstance(e.value, bool) or isinstance(e.value, int):
            return Lin((), int(e.value))
        if isinstance(e.value, float):
            return TConst(e.value, e.dtype or T.F64)
        _decline(f"constant {e.value!r}")

    def e_Var(self, e):
        if e.name in self.env:
            v = self.env[e.name]
            if v is None:
                _decline(f"{e.name} is read before it is assigned")
            return v
        if e.name in self.arrays:
            a = self.arrays[e.name]
            return LPtr(e.name, Lin(), a.elem)
        if e.name in self.buffers:
            return GPtr(e.name, Lin(), self.buffers[e.name])
        _decline(f"unknown name {e.name}")

    def e_Unary(self, e):
        v = self.eval(e.operand)
        if e.op == "+":
            return v
        if e.op == "-":
            return v.scale(-1) if isinstance(v, Lin) else self._op("neg", (self._term(v),))
        _decline(f"operator {e.op} in {_show(e)}")

    def e_Binary(self, e):
        if e.op in ("<", "<=", ">", ">=", "==", "!=", "&&", "||"):
            c = self.cond(e)
            if isinstance(c, bool):
                return Lin((), int(c))
            _decline(f"condition {_show(e)} used as a value")
        a, b = self.eval(e.lhs), self.eval(e.rhs)
        if isinstance(a, (LPtr, GPtr)) or isinstance(b, (LPtr, GPtr)):
            return self._ptr_arith(e, a, b)
        if isinstance(a, Lin) and isinstance(b, Lin):
            return self._lin_arith(e, a, b)
        if isinstance(a, Opaque) or isinstance(b, Opaque):
            _decline(f"{_show(e)} depends on a run-time scalar")
        if e.op not in ("+", "-", "*", "/"):
            _decline(f"operator {e.op} on data in {_show(e)}")
        return self._op(e.op, (self._term(a), self._term(b)))

    def _lin_arith(self, e, a: Lin, b: Lin) -> Lin:
        if e.op == "+":
            return a + b
        if e.op == "-":
            return a - b
        if e.op == "*" and (a.is_const or b.is_const):
            return b.scale(a.const) if a.is_const else a.scale(b.const)
        if e.op in ("/", "%", ">>") and b.is_const and b.const > 0:
            d = b.const if e.op != ">>" else 1 << b.const
            if a.is_const:
                return Lin((), int(a.const / d) if e.op != "%" else a.const - int(a.const / d) * d)
            qr = div_mod(a, d)
            if qr is None:
                _decline(f"index {_show(e)} is not affine (division does not simplify)")
            return qr[1] if e.op == "%" else qr[0]
        if e.op == "<<" and b.is_const and b.const >= 0:
            return a.scale(1 << b.const)
        _decline(f"index {_show(e)} is not an affine function of the loop counters")

    def _ptr_arith(self, e, a, b):
        if e.op == "+" and isinstance(b, (LPtr, GPtr)):
            a, b = b, a
        if e.op not in ("+", "-") or not isinstance(b, Lin):
            _decline(f"pointer arithmetic {_show(e)}")
        b = b if e.op == "+" else b.scale(-1)
        if isinstance(a, GPtr):
            return replace(a, off=a.off + b)
        return replace(a, off=a.off + b.scale(nbytes(a.elem)))

    def _term(self, v):
        if _is_term(v):
            return v
        if isinstance(v, Lin):
            return TConst(v.const, T.I32) if v.is_const else TIdx(v, T.I32)
        _decline("a pointer or run-time scalar is used as data")

    def _op(self, op, args, dtype=None):
        if dtype is None:
            dtype = args[0].dtype
            for a in args[1:]:
                dtype = T.promote(dtype, a.dtype)
        return TOp(op, tuple(args), dtype)

    def e_Cast(self, e):
        v = self.eval(e.value)
        t = e.dtype
        if isinstance(t, T.PointerType):
            if isinstance(v, LPtr):
                return replace(v, elem=t.elem)
            if isinstance(v, GPtr):
                if T.type_str(t.elem) != T.type_str(v.elem):
                    _decline(f"buffer {v.buf} is read through another type ({_show(e)})")
                return v
            _decline(f"cast {_show(e)}")
        return self.convert(v, t, e)

    def convert(self, v, t, where=None):
        """The value ``v`` converted to type ``t`` (assignment or cast)."""
        if isinstance(t, T.PointerType):
            if isinstance(v, (LPtr, GPtr)):
                return v
            _decline(f"pointer value {_show(where)}")
        if not isinstance(t, T.ScalarType):
            _decline(f"value of type {T.type_str(t)}")
        if isinstance(v, Lin):
            if t.name in _WIDE_INTS:
                return v
            if v.is_const:
                return TConst(float(v.const) if t.is_float else v.const, t)
            if t.is_float:
                return TOp("cast", (TIdx(v, T.I32),), t)
            _decline(f"an index narrowed to {t.name}")
        if isinstance(v, Opaque):
            _decline(f"{v.name} is a run-time scalar")
        if not _is_term(v):
            _decline(f"conversion of a pointer to {t.name}")
        if v.dtype == t:
            return v
        if isinstance(v, TConst):
            return TConst(float(v.value) if t.is_float else v.value, t) if not _is_int(t) or isinstance(v.value, int) \
                else TOp("cast", (v,), t)
        return TOp("cast", (v,), t)

    def e_Select(self, e):
        c = self.cond(e.cond)
        if isinstance(c, bool):
            return self.eval(e.then if c else e.other)
        _decline(f"data-dependent selection {_show(e)}")

    def e_Call(self, e):
        args = tuple(self._term(self.eval(a)) for a in e.args)
        from ...platforms.registry import C_MATH

        if e.func not in C_MATH:
            _decline(f"call of {e.func}")
        t = C_MATH[e.func] if isinstance(C_MATH[e.func], T.Type) else (args[0].dtype if args else T.F64)
        return TOp("call:" + e.func, args, t)

    def e_AddressOf(self, e):
        if isinstance(e.value, N.Var) and e.value.name in self.arrays:
            return LPtr(e.value.name, Lin(), self.arrays[e.value.name].elem)
        return self.location(e.value)

    def e_Deref(self, e):
        return self.e_Load(N.Load(e.pointer, N.Const(0, T.I32)))

    def e_Load(self, e):
        loc = self.location(e)
        if isinstance(loc, GPtr):
            # a load means the buffer's value before the phase: only while the phase has
            # not stored to that element
            lo, hi = loc.off.bounds()
            for st in self.stores:
                if st.buf == loc.buf and not disjoint(st.index.bounds(), (lo, hi)):
                    _decline(f"{loc.buf} is read after the phase stored to it")
            return TLoad(loc.buf, loc.off, loc.elem)
        if isinstance(loc.elem, T.ArrayType):
            return replace(loc, elem=_decay(loc.elem))  # a row of a multi-dimensional array
        return self.read(loc.arr, loc.off, loc.elem)

    def location(self, e):
        """The address an lvalue denotes (LPtr or GPtr; the pointee type is the element)."""
        if isinstance(e, N.Deref):
            e = N.Load(e.pointer, N.Const(0, T.I32))
        if not isinstance(e, N.Load):
            _decline(f"address of {_show(e)}")
        base = self.eval(e.base)
        idx = self.lin(e.index)
        if isinstance(base, GPtr):
            return replace(base, off=base.off + idx)
        if isinstance(base, LPtr):
            return replace(base, off=base.off + idx.scale(nbytes(base.elem)))
        _decline(f"indexing {_show(e.base)}")

    # ------------------------------------------------------------------ conditions
    def cond(self, e):
        """True/False when decided, else a tuple of Conds (a conjunction)."""
        if isinstance(e, N.Binary) and e.op == "&&":
            a, b = self.cond(e.lhs), self.cond(e.rhs)
            if a is False or b is False:
                return False
            parts = tuple(x for x in (a, b) if x is not True)
            return True if not parts else tuple(c for p in parts for c in p)
        if isinstance(e, N.Binary) and e.op == "||":
            a, b = self.cond(e.lhs), self.cond(e.rhs)
            if a is True or b is True:
                return True
            if a is False and b is False:
                return False
            _decline(f"condition {_show(e)} is a disjunction")
        if isinstance(e, N.Binary) and e.op in ("<", "<=", ">", ">=", "==", "!="):
            a, b = self.lin(e.lhs), self.lin(e.rhs)
            op, d = {"<": ("<", a - b), "<=": ("<=", a - b), ">": ("<", b - a), ">=": ("<=", b - a),
                     "==": ("==", a - b), "!=": ("!=", a - b)}[e.op]
            c = _decide(Cond(d, op))
            return c if c is not None else (Cond(d, op),)
        v = self.eval(e)
        if isinstance(v, Lin) and v.is_const:
            return bool(v.const)
        _decline(f"condition {_show(e)}")

    # ------------------------------------------------------------------ memory
    def read(self, arr: str, at: Lin, dtype):
        st = self.arrays[arr]
        if st.clobbered:
            _decline(f"{arr} is read after a loop left it holding its last iteration's values")
        size = nbytes(dtype)
        # walking back from the newest write, an inner loop's boundary comes first (on a tie
        # too: the current iteration of the innermost loop began last)
        crossing = sorted((f for f in self.frames if arr in f.marks),
                          key=lambda f: (-f.marks[arr], -self.frames.index(f)))
        ci = 0
        for i in range(len(st.writes) - 1, -2, -1):
            while ci < len(crossing) and i < crossing[ci].marks[arr]:
                f = crossing[ci]
                if arr in f.may_write or "*" in f.may_write:
                    key = ("a", f.id, arr, at, T.type_str(dtype))
                    f.olds[key] = (arr, at, dtype)
                    return TOld(key, dtype)
                ci += 1
            if i < 0:
                break
            w = st.writes[i]
            sol = solve(w.index, w.dom, at)
            if sol is not None:
                if nbytes(w.dtype) != size or T.type_str(w.dtype) != T.type_str(dtype):
                    _decline(f"{arr} is written as {T.type_str(w.dtype)} and read as {T.type_str(dtype)}")
                if self.guards[:len(w.guard)] != w.guard:
                    _decline(f"{arr} is read outside the condition it was written under")
                return subst(w.value, sol)
            wlo, whi = w.index.bounds()
            rlo, rhi = at.bounds()
            if not disjoint((wlo, None if whi is None else whi + nbytes(w.dtype) - 1),
                            (rlo, None if rhi is None else rhi + size - 1)):
                _decline(f"cannot tell which write of {arr} a read sees")
        _decline(f"{arr} is read where it was never written")

    def write(self, loc, value):
        if isinstance(loc, GPtr):
            self.stores.append(Store((), loc.buf, loc.off, loc.elem, self.convert(value, loc.elem), self.guards))
            return
        if isinstance(loc.elem, T.ArrayType):
            _decline(f"assignment of an array row of {loc.arr}")
        writes = self.arrays[loc.arr].writes
        w = Write((), loc.off, loc.elem, self.convert(value, loc.elem), self.guards)
        if writes and all(f.marks.get(loc.arr, 0) < len(writes) for f in self.frames):
            run = _coalesce(writes[-1], w, self.fresh)
            if run is not None:
                writes[-1] = run
                return
        writes.append(w)

    # ------------------------------------------------------------------ statements
    def block(self, stmts):
        for s in stmts:
            m = getattr(self, "s_" + type(s).__name__, None)
            if m is None:
                _decline(f"{type(s).__name__} statement")
            m(s)

    def s_Block(self, s):
        self.block(s.body)

    def s_Pragma(self, s):
        pass

    def s_Decl(self, s):
        t = s.dtype
        if isinstance(t, T.ArrayType):
            if s.init is not None:
                _decline(f"initialized local array {s.name}")
            dims = tuple(try_fold(d, self.consts) for d in t.shape)
            if not all(isinstance(d, int) for d in dims):
                _decline(f"local array {s.name} has a size that is not a constant")
            t = T.ArrayType(t.elem, tuple(N.Const(d, T.I32) for d in dims), t.scope)
            self.arrays[s.name] = _Array(_decay(t))
            return
        if not isinstance(t, (T.ScalarType, T.PointerType)):
            _decline(f"local {s.name} of type {T.type_str(t)}")
        self.types[s.name] = t
        self.env[s.name] = None if s.init is None else self.convert(self.eval(s.init), t, s.init)

    def s_Assign(self, s):
        value = s.value if s.op == "=" else N.Binary(s.op[:-1], s.target, s.value)
        if isinstance(s.target, N.Var):
            if s.target.name not in self.types:
                _decline(f"assignment to {s.target.name}")
            self.env[s.target.name] = self.convert(self.eval(value), self.types[s.target.name], value)
            return
        self.write(self.location(s.target), self.eval(value))

    def s_If(self, s):
        c = self.cond(s.cond)
        if c is True:
            self.block(s.then.body)
        elif c is False:
            if s.other is not None:
                self.block(s.other.body)
        else:
            if s.other is not None:
                _decline(f"if/else on {_show(s.cond)}")
            # over a sequential counter: only stores to buffers may depend on it (they
            # keep the condition; match_gemm takes it only when asked to)
            stores_only = all(isinstance(x, N.Assign) and not isinstance(x.target, N.Var) for x in s.then.body)
            if not stores_only and any(not x.lin.syms <= self.psyms for x in c):
                _decline(f"condition {_show(s.cond)} depends on a sequential loop counter")
            saved, written = self.guards, sum(len(a.writes) for a in self.arrays.values())
            self.guards = saved + tuple(c)
            self.block(s.then.body)
            self.guards = saved
            if sum(len(a.writes) for a in self.arrays.values()) != written and \
                    any(not x.lin.syms <= self.psyms for x in c):
                _decline(f"a local array is written under {_show(s.cond)}, which depends on a sequential loop counter")

    def s_For(self, s):
        from ..base import assigned_names

        if s.var in assigned_names(s.body):
            _decline(f"loop {s.var} assigns its own counter")
        start, count, step = self.loop_range(s)
        if count <= 0:
            return
        d = _split_divisor(s, start, step, count)
        if d is not None:  # l / d and l % d stay affine over l = hi * d + lo (same order)
            hi, lo = f"{s.var}#hi", f"{s.var}#lo"
            at = N.Binary("+", N.Binary("*", N.Var(hi, s.dtype), N.Const(d, T.I32)), N.Var(lo, s.dtype))
            one, zero = N.Const(1, T.I32), N.Const(0, T.I32)
            inner = N.For(lo, s.dtype, zero, "<", N.Const(d, T.I32), one,
                          N.Block((N.Decl(s.var, s.dtype, at),) + s.body.body))
            self.s_For(N.For(hi, s.dtype, zero, "<", N.Const(count // d, T.I32), one, N.Block((inner,))))
            return
        if count == 1:
            self.types[s.var] = s.dtype
            self.env[s.var] = start
            self.block(s.body.body)
            return
        sym = self.fresh(s.var, count)
        before, arrays_before = set(self.env), set(self.arrays)
        frame = _Frame(next(self.ids), sym, {a: len(st.writes) for a, st in self.arrays.items()}, len(self.stores),
                       self.may_write(s.body), {})
        for name in assigned_names(s.body):
            if name in self.env and name != s.var:
                frame.carried[name] = self.env[name]
                self.env[name] = TOld(("s", frame.id, name), self.types[name])
        self.frames.append(frame)
        self.types[s.var] = s.dtype
        self.env[s.var] = start + Lin.of(sym, step)
        self.block(s.body.body)
        self.frames.pop()
        self.close(frame)
        for name in set(self.env) - before:  # the body's declarations go out of scope
            del self.env[name]
        for name in set(self.arrays) - arrays_before:
            del self.arrays[name]
        if not s.declared:
            self.env[s.var] = start + Lin((), step * count)

    def loop_range(self, s):
        start = self.lin(s.start)
        step = self.lin(s.step)
        bound = self.lin(s.bound)
        if not step.is_const or step.const == 0:
            _decline(f"loop {s.var} has a step that is not a constant")
        span = bound - start
        if not span.is_const:
            _decline(f"loop {s.var} has a trip count that is not a constant")
        d, k = span.const, step.const
        if s.cmp == "<" and k > 0:
            n = -(-d // k)
        elif s.cmp == "<=" and k > 0:
            n = (d + k) // k
        elif s.cmp == ">" and k < 0:
            n = -(-(-d) // -k)
        elif s.cmp == ">=" and k < 0:
            n = (-d - k) // -k
        else:
            _decline(f"loop {s.var} with condition {s.cmp}")
        return start, max(n, 0), k

    def may_write(self, body) -> set:
        from ...ir.visitor import walk

        out, local_ptrs = set(), set()
        for n in walk(body):
            if isinstance(n, N.Decl) and (n.name in self.env or n.name in self.arrays):
                _decline(f"a loop body redeclares {n.name}")  # shadowing is not modelled
            if isinstance(n, N.Decl) and isinstance(n.dtype, T.PointerType):
                local_ptrs.add(n.name)
        for n in walk(body):
            if isinstance(n, N.Assign) and not isinstance(n.target, N.Var):
                for name in _roots(n.target):
                    v = self.env.get(name)
                    if name in self.arrays:
                        out.add(name)
                    elif isinstance(v, LPtr):
                        out.add(v.arr)
                    elif name in local_ptrs or isinstance(v, TOld):
                        out.add("*")
        return out

    # ------------------------------------------------------------------ loop exit
    def close(self, f: _Frame):
        sym = f.sym
        # 1. reads that fell through to before the loop: values from before the loop
        #    unless an earlier iteration may have written the element (then: carried)
        fresh, carried = {}, {}
        for key, (arr, at, dtype) in f.olds.items():
            new = self.arrays[arr].writes[f.marks[arr]:]
            if all(_first_writer(w, sym, at, self.fresh) for w in new):
                fresh[key] = self._read_before(f, arr, at, dtype)
            else:
                carried[key] = (arr, at, dtype)
        self._replace(f, fresh)
        # 2. scalars assigned in the body
        for name, before in f.carried.items():
            v = self.env.get(name)
            key = ("s", f.id, name)
            if isinstance(v, TOld) and v.key == key:
                self.env[name] = before
            elif _is_term(v) and key in olds(v):
                delta = _increment(v, key)
                if delta is None or olds(delta) & _frame_keys(f, carried):
                    _decline(f"{name} is carried from one iteration of loop {sym.name.split('#')[0]} to the next "
                             "and is not a sum")
                self.env[name] = TOp("+", (self._term(before), TSum(sym, delta, v.dtype)), v.dtype)
            elif isinstance(v, Lin) and sym in v.syms:
                self.env[name] = v.subst({sym: Lin((), sym.extent - 1)})
            elif _is_term(v) and sym in term_syms(v):
                self.env[name] = subst(v, {sym: Lin((), sym.extent - 1)})
        # 3. arrays written in the body
        for arr, st in self.arrays.items():
            mark = f.marks.get(arr, 0)
            new = st.writes[mark:]
            if not new:
                continue
            out, clobber = [], False
            for w in new:
                mine = olds(w.value) & set(carried)
                if mine:
                    key = next(iter(mine))
                    delta = _increment(w.value, key)
                    if (len(mine) > 1 or carried[key][1] != w.index or sym in w.index.syms or delta is None
                            or any(o is not w and not _apart(o, w) for o in new)):
                        _decline(f"{arr} is carried from one iteration of loop {sym.name.split('#')[0]} to the next "
                                 "and is not a sum")
                    before = self._read_before(f, arr, w.index, w.dtype)
                    out.append(replace(w, value=TOp("+", (before, TSum(sym, delta, w.dtype)), w.dtype)))
                elif sym in w.index.syms:
                    dom = w.dom + (sym,)
                    if not injective(w.index, dom):
                        _decline(f"a loop writes an element of {arr} more than once")
                    out.append(replace(w, dom=dom))
                elif sym in term_syms(w.value):
                    clobber = True
                else:
                    out.append(w)
            st.writes[mark:] = out
            if clobber:
                st.clobbered = True
        # 4. stores to buffers
        new = []
        for s in self.stores[f.store_mark:]:
            if olds(s.value) & _frame_keys(f, carried):
                _decline(f"a value stored to {s.buf} depends on the previous iteration of a loop")
            if sym in s.index.syms:
                dom = s.dom + (sym,)
                if not injective(s.index, dom):
                    _decline(f"a loop stores to an element of {s.buf} more than once")
                new.append(replace(s, dom=dom))
            elif sym in term_syms(s.value):
                _decline(f"every iteration of a loop stores a different value to the same element of {s.buf}")
            else:
                new.append(s)
        self.stores[f.store_mark:] = new
        left = _frame_keys(f, carried)
        for v in list(self.env.values()) + [w.value for st in self.arrays.values() for w in st.writes] + \
                [s.value for s in self.stores]:
            if _is_term(v) and olds(v) & left:
                _decline(f"a value carried across iterations of loop {sym.name.split('#')[0]} is not a sum")

    def _read_before(self, f: _Frame, arr, at, dtype):
        """``arr[at]`` as it was when loop ``f`` was entered."""
        st = self.arrays[arr]
        saved, saved_frames = st.writes, self.frames
        st.writes = st.writes[:f.marks[arr]]
        self.frames = [g for g in self.frames if g.id != f.id]
        try:
            return self.read(arr, at, dtype)
        finally:
            st.writes, self.frames = saved, saved_frames

    def _replace(self, f: _Frame, mapping: dict):
        if not mapping:
            return
        for k, v in self.env.items():
            if _is_term(v):
                self.env[k] = replace_olds(v, mapping)
        for arr, st in self.arrays.items():
            st.writes[:] = [replace(w, value=replace_olds(w.value, mapping)) for w in st.writes]
        self.stores[:] = [replace(s, value=replace_olds(s.value, mapping)) for s in self.stores]


def _frame_keys(f: _Frame, carried: dict) -> set:
    return set(carried) | {("s", f.id, n) for n in f.carried}


COALESCED = "coalesced"  # the counter of a run of writes merged by _coalesce


def _coalesce(prev: Write, w: Write, fresh) -> Write | None:
    """One write for ``prev`` then ``w`` when they store the same value at equally
    spaced elements (``v[0] = 0; v[1] = 0; ...``, as a lifted vector initializer is):
    ``prev`` may already be such a run (its last counter). A read of the run at a
    symbolic element then matches one write."""
    if (w.dtype, w.guard, w.value) != (prev.dtype, prev.guard, prev.value) or term_syms(w.value):
        return None
    run = prev.dom[-1] if prev.dom and prev.dom[-1].name.startswith(COALESCED) else None
    if run is not None and prev.dom[:-1] == w.dom:
        stride, base, n = prev.index.coef(run), prev.index.subst({run: Lin()}), run.extent
    elif prev.dom == w.dom:
        diff = w.index - prev.index
        stride, base, n = diff.const, prev.index, 1
        if not diff.is_const:
            return None
    else:
        return None
    if stride < nbytes(w.dtype) or w.index != base + Lin((), stride * n):
        return None
    j = fresh(COALESCED, n + 1)
    return replace(prev, dom=w.dom + (j,), index=base + Lin.of(j, stride))


def _split_divisor(s: N.For, start: Lin, step: int, count: int) -> int | None:
    """A constant d the body of loop ``s`` (from 0 by 1, declaring its counter) divides
    or reduces its counter by, when d divides the trip count."""
    from ...ir.visitor import walk

    if not (s.declared and step == 1 and start == Lin()):
        return None
    for n in walk(s.body):
        if isinstance(n, N.Binary) and n.op in ("/", "%") and isinstance(n.lhs, N.Var) and n.lhs.name == s.var:
            d = try_fold(n.rhs)
            if isinstance(d, int) and 1 < d < count and count % d == 0:
                return d
    return None


def _roots(t) -> set:
    if isinstance(t, N.Var):
        return {t.name}
    if isinstance(t, N.Load):
        return _roots(t.base)
    if isinstance(t, N.Deref):
        return _roots(t.pointer)
    if isinstance(t, (N.Cast, N.AddressOf)):
        return _roots(t.value)
    if isinstance(t, N.Binary):
        return _roots(t.lhs) | _roots(t.rhs)
    return set()


def _increment(v, key):
    """Δ when v == old + Δ (Δ free of old), else None."""
    if isinstance(v, TOp) and v.op == "+" and len(v.args) == 2:
        a, b = v.args
        for x, y in ((a, b), (b, a)):
            if isinstance(x, TOld) and x.key == key and key not in olds(y):
                return y
    return None


def _first_writer(w: Write, sym: Sym, at: Lin, fresh) -> bool:
    """Whether no iteration of the loop over ``sym`` other than the current one writes
    ``at`` through ``w`` (so a read of ``at`` that missed the current iteration's writes
    sees the value from before the loop)."""
    if sym in w.index.syms:
        other = fresh(sym.name, sym.extent)
        form = w.index.subst({sym: Lin.of(other)})
        sol = solve(form, w.dom + (other,), at) if injective(form, w.dom + (other,)) else None
        if sol is not None and sol[other] == Lin.of(sym):
            return True
    wlo, whi = w.index.bounds()
    return disjoint((wlo, None if whi is None else whi + nbytes(w.dtype) - 1), at.bounds())


def _apart(a: Write, b: Write) -> bool:
    alo, ahi = a.index.bounds()
    blo, bhi = b.index.bounds()
    return disjoint((alo, None if ahi is None else ahi + nbytes(a.dtype) - 1),
                    (blo, None if bhi is None else bhi + nbytes(b.dtype) - 1))


def _decide(c: Cond):
    lo, hi = c.lin.bounds()
    if c.op == "<":
        return True if hi is not None and hi < 0 else False if lo is not None and lo >= 0 else None
    if c.op == "<=":
        return True if hi is not None and hi <= 0 else False if lo is not None and lo > 0 else None
    if c.op in ("==", "!="):
        if lo is not None and lo == hi:
            return (lo == 0) == (c.op == "==")
        if (lo is not None and lo > 0) or (hi is not None and hi < 0):
            return c.op == "!="
    return None


def summarize(loops, body: N.Block, prelude, params, consts: dict) -> Summary:
    """The symbolic summary of one iteration of a parallel nest (see the module doc).
    ``loops``: the nest's phases.Loop list; ``prelude``: replicated scalar declarations;
    ``params``: the kernel parameters; ``consts``: integer macro values."""
    s = _Summarizer(params, consts)
    for d in prelude:
        try:
            s.block([d])
        except Declined:  # e.g. a grid size from run-time scalars: fine unless used
            s.env[d.name], s.types[d.name] = Opaque(d.name), d.dtype
    psyms = []
    for l in loops:
        start, step = s.lin(l.start), s.lin(l.step)
        if not step.is_const:
            _decline(f"parallel loop {l.var} has a step that is not a constant")
        ext = try_fold(l.extent, consts)
        if isinstance(ext, int) and ext == 1:
            s.types[l.var] = l.dtype
            s.env[l.var] = start
            continue
        sym = s.fresh(l.var, ext if isinstance(ext, int) else None)
        psyms.append((sym, l))
        s.psyms.add(sym)
        s.types[l.var] = l.dtype
        s.env[l.var] = start + Lin.of(sym, step.const)
    s.block(body.body)
    return Summary(psyms, list(s.stores))


# --------------------------------------------------------------------------- GEMM
@dataclass(frozen=True)
class Operand:
    buf: str
    index: Lin
    dtype: T.Type  # the buffer's element type


@dataclass
class Gemm:
    a: Operand  # A: indexed by rows and the reduction
    b: Operand  # B: indexed by the reduction and columns
    c: Operand  # the stored buffer
    red: list  # reduction counters, outermost first
    acc: T.Type  # the type the source accumulates in
    init: object  # term added to the sum (None: zero)
    epilogue: object  # term of TOp("hole") (the accumulated value): what is stored
    psyms: list  # (Sym, Loop)
    dom: tuple  # counters of the store
    guard: tuple  # Conds over parallel counters
    roles: dict  # Sym -> row | col | batch | red | none


def _exact(src: T.Type, dst: T.Type) -> bool:
    """Whether converting src to dst keeps every value."""
    if not (isinstance(src, T.ScalarType) and isinstance(dst, T.ScalarType)):
        return False
    if src.name == dst.name:
        return True
    mant = {"float16": 11, "float32": 24, "float64": 53}
    bits = {"int8": 7, "uint8": 8, "int16": 15, "uint16": 16, "int32": 31, "uint32": 32, "int64": 63, "uint64": 64}
    if src.is_float:
        return dst.is_float and mant.get(dst.name, 0) >= mant.get(src.name, 99) and src.name != "bfloat16"
    if dst.is_float:
        return mant.get(dst.name, 0) >= bits.get(src.name, 99)
    sb, db = bits.get(src.name, 99), bits.get(dst.name, 0)
    return db >= sb and (dst.is_signed or not src.is_signed)


def _operand(t):
    while isinstance(t, TOp) and t.op == "cast":
        if not _exact(t.args[0].dtype, t.dtype):
            _decline(f"an operand is converted with rounding ({T.type_str(t.args[0].dtype)} -> {T.type_str(t.dtype)})")
        t = t.args[0]
    if not isinstance(t, TLoad):
        _decline("a product operand is not a buffer element")
    return Operand(t.buf, t.index, t.dtype)


def _split_core(v):
    """(epilogue with a hole, core) where core = [init +] sum ..."""
    def has_sum(t):
        return any(isinstance(n, TSum) for n in nodes(t))
    if isinstance(v, TSum):
        return TOp(HOLE, (), v.dtype), v
    if isinstance(v, TOp) and v.op == "+" and len(v.args) == 2:
        a, b = v.args
        if isinstance(b, TSum) and not has_sum(a) or isinstance(a, TSum) and not has_sum(b):
            return TOp(HOLE, (), v.dtype), v
    if isinstance(v, TOp):
        inside = [i for i, a in enumerate(v.args) if has_sum(a)]
        if len(inside) == 1:
            hole, core = _split_core(v.args[inside[0]])
            args = list(v.args)
            args[inside[0]] = hole
            return replace(v, args=tuple(args)), core
    _decline("the stored value is not a sum of products")


def match_gemm(summary: Summary, vectors: bool = False, loop_guards: bool = False) -> Gemm:
    """The GEMM of a phase's summary. For tensorizers that can take them: ``vectors``, a
    matrix-vector product (no row or no column counter: a dimension of extent 1);
    ``loop_guards``, a store condition over the store's sequential loops too."""
    if len(summary.stores) != 1:
        _decline(f"the phase stores {len(summary.stores)} values (a GEMM stores one)")
    st = summary.stores[0]
    psyms = {s for s, _ in summary.psyms}
    if not loop_guards and any(not c.lin.syms <= psyms for c in st.guard):
        _decline("the store's condition depends on a sequential loop counter")
    for n in nodes(st.value):
        if isinstance(n, TLoad) and n.buf == st.buf and n.index != st.index:
            _decline(f"{st.buf} is read at other elements than the one stored")
    epi, core = _split_core(st.value)
    init = None
    if isinstance(core, TOp):
        init, core = (core.args[0], core.args[1]) if isinstance(core.args[1], TSum) else (core.args[1], core.args[0])
        if isinstance(init, TConst) and init.value == 0:
            init = None
    acc = core.dtype
    red = []
    while isinstance(core, TSum):
        red.append(core.sym)
        if core.dtype != acc:
            _decline("nested sums accumulate in different types")
        core = core.body
    while isinstance(core, TOp) and core.op == "cast" and _exact(core.args[0].dtype, core.dtype):
        core = core.args[0]
    if not (isinstance(core, TOp) and core.op == "*" and len(core.args) == 2):
        _decline("the summand is not a product of two buffer elements")
    x, y = (_operand(a) for a in core.args)
    psyms = [s for s, _ in summary.psyms]
    roles = {}
    for s in set(psyms) | set(st.dom) | set(red):
        ina, inb, inc = x.index.coef(s) != 0, y.index.coef(s) != 0, st.index.coef(s) != 0
        if s in red:
            if not (ina or inb):
                _decline("a reduction counter indexes neither operand")
            roles[s] = "red"
        elif inc and ina and not inb:
            roles[s] = "row"
        elif inc and inb and not ina:
            roles[s] = "col"
        elif inc:
            roles[s] = "batch"
        elif ina or inb:
            _decline("iterations that read different operands store to the same element")
        else:
            roles[s] = "none"
    for s in term_syms(epi) | (term_syms(init) if init is not None else set()):
        if roles.get(s) not in ("row", "col", "batch"):
            _decline("the epilogue depends on a counter that is not an output index")
    if not vectors and (not any(r == "row" for r in roles.values()) or not any(r == "col" for r in roles.values())):
        # one operand indexes the output alone: x must be the row operand
        _decline("the product has no row or no column dimension (a matrix-vector product)")
    if any(roles[s] == "col" for s in x.index.syms if s in roles):
        x, y = y, x
    c = Operand(st.buf, st.index, st.dtype)
    return Gemm(x, y, c, red, acc, init, epi, summary.psyms, st.dom, st.guard, roles)


# ------------------------------------------------------- back to IR (for the tensorizers)
class IRNames:
    """IR variables for the symbols of affine forms (fresh, readable names)."""

    def __init__(self, namer):
        self.namer, self.exprs = namer, {}

    def var(self, s: Sym) -> N.Var:
        if s not in self.exprs:
            base = "xpiler_" + "".join(c if c.isalnum() else "_" for c in s.name.split("#")[0]).removeprefix("xpiler_")
            self.exprs[s] = N.Var(self.namer.fresh(base), T.I32)
        return self.exprs[s]


def lin_ir(l: Lin, env: dict, names: IRNames) -> N.Expr:
    """IR of an affine form; counters map to ``env`` expressions or to declared variables.
    A term that may not fit int (an unbounded grid counter, a large product) computes in
    int64, which makes the rest of the sum int64 too."""
    e = None
    for s, c in l.terms:
        x = env[s] if s in env else names.var(s)
        lo, hi = Lin(((s, c),)).bounds()
        wide = lo is None or hi is None or max(abs(lo), abs(hi)) >= 1 << 31
        if wide:
            x = N.Cast(T.I64, x, "c")
        x = x if c == 1 else N.Binary("*", x, N.Const(c, T.I64 if wide else T.I32))
        e = x if e is None else N.Binary("+", e, x)
    t = T.I64 if abs(l.const) >= 1 << 31 else T.I32
    if e is None:
        return N.Const(l.const, t)
    return e if l.const == 0 else N.Binary("+", e, N.Const(l.const, t))


def term_ir(t, env, names, hole: N.Expr) -> N.Expr:
    if isinstance(t, TConst):
        return N.Const(t.value, t.dtype)
    if isinstance(t, TIdx):
        return N.Cast(t.dtype, lin_ir(t.lin, env, names), "c")
    if isinstance(t, TLoad):
        return N.Load(N.Var(t.buf), lin_ir(t.index, env, names))
    if isinstance(t, TOp):
        args = [term_ir(a, env, names, hole) for a in t.args]
        if t.op == HOLE:
            return hole
        if t.op in ("+", "-", "*", "/"):
            return N.Binary(t.op, args[0], args[1])
        if t.op == "neg":
            return N.Unary("-", args[0])
        if t.op == "cast":
            return N.Cast(t.dtype, args[0], "c")
        if t.op.startswith("call:"):
            return N.Call(t.op[5:], tuple(args))
    _decline(f"cannot print the epilogue term {type(t).__name__}")


def guard_ir(conds, env, names):
    """IR of a conjunction of affine conditions."""
    e = None
    for c in conds:
        x = N.Binary(c.op, lin_ir(c.lin - Lin((), c.lin.const), env, names), N.Const(-c.lin.const, T.I32))
        e = x if e is None else N.Binary("&&", e, x)
    return e
