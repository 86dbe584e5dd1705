"""A small reference interpreter for IR statements and expressions, over numpy.

For tests and for checking intrinsic meanings, not for speed. The memory model:

- A buffer is a flat, contiguous numpy array addressed by element index. A pointer is
  ``Ptr(buf, off)``; ``p + k`` is ``Ptr(buf, off + k)``; a pointer cast to another
  element type re-views the same bytes (``(uint8_t*)p`` sees the bytes of a float
  buffer), so writes through any view land in the one buffer.
- A scalar variable lives in a one-element array (so ``&x`` is a pointer to it); a
  vector or fragment variable lives in an array of its lanes and is copied on read.
- Arithmetic follows C: the usual arithmetic conversions (int8 + int8 is int, int +
  float is float, float + double is double), wrap-around for integers, truncating ``/``
  and ``%``, float32 arithmetic for float32 values (numpy float32 scalars are IEEE
  single precision). Values are numpy scalars that carry their C type.

Known simplifications: ``?:`` returns the chosen operand without converting it to the
common type of both arms; bfloat16 is modelled as float32 (numpy has no bfloat16).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from . import nodes as N
from . import types as T

# numpy dtypes of the IR scalars (bfloat16: see module doc).
NP = {"bool": np.bool_, "int8": np.int8, "int16": np.int16, "int32": np.int32,
      "int64": np.int64, "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32,
      "uint64": np.uint64, "float16": np.float16, "bfloat16": np.float32,
      "float32": np.float32, "float64": np.float64}


class InterpError(Exception):
    pass


def np_dtype(t: T.Type) -> np.dtype:
    if isinstance(t, T.ScalarType):
        if t.name == "void":
            return np.dtype(np.uint8)  # void* is addressed bytewise
        return np.dtype(NP[t.name])
    if isinstance(t, (T.VectorType, T.PointerType, T.ArrayType, T.FragmentType)):
        return np_dtype(t.elem)
    raise InterpError(f"no numpy dtype for {t}")


class Ptr:
    """A pointer: element ``off`` of the flat array ``buf``; ``dims`` are the inner
    extents when it designates a row of a multi-dimensional array."""

    __slots__ = ("buf", "off", "dims")

    def __init__(self, buf: np.ndarray, off: int = 0, dims: tuple = ()):
        if buf.ndim != 1 or not buf.flags.c_contiguous:
            raise InterpError("buffers must be flat contiguous arrays")
        self.buf, self.off, self.dims = buf, int(off), tuple(dims)

    def __add__(self, k: int) -> "Ptr":
        return Ptr(self.buf, self.off + int(k) * _row(self.dims), self.dims)

    def index(self, i: int):
        """What ``p[i]`` designates: a (buf, flat index) element or, for a multi-
        dimensional array, the pointer to row i."""
        if self.dims:
            return Ptr(self.buf, self.off + int(i) * _row(self.dims), self.dims[1:])
        j = self.off + int(i)
        if not 0 <= j < self.buf.size:
            raise InterpError(f"out-of-bounds access: index {j} of a buffer of {self.buf.size}")
        return j

    def as_type(self, dt: np.dtype) -> "Ptr":
        """The same address seen as elements of ``dt`` (a pointer reinterpret cast)."""
        dt = np.dtype(dt)
        if dt == self.buf.dtype:
            return Ptr(self.buf, self.off)
        raw = self.buf.view(np.uint8)
        start = self.off * self.buf.dtype.itemsize
        count = (raw.size - start) // dt.itemsize
        if start < 0 or start > raw.size:
            raise InterpError("reinterpret cast of an out-of-bounds pointer")
        return Ptr(raw[start:start + count * dt.itemsize].view(dt), 0)

    def __repr__(self):
        return f"Ptr({self.buf.dtype}[{self.buf.size}] + {self.off})"


def _row(dims: tuple) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


class _Cell:
    """Storage of one variable: ``data`` (an array) for scalars/vectors/fragments, or a
    pointer (``ptr``) for pointer and array variables."""

    __slots__ = ("data", "ptr", "scalar", "fragment")

    def __init__(self, data=None, ptr=None, scalar=False, fragment=False):
        self.data, self.ptr, self.scalar, self.fragment = data, ptr, scalar, fragment

    def value(self):
        if self.ptr is not None or self.data is None:
            return self.ptr
        return self.data[0] if self.scalar else self.data.copy()


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    def __init__(self, value):
        self.value = value


# --------------------------------------------------------------------------- C arithmetic
_INT_RANK = {1: 1, 2: 2, 4: 3, 8: 4}


def common_dtype(a: np.dtype, b: np.dtype) -> np.dtype:
    """C's usual arithmetic conversions on numpy dtypes."""
    if a.kind == "f" or b.kind == "f":
        fl = [d for d in (a, b) if d.kind == "f"]
        return max(fl, key=lambda d: d.itemsize)
    a, b = _int_promote(a), _int_promote(b)
    if a == b:
        return a
    if a.itemsize != b.itemsize:
        return a if a.itemsize > b.itemsize else b
    return a if a.kind == "u" else b  # same width, mixed sign: unsigned wins


def _int_promote(d: np.dtype) -> np.dtype:
    if d.kind == "b" or d.itemsize < 4:
        return np.dtype(np.int32)
    return d


def convert(value, dt: np.dtype):
    """``(T)value`` for scalars: floats truncate toward zero into integers (C leaves out-of-
    range values undefined; we wrap), integers wrap, bool is ``!= 0``."""
    dt = np.dtype(dt)
    if isinstance(value, Ptr):
        raise InterpError("cannot convert a pointer to a number")
    if dt.kind == "b":
        return np.bool_(value != 0)
    if dt.kind in "iu":
        v = value
        if isinstance(v, (float, np.floating)):
            if not math.isfinite(float(v)):
                raise InterpError(f"conversion of {v} to {dt}")
            v = math.trunc(float(v))
        return _wrap(int(v), dt)
    with np.errstate(all="ignore"):
        return dt.type(value)


def _wrap(v: int, dt: np.dtype):
    bits = dt.itemsize * 8
    v &= (1 << bits) - 1
    if dt.kind == "i" and v >= 1 << (bits - 1):
        v -= 1 << bits
    return dt.type(v)


def _dtype_of(v) -> np.dtype:
    if isinstance(v, np.generic):
        return v.dtype
    if isinstance(v, bool):
        return np.dtype(np.bool_)
    if isinstance(v, int):
        return np.dtype(np.int32 if -2**31 <= v < 2**31 else np.int64)
    if isinstance(v, float):
        return np.dtype(np.float64)
    raise InterpError(f"not a number: {v!r}")


def _cdiv(a: int, b: int) -> int:
    if b == 0:
        raise InterpError("integer division by zero")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


_CMP = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def arith(op: str, a, b):
    """``a op b`` with C semantics (numbers, pointers, or GCC vectors)."""
    if isinstance(a, Ptr) or isinstance(b, Ptr):
        return _ptr_arith(op, a, b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return _vec_arith(op, a, b)
    if op == "&&":
        return np.int32(bool(a) and bool(b))
    if op == "||":
        return np.int32(bool(a) or bool(b))
    da, db = _dtype_of(a), _dtype_of(b)
    if op in ("<<", ">>"):
        t = _int_promote(da)
        x, s = int(a), int(b)
        return _wrap(x << s if op == "<<" else x >> s, t)
    t = common_dtype(da, db)
    if op in _CMP:
        if t.kind == "f":
            return np.int32(_CMP[op](t.type(a), t.type(b)))
        return np.int32(_CMP[op](int(convert(a, t)), int(convert(b, t))))
    if t.kind == "f":
        x, y = t.type(a), t.type(b)
        with np.errstate(all="ignore"):
            if op == "+": return t.type(x + y)
            if op == "-": return t.type(x - y)
            if op == "*": return t.type(x * y)
            if op == "/": return t.type(x / y)
            if op == "%": return t.type(math.fmod(float(x), float(y)))
        raise InterpError(f"operator {op} on floats")
    x, y = int(convert(a, t)), int(convert(b, t))
    if op == "+": r = x + y
    elif op == "-": r = x - y
    elif op == "*": r = x * y
    elif op == "/": r = _cdiv(x, y)
    elif op == "%": r = x - _cdiv(x, y) * y
    elif op == "&": r = x & y
    elif op == "|": r = x | y
    elif op == "^": r = x ^ y
    else:
        raise InterpError(f"unknown operator {op}")
    return _wrap(r, t)


def _ptr_arith(op, a, b):
    if op == "+" and isinstance(a, Ptr) and not isinstance(b, Ptr):
        return a + int(b)
    if op == "+" and isinstance(b, Ptr) and not isinstance(a, Ptr):
        return b + int(a)
    if op == "-" and isinstance(a, Ptr) and not isinstance(b, Ptr):
        return a + (-int(b))
    if isinstance(a, Ptr) and isinstance(b, Ptr) and a.buf is b.buf:
        if op == "-":
            return np.int64(a.off - b.off)
        if op in _CMP:
            return np.int32(_CMP[op](a.off, b.off))
    raise InterpError(f"unsupported pointer operation {op}")


def _vec_arith(op, a, b):
    """GCC vector extension: lane-wise, a scalar operand is broadcast."""
    out_dt = a.dtype if isinstance(a, np.ndarray) else b.dtype
    av = a if isinstance(a, np.ndarray) else np.full_like(b, a)
    bv = b if isinstance(b, np.ndarray) else np.full_like(a, b)
    return np.array([convert(arith(op, x, y), out_dt) for x, y in zip(av, bv)], dtype=out_dt)


# --------------------------------------------------------------------------- math library
_MATH_DOUBLE = {
    "exp": math.exp, "log": math.log, "sqrt": math.sqrt, "tanh": math.tanh, "erf": math.erf,
    "fabs": math.fabs, "floor": lambda x: _integral(math.floor, x),
    "ceil": lambda x: _integral(math.ceil, x), "sin": math.sin,
    "cos": math.cos, "tan": math.tan, "pow": math.pow, "round": lambda x: _integral(_round_half_away, x),
    "trunc": lambda x: _integral(math.trunc, x), "fmod": math.fmod, "log2": math.log2, "exp2": lambda x: 2.0 ** x,
    "atan": math.atan, "asin": math.asin, "acos": math.acos, "log10": math.log10,
    "erfc": math.erfc, "sinh": math.sinh, "cosh": math.cosh, "cbrt": lambda x: math.copysign(abs(x) ** (1 / 3), x),
    "rsqrt": lambda x: 1.0 / math.sqrt(x), "fma": lambda a, b, c: a * b + c,
    "fmax": lambda a, b: b if math.isnan(a) else a if math.isnan(b) else max(a, b),
    "fmin": lambda a, b: b if math.isnan(a) else a if math.isnan(b) else min(a, b),
    "ldexp": lambda x, e: math.ldexp(x, int(e)), "atan2": math.atan2, "hypot": math.hypot,
    # nearbyint/rint in the default rounding mode: to nearest, ties to even
    "rint": lambda x: float(round(x)) if math.isfinite(x) else x,
    "nearbyint": lambda x: float(round(x)) if math.isfinite(x) else x,
}

# Macros of <cfloat>/<cmath>/<climits> that kernels use as values.
C_CONSTANTS = {"INFINITY": np.float32(np.inf), "NAN": np.float32(np.nan),
               "FLT_MAX": np.float32(np.finfo(np.float32).max),
               "FLT_MIN": np.float32(np.finfo(np.float32).tiny),
               "FLT_EPSILON": np.float32(np.finfo(np.float32).eps),
               "M_PI": np.float64(math.pi), "INT_MAX": np.int32(2**31 - 1),
               "INT_MIN": np.int32(-2**31), "nullptr": None}


def _integral(fn, x: float) -> float:
    """floor/ceil/trunc that, like libm, return inf and nan unchanged."""
    return float(fn(x)) if math.isfinite(x) else x


def _round_half_away(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)


def _safe(fn, *args):
    try:
        return fn(*args)
    except (ValueError, OverflowError, ZeroDivisionError):
        # libm's answers where Python raises: exp overflow -> inf, log(0) -> -inf, sqrt(-1)/log(-1) -> nan
        if fn is math.exp or fn is math.sinh or fn is math.cosh or fn is math.pow:
            return math.inf
        if fn is math.log or fn is math.log2 or fn is math.log10:
            return -math.inf if args[0] == 0 else math.nan
        return math.nan


def call_math(name: str, args: list):
    """Evaluate a C/CUDA math function. ``expf``-style names compute in float32; the
    unsuffixed C++ overloads return the type of their (promoted) float argument, or
    double for integer arguments; ``max``/``min``/``abs`` keep integer types."""
    base = name.split("::")[-1]
    if base in ("max", "min"):
        t = common_dtype(_dtype_of(args[0]), _dtype_of(args[1]))
        a, b = convert(args[0], t), convert(args[1], t)
        return (a if a > b else b) if base == "max" else (a if a < b else b)
    if base in ("abs", "llabs", "labs") and _dtype_of(args[0]).kind in "iu":
        t = _int_promote(_dtype_of(args[0]))
        return _wrap(abs(int(args[0])), t)
    if base in ("lround", "llround", "lrintf", "lroundf"):
        return np.int64(_round_half_away(float(args[0])))
    # fast-math and single-precision spellings
    if base.startswith("__"):
        base = {"__expf": "expf", "__logf": "logf", "__sinf": "sinf", "__cosf": "cosf",
                "__powf": "powf", "__fdividef": "fdividef", "__tanf": "tanf",
                "__frsqrt_rn": "rsqrtf", "__fsqrt_rn": "sqrtf"}.get(base, base)
    if base == "fdividef":
        return np.float32(np.float32(args[0]) / np.float32(args[1]))
    if base.endswith("f") and base[:-1] in _MATH_DOUBLE:
        fn = _MATH_DOUBLE[base[:-1]]
        return np.float32(_safe(fn, *[float(np.float32(a)) for a in args]))
    if base == "abs":
        base = "fabs"
    if base in _MATH_DOUBLE:
        dts = [_dtype_of(a) for a in args]
        fl = [d for d in dts if d.kind == "f"]
        t = max(fl, key=lambda d: d.itemsize) if fl else np.dtype(np.float64)
        return t.type(_safe(_MATH_DOUBLE[base], *[float(a) for a in args]))
    raise InterpError(f"unknown function {name}")


# --------------------------------------------------------------------------- interpreter
class Interpreter:
    """Runs statements over an environment of named cells.

    ``bindings`` maps names to values: numpy arrays (bound as pointers to their first
    element), ``Ptr``s, or numbers (numpy scalars keep their type; Python ints are int32
    and floats float64, as C literals). ``specials`` gives values of ``Special`` nodes
    (``threadIdx.x``...), ``functions`` Python implementations of calls that are not
    math functions (intrinsics, device functions), ``on_barrier`` a hook for barriers,
    ``constants`` values of names that are not variables (enumerators; the C macros
    INFINITY, FLT_MAX ... are built in)."""

    def __init__(self, bindings: Mapping[str, Any] | None = None,
                 specials: Mapping[str, Any] | None = None,
                 functions: Mapping[str, Callable] | None = None,
                 on_barrier: Callable[[N.Barrier], None] | None = None,
                 constants: Mapping[str, Any] | None = None):
        self.scopes: list[dict[str, _Cell]] = [{}]
        self.constants = dict(constants or {})  # named enum values (wmma::mem_row_major)
        self.specials = dict(specials or {})
        self.functions = dict(functions or {})
        self.on_barrier = on_barrier
        for name, v in (bindings or {}).items():
            self.bind(name, v)

    # -- environment
    def bind(self, name: str, v, dtype: T.Type | None = None):
        """Bind ``name`` in the innermost scope. Arrays: a flat view is bound as a pointer
        (pass a 1-element array and ``scalar=True`` semantics via ``dtype``)."""
        if isinstance(v, Ptr):
            cell = _Cell(ptr=v)
        elif isinstance(v, np.ndarray):
            if dtype is not None and isinstance(dtype, (T.VectorType, T.FragmentType)):
                # a by-value vector/fragment: bound to (and updating) the caller's array
                cell = _Cell(data=v.reshape(-1), fragment=isinstance(dtype, T.FragmentType))
            else:
                cell = _Cell(ptr=Ptr(v.reshape(-1)))
        else:
            dt = np_dtype(dtype) if isinstance(dtype, T.ScalarType) else _dtype_of(v)
            cell = _Cell(data=np.array([convert(v, dt)], dtype=dt), scalar=True)
        self.scopes[-1][name] = cell
        return cell

    def cell(self, name: str) -> _Cell:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise InterpError(f"unbound variable {name}")

    def value(self, name: str):
        try:
            return self.cell(name).value()
        except InterpError:
            if name in C_CONSTANTS or name in self.constants:
                return self.constants.get(name, C_CONSTANTS.get(name))
            raise

    # -- statements
    def run(self, stmt: N.Stmt):
        """Execute ``stmt``; returns the value of a ``return`` if one ran."""
        try:
            self.exec(stmt)
        except _Return as r:
            return r.value
        return None

    def exec(self, s: N.Stmt):
        meth = getattr(self, "exec_" + type(s).__name__, None)
        if meth is None:
            raise InterpError(f"cannot execute {type(s).__name__}")
        meth(s)

    def exec_Block(self, s: N.Block):
        self.scopes.append({})
        try:
            for st in s.body:
                self.exec(st)
        finally:
            self.scopes.pop()

    def exec_Decl(self, s: N.Decl):
        t = s.dtype
        if isinstance(t, T.ArrayType):
            shape = [int(self.eval(d)) for d in t.shape]
            size = _row(shape)
            buf = np.zeros(size, dtype=np_dtype(t.elem))
            if isinstance(s.init, N.InitList):
                vals = [self.eval(v) for v in s.init.values]
                for k, v in enumerate(vals):
                    buf[k] = convert(v, buf.dtype)
            self.scopes[-1][s.name] = _Cell(ptr=Ptr(buf, 0, tuple(shape[1:])))
        elif isinstance(t, (T.VectorType, T.FragmentType)):
            data = np.zeros(_lanes(t, self), dtype=np_dtype(t.elem))
            if isinstance(s.init, N.InitList):
                for k, v in enumerate(s.init.values):
                    data[k] = convert(self.eval(v), data.dtype)
            elif s.init is not None:
                data[:] = np.asarray(self.eval(s.init)).reshape(-1).astype(data.dtype)
            self.scopes[-1][s.name] = _Cell(data=data, fragment=isinstance(t, T.FragmentType))
        elif isinstance(t, T.PointerType):
            self.scopes[-1][s.name] = _Cell(ptr=None if s.init is None else self.eval(s.init))
        elif isinstance(t, T.ScalarType):
            dt = np_dtype(t)
            init = convert(self.eval(s.init), dt) if s.init is not None else dt.type(0)
            self.scopes[-1][s.name] = _Cell(data=np.array([init], dtype=dt), scalar=True)
        else:
            raise InterpError(f"cannot declare a variable of type {t}")

    def exec_Assign(self, s: N.Assign):
        value = self.eval(s.value)
        if s.op != "=":
            value = arith(s.op[:-1], self.eval(s.target), value)
        self.store(s.target, value)

    def exec_ExprStmt(self, s: N.ExprStmt):
        self.eval(s.expr)

    def exec_If(self, s: N.If):
        if self.eval(s.cond):
            self.exec(s.then)
        elif s.other is not None:
            self.exec(s.other)

    def exec_For(self, s: N.For):
        self.scopes.append({})
        try:
            if s.declared:
                dt = np_dtype(s.dtype)
                self.scopes[-1][s.var] = _Cell(data=np.array([convert(self.eval(s.start), dt)], dtype=dt), scalar=True)
            else:
                self.store(N.Var(s.var), self.eval(s.start))
            cell = self.cell(s.var)
            while arith(s.cmp, cell.value(), self.eval(s.bound)):
                try:
                    self.exec(s.body)
                except _Break:
                    break
                except _Continue:
                    pass
                cell.data[0] = convert(arith("+", cell.value(), self.eval(s.step)), cell.data.dtype)
        finally:
            self.scopes.pop()

    def exec_While(self, s: N.While):
        while self.eval(s.cond):
            try:
                self.exec(s.body)
            except _Break:
                break
            except _Continue:
                pass

    def exec_Break(self, s):
        raise _Break()

    def exec_Continue(self, s):
        raise _Continue()

    def exec_Return(self, s: N.Return):
        raise _Return(None if s.value is None else self.eval(s.value))

    def exec_Barrier(self, s: N.Barrier):
        # One sequential thread: a barrier has nothing to wait for.
        if self.on_barrier is not None:
            self.on_barrier(s)

    def exec_Pragma(self, s):
        pass

    def exec_TypeAlias(self, s):
        pass

    def exec_Dma(self, s: N.Dma):
        """BANG ``__memcpy``: ``size`` bytes; the strided form copies ``segnum + 1``
        segments advancing dst/src by their byte strides (args: dst_stride, src_stride,
        segnum)."""
        dst = self.eval(s.dst).as_type(np.uint8)
        src = self.eval(s.src).as_type(np.uint8)
        size = int(self.eval(s.size))
        if not s.strides:
            segs = [(0, 0)]
        elif len(s.strides) == 3:
            ds, ss, segnum = (int(self.eval(e)) for e in s.strides)
            segs = [(k * ds, k * ss) for k in range(segnum + 1)]
        else:
            raise InterpError("only the 4- and 7-argument __memcpy forms are interpreted")
        for do, so in segs:
            for p, o in ((dst, do), (src, so)):
                if o < 0 or p.off + o + size > p.buf.size:
                    raise InterpError("out-of-bounds __memcpy")
            chunk = src.buf[src.off + so: src.off + so + size].copy()
            dst.buf[dst.off + do: dst.off + do + size] = chunk

    # -- expressions
    def eval(self, e: N.Expr):
        meth = getattr(self, "eval_" + type(e).__name__, None)
        if meth is None:
            raise InterpError(f"cannot evaluate {type(e).__name__}")
        return meth(e)

    def eval_Const(self, e: N.Const):
        if isinstance(e.dtype, T.ScalarType) and e.dtype.name != "void":
            return convert(e.value, np_dtype(e.dtype))
        if isinstance(e.value, str):
            raise InterpError(f"string constant {e.value!r}")
        return _dtype_of(e.value).type(e.value)

    def eval_Var(self, e: N.Var):
        return self.value(e.name)

    def eval_Special(self, e: N.Special):
        if e.name not in self.specials:
            raise InterpError(f"no value for {e.name}")
        return self.specials[e.name]

    def eval_Unary(self, e: N.Unary):
        v = self.eval(e.operand)
        if e.op == "!":
            return np.int32(not v)
        if e.op == "+":
            return arith("+", np.int32(0), v) if _dtype_of(v).kind != "f" else v
        if e.op == "-":
            dt = _dtype_of(v)
            return dt.type(-v) if dt.kind == "f" else arith("-", np.int32(0), v)
        if e.op == "~":
            t = _int_promote(_dtype_of(v))
            return _wrap(~int(v), t)
        raise InterpError(f"unary {e.op}")

    def eval_Binary(self, e: N.Binary):
        if e.op == "&&":
            return np.int32(bool(self.eval(e.lhs)) and bool(self.eval(e.rhs)))
        if e.op == "||":
            return np.int32(bool(self.eval(e.lhs)) or bool(self.eval(e.rhs)))
        return arith(e.op, self.eval(e.lhs), self.eval(e.rhs))

    def eval_Select(self, e: N.Select):
        return self.eval(e.then) if self.eval(e.cond) else self.eval(e.other)

    def eval_Cast(self, e: N.Cast):
        v = self.eval(e.value)
        t = e.dtype
        if isinstance(t, T.PointerType):
            if not isinstance(v, Ptr):
                raise InterpError("cast of a non-pointer to a pointer")
            if isinstance(t.elem, T.ScalarType) and t.elem.name == "void":
                return v
            return v.as_type(np_dtype(t.elem))
        if isinstance(t, T.ScalarType):
            return convert(v, np_dtype(t))
        if isinstance(t, T.VectorType) and isinstance(v, np.ndarray):
            return v.view(np_dtype(t.elem)).copy()  # a bit-cast between vector types
        raise InterpError(f"cannot cast to {t}")

    def eval_Load(self, e: N.Load):
        buf, i = self.element(e)
        if isinstance(buf, Ptr):
            return buf  # a row of a multi-dimensional array
        return buf[i]

    def eval_AddressOf(self, e: N.AddressOf):
        inner = e.value
        if isinstance(inner, N.Var):
            cell = self.cell(inner.name)
            if cell.data is None:
                raise InterpError("address of a pointer variable is not supported")
            return Ptr(cell.data)
        if isinstance(inner, N.Load):
            buf, i = self.element(inner)
            return buf if isinstance(buf, Ptr) else Ptr(buf, i)
        if isinstance(inner, N.Deref):
            return self.eval(inner.pointer)
        raise InterpError(f"cannot take the address of {type(inner).__name__}")

    def eval_Deref(self, e: N.Deref):
        p = self.eval(e.pointer)
        j = p.index(0)
        return p if isinstance(j, Ptr) else p.buf[j]

    def eval_Member(self, e: N.Member):
        if isinstance(e.base, N.Var):
            cell = self.cell(e.base.name)
            if cell.data is not None and not cell.scalar:
                if cell.fragment and e.field == "x":
                    return Ptr(cell.data)  # WMMA fragment.x[]: the logical tile, row-major
                if e.field == "num_elements":
                    return np.int32(cell.data.size)
                if e.field in "xyzw" and len(e.field) == 1:
                    return cell.data["xyzw".index(e.field)]
        raise InterpError(f"cannot evaluate member .{e.field}")

    def eval_SizeOf(self, e: N.SizeOf):
        if isinstance(e.of, T.Type):
            n = T.byte_size(e.of)
            if n:
                return np.uint64(n)
        raise InterpError("sizeof of an expression")

    def eval_Call(self, e: N.Call):
        args = [self.eval(a) for a in e.args]
        fn = self.functions.get(e.func)
        if fn is not None:
            return fn(*args)
        return call_math(e.func, args)

    # -- locations
    def element(self, e: N.Load):
        """(array, flat index) designated by ``base[index]``, or (Ptr, None) for a row."""
        i = int(self.eval(e.index))
        if isinstance(e.base, N.Var):
            cell = self.cell(e.base.name)
            if cell.data is not None and not cell.scalar:  # a vector/fragment lane
                if not 0 <= i < cell.data.size:
                    raise InterpError(f"lane {i} of a {cell.data.size}-lane value")
                return cell.data, i
        base = self.eval(e.base)
        if not isinstance(base, Ptr):
            raise InterpError("subscript of a non-pointer")
        j = base.index(i)
        if isinstance(j, Ptr):
            return j, None
        return base.buf, j

    def store(self, target: N.Expr, value):
        if isinstance(target, N.Var):
            cell = self.cell(target.name)
            if cell.data is None or cell.ptr is not None:
                cell.ptr = value
            elif cell.scalar:
                cell.data[0] = convert(value, cell.data.dtype)
            else:
                cell.data[:] = np.asarray(value).reshape(-1).astype(cell.data.dtype)
            return
        if isinstance(target, N.Load):
            buf, i = self.element(target)
            if i is None:
                raise InterpError("assignment to an array row")
            buf[i] = convert(value, buf.dtype)
            return
        if isinstance(target, N.Deref):
            p = self.eval(target.pointer)
            j = p.index(0)
            p.buf[j] = convert(value, p.buf.dtype)
            return
        if isinstance(target, N.Member) and isinstance(target.base, N.Var) and target.field in "xyzw":
            cell = self.cell(target.base.name)
            cell.data["xyzw".index(target.field)] = convert(value, cell.data.dtype)
            return
        raise InterpError(f"cannot assign to {type(target).__name__}")


def _lanes(t: T.Type, it: Interpreter) -> int:
    if isinstance(t, T.VectorType):
        return t.lanes
    rows, cols = fragment_shape(t, lambda x: int(it.eval(x)))
    return rows * cols


def fragment_shape(t: T.FragmentType, fold=None) -> tuple[int, int]:
    """(rows, cols) of a fragment's logical tile: matrix_a is m x k, matrix_b k x n,
    accumulator m x n."""
    from .consteval import fold as cfold

    f = fold or (lambda x: int(cfold(x)))
    m, n, k = f(t.m), f(t.n), f(t.k)
    return {"matrix_a": (m, k), "matrix_b": (k, n)}.get(t.use, (m, n))


def run(stmt: N.Stmt, bindings: Mapping[str, Any] | None = None, **kw) -> Interpreter:
    """Execute ``stmt`` with ``bindings``; returns the interpreter (for its variables)."""
    it = Interpreter(bindings, **kw)
    it.run(stmt)
    return it


def evaluate(expr: N.Expr, bindings: Mapping[str, Any] | None = None, **kw):
    return Interpreter(bindings, **kw).eval(expr)
