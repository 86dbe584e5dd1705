"""z3 proofs that rewritten loops run the original loop's iterations: each exactly once,
in the original order, with the original variable's value.

The rewritten code is described as *pieces*: places where it runs one copy of the original
body, with the original variable replaced by an expression. Every loop iteration is
numbered by a counter c >= 0 (the loop variable is start + c*step); the original's counter
is k. A piece states which k each of its counter tuples runs (``k``) and back
(``inverse``); the proof checks those claims against the IR the transformation built, so a
wrong construction declines instead of miscompiling.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import z3

from ...ir import nodes as N
from ..base import Declined
from .result import Applied, decline
from .smt import Encoder, Unencodable, valid


@dataclass(frozen=True)
class Piece:
    """``loops``: the rewritten loops around this copy of the body, outermost first.
    ``copies``: (name, n) when the body is repeated n times inside them (unrolling); the
    name is the copy number in ``value`` and ``guard``. ``value``: what replaces the
    original loop variable. ``guard``: the condition the copy runs under, if any.
    ``k(counters)``: the original iteration a counter tuple runs (counters by loop
    variable / copy name); ``inverse(k)``: the counter tuple that runs iteration k."""

    loops: tuple[N.For, ...]
    value: N.Expr
    k: Callable[[dict], object]
    inverse: Callable[[object], dict]
    guard: N.Expr | None = None
    copies: tuple[str, int] | None = None


def iteration(enc: Encoder, loop: N.For, c):
    """(value, condition) of ``loop``'s variable at counter ``c``."""
    value = enc.int(loop.start) + c * enc.int(loop.step)
    return value, enc.with_env(**{loop.var: value}).bool(N.Binary(loop.cmp, N.Var(loop.var), loop.bound))


def _frame(piece: Piece, tag: str, enc: Encoder):
    """Counters (outermost first), the domain they range over, and the encoder that sees
    the piece's loop variables."""
    counters, dom = {}, []
    for loop in piece.loops:
        c = z3.Int(f"{loop.var}#{tag}")
        value, cond = iteration(enc, loop, c)
        counters[loop.var] = c
        dom += [c >= 0, cond]
        enc = enc.with_env(**{loop.var: value})
    if piece.copies:
        name, n = piece.copies
        u = z3.Int(f"{name}#{tag}")
        counters[name] = u
        dom += [u >= 0, u < n]
        enc = enc.with_env(**{name: u})
    if piece.guard is not None:
        dom.append(enc.bool(piece.guard))
    return counters, z3.And(dom), enc


def _lex_less(a: list, b: list):
    if not a:
        return z3.BoolVal(False)
    return z3.Or(a[0] < b[0], z3.And(a[0] == b[0], _lex_less(a[1:], b[1:])))


def _obligations(original: N.For, pieces: list[Piece]):
    """(name, claim) pairs whose validity is the theorem."""
    enc = Encoder()
    k = z3.Int("k#orig")
    val0, cond0 = iteration(enc, original, k)
    at = lambda kk: z3.substitute(z3.And(kk >= 0, cond0), (k, kk))  # noqa: E731
    value_at = lambda kk: z3.substitute(val0, (k, kk))  # noqa: E731
    yield "the original loop's condition is monotone", z3.Implies(
        z3.And(k >= 0, z3.substitute(cond0, (k, k + 1))), cond0)
    frames = [_frame(p, f"{n}a", enc) for n, p in enumerate(pieces)]
    for n, (p, (ctr, dom, penc)) in enumerate(zip(pieces, frames)):
        outer = []
        for loop in p.loops:  # each rewritten loop runs while its condition holds: a prefix
            c = ctr[loop.var]
            _, cond = iteration(penc, loop, c)
            _, cond_next = iteration(penc, loop, c + 1)
            yield f"piece {n}: loop {loop.var}'s condition is monotone", z3.Implies(
                z3.And(*outer, c >= 0, cond_next), cond)
            outer += [c >= 0, cond]
        kk = p.k(ctr)
        yield f"piece {n}: every iteration it runs is an original one, with the same value", z3.Implies(
            dom, z3.And(at(kk), penc.int(p.value) == value_at(kk)))
        ctr2, dom2, _ = _frame(p, f"{n}b", enc)
        yield f"piece {n}: runs its iterations in the original order", z3.Implies(
            z3.And(dom, dom2, _lex_less(list(ctr.values()), list(ctr2.values()))), kk < p.k(ctr2))
        for m in range(n + 1, len(pieces)):
            yield f"pieces {n} and {m}: all of {n} runs before {m}", z3.Implies(
                z3.And(dom, frames[m][1]), kk < pieces[m].k(frames[m][0]))
    covered = []
    for p, (ctr, dom, _) in zip(pieces, frames):
        back = p.inverse(k)
        subst = [(ctr[name], back[name]) for name in ctr]
        covered.append(z3.And(z3.substitute(dom, *subst), z3.substitute(p.k(ctr), *subst) == k))
    yield "every original iteration runs", z3.Implies(at(k), z3.Or(*covered))


def prove_enumeration(who: str, original: N.For, pieces: list[Piece], loop=None) -> str:
    """Prove the pieces enumerate ``original``'s iterations (module doc); declines with the
    failed obligation otherwise. Returns the proof note."""
    count = 0
    try:
        for name, claim in _obligations(original, pieces):
            ok, why = valid(claim)
            if not ok:
                decline(who, f"z3 could not prove that {name} ({why})", loop or original)
            count += 1
    except Unencodable as e:
        decline(who, f"loop bounds z3 cannot express: {e.args[0]}", loop or original)
    return f"z3: the rewrite runs each iteration of {original.var} once, in order, with the same value ({count} obligations)"


def prove_same_space(who: str, a: N.For, b: N.For) -> str:
    """Prove two canonical loops run the same number of iterations with the same values."""
    enc = Encoder()
    k = z3.Int("k#same")
    try:
        va, ca = iteration(enc, a, k)
        vb, cb = iteration(enc, b, k)
    except Unencodable as e:
        decline(who, f"loop bounds z3 cannot express: {e.args[0]}", a)
    ok, why = valid(z3.Implies(k >= 0, z3.And(ca == cb, z3.Implies(ca, va == vb))))
    if not ok:
        decline(who, f"loops {a.var} and {b.var} do not run the same iterations ({why})", a)
    return f"z3: loops {a.var} and {b.var} run the same iterations with the same values"


def first_proved(loop: N.For, variants, who: str) -> Applied:
    """``variants``: (node, pieces, note) from the leanest to the most general; the first
    one z3 proves equivalent (the last one's failure declines)."""
    for n, (node, pieces, note) in enumerate(variants):
        try:
            return Applied(node, (prove_enumeration(who, loop, pieces, loop), note))
        except Declined:
            if n == len(variants) - 1:
                raise
