"""Folding integer/float constant expressions (macro values, array sizes, launch shapes).

C semantics where they differ from Python: integer division and remainder truncate
toward zero.
"""
from __future__ import annotations

import math
from typing import Mapping

from .nodes import Binary, Cast, Const, Expr, SizeOf, Unary, Var, Select
from .types import ScalarType, Type, byte_size


class NotConstant(Exception):
    pass


def _cdiv(a, b):
    if isinstance(a, int) and isinstance(b, int):
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    return a / b


def _cmod(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a - _cdiv(a, b) * b
    return math.fmod(a, b)


_BINARY = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": _cdiv, "%": _cmod, "<<": lambda a, b: a << b, ">>": lambda a, b: a >> b,
    "&": lambda a, b: a & b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b,
    "<": lambda a, b: int(a < b), "<=": lambda a, b: int(a <= b), ">": lambda a, b: int(a > b),
    ">=": lambda a, b: int(a >= b), "==": lambda a, b: int(a == b), "!=": lambda a, b: int(a != b),
    "&&": lambda a, b: int(bool(a) and bool(b)), "||": lambda a, b: int(bool(a) or bool(b)),
}


def fold(expr: Expr, env: Mapping[str, object] | None = None):
    """The value of ``expr``; names are looked up in ``env`` (values or Exprs).

    Raises NotConstant when something is not known at compile time."""
    env = env or {}
    if isinstance(expr, Const):
        if isinstance(expr.value, str):
            raise NotConstant(expr)
        return expr.value
    if isinstance(expr, Var):
        if expr.name not in env:
            raise NotConstant(expr)
        v = env[expr.name]
        return fold(v, env) if isinstance(v, Expr) else v
    if isinstance(expr, Unary):
        v = fold(expr.operand, env)
        return {"-": lambda: -v, "+": lambda: v, "!": lambda: int(not v), "~": lambda: ~v}[expr.op]()
    if isinstance(expr, Binary):
        if expr.op not in _BINARY:
            raise NotConstant(expr)
        return _BINARY[expr.op](fold(expr.lhs, env), fold(expr.rhs, env))
    if isinstance(expr, Select):
        return fold(expr.then, env) if fold(expr.cond, env) else fold(expr.other, env)
    if isinstance(expr, SizeOf) and isinstance(expr.of, Type):
        n = byte_size(expr.of)
        if not n:
            raise NotConstant(expr)
        return n
    if isinstance(expr, Cast) and isinstance(expr.dtype, ScalarType):
        v = fold(expr.value, env)
        return float(v) if expr.dtype.is_float else int(v)
    raise NotConstant(expr)


def try_fold(expr: Expr, env: Mapping[str, object] | None = None):
    try:
        return fold(expr, env)
    except (NotConstant, ZeroDivisionError, KeyError, TypeError, ValueError, OverflowError):
        return None
