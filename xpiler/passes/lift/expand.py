"""Inlining an intrinsic call's registry meaning, hygienically.

The meaning is built over placeholder variables that carry the arguments' types, every
name the meaning declares (temporaries, loop variables) is renamed to a fresh one, and
only then are the placeholders replaced by the call's arguments: a temporary can never
capture a variable of the caller (e.g. a meaning's ``acc`` and the kernel's ``acc``).
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir.typeinfer import type_of
from ...ir.visitor import Transformer, walk
from ...platforms.registry import _static_type, resolve
from ..base import substitute


def expand_call(dialect: str, call: N.Call, result: N.Expr | None, namer) -> N.Stmt | None:
    sig = resolve(dialect, call.func, len(call.args), tuple(_static_type(a) for a in call.args))
    if sig is None or sig.meaning is None:
        return None
    holes, actual = {}, {}
    for p, a in zip(sig.params, call.args):
        ph = f"__xp_{p.name}"
        holes[p.name] = N.Var(ph, type_of(a) or sig.param_var(p).dtype)
        actual[ph] = a
    if sig.returns is not None:
        if result is None:
            return None
        holes["result"] = N.Var("__xp_result", type_of(result) or sig.returns)
        actual["__xp_result"] = result
    body = sig.meaning_ir(holes)
    declared = {n.name for n in walk(body) if isinstance(n, N.Decl)} | \
               {n.var for n in walk(body) if isinstance(n, N.For)}
    renames = {name: namer.fresh(name) for name in sorted(declared)}
    return substitute(_rename(body, renames), vars=actual)


def _rename(body, renames):
    class R(Transformer):
        def visit_Var(self, v):
            return dataclasses.replace(v, name=renames[v.name]) if v.name in renames else v

        def visit_Decl(self, d):
            return dataclasses.replace(d, name=renames[d.name]) if d.name in renames else d

        def visit_For(self, f):
            return dataclasses.replace(f, var=renames[f.var]) if f.var in renames else f

    return R()(body)
