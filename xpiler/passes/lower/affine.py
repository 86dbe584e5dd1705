"""Affine index forms over loop counters, with the quasi-affine division rule.

A loop counter is a ``Sym`` ranging over [0, extent) (extent None: not a compile-time
constant, e.g. a grid extent computed from a host argument). An index value is a ``Lin``:
a constant plus integer multiples of counters. ``div``/``mod`` by a constant stay affine
when the remainder part provably lies in [0, divisor) (``(16*i + kk) / 16 == i`` for
kk < 16): that is what lets a read of a tile buffer be matched to the loop that wrote it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sym:
    name: str  # unique within one analysis
    extent: int | None  # range [0, extent); None: unbounded above


@dataclass(frozen=True)
class Lin:
    terms: tuple = ()  # ((Sym, coef), ...) sorted by name, no zero coefficients
    const: int = 0

    @staticmethod
    def make(coefs: dict, const: int = 0) -> "Lin":
        return Lin(tuple(sorted(((s, c) for s, c in coefs.items() if c), key=lambda sc: sc[0].name)), const)

    @staticmethod
    def of(sym: Sym, coef: int = 1) -> "Lin":
        return Lin.make({sym: coef})

    def coefs(self) -> dict:
        return dict(self.terms)

    def coef(self, sym: Sym) -> int:
        return self.coefs().get(sym, 0)

    @property
    def syms(self) -> set:
        return {s for s, _ in self.terms}

    @property
    def is_const(self) -> bool:
        return not self.terms

    def __add__(self, other: "Lin") -> "Lin":
        c = self.coefs()
        for s, k in other.terms:
            c[s] = c.get(s, 0) + k
        return Lin.make(c, self.const + other.const)

    def __sub__(self, other: "Lin") -> "Lin":
        return self + other.scale(-1)

    def scale(self, k: int) -> "Lin":
        return Lin.make({s: c * k for s, c in self.terms}, self.const * k)

    def subst(self, mapping: dict) -> "Lin":
        """Replace counters by forms (Sym -> Lin)."""
        out = Lin((), self.const)
        for s, c in self.terms:
            out = out + (mapping[s].scale(c) if s in mapping else Lin(((s, c),)))
        return out

    def bounds(self) -> tuple:
        """(lo, hi), inclusive; None for an unbounded side."""
        lo = hi = self.const
        for s, c in self.terms:
            top = None if s.extent is None else s.extent - 1
            if c > 0:
                hi = None if hi is None or top is None else hi + c * top
            else:
                lo = None if lo is None or top is None else lo + c * top
        return lo, hi


def div_mod(x: Lin, d: int) -> tuple | None:
    """(x / d, x % d) as forms with C semantics, when x >= 0 and the part of x that is
    not a multiple of d provably stays in [0, d); None otherwise."""
    if d <= 0 or x.bounds()[0] is None or x.bounds()[0] < 0:
        return None
    q = {s: c // d for s, c in x.terms if c % d == 0}
    r = {s: c for s, c in x.terms if c % d != 0}
    rem = Lin.make(r, x.const % d)
    lo, hi = rem.bounds()
    if lo is None or hi is None or lo < 0 or hi >= d:
        return None
    return Lin.make(q, x.const // d), rem


def injective(form: Lin, syms) -> bool:
    """Whether distinct points of the box of ``syms`` give distinct values of ``form``
    (mixed radix: each coefficient exceeds the span of all smaller ones)."""
    cs = sorted(((abs(form.coef(s)), s) for s in syms), key=lambda t: t[0])
    span = 0
    for c, s in cs:
        if s.extent is None or c <= span:
            return False
        span += c * (s.extent - 1)
    return True


def solve(form: Lin, unknowns, target: Lin) -> dict | None:
    """Values of ``unknowns`` (as forms over the other counters) with form == target, each
    provably within its range; None when no such affine solution is found."""
    rest = target - Lin.make({s: c for s, c in form.terms if s not in unknowns}, form.const)
    out = {}
    for s in sorted(unknowns, key=lambda s: -abs(form.coef(s))):
        c = form.coef(s)
        if c <= 0:
            return None
        qr = div_mod(rest, c)
        if qr is None:
            return None
        out[s], rest = qr
        if s.extent is None:
            return None
    if rest != Lin():
        return None
    for s, v in out.items():
        lo, hi = v.bounds()
        if lo is None or hi is None or lo < 0 or hi >= s.extent:
            return None
    return out


def disjoint(a: tuple, b: tuple) -> bool:
    """Whether two inclusive intervals (None = unbounded) provably do not overlap."""
    (alo, ahi), (blo, bhi) = a, b
    return (ahi is not None and blo is not None and ahi < blo) or (bhi is not None and alo is not None and bhi < alo)
