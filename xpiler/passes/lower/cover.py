"""Covering an element expression with a platform's pointwise intrinsics.

Every registered signature whose meaning is ``for i < n: dst[i] = expr(src*[i], scalars)``
becomes a ``Pointwise`` pattern (the meaning is the only source of what it computes). A
scalar expression over leaves (``Var`` named ``@...``: one element of an operand) is
covered top-down: at each node the (intrinsic, operands) pairs that agree numerically
are tried, the one computing most of the node first, until z3 proves one equal to the
node in the real-number model (xpiler/smt/reals.py); operands are covered recursively,
backtracking on failure. Platform-neutral: tensorize_mlu.py uses it for BANG.
"""
from __future__ import annotations

import dataclasses
import functools
import random
import time

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ...ir.visitor import Transformer, walk
from ...platforms.registry import REGISTRY, Intrinsic
from ...smt import reals
from ..base import substitute

LEAF = "@"  # prefix of leaf names (an operand's element): not a C identifier


class Decline(Exception):
    pass


# --------------------------------------------------------------------------- patterns
@dataclasses.dataclass(frozen=True)
class Pointwise:
    """An intrinsic whose meaning is ``for i < n: dst[i] = expr(src*[i], scalars)``."""

    sig: Intrinsic
    vec: tuple  # vector input parameter names, in signature order
    scal: tuple  # by-value parameter names other than the length
    length: str  # the element-count parameter
    expr: N.Expr  # the element value; parameter p appears as Var("$p")
    size: int
    rank: tuple

    def call(self, dst: N.Expr, vecs: list, scals: list, n: N.Expr) -> N.Call:
        args, vi, si = [], iter(vecs), iter(scals)
        for p in self.sig.params:
            if p.role in ("out", "inout"):
                args.append(dst)
            elif p.role == "in":
                args.append(next(vi))
            elif p.name == self.length:
                args.append(n)
            else:
                args.append(next(si))
        return N.Call(self.sig.name, tuple(args))


def _as_pointwise(sig: Intrinsic) -> Pointwise | None:
    if any(p.role != "scalar" and (p.dtype != T.F32 or p.scope not in ("nram", "")) for p in sig.params):
        return None  # float32 NRAM operands only (the element type we tensorize)
    try:
        m = sig.meaning_ir()
    except Exception:
        return None
    if not (isinstance(m, N.Block) and len(m.body) == 1 and isinstance(m.body[0], N.For)):
        return None
    f = m.body[0]
    if f.cmp != "<" or try_fold(f.start) != 0 or try_fold(f.step) != 1 or not isinstance(f.bound, N.Var):
        return None
    if len(f.body.body) != 1 or not isinstance(f.body.body[0], N.Assign):
        return None
    a = f.body.body[0]
    roles = {p.name: p.role for p in sig.params}
    i = N.Var(f.var, f.dtype)
    if not (a.op == "=" and isinstance(a.target, N.Load) and isinstance(a.target.base, N.Var)
            and roles.get(a.target.base.name) == "out" and a.target.index == i):
        return None

    class Holes(Transformer):
        def visit_Load(self, ld):
            if isinstance(ld.base, N.Var) and roles.get(ld.base.name) == "in" and ld.index == i:
                return N.Var("$" + ld.base.name, T.F32)
            return ld

        def visit_Var(self, v):
            return N.Var("$" + v.name, v.dtype) if roles.get(v.name) == "scalar" else v

    expr = Holes()(a.value)
    if any(isinstance(n, (N.Load, N.Deref)) or (isinstance(n, N.Var) and n.name == f.var) for n in walk(expr)):
        return None
    vec = tuple(p.name for p in sig.params if p.role == "in")
    scal = tuple(p.name for p in sig.params if p.role == "scalar" and p.name != f.bound.name)
    size = sum(1 for n in walk(expr) if isinstance(n, N.Expr))
    # Prefer (in order): semantics not marked uncertain, the biggest meaning (fewest
    # calls), the cheapest, the fewest operands, names without caveats; then by name.
    rank = ("[UNCERTAIN]" in sig.notes, -size, sig.cost, len(vec), bool(sig.notes), sig.name)
    return Pointwise(sig, vec, scal, f.bound.name, expr, size, rank)


@functools.lru_cache(maxsize=None)
def pointwise_patterns(platform: str) -> tuple[Pointwise, ...]:
    out = []
    for intr in REGISTRY.all(platform):
        for sig in intr.signatures():
            p = _as_pointwise(sig)
            if p is not None:
                out.append(p)
    return tuple(sorted(out, key=lambda p: p.rank))


def constraint_value(sigs, kind: str, default: int) -> int:
    """The largest integer value of the signatures' constraints of ``kind``."""
    vals = [c.value for sig in sigs for c in sig.constraints
            if getattr(c, "kind", None) == kind and isinstance(c.value, int)]
    return max(vals, default=default)


# --------------------------------------------------------------------------- cover
@dataclasses.dataclass
class Op:
    pat: Pointwise | None  # None: a leaf (the NRAM copy of a loaded buffer)
    kids: list
    scalars: list
    leaf: str = ""


def is_vec(e) -> bool:
    return any(isinstance(n, N.Var) and n.name.startswith(LEAF) for n in walk(e))


def _size(e) -> int:
    return sum(1 for n in walk(e) if isinstance(n, N.Expr))


def _unify(p, e, bind: dict, pat: Pointwise, splat: bool):
    """Bindings of the pattern's holes that make ``p`` structurally ``e`` (casts to a
    float type are transparent; + and * commute)."""
    if isinstance(p, N.Var) and p.name.startswith("$"):
        name = p.name[1:]
        if name in bind:
            if bind[name] == e:
                yield bind
            return
        if name in pat.vec and not is_vec(e) and not splat:
            return
        if name in pat.scal and is_vec(e):
            return
        yield {**bind, name: e}
        return
    if isinstance(p, N.Cast) and isinstance(p.dtype, T.ScalarType) and p.dtype.is_float:
        yield from _unify(p.value, e.value if isinstance(e, N.Cast) and e.dtype == p.dtype else e, bind, pat, splat)
        return
    if isinstance(e, N.Cast) and isinstance(e.dtype, T.ScalarType) and e.dtype.is_float:
        yield from _unify(p, e.value, bind, pat, splat)
        return
    if isinstance(p, N.Const):
        if isinstance(e, N.Const) and isinstance(e.value, (int, float)) and float(e.value) == float(p.value):
            yield bind
        return
    if type(p) is not type(e):
        return
    if isinstance(p, N.Binary):
        if p.op != e.op:
            return
        orders = [(e.lhs, e.rhs)] + ([(e.rhs, e.lhs)] if p.op in ("+", "*", "==", "!=") else [])
        for l, r in orders:
            for b1 in _unify(p.lhs, l, bind, pat, splat):
                yield from _unify(p.rhs, r, b1, pat, splat)
    elif isinstance(p, N.Unary):
        if p.op == e.op:
            yield from _unify(p.operand, e.operand, bind, pat, splat)
    elif isinstance(p, N.Select):
        for b1 in _unify(p.cond, e.cond, bind, pat, splat):
            for b2 in _unify(p.then, e.then, b1, pat, splat):
                yield from _unify(p.other, e.other, b2, pat, splat)
    elif isinstance(p, N.Call):
        if reals._fname(p.func) == reals._fname(e.func) and len(p.args) == len(e.args):
            def args(k, b):
                if k == len(p.args):
                    yield b
                    return
                for b1 in _unify(p.args[k], e.args[k], b, pat, splat):
                    yield from args(k + 1, b1)
            yield from args(0, bind)
    elif p == e:
        yield bind


def _subtrees(e):
    seen, out = set(), []
    for n in walk(e):
        if isinstance(n, N.Expr) and n is not e and n not in seen:
            seen.add(n)
            out.append(n)
    return out


def _candidates(pat: Pointwise, e, splat: bool, vecs: list, scals: list):
    yield from _unify(pat.expr, e, {}, pat, splat)
    # Semantic matches that differ in spelling (fmaxf(x, 0) for x < 0 ? 0 : x): the
    # node's subexpressions as operands; the numeric check and the proof decide.
    names = pat.vec + pat.scal
    if len(names) > 2:
        return

    def pick(k, bind):
        if k == len(names):
            yield bind
            return
        for s in (vecs if names[k] in pat.vec else scals):
            yield from pick(k + 1, {**bind, names[k]: s})

    yield from pick(0, {})


class Cover:
    """Covers an element expression with pointwise intrinsics, top-down: at each node the
    (intrinsic, operands) pairs that agree numerically are tried by how much of the node
    the intrinsic computes (then by the patterns' rank) until z3 proves one equal to
    the node; operands are covered recursively (backtracking on failure)."""

    POINTS = 3

    def __init__(self, platform: str, budget: int = 400, seconds: float = 30.0):
        self.platform = platform
        self.budget = budget  # z3 proofs allowed
        self.deadline = time.monotonic() + seconds
        rng = random.Random(0)
        self.samples = [[rng.uniform(-3.0, 3.0) for _ in range(64)] for _ in range(self.POINTS)]
        self._vals: dict = {}
        self._names: dict = {}

    def vals(self, e) -> tuple:
        if e not in self._vals:
            out = []
            for pt in self.samples:
                env = {}
                for n in walk(e):
                    if isinstance(n, N.Var) and n.name not in env:
                        k = self._names.setdefault(n.name, len(self._names))
                        env[n.name] = pt[k % len(pt)]
                out.append(reals.evaluate(e, env))
            self._vals[e] = tuple(out)
        return self._vals[e]

    def _agrees(self, pat: Pointwise, bind: dict, e) -> bool:
        want = self.vals(e)
        hv = {k: self.vals(v) for k, v in bind.items()}
        for k in range(self.POINTS):
            got = reals.evaluate(pat.expr, {"$" + h: v[k] for h, v in hv.items()})
            x = want[k]
            if x != x and got != got:
                continue
            if not abs(x - got) <= 1e-9 * (1.0 + abs(x)):
                return False
        return True

    def equal(self, a, b) -> bool:
        """``a == b`` in the real-number model (a numeric check first, then z3)."""
        va, vb = self.vals(a), self.vals(b)
        if any(not (x != x and y != y) and not abs(x - y) <= 1e-9 * (1.0 + abs(x)) for x, y in zip(va, vb)):
            return False
        return reals.prove_equal(a, b)

    def cover(self, e) -> Op:
        if isinstance(e, N.Var) and e.name.startswith(LEAF):
            return Op(None, [], [], leaf=e.name[len(LEAF):])
        if isinstance(e, N.Cast) and isinstance(e.dtype, T.ScalarType) and e.dtype.is_float:
            return self.cover(e.value)
        subs = _subtrees(e)
        vecs = [x for x in subs if is_vec(x)][:12]
        scals = [x for x in subs if not is_vec(x) and not any(x in _kids(y) for y in subs if not is_vec(y))][:6]
        for splat in (False, True):
            found = []
            for pat in pointwise_patterns(self.platform):
                if not is_vec(e) and pat.vec:
                    continue  # a value without loads: only fills (write_value) apply
                seen = []
                for bind in _candidates(pat, e, splat, vecs, scals):
                    if bind in seen or any(bind[v] == e for v in pat.vec):
                        continue
                    seen.append(bind)
                    if self._agrees(pat, bind, e):
                        covered = _size(e) - sum(_size(x) for x in bind.values())
                        found.append((-covered, pat.rank, len(found), pat, bind))
            found.sort(key=lambda t: t[:3])
            for *_, pat, bind in found:
                self.budget -= 1
                if self.budget < 0 or time.monotonic() > self.deadline:
                    raise Decline("the intrinsic search ran out of budget")
                inst = substitute(pat.expr, {"$" + k: v for k, v in bind.items()})
                if not reals.prove_equal(inst, e):
                    continue
                try:
                    return Op(pat, [self.cover(bind[v]) for v in pat.vec], [bind[s] for s in pat.scal])
                except Decline:
                    continue
        raise Decline(f"no __bang_* intrinsic computes {text(e)}")


def _kids(e):
    from ...ir.visitor import children

    return [c for c in children(e) if isinstance(c, N.Expr)]


def text(e) -> str:
    from ...lang import PRINTERS

    try:
        return PRINTERS["cpu"]().expr(substitute(e, {}))[:80].replace(LEAF, "")
    except Exception:
        return type(e).__name__


@dataclasses.dataclass(frozen=True)
class Accumulation:
    """A reducing intrinsic's meaning read as ``acc = init; for each input v: acc =
    combine(acc, v); result = acc`` (``combine`` over Var("$acc") and Var("$v"))."""

    sig: Intrinsic
    init: N.Expr
    combine: N.Expr


def accumulation(sig: Intrinsic) -> Accumulation | None:
    """The accumulation of ``sig``'s meaning: one scalar declared with an initial value,
    updated in a loop from exactly one input element, and stored unchanged."""
    try:
        m = sig.meaning_ir()
    except Exception:
        return None
    ins = {p.name for p in sig.params if p.role == "in"}
    decls = [d for d in walk(m) if isinstance(d, N.Decl) and isinstance(d.dtype, T.ScalarType) and d.init is not None]
    for d in decls:
        acc = N.Var(d.name, d.dtype)
        updates = [a for a in walk(m) if isinstance(a, N.Assign) and a.target == acc]
        stored = any(isinstance(a, N.Assign) and isinstance(a.target, N.Load) and a.value == acc for a in walk(m))
        if len(updates) != 1 or updates[0].op != "=" or not stored:
            continue
        loads = list({x: None for x in walk(updates[0].value) if isinstance(x, N.Load)})
        if len(loads) != 1 or not (isinstance(loads[0].base, N.Var) and loads[0].base.name in ins):
            continue

        class Holes(Transformer):
            def visit_Var(self, v):
                return N.Var("$acc", T.F32) if v.name == d.name else v

            def visit_Load(self, ld):
                return N.Var("$v", T.F32) if ld == loads[0] else ld

        return Accumulation(sig, d.init, Holes()(updates[0].value))
    return None
