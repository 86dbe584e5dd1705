"""A tiny DSL for writing intrinsic meanings as ordinary IR loop nests.

    def add(dst, a, b, n):
        return loop(n, lambda i: store(dst, i, a[i] + b[i]))

Values are wrapped in ``E`` so that Python operators build IR: ``a[i]`` is a Load,
``x + y`` a Binary, ``x < y`` a comparison (``x.eq(y)`` / ``x.ne(y)`` for ==/!=, since
``==`` must stay structural equality). Python ints become int32 constants and Python
floats float32 constants, because meanings compute in the hardware's float32 unless they
say otherwise with ``const(v, F64)``. Loop variables take the lambda's parameter name
(``lambda i: ...`` gives ``i``), made unique when nested loops reuse a name.

``meaning_fn`` wraps a meaning so that callers may pass plain IR expressions (the
registry does) and always get plain IR back (never ``E``).
"""
from __future__ import annotations

import functools
import inspect
from typing import Callable, Iterable, Union

from ..ir import nodes as N
from ..ir import types as T

Like = Union["E", N.Expr, int, float, bool]


class E:
    """An IR expression with Python operators. ``E.node`` is the plain IR."""

    __slots__ = ("node",)
    __hash__ = None  # operators build IR, so E is not a dict key

    def __init__(self, node: N.Expr):
        self.node = node

    # arithmetic (C semantics are the interpreter's business, not ours)
    def _bin(self, op, other, swap=False):
        a, b = ex(self), ex(other)
        return E(N.Binary(op, b, a) if swap else N.Binary(op, a, b))

    def __add__(self, o): return self._bin("+", o)
    def __radd__(self, o): return self._bin("+", o, True)
    def __sub__(self, o): return self._bin("-", o)
    def __rsub__(self, o): return self._bin("-", o, True)
    def __mul__(self, o): return self._bin("*", o)
    def __rmul__(self, o): return self._bin("*", o, True)
    def __truediv__(self, o): return self._bin("/", o)  # C division: truncates for ints
    def __rtruediv__(self, o): return self._bin("/", o, True)
    def __floordiv__(self, o): return self._bin("/", o)  # same C '/': reads better for ints
    def __mod__(self, o): return self._bin("%", o)
    def __and__(self, o): return self._bin("&", o)
    def __or__(self, o): return self._bin("|", o)
    def __xor__(self, o): return self._bin("^", o)
    def __lshift__(self, o): return self._bin("<<", o)
    def __rshift__(self, o): return self._bin(">>", o)
    def __lt__(self, o): return self._bin("<", o)
    def __le__(self, o): return self._bin("<=", o)
    def __gt__(self, o): return self._bin(">", o)
    def __ge__(self, o): return self._bin(">=", o)
    def __neg__(self): return E(N.Unary("-", ex(self)))
    def __invert__(self): return E(N.Unary("~", ex(self)))

    def eq(self, o): return self._bin("==", o)
    def ne(self, o): return self._bin("!=", o)
    def land(self, o): return self._bin("&&", o)
    def lor(self, o): return self._bin("||", o)

    def __getitem__(self, index):
        return E(N.Load(ex(self), ex(index)))

    @property
    def dtype(self) -> T.Type | None:
        return getattr(self.node, "dtype", None)

    def __repr__(self):
        return f"E({self.node!r})"


def ex(v: Like) -> N.Expr:
    """Plain IR for a DSL value."""
    if isinstance(v, E):
        return v.node
    if isinstance(v, N.Expr):
        return v
    if isinstance(v, bool):
        return N.Const(v, T.BOOL)
    if isinstance(v, int):
        return N.Const(v, T.I32 if -2**31 <= v < 2**31 else T.I64)
    if isinstance(v, float):
        return N.Const(v, T.F32)
    raise TypeError(f"not an IR value: {v!r}")


def wrap(v: Like) -> E:
    return v if isinstance(v, E) else E(ex(v))


# --------------------------------------------------------------------------- expressions
def const(value, dtype: T.Type) -> E:
    return E(N.Const(value, dtype))


def var(name: str, dtype: T.Type | None = None) -> E:
    return E(N.Var(name, dtype))


def load(buf: Like, index: Like) -> E:
    return E(N.Load(ex(buf), ex(index)))


def cast(dtype: T.Type, value: Like) -> E:
    return E(N.Cast(dtype, ex(value)))


def select(cond: Like, then: Like, other: Like) -> E:
    return E(N.Select(ex(cond), ex(then), ex(other)))


def call(func: str, *args: Like, dtype: T.Type | None = None) -> E:
    """A math/library call (``expf``, ``erff``, ``fmaf`` ...). ``dtype`` is unused by the
    IR (calls carry no type) and only documents intent."""
    return E(N.Call(func, tuple(ex(a) for a in args)))


def maximum(a: Like, b: Like) -> E:
    """``std::max(a, b)`` = ``a < b ? b : a`` (so max(NaN, 0) is NaN, as in C++), as a
    Select so that it works for every dtype without a call."""
    a, b = wrap(a), wrap(b)
    return select(a < b, b, a)


def minimum(a: Like, b: Like) -> E:
    """``std::min(a, b)`` = ``b < a ? b : a``."""
    a, b = wrap(a), wrap(b)
    return select(b < a, b, a)


def clamp(x: Like, lo: Like, hi: Like) -> E:
    return minimum(maximum(x, lo), hi)


def view(ptr: Like, elem: T.Type) -> E:
    """``(elem*)ptr``: a buffer seen with another element type (bytes of an int8 buffer,
    words of an int16 buffer)."""
    return E(N.Cast(T.PointerType(elem), ex(ptr), "c"))  # C cast: may drop const


def lanes(value: Like, elem: T.Type) -> E:
    """``((elem*)&value)``: the lanes of a by-value vector (``__m512i``) at another width,
    so ``lanes(a, U8)[j]`` is byte j of ``a``."""
    return E(N.Cast(T.PointerType(elem), N.AddressOf(ex(value)), "c"))


def elem_of(v: Like, default: T.Type = T.F32) -> T.Type:
    """The element type of a pointer/array/vector-typed value (used so that one meaning
    serves every dtype overload: a temporary takes the destination's element type)."""
    t = wrap(v).dtype
    if isinstance(t, (T.PointerType, T.ArrayType, T.VectorType)):
        return t.elem if not isinstance(t.elem, T.ScalarType) or t.elem.name != "void" else default
    if isinstance(t, T.ScalarType) and t.name != "void":
        return t
    return default


# --------------------------------------------------------------------------- statements
def _stmt(s) -> N.Stmt:
    if isinstance(s, N.Stmt):
        return s
    if isinstance(s, (list, tuple)):
        return block(*s)
    raise TypeError(f"not a statement: {s!r}")


def block(*stmts) -> N.Block:
    """A block; nested lists/blocks are flattened so helpers can return several
    statements."""
    out: list[N.Stmt] = []
    for s in stmts:
        if isinstance(s, (list, tuple)):
            out.extend(block(*s).body)
        elif isinstance(s, N.Block):
            out.extend(s.body)
        elif s is not None:
            out.append(_stmt(s))
    return N.Block(tuple(out))


def store(buf: Like, index: Like, value: Like, op: str = "=") -> N.Assign:
    """``buf[index] op value``."""
    return N.Assign(N.Load(ex(buf), ex(index)), ex(value), op)


def assign(target: Like, value: Like, op: str = "=") -> N.Assign:
    return N.Assign(ex(target), ex(value), op)


def declare(v: E, init: Like | None = None) -> N.Decl:
    """Declare the scalar/vector variable ``v`` (made by ``var``)."""
    node = v.node
    return N.Decl(node.name, node.dtype, None if init is None else ex(init))


def declare_array(v: E, size: Like, scope: str = "") -> N.Decl:
    """``elem v[size]`` where ``v = var(name, elem)``: a temporary buffer. Meanings use
    temporaries to read every input before writing any output (aliasing safety)."""
    node = v.node
    return N.Decl(node.name, T.ArrayType(node.dtype, (ex(size),), scope))


def if_(cond: Like, then, other=None) -> N.If:
    return N.If(ex(cond), block(then), None if other is None else block(other))


# Loop-variable names in use by the loops being built (outer to inner), so nested loops
# that reuse a lambda parameter name get a fresh one; and the names of the meaning's
# parameters, which a loop variable must not shadow (``lambda m:`` in a meaning with a
# parameter ``m`` becomes ``m1``).
_open_loops: list[str] = []
_reserved: set[str] = set()


def loop(extent: Like, body: Callable[..., object], start: Like = 0, step: Like = 1,
         dtype: T.Type = T.I32) -> N.For:
    """``for (int v = start; v < extent; v += step) body(v)``; ``v`` is named after
    ``body``'s parameter."""
    params = list(inspect.signature(body).parameters)
    name = params[0] if params else "i"
    base, k = name, 1
    while name in _open_loops or name in _reserved:
        name, k = f"{base}{k}", k + 1
    _open_loops.append(name)
    try:
        inner = block(body(var(name, dtype)))
    finally:
        _open_loops.pop()
    return N.For(name, dtype, ex(start), "<", ex(extent), ex(step), inner)


def loops(extents: Iterable[Like], body: Callable[..., object]) -> N.For:
    """A perfect nest: ``loops((m, n), lambda i, j: ...)``."""
    extents = list(extents)
    names = list(inspect.signature(body).parameters)
    if len(names) != len(extents):
        raise ValueError("loops(): one lambda parameter per extent")

    def level(d: int, bound: list):
        if d == len(extents):
            return body(*bound)
        fn = _named(names[d], lambda v: level(d + 1, bound + [v]))
        return loop(extents[d], fn)

    return level(0, [])


def _named(name: str, fn: Callable[[E], object]) -> Callable:
    """A one-parameter function whose parameter is called ``name`` (loop() reads it)."""
    ns: dict = {}
    exec(f"def f({name}): return fn({name})", {"fn": fn}, ns)
    return ns["f"]


# --------------------------------------------------------------------------- registration
def meaning_fn(f: Callable[..., object]) -> Callable[..., N.Stmt]:
    """Wrap a meaning written with the DSL: accepts plain IR or E arguments (positional
    or by parameter name) and returns a plain IR Block."""

    @functools.wraps(f)
    def g(*args, **kwargs):
        args = tuple(wrap(a) if a is not None else None for a in args)
        kwargs = {k: (wrap(v) if v is not None else None) for k, v in kwargs.items()}
        names = set(kwargs) | {a.node.name for a in list(args) + list(kwargs.values())
                               if a is not None and isinstance(a.node, N.Var)}
        saved = set(_reserved)
        _reserved.update(names)
        try:
            return block(f(*args, **kwargs))
        finally:
            _reserved.clear()
            _reserved.update(saved)

    g.dsl = f
    return g


# --------------------------------------------------------------------------- running
def execute(intrinsic, *args, result=None, types=None, constants=None, specials=None):
    """Run ``intrinsic``'s meaning on numpy arguments with the reference interpreter.

    Buffers are flat numpy arrays (updated in place); by-value vectors and fragments are
    arrays of their lanes (out fragments are updated in place); scalars are numbers.
    For warp/wave-collective intrinsics, by-value operands are arrays indexed by lane
    (see the intrinsic's doc). ``types`` overrides parameters' IR types (a fragment's
    use/layout); ``result`` is the array that receives a vector/collective result.
    Returns the result of a value-returning intrinsic (else None)."""
    from ..ir.interp import Interpreter
    from .registry import facts

    # enumerators the platform defines (wmma::mem_row_major ...), then the caller's
    constants = {**facts(intrinsic.platform).constants, **(constants or {})}
    sig = intrinsic.for_arity(len(args)) or intrinsic
    if len(args) > len(sig.params):
        raise TypeError(f"{sig.name}: too many arguments")
    types = dict(types or {})
    ir_args, it = {}, Interpreter(constants=constants, specials=specials)
    for p, a in zip(sig.params, args):
        v = sig.param_var(p)
        if p.name in types:
            v = N.Var(p.name, types[p.name])
        ir_args[p.name] = v
        it.bind(p.name, a, v.dtype)
    if sig.returns is not None:
        rt = types.get("result", sig.returns)
        if result is None:
            import numpy as np

            from ..ir.interp import _lanes, np_dtype

            result = (np.zeros(_lanes(rt, it), np_dtype(rt)) if isinstance(rt, (T.VectorType, T.FragmentType))
                      else np_dtype(rt).type(0))
        ir_args["result"] = N.Var("result", rt)
        it.bind("result", result, rt)
    it.run(sig.meaning_ir(ir_args))
    return it.value("result") if sig.returns is not None else None
