"""Split (strip-mine) a loop by a constant factor: an outer loop over blocks of
``factor`` iterations and an inner loop within a block.

The remainder (the last, partial block when the trip count is not a multiple of the
factor) is handled by a guard on the inner body or by an epilogue loop. Splitting keeps
the execution order, so it is always legal; what z3 proves is the index rewrite: the new
loops run exactly the original iterations, in order, with i == outer + inner*step. When
that proof also holds without the guard/epilogue (the factor divides the trip count for
every value of the bounds), they are left out.
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ..base import Namer, names_in, substitute
from .canon import canonical, const, offset, over, strict, times, trip_count
from .iterspace import Piece, first_proved
from .result import Applied, decline
from .smt import Encoder, Unencodable, locked

WHO = "split"


@locked
def split(loop: N.For, factor: int, namer: Namer | None = None, remainder: str = "guard") -> Applied:
    """``remainder="guard"``: one perfect nest ``for o: for i: if (o + i*step in range)``
    (an N.For); ``"epilogue"``: full blocks then a loop over the rest (an N.Block)."""
    step = canonical(loop, WHO)
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        decline(WHO, f"factor {factor!r} is not a positive integer", loop)
    if remainder not in ("guard", "epilogue"):
        decline(WHO, f"unknown remainder strategy {remainder!r}", loop)
    namer = namer or Namer(names_in(loop))
    o, i = namer.fresh(f"{loop.var}_o"), namer.fresh(f"{loop.var}_i")
    value = offset(N.Var(o, loop.dtype), N.Var(i, loop.dtype), step, loop)
    body = substitute(loop.body, {loop.var: value})
    k = lambda c: c[o] * factor + c[i]  # noqa: E731
    inverse = lambda kk: {o: kk / factor, i: kk % factor}  # noqa: E731

    def nest(cmp, bound, inner_body, guard=None):
        inner = N.For(i, loop.dtype, const(0, loop), "<", const(factor, loop), const(1, loop),
                      inner_body, kind=loop.kind)
        outer = N.For(o, loop.dtype, loop.start, cmp, bound, const(factor * step, loop),
                      N.Block((inner,)), kind=loop.kind, span=loop.span)
        return outer, Piece((outer, inner), value, k, inverse, guard=guard)

    exact = "no remainder: the factor divides the trip count"
    if remainder == "guard":
        bare, p_bare = nest(loop.cmp, loop.bound, body)
        guard = N.Binary(loop.cmp, value, loop.bound)
        guarded, p_guarded = nest(loop.cmp, loop.bound, N.Block((N.If(guard, body),)), guard)
        return first_proved(loop, [(bare, [p_bare], exact),
                                   (guarded, [p_guarded], "remainder: guarded inner body")], WHO)
    # epilogue: whole blocks up to start + R*step (R: the trip count rounded down to the
    # factor), then the original loop from there
    whole = times(over(trip_count(loop, step), const(factor, loop)), const(factor, loop))
    rest = offset(loop.start, whole, step, loop)
    tiles, p_tiles = nest(strict(step), rest, body)
    tail = dataclasses.replace(loop, start=rest)
    try:
        r = Encoder().int(whole)
    except Unencodable as e:
        decline(WHO, f"loop bounds z3 cannot express: {e.args[0]}", loop)
    p_tail = Piece((tail,), N.Var(loop.var), lambda c: r + c[loop.var], lambda kk: {loop.var: kk - r})
    return first_proved(loop, [(tiles, [p_tiles], exact),
                               (N.Block((tiles, tail)), [p_tiles, p_tail], "remainder: epilogue loop")], WHO)
