"""Unroll a loop: fully (a constant trip count up to a limit) or by a factor, with an
epilogue loop for the remainder.

Unrolling keeps the execution order, so it is legal whenever the body can be copied: it
must not ``break`` or ``continue`` (a copy cannot skip the copies after it). z3 proves
the index rewrite: copy u of block o runs original iteration o*factor + u with the same
variable value, every iteration exactly once, in order. Each copy is its own block, so
the body's local declarations stay private to it.
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir.consteval import try_fold
from ..base import Namer, names_in, substitute
from .canon import canonical, const, offset, over, strict, times, trip_count
from .iterspace import Piece, first_proved
from .result import Applied, decline
from .smt import Encoder, Unencodable, locked

WHO = "unroll"
COPY = "#u"  # the copy number in proof templates (never printed: not a C name)
MAX_FULL = 64


def _copies(loop: N.For, base: N.Expr, step: int, n: int) -> tuple[N.Block, ...]:
    """The body n times, copy u with the loop variable replaced by base + u*step (the
    proof template at COPY = u, folded)."""
    return tuple(substitute(loop.body, {loop.var: offset(base, N.Const(u, loop.dtype), step, loop)})
                 for u in range(n))


@locked
def unroll(loop: N.For, factor: int | None = None, namer: Namer | None = None,
           max_full: int = MAX_FULL) -> Applied:
    """``factor=None``: full unroll (an N.Block of copies); else the loop advancing by
    ``factor`` iterations with ``factor`` copies of its body, plus an epilogue loop when
    z3 cannot prove the factor divides the trip count (an N.For or an N.Block)."""
    step = canonical(loop, WHO, allow_continue=False)
    if factor is None:
        trips = try_fold(trip_count(loop, step))
        if not isinstance(trips, int):
            decline(WHO, f"loop {loop.var} has no constant trip count to unroll fully", loop)
        if trips > max_full:
            decline(WHO, f"loop {loop.var} runs {trips} times, more than the full-unroll limit {max_full}", loop)
        template = offset(loop.start, N.Var(COPY, loop.dtype), step, loop)
        node = N.Block(_copies(loop, loop.start, step, trips), span=loop.span)
        piece = Piece((), template, lambda c: c[COPY], lambda kk: {COPY: kk}, copies=(COPY, trips))
        return first_proved(loop, [(node, [piece], f"full: {trips} copies")], WHO)
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        decline(WHO, f"factor {factor!r} is not a positive integer", loop)
    namer = namer or Namer(names_in(loop))
    o = namer.fresh(f"{loop.var}_u")
    template = offset(N.Var(o, loop.dtype), N.Var(COPY, loop.dtype), step, loop)
    body = N.Block(_copies(loop, N.Var(o, loop.dtype), step, factor))
    whole = times(over(trip_count(loop, step), const(factor, loop)), const(factor, loop))
    rest = offset(loop.start, whole, step, loop)
    main = N.For(o, loop.dtype, loop.start, strict(step), rest, const(factor * step, loop), body,
                 kind=loop.kind, span=loop.span)
    tail = dataclasses.replace(loop, start=rest)
    try:
        r = Encoder().int(whole)
    except Unencodable as e:
        decline(WHO, f"loop bounds z3 cannot express: {e.args[0]}", loop)
    p_main = Piece((main,), template, lambda c: c[o] * factor + c[COPY],
                   lambda kk: {o: kk / factor, COPY: kk % factor}, copies=(COPY, factor))
    p_tail = Piece((tail,), N.Var(loop.var), lambda c: r + c[loop.var], lambda kk: {loop.var: kk - r})
    return first_proved(loop, [(main, [p_main], f"by {factor}: no remainder (the factor divides the trip count)"),
                               (N.Block((main, tail)), [p_main, p_tail], f"by {factor}: remainder in an epilogue loop")], WHO)
