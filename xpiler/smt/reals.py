"""Floating-point IR expressions read as real-number formulas, for proving that two
element computations agree (tensorization: a loop body against an intrinsic's meaning).

The model is the real numbers, as `-ffast-math` reads C: no rounding, no NaN, no signed
zero, float and double alike, so ``fmaxf(x, 0.0f)``, ``x > 0 ? x : 0`` and the meaning's
``x < 0 ? 0 : x`` are one function. What the model ignores (precision, NaN/-0 corner
cases) is what differential verification then checks on real inputs.

- ``evaluate``: a cheap numeric evaluation (Python doubles) used to reject non-matches
  before asking z3.
- ``prove_equal``: z3 (nonlinear real arithmetic, math functions uninterpreted) proves
  ``a == b`` for every value of the free variables.
Leaves are ``Var`` nodes (the caller names loaded elements as variables first).
Integer arithmetic on non-constant operands is outside the model (NotReal).
"""
from __future__ import annotations

import math
from fractions import Fraction

from ..ir import nodes as N
from ..ir import types as T
from ..ir.consteval import try_fold

# Named constants of math.h that kernels use.
CONSTANTS = {"M_PI": math.pi, "M_E": math.e, "M_SQRT2": math.sqrt(2.0), "M_SQRT1_2": math.sqrt(0.5),
             "M_2_SQRTPI": 2.0 / math.sqrt(math.pi), "M_PI_2": math.pi / 2, "M_LN2": math.log(2.0)}
# Math functions by their double name (``tanhf`` and ``tanh`` are one real function).
FUNCTIONS = {"exp": math.exp, "log": math.log, "sqrt": math.sqrt, "tanh": math.tanh, "erf": math.erf,
             "sin": math.sin, "cos": math.cos, "tan": math.tan, "floor": math.floor, "ceil": math.ceil,
             "exp2": lambda x: 2.0 ** x, "log2": math.log2, "atan": math.atan, "erfc": math.erfc,
             "trunc": math.trunc, "sinh": math.sinh, "cosh": math.cosh, "log10": math.log10}


class NotReal(Exception):
    """The expression is not a real-valued formula of its leaves (integer division,
    a float-to-integer cast, an unknown call, memory access)."""


def _fname(name: str) -> str:
    """``expf``/``exp``/``std::exp`` -> ``exp``; ``fmaxf`` -> ``fmax``."""
    name = name.removeprefix("std::")
    if name.endswith("f") and (name[:-1] in FUNCTIONS or name[:-1] in ("fmax", "fmin", "fabs", "pow")):
        return name[:-1]
    return {"max": "fmax", "min": "fmin", "abs": "fabs"}.get(name, name)


def _is_int(e: N.Expr) -> bool:
    from ..ir.typeinfer import type_of

    t = type_of(e)
    return isinstance(t, T.ScalarType) and (t.is_int or t.name == "bool")


def _const(e: N.Expr):
    """The value of a leaf-free subexpression with C semantics (integer division
    truncates), or None."""
    if isinstance(e, N.Var) and e.name in CONSTANTS:
        return CONSTANTS[e.name]
    v = try_fold(e, CONSTANTS)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    if isinstance(e, N.Call) and _fname(e.func) in FUNCTIONS and len(e.args) == 1:
        a = _const(e.args[0])
        if a is not None:
            try:
                return float(FUNCTIONS[_fname(e.func)](a))
            except (ValueError, OverflowError):
                return None
    return None


# --------------------------------------------------------------------------- numbers
def evaluate(e: N.Expr, env: dict) -> float:
    """``e`` at the leaf values ``env`` (name -> float). Domain errors give NaN."""
    try:
        return float(_num(e, env))
    except (ValueError, ZeroDivisionError, OverflowError):
        return math.nan


def _num(e, env):
    c = _const(e)
    if c is not None:
        return c
    if isinstance(e, N.Var):
        if e.name not in env:
            raise NotReal(f"unknown value {e.name}")
        return env[e.name]
    if isinstance(e, N.Cast):
        return _num(_real_cast(e), env)
    if isinstance(e, N.Unary):
        v = _num(e.operand, env)
        return {"-": lambda: -v, "+": lambda: v, "!": lambda: float(not v)}[_op(e.op)]()
    if isinstance(e, N.Select):
        return _num(e.then, env) if _num(e.cond, env) else _num(e.other, env)
    if isinstance(e, N.Binary):
        _check_int_op(e)
        a, b = _num(e.lhs, env), _num(e.rhs, env)
        return _BIN[_op(e.op)](a, b)
    if isinstance(e, N.Call):
        f, args = _fname(e.func), [_num(a, env) for a in e.args]
        if f in FUNCTIONS and len(args) == 1:
            return FUNCTIONS[f](args[0])
        if f == "fmax" and len(args) == 2:
            return args[1] if args[0] < args[1] else args[0]
        if f == "fmin" and len(args) == 2:
            return args[1] if args[1] < args[0] else args[0]
        if f == "fabs" and len(args) == 1:
            return abs(args[0])
        if f == "pow" and len(args) == 2:
            return args[0] ** args[1]
        raise NotReal(f"unknown function {e.func}")
    raise NotReal(type(e).__name__)


_BIN = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
        "/": lambda a, b: a / b, "<": lambda a, b: float(a < b), "<=": lambda a, b: float(a <= b),
        ">": lambda a, b: float(a > b), ">=": lambda a, b: float(a >= b),
        "==": lambda a, b: float(a == b), "!=": lambda a, b: float(a != b),
        "&&": lambda a, b: float(bool(a) and bool(b)), "||": lambda a, b: float(bool(a) or bool(b))}


def _op(op):
    if op not in _BIN and op not in ("-", "+", "!"):
        raise NotReal(f"operator {op}")
    return op


def _check_int_op(e: N.Binary):
    if e.op in ("/", "%") and _is_int(e.lhs) and _is_int(e.rhs):
        raise NotReal("integer division of non-constant values")


def _real_cast(e: N.Cast) -> N.Expr:
    """A cast to a floating type is the identity on reals; to an integer type is not."""
    if isinstance(e.dtype, T.ScalarType) and e.dtype.is_float:
        return e.value
    if isinstance(e.dtype, T.ScalarType) and e.dtype.is_int and _is_int(e.value):
        return e.value
    raise NotReal(f"cast to {e.dtype}")


# --------------------------------------------------------------------------- z3
def _z3(e, z3, vars, funcs):
    c = _const(e)
    if c is not None:
        return z3.RealVal(str(Fraction(c)))
    if isinstance(e, N.Var):
        if e.name not in vars:
            vars[e.name] = z3.Real(e.name)
        return vars[e.name]
    if isinstance(e, N.Cast):
        return _z3(_real_cast(e), z3, vars, funcs)

    def num(x):
        v = _z3(x, z3, vars, funcs)
        return z3.If(v, z3.RealVal(1), z3.RealVal(0)) if z3.is_bool(v) else v

    def cond(x):
        v = _z3(x, z3, vars, funcs)
        return v if z3.is_bool(v) else v != 0

    if isinstance(e, N.Unary):
        if e.op == "!":
            return z3.Not(cond(e.operand))
        return -num(e.operand) if _op(e.op) == "-" else num(e.operand)
    if isinstance(e, N.Select):
        return z3.If(cond(e.cond), num(e.then), num(e.other))
    if isinstance(e, N.Binary):
        _check_int_op(e)
        op = _op(e.op)
        if op in ("&&", "||"):
            return (z3.And if op == "&&" else z3.Or)(cond(e.lhs), cond(e.rhs))
        a, b = num(e.lhs), num(e.rhs)
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
                "<": lambda: a < b, "<=": lambda: a <= b, ">": lambda: a > b, ">=": lambda: a >= b,
                "==": lambda: a == b, "!=": lambda: a != b}[op]()
    if isinstance(e, N.Call):
        f, args = _fname(e.func), [num(a) for a in e.args]
        if f == "fmax" and len(args) == 2:
            return z3.If(args[0] < args[1], args[1], args[0])
        if f == "fmin" and len(args) == 2:
            return z3.If(args[1] < args[0], args[1], args[0])
        if f == "fabs" and len(args) == 1:
            return z3.If(args[0] < 0, -args[0], args[0])
        if f == "pow" and len(args) == 2:
            k = _const(e.args[1])
            if isinstance(k, (int, float)) and float(k).is_integer() and 1 <= k <= 8:
                out = args[0]
                for _ in range(int(k) - 1):
                    out = out * args[0]
                return out
        if f not in FUNCTIONS and f != "pow":
            raise NotReal(f"unknown function {e.func}")
        key = (f, len(args))
        if key not in funcs:
            funcs[key] = z3.Function(f"{f}{len(args)}", *([z3.RealSort()] * (len(args) + 1)))
        return funcs[key](*args)
    raise NotReal(type(e).__name__)


def prove_equal(a: N.Expr, b: N.Expr, timeout_ms: int = 2000) -> bool:
    """True when ``a == b`` holds in the real-number model for all leaf values; False
    when it does not or z3 cannot tell in time. Callers hold the z3 lock."""
    import z3

    try:
        vars, funcs = {}, {}
        za, zb = _z3(a, z3, vars, funcs), _z3(b, z3, vars, funcs)
        if z3.is_bool(za):
            za = z3.If(za, z3.RealVal(1), z3.RealVal(0))
        if z3.is_bool(zb):
            zb = z3.If(zb, z3.RealVal(1), z3.RealVal(0))
        s = z3.Solver()
        s.set("timeout", timeout_ms)
        s.add(za != zb)
        return s.check() == z3.unsat
    except (NotReal, z3.Z3Exception):
        return False
