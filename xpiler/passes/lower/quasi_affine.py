"""Exact checks that an integer index expression is zero over a range of one variable.

z3 gives up on the mixed-radix index arithmetic of generated sources (a grid's flat
index split by /1024 and %1024, then regrouped by /169 ...). Such an expression of F is
quasi-affine: built from F and constants with +, -, * by a constant, and division,
remainder, shifts and masks by constants. For F >= lo, e(F + L) - e(F) is then one
constant, with a period L computed from the expression (``period``). So e is zero on
[lo, inf) iff it is zero on [lo, lo + L]: a finite check, done exactly with numpy (C's
integer semantics, int64). A range short enough is simply checked point by point.
"""
from __future__ import annotations

import math

from ...ir import nodes as N
from ...ir import types as T
from ..base import substitute

LIMIT = 1 << 21  # most values of the variable checked one by one
BLOCK = 1 << 14  # values per numpy evaluation


class NotNumeric(Exception):
    """The expression is outside the integer arithmetic evaluated here."""


def zero_on(e: N.Expr, var: str, lo: int, count: int | None, grid: dict) -> bool | None:
    """Whether ``e`` is 0 for every ``var`` in [lo, lo + count) (count None: unbounded)
    and every point of ``grid`` (name -> n: the name ranges over [0, n)); None when
    neither the range nor one period is short enough, or ``e`` is not closed integer
    arithmetic over these names."""
    import numpy as np

    try:
        n = count if count is not None and count <= LIMIT else None
        if n is None:
            points = [{}]
            for name, size in grid.items():
                points = [{**p, name: N.Const(k, T.I64)} for p in points for k in range(size)]
            periods = [period(substitute(e, p), var, lo) for p in points]
            if any(p is None for p in periods):
                return None
            L = math.lcm(*(p[0] for p in periods))
            if L >= LIMIT or (count is not None and L >= count):
                return None
            n = L + 1  # one period, and the step over it
        axes = {name: np.arange(size, dtype=np.int64).reshape([1] * (k + 1) + [-1] + [1] * (len(grid) - k - 1))
                for k, (name, size) in enumerate(grid.items())}
        for a in range(lo, lo + n, BLOCK):
            x = np.arange(a, min(lo + n, a + BLOCK), dtype=np.int64).reshape([-1] + [1] * len(grid))
            if np.any(values(e, {var: x, **axes}) != 0):
                return False
        return True
    except (NotNumeric, ZeroDivisionError, OverflowError, ValueError):
        return None


def values(e: N.Expr, env: dict):
    """``e`` at the int64 arrays ``env`` (name -> values), with C's integer semantics."""
    import numpy as np

    if isinstance(e, N.Const) and isinstance(e.value, (int, bool)):
        return np.int64(int(e.value))
    if isinstance(e, N.Var) and e.name in env:
        return env[e.name]
    if isinstance(e, N.Cast) and isinstance(e.dtype, T.ScalarType) and e.dtype.is_int:
        return values(e.value, env)
    if isinstance(e, N.Unary) and e.op in ("-", "+"):
        v = values(e.operand, env)
        return -v if e.op == "-" else v
    if isinstance(e, N.Select):
        return np.where(values(e.cond, env) != 0, values(e.then, env), values(e.other, env))
    if not isinstance(e, N.Binary):
        raise NotNumeric(e)
    a, b = values(e.lhs, env), values(e.rhs, env)
    if e.op in ("/", "%"):
        if np.any(b == 0):
            raise ZeroDivisionError
        q = (np.abs(a) // np.abs(b)) * np.sign(a) * np.sign(b)  # truncation toward zero
        return q if e.op == "/" else a - b * q
    ops = {"+": np.add, "-": np.subtract, "*": np.multiply, ">>": np.right_shift, "<<": np.left_shift,
           "&": np.bitwise_and, "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
           "==": np.equal, "!=": np.not_equal, "&&": np.logical_and, "||": np.logical_or}
    if e.op not in ops:
        raise NotNumeric(e)
    return np.asarray(ops[e.op](a, b)).astype(np.int64)


def period(e: N.Expr, var: str, lo: int):
    """(L, low): for x >= lo, e(x + L) - e(x) does not depend on x, and e >= low (None:
    not known); None when ``e`` is not quasi-affine in ``var`` with floor-exact divisions.

    Why: x has L = 1; a sum has the lcm of its terms' periods; for floor(a / d) with a's
    step delta over its period La, L = La * d / gcd(delta, d) makes a's step a multiple of
    d, so the quotient steps by a constant (and a remainder by 0). C's ``/`` and ``%``
    floor only for a >= 0, hence the lower bounds; ``>>`` and masks always floor."""
    import numpy as np

    if isinstance(e, N.Const) and isinstance(e.value, int):
        return 1, e.value
    if isinstance(e, N.Var) and e.name == var:
        return 1, lo
    if isinstance(e, N.Cast) and isinstance(e.dtype, T.ScalarType) and e.dtype.is_int:
        return period(e.value, var, lo)
    if not isinstance(e, N.Binary):
        return None
    pa, pb = period(e.lhs, var, lo), period(e.rhs, var, lo)
    if pa is None or pb is None:
        return None
    (La, la), (Lb, lb) = pa, pb
    k = e.rhs.value if isinstance(e.rhs, N.Const) and isinstance(e.rhs.value, int) else None
    if e.op == "+":
        return math.lcm(La, Lb), None if la is None or lb is None else la + lb
    if e.op == "-":
        return math.lcm(La, Lb), la - k if la is not None and k is not None else None
    if e.op == "*":
        c = k if k is not None else (e.lhs.value if isinstance(e.lhs, N.Const) else None)
        if not isinstance(c, int):
            return None
        low = la if k is not None else lb
        return math.lcm(La, Lb), low * c if low is not None and c >= 0 else None
    d = {"/": k, "%": k, ">>": 2 ** k if k is not None and k >= 0 else None,
         "&": k + 1 if k is not None and k >= 0 and (k + 1) & k == 0 else None}.get(e.op)
    if d is None or d <= 0 or (e.op in ("/", "%") and (la is None or la < 0)):
        return None
    steps = values(e.lhs, {var: np.array([lo, lo + La], dtype=np.int64)})
    L = La * d // math.gcd(int(steps[1] - steps[0]), d)
    if e.op in ("/", ">>"):
        return L, None if la is None else la // d
    return L, 0
