"""Unrolling ``while`` loops whose iterations are known at compile time.

Tree reductions step by halving (``for (int s = 128; s > 0; s >>= 1)`` is parsed as
``{ int s = 128; while (s > 0) { ...; s >>= 1; } }``), often with a barrier or a warp
shuffle inside. Once the launch configuration is substituted, the start, the condition
and the step are constants, so the values ``s`` takes are known: the loop becomes one
block per value (the body with ``s`` replaced by it), and the barriers in it reach the top
level of the kernel body, where loop recovery splits at them.

Matched: a counter declared just before the loop, with a constant value, that the loop
changes only by its last statement (``s >>= k``, ``s <<= k``, ``s /= k``, ``s *= k``,
``s += k``, ``s -= k`` or ``s = s op k``), no ``break``/``continue``/``return`` in the
loop, the counter not used after it, and at most MAX_TRIPS iterations. Anything else
stays a ``while`` loop.
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ...ir.visitor import Transformer, walk
from ..base import assigned_names, names_in, substitute

MAX_TRIPS = 64
_OPS = {">>=": ">>", "<<=": "<<", "/=": "/", "*=": "*", "+=": "+", "-=": "-"}


def unroll_constant_whiles(body: N.Block) -> N.Block:
    class Unroll(Transformer):
        def visit_Block(self, b):  # inner blocks are already done (bottom-up)
            stmts = list(b.body)
            out, i = [], 0
            while i < len(stmts):
                done = _unrolled(stmts[i], stmts[i + 1], stmts[i + 2:]) if i + 1 < len(stmts) else None
                if done is not None:
                    out.extend(done)
                    i += 2
                else:
                    out.append(stmts[i])
                    i += 1
            return dataclasses.replace(b, body=tuple(out))

    return Unroll()(body)


def _step(s, var: str):
    """The binary operator and constant of ``var``'s update ``s``, or None."""
    if not isinstance(s, N.Assign) or not isinstance(s.target, N.Var) or s.target.name != var:
        return None
    if s.op in _OPS:
        k = try_fold(s.value)
        return (_OPS[s.op], k) if isinstance(k, int) else None
    if s.op == "=" and isinstance(s.value, N.Binary) and isinstance(s.value.lhs, N.Var) \
            and s.value.lhs.name == var and s.value.op in _OPS.values():
        k = try_fold(s.value.rhs)
        return (s.value.op, k) if isinstance(k, int) else None
    return None


def _unrolled(decl, loop, rest) -> list | None:
    if not (isinstance(decl, N.Decl) and isinstance(loop, N.While) and decl.init is not None
            and isinstance(decl.dtype, T.ScalarType) and decl.dtype.is_int and loop.body.body):
        return None
    var = decl.name
    step = _step(loop.body.body[-1], var)
    body = loop.body.body[:-1]
    if step is None or var in assigned_names(N.Block(body)) or any(var in names_in(s) for s in rest):
        return None
    if any(isinstance(n, (N.Break, N.Continue, N.Return)) for n in walk(N.Block(body))):
        return None
    value, values = try_fold(decl.init), []
    while isinstance(value, int):
        go = try_fold(substitute(loop.cond, {var: N.Const(value, decl.dtype)}))
        if not isinstance(go, (int, bool)) or len(values) > MAX_TRIPS:
            return None
        if not go:
            break
        values.append(value)
        value = try_fold(N.Binary(step[0], N.Const(value, decl.dtype), N.Const(step[1], decl.dtype)))
    if not isinstance(value, int):
        return None
    return [dataclasses.replace(substitute(N.Block(body), {var: N.Const(v, decl.dtype)}), span=loop.span)
            for v in values]
