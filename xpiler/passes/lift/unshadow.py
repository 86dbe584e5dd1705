"""Renaming variables that shadow an enclosing one.

``for (int i ...) { ... for (int i = 0; i < 16; ++i) ... }`` is legal C, but loop
transformations and the dependence test name things by variable: an inner ``i`` would
be confused with the outer one (loops/canon.py declines such loops). Each declaration or
loop variable that redeclares a name visible at that point gets a fresh name, and so do
its uses within its scope. The program's meaning is unchanged.
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir.visitor import Transformer
from ..base import Namer


def unshadow(body: N.Block, visible: set[str], namer: Namer) -> N.Block:
    """``body`` with shadowing declarations renamed; ``visible``: names bound around it
    (the function's parameters)."""
    return _block(body, set(visible), {}, namer)


def _rename(e, env: dict):
    if not env or e is None:
        return e

    class R(Transformer):
        def visit_Var(self, v):
            return dataclasses.replace(v, name=env[v.name]) if v.name in env else v

    return R()(e)


def _block(b: N.Block, bound: set, env: dict, namer: Namer) -> N.Block:
    bound, env = set(bound), dict(env)  # declarations end with the block
    out = [_stmt(s, bound, env, namer) for s in b.body]
    return dataclasses.replace(b, body=tuple(out))


def _fresh(name: str, bound: set, env: dict, namer: Namer) -> str:
    if name in bound:
        new = namer.fresh(name)
        env[name] = new
    else:
        env.pop(name, None)  # a new variable of that name, not renamed
        new = name
    bound.add(name)
    return new


def _stmt(s, bound: set, env: dict, namer: Namer):
    if isinstance(s, N.Block):
        return _block(s, bound, env, namer)
    if isinstance(s, N.Decl):
        init = _rename(s.init, env)
        return dataclasses.replace(s, name=_fresh(s.name, bound, env, namer), init=init)
    if isinstance(s, N.For):
        start = _rename(s.start, env)
        inner_bound, inner_env = set(bound), dict(env)
        var = _fresh(s.var, inner_bound, inner_env, namer) if s.declared else env.get(s.var, s.var)
        cond, step = _rename(s.bound, inner_env), _rename(s.step, inner_env)
        body = _block(s.body, inner_bound, inner_env, namer)
        return dataclasses.replace(s, var=var, start=start, bound=cond, step=step, body=body)
    if isinstance(s, N.If):
        return dataclasses.replace(s, cond=_rename(s.cond, env), then=_block(s.then, bound, env, namer),
                                   other=_block(s.other, bound, env, namer) if s.other is not None else None)
    if isinstance(s, N.While):
        return dataclasses.replace(s, cond=_rename(s.cond, env), body=_block(s.body, bound, env, namer))
    return _rename(s, env)
