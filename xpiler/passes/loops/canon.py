"""What a loop must be for the transformations to reason about it, and small builders
for the headers they write.

A canonical loop declares its variable, steps by a nonzero constant toward its bound
(``<``/``<=`` upward, ``>``/``>=`` downward, so its condition, once false, stays false),
never assigns its variable or the names its header reads, and leaves its body only by
finishing it or by ``return``.
"""
from __future__ import annotations

from ...ir import nodes as N
from ...ir.consteval import try_fold
from ...ir.visitor import walk
from ..base import assigned_names
from .result import decline

UP, DOWN = ("<", "<="), (">", ">=")


def escapes(body: N.Stmt) -> list[N.Stmt]:
    """break/continue statements that belong to this loop (not to a loop nested in it)."""
    out, stack = [], [body]
    while stack:
        s = stack.pop()
        if isinstance(s, (N.Break, N.Continue)):
            out.append(s)
        elif isinstance(s, N.Block):
            stack.extend(s.body)
        elif isinstance(s, N.If):
            stack.extend(x for x in (s.then, s.other) if x is not None)
    return out


def header_names(loop: N.For) -> set[str]:
    return {n.name for e in (loop.start, loop.bound, loop.step) for n in walk(e) if isinstance(n, N.Var)}


def canonical(loop, who: str, *, allow_continue: bool = True) -> int:
    """Check ``loop`` is canonical (module doc); returns its constant step."""
    if not isinstance(loop, N.For):
        decline(who, f"expected a for loop, got {type(loop).__name__}")
    v = loop.var
    if loop.kind == "bound":
        decline(who, f"loop {v} is already bound to {loop.axis or 'a parallel axis'}", loop)
    if not loop.declared:
        decline(who, f"loop {v} does not declare its variable, so its final value is visible after the loop", loop)
    step = try_fold(loop.step)
    if not isinstance(step, int) or isinstance(step, bool) or step == 0:
        decline(who, f"loop {v} has no constant nonzero step", loop)
    if loop.cmp not in (UP if step > 0 else DOWN):
        decline(who, f"loop {v}: condition '{loop.cmp}' with step {step} is not a counted loop", loop)
    if step < 0 and getattr(loop.dtype, "name", "").startswith("uint"):
        # a rewritten downward loop may compute values below 0 (then guarded): they would wrap
        decline(who, f"loop {v} counts an unsigned variable down", loop)
    written = assigned_names(loop.body)
    if v in written:
        decline(who, f"loop {v} assigns its variable in its body", loop)
    if any(isinstance(n, N.Decl) and n.name == v or isinstance(n, N.For) and n.var == v for n in walk(loop.body)):
        decline(who, f"loop {v}'s body declares another {v}", loop)
    changed = header_names(loop) & written
    if changed:
        decline(who, f"loop {v}'s bounds read {', '.join(sorted(changed))}, which its body assigns", loop)
    for s in escapes(loop.body):
        if isinstance(s, N.Break) or not allow_continue:
            decline(who, f"loop {v} has a '{type(s).__name__.lower()}' of its own", loop)
    return step


# ------------------------------------------------------------------- header builders
def const(v: int, like: N.For) -> N.Const:
    return N.Const(v, like.dtype)


def plus(a: N.Expr, b: N.Expr) -> N.Expr:
    x, y = try_fold(a), try_fold(b)
    if isinstance(x, int) and isinstance(y, int):
        return N.Const(x + y, getattr(a, "dtype", None) or getattr(b, "dtype", None))
    if y == 0:
        return a
    if x == 0:
        return b
    if isinstance(y, int) and isinstance(a, N.Binary) and a.op in "+-" and isinstance(try_fold(a.rhs), int):
        c = try_fold(a.rhs) * (1 if a.op == "+" else -1) + y  # (x + c1) + c2 -> x + (c1 + c2)
        return plus(a.lhs, N.Const(c, getattr(b, "dtype", None)))
    if isinstance(y, int) and y < 0:
        return N.Binary("-", a, N.Const(-y, getattr(b, "dtype", None)))
    return N.Binary("+", a, b)


def minus(a: N.Expr, b: N.Expr) -> N.Expr:
    y = try_fold(b)
    if isinstance(y, int):
        return plus(a, N.Const(-y, getattr(b, "dtype", None)))
    return N.Binary("-", a, b)


def times(a: N.Expr, b: N.Expr) -> N.Expr:
    x, y = try_fold(a), try_fold(b)
    if isinstance(x, int) and isinstance(y, int):
        return N.Const(x * y, getattr(a, "dtype", None) or getattr(b, "dtype", None))
    if y == 1:
        return a
    if x == 1:
        return b
    return N.Binary("*", a, b)


def over(a: N.Expr, b: N.Expr) -> N.Expr:
    """C division, folded when constant (then clamped at 0: a trip count)."""
    x, y = try_fold(a), try_fold(b)
    if isinstance(x, int) and isinstance(y, int):
        return N.Const(max(int(x / y), 0), getattr(a, "dtype", None))
    return a if y == 1 else N.Binary("/", a, b)


def trip_count(loop: N.For, step: int) -> N.Expr:
    """How many times a canonical loop runs (possibly negative for an empty symbolic one;
    the proofs account for that)."""
    one = const(1, loop)
    if step > 0:
        span = minus(loop.bound, loop.start)
        span = plus(span, one) if loop.cmp == "<=" else span
    else:
        span = minus(loop.start, loop.bound)
        span = plus(span, one) if loop.cmp == ">=" else span
    a = abs(step)
    return over(plus(span, const(a - 1, loop)), const(a, loop))


def offset(base: N.Expr, count: N.Expr, step: int, like: N.For) -> N.Expr:
    """``base + count*step``, written ``base - count*|step|`` for a negative step."""
    if step < 0 and not isinstance(try_fold(count), int):
        return N.Binary("-", base, times(count, const(-step, like)))
    return plus(base, times(count, const(step, like)))


def strict(step: int) -> str:
    return "<" if step > 0 else ">"
