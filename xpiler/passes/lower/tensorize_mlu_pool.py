"""Tensorization for BANG (MLU): pooling windows -> ``__bang_{max,sum,min,avg}pool`` over
bands of input rows staged in NRAM.

A parallel phase qualifies when one iteration (flat index F of its collapsed nest) is

    acc = init;                                  // a scalar, a one-element local array,
    for (i < kh) for (j < kw)                    // or out[F] itself
      [if (g)] acc = combine(acc, in[I(F, i, j)]);
    [if (bound on F)] out[F] = f(acc);

and, writing F - lo = ((q*Ho + oh)*Wo + ow)*C + c (q: a plane, i.e. an image of an NHWC
tensor, or an (image, channel) pair of an NCHW one, whose C is then 1),

    I(F, i, j) = I0 + q*SP + (oh*sy + i)*SR + (ow*sx + j)*C + c,

which is the pool meaning's ``src[H][W][C]`` window over a band of input rows that starts
at ``I0 + q*SP + oh0*sy*SR`` with row stride SR (xpiler/platforms/mlu.py, _pool_meaning).

Emitted: the tasks share the (plane, band of R output rows) items; an item copies the
(r-1)*sy + kh input rows its r output rows read into NRAM (one, possibly strided,
``__memcpy``), calls the pool once, applies f with pointwise ``__bang_*`` calls (cover.py)
and copies the r*Wo*C results out. Outputs of a partial last row (a range that is not
whole rows, e.g. a symbolic launch size) run as the source's own scalar code.

Why it is correct:
- shape: C, Wo, Ho, sx, sy, SR, SP and I0 are read off the index numerically, then
  ``I(F, i, j)`` is proved equal to the form above for every F of the range and every
  tap (exhaustively over the range or over one period of the quasi-affine index
  arithmetic, quasi_affine.py; z3 where neither applies), and likewise the store index
  equal to F; z3 proves the guards inside the window always true (padding windows
  decline) and a guard on the store a bound on F (or on a monotone function of F);
  every copied element lies between two elements the source reads, so the copies stay
  inside the input buffer;
- value: z3 proves the loop's update equal to a pool meaning's accumulation step
  (cover.accumulation, in the real-number model); an initial value other than the pool's
  is combined in afterwards (the pools' combine steps are associative and commutative,
  with the pool's initial value as identity), and one that is the window's first tap is
  dropped when combine is idempotent (max, min); ``__bang_avgpool`` is used when f(acc)
  is proved equal to acc / (kh*kw), any other f is covered by pointwise intrinsics;
- hardware: the band and the result are padded with columns and rows that no stored
  output reads, so their lengths are multiples of the vector unit (the platform config's
  ``vector_align_bytes``, which the emulator's strict mode checks), NRAM arrays get the
  registry's ``align`` constraint, and everything fits ``nram_bytes`` minus the stack
  reserve.
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ...ir.typeinfer import type_of
from ...ir.visitor import Transformer, walk
from ..base import Namer, substitute
from .cover import LEAF, Cover, Decline, Op, constraint_value, text
from .phases import Phase, index_decls, trip_count
from .tensorize_mlu import Result

PASS = "tensorize-mlu-pool"
FLAT, TI, TJ = "xpiler_flat", "xpiler_ti", "xpiler_tj"  # F and the window's row/column tap
ACC = LEAF + "#acc"  # the accumulator, as the leaf of the expressions after the window
I64, I32, F32 = T.I64, T.I32, T.F32


class NotWindow(Exception):
    """The phase is no window reduction at all (the elementwise/reduction pass may take it)."""


def _acc() -> N.Var:
    return N.Var(ACC, F32)


def _uses(e, names: set) -> bool:
    return any(isinstance(n, N.Var) and n.name in names for n in walk(e))


# --------------------------------------------------------------------------- the body
@dataclasses.dataclass
class _Window:
    guards: list  # conditions around the whole iteration or its store
    out: str  # the stored buffer
    index: N.Expr  # the stored element
    value: N.Expr  # its value, over Var(ACC)
    init: N.Expr  # the accumulator before the window
    kh: N.Expr  # window rows (trip count of the outer tap loop)
    kw: N.Expr  # window columns
    update: N.Expr  # the accumulator's next value, over Var(ACC), Var(TI), Var(TJ)
    tap_guards: list  # conditions inside the window loops: (over the taps, as written)


class _Reads(Transformer):
    """Reads of the accumulator element (``a[0]`` of a local array, ``out[J]``) -> ACC."""

    def __init__(self, target):
        self.target = target

    def visit_Load(self, ld):
        return _acc() if ld == self.target else ld


def _reader(acc_target, env: dict):
    """Expression of the iteration (names substituted) with the accumulator as ACC."""
    if isinstance(acc_target, N.Var):
        env = {**env, acc_target.name: _acc()}
        return lambda e: substitute(e, env)
    return lambda e: substitute(_Reads(acc_target)(e), env)


def _assigns(node, target) -> bool:
    """Whether ``node`` assigns ``target`` (a variable, by name, or an element)."""
    return any(isinstance(a, N.Assign) and _is_target(a.target, target) for a in walk(node))


def _is_target(e, acc_target) -> bool:
    if isinstance(acc_target, N.Var):
        return isinstance(e, N.Var) and e.name == acc_target.name
    return e == acc_target


def _parse(body: N.Block) -> _Window:
    """Read one iteration: scalar declarations, guards, the accumulator and its
    initialization, the window loops, and the store of the result."""
    env, guards, stmts = {}, [], [s for s in body.body if not isinstance(s, N.Pragma)]
    acc = init = win = None
    local = set()  # one-element local arrays (a lifted ``float acc[1]``)
    while stmts:
        s = stmts.pop(0)
        loop = next((x for x in stmts if isinstance(x, N.For)), None) if win is None else None
        if isinstance(s, N.Pragma):
            continue
        if isinstance(s, N.Decl) and isinstance(s.dtype, T.ScalarType) and s.init is not None:
            if loop is not None and acc is None and _assigns(loop, N.Var(s.name, s.dtype)):
                acc, init = N.Var(s.name, s.dtype), substitute(s.init, env)
            else:  # after the window, a declaration may read the result
                env[s.name] = _reader(acc, env)(s.init) if win is not None else substitute(s.init, env)
        elif isinstance(s, N.Decl) and isinstance(s.dtype, T.ArrayType) and s.init is None \
                and len(s.dtype.shape) == 1 and try_fold(s.dtype.shape[0]) == 1:
            local.add(s.name)
        elif isinstance(s, N.Assign) and s.op == "=" and isinstance(s.target, N.Load) and loop is not None \
                and acc is None and _assigns(loop, s.target):
            acc, init = s.target, substitute(s.value, env)
        elif isinstance(s, N.If) and s.other is None and not stmts:
            guards.append(substitute(s.cond, env))
            stmts = [x for x in s.then.body if not isinstance(x, N.Pragma)]
        elif isinstance(s, N.Block) and not stmts:
            stmts = list(s.body)
        elif isinstance(s, N.For) and win is None and acc is not None:
            win = _taps(s, env, acc)
            if isinstance(acc, N.Load) and not (isinstance(acc.base, N.Var) and acc.base.name in local):
                if stmts:  # out[J] itself accumulates: nothing may follow
                    raise Decline("statements follow a window that accumulates in memory")
                return _Window(guards, acc.base.name, substitute(acc.index, env), _acc(), init, *win)
        elif isinstance(s, N.Assign) and s.op == "=" and win is not None and not stmts \
                and isinstance(s.target, N.Load) and isinstance(s.target.base, N.Var):
            read = _reader(acc, env)
            return _Window(guards, s.target.base.name, substitute(s.target.index, env), read(s.value), init, *win)
        elif win is None:
            raise NotWindow()
        else:
            raise Decline(f"the body has {type(s).__name__.lower()} statements after the window")
    raise NotWindow()


def _taps(outer: N.For, env: dict, acc):
    """(kh, kw, update, tap guards) of the window loops: two perfectly nested counted
    loops whose body updates the accumulator once (under guards)."""
    inner = [x for x in outer.body.body if not isinstance(x, N.Pragma)]
    if len(inner) != 1 or not isinstance(inner[0], N.For):
        raise NotWindow()
    inner = inner[0]
    counts = []
    for f, tap in ((outer, TI), (inner, TJ)):
        count = trip_count(f)
        if count is None or not f.declared:
            raise NotWindow()
        counts.append(substitute(count, env))
        start, step = substitute(f.start, env), substitute(f.step, env)
        env = {**env, f.var: N.Binary("+", start, N.Binary("*", step, N.Var(tap, I64)))}
    if _uses(counts[1], {TI}) or _uses(counts[0], {TJ}):
        raise Decline("the window is not rectangular")
    if not _assigns(inner.body, acc):
        raise NotWindow()
    update, guards = _update([x for x in inner.body.body if not isinstance(x, N.Pragma)], env, acc)
    return counts[0], counts[1], update, guards


def _update(stmts: list, env: dict, acc):
    """The accumulator's next value and the guards the update sits under."""
    guards = []
    while stmts:
        s = stmts.pop(0)
        read = _reader(acc, env)
        if isinstance(s, N.Decl) and isinstance(s.dtype, T.ScalarType) and s.init is not None:
            env = {**env, s.name: read(s.init)}
        elif isinstance(s, N.If) and s.other is None and not stmts:
            cond = read(s.cond)
            then = [x for x in s.then.body if not isinstance(x, N.Pragma)]
            if not _uses(cond, {ACC}):  # a guard on the tap
                guards.append((cond, s.cond))
                stmts = then
                continue
            if len(then) != 1 or not isinstance(then[0], N.Assign) or not _is_target(then[0].target, acc):
                raise Decline("a conditional update of the accumulator is not one assignment")
            return N.Select(cond, _new_value(then[0], read), _acc()), guards
        elif isinstance(s, N.Assign) and _is_target(s.target, acc) and not stmts:
            return _new_value(s, read), guards
        else:
            raise Decline(f"the window loop has {type(s).__name__.lower()} statements besides the update")
    raise Decline("the window loop does not update its accumulator")


def _new_value(s: N.Assign, read):
    value = read(s.value)
    if s.op == "=":
        return value
    if s.op in ("+=", "-=", "*="):
        return N.Binary(s.op[0], _acc(), value)
    raise Decline(f"the accumulator is updated with {s.op}")


# --------------------------------------------------------------------------- z3
def _encoder():
    from ..loops.smt import Encoder, Unencodable

    class Enc(Encoder):
        """loops/smt.py's C integer encoding, plus ``x & (2^k - 1)`` (x mod 2^k, exact
        for two's complement), which index arithmetic from TVM-style sources uses."""

        def int(self, e):
            if isinstance(e, N.Binary) and e.op == "&":
                m = try_fold(e.rhs)
                if isinstance(m, int) and m >= 0 and (m + 1) & m == 0:
                    return self.int(e.lhs) % (m + 1)
                raise Unencodable(e)
            return super().int(e)

    return Enc, Unencodable


class _Space:
    """The iterations ``lo <= F < hi`` (F < total, the guards hold) and the taps
    ``0 <= TI < kh, 0 <= TJ < kw``; ``holds`` asks z3 whether a claim holds for all."""

    def __init__(self, total, decls: dict, consts: dict, kh: int, kw: int):
        self.total, self.decls, self.consts, self.kh, self.kw = total, decls, consts, kh, kw
        self.assume = []

    def expr(self, e):
        return substitute(substitute(e, self.decls), self.consts)

    def holds(self, claim_of) -> bool:
        import z3

        Enc, Unencodable = _encoder()
        F, ti, tj = z3.Int(FLAT), z3.Int(TI), z3.Int(TJ)
        enc = Enc({FLAT: F, TI: ti, TJ: tj})
        try:
            claim = claim_of(lambda e: enc.int(self.expr(e)), lambda e: enc.bool(self.expr(e)), F)
            facts = [F >= 0, F < enc.int(self.expr(self.total)), ti >= 0, ti < self.kh, tj >= 0, tj < self.kw]
            facts += [enc.bool(self.expr(g)) for g in self.assume]
        except (Unencodable, Decline, z3.Z3Exception):
            return False
        s = z3.Solver()
        s.set("timeout", 5000)
        s.add(*facts, z3.Not(claim))
        return s.check() == z3.unsat

    def evaluator(self, e):
        """``e`` as a function of (F, TI, TJ), evaluated with C semantics."""
        full = self.expr(e)

        def at(F: int, ti: int = 0, tj: int = 0) -> int:
            v = try_fold(full, {FLAT: F, TI: ti, TJ: tj})
            if not isinstance(v, int) or isinstance(v, bool):
                raise Decline(f"the window's input index {text(e)} is not a constant function of the iteration")
            return v

        return at


def _conjuncts(e):
    if isinstance(e, N.Binary) and e.op == "&&":
        return _conjuncts(e.lhs) + _conjuncts(e.rhs)
    return [e]


def _bounds(cond, space: _Space, loopvars: set):
    """[(side, G)] when ``cond`` bounds F by an invariant G ("hi": F < G, "lo": F >= G)."""
    flip = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}
    if not (isinstance(cond, N.Binary) and cond.op in flip):
        return None
    lhs, rhs, op = cond.lhs, cond.rhs, cond.op
    if _uses(rhs, loopvars | {TI, TJ}):
        lhs, rhs, op = rhs, lhs, flip[op]
    if _uses(rhs, loopvars | {TI, TJ}):
        return None
    if not space.holds(lambda i, b, F: i(lhs) == F):
        return _prefix(cond, space)
    one = N.Const(1, I64)
    return {"<": [("hi", rhs)], "<=": [("hi", N.Binary("+", rhs, one))], ">=": [("lo", rhs)],
            ">": [("lo", N.Binary("+", rhs, one))], "==": [("lo", rhs), ("hi", N.Binary("+", rhs, one))]}[op]


def _prefix(cond, space: _Space):
    """[("hi", F*)] when ``cond`` holds exactly for F < F* (a bound on a monotone
    function of F, e.g. ``blockIdx.x * 4 + (threadIdx.x >> 8) < 125``): F* is found by
    searching where ``cond`` first fails, then z3 proves the equivalence."""
    full = space.expr(cond)

    def holds_at(F):
        v = try_fold(full, {FLAT: F})
        if not isinstance(v, (int, bool)):
            raise Decline("not constant")
        return bool(v)

    try:
        if not holds_at(0):
            return None
        hi = 1
        while holds_at(hi):
            hi *= 2
            if hi > 1 << 40:
                return None
        lo = hi // 2  # cond holds at lo, fails at hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if holds_at(mid) else (lo, mid)
    except Decline:
        return None
    bound = N.Const(hi, I64)
    return [("hi", bound)] if space.holds(lambda i, b, F: b(cond) == (F < hi)) else None


# --------------------------------------------------------------------------- the shape
@dataclasses.dataclass
class _Shape:
    """``I(F, i, j) = I0 + q*SP + (oh*sy + i)*SR + (ow*sx + j)*C + c`` with
    ``F - lo = ((q*Ho + oh)*Wo + ow)*C + c``."""

    C: int
    Wo: int
    Ho: int
    sx: int
    sy: int
    SR: int
    SP: int
    I0: int
    kh: int
    kw: int

    @property
    def w_used(self) -> int:  # input columns the windows of a row read
        return (self.Wo - 1) * self.sx + self.kw


def _candidates(at, count: int | None, kh: int, kw: int):
    """Shapes that the input index ``at(f, i, j)`` (f = F - lo) suggests, read off by
    evaluating it: the digit sizes are where the step of the index changes. A digit of
    one value is indistinguishable from a merged one, so both readings are offered."""
    cap = count if count is not None else 1 << 24

    def b(f):
        return at(f, 0, 0)

    def period(step, delta):
        """The values of a digit: the first m where the index stops stepping by delta."""
        m = 1
        while m * step < cap and b(m * step) - b((m - 1) * step) == delta:
            m += 1
            if m > 1 << 16:
                raise Decline("the window's input index has no recognizable row length")
        return m

    C = at(0, 0, 1) - b(0) if kw > 1 else period(1, 1) if cap > 1 else 1
    if C < 1:
        return
    for wide in (True, False):
        if wide and C < cap:
            sxc = b(C) - b(0)
            Wo = period(C, sxc)
        elif not wide:
            sxc, Wo = C, 1
        else:
            continue
        if sxc % C or sxc <= 0:
            continue
        sx = sxc // C if Wo > 1 else 1
        for tall in (True, False):
            row = Wo * C
            if tall and row < cap:
                step = b(row) - b(0)
                Ho = period(row, step)
            elif not tall:
                step, Ho = None, 1
            else:
                continue
            SR = at(0, 1, 0) - b(0) if kh > 1 else (step if step else (sx * (Wo - 1) + kw) * C)
            if SR <= 0:
                continue
            if Ho > 1:
                if step is None or step % SR or step <= 0:
                    continue
                sy = step // SR
            else:
                sy = 1
            plane = Ho * row
            SP = b(plane) - b(0) if plane < cap else 0
            yield _Shape(C, Wo, Ho, sx, sy, SR, SP, b(0), kh, kw)


def _template(s: _Shape, lo: int) -> N.Expr:
    """The shape's input index, as an expression of F and the taps."""
    c = lambda x: N.Const(x, I64)  # noqa: E731
    f = N.Binary("-", N.Var(FLAT, I64), c(lo))
    digit = lambda below, size: N.Binary("%", N.Binary("/", f, c(below)), c(size))  # noqa: E731
    terms = [c(s.I0), N.Binary("*", N.Binary("/", f, c(s.Ho * s.Wo * s.C)), c(s.SP)),
             N.Binary("*", digit(s.Wo * s.C, s.Ho), c(s.sy * s.SR)), N.Binary("*", N.Var(TI, I64), c(s.SR)),
             N.Binary("*", digit(s.C, s.Wo), c(s.sx * s.C)), N.Binary("*", N.Var(TJ, I64), c(s.C)),
             N.Binary("%", f, c(s.C))]
    out = terms[0]
    for t in terms[1:]:
        out = N.Binary("+", out, t)
    return out


def _proves(shape: _Shape, index: N.Expr, lo: int, count: int | None, space: _Space) -> bool:
    """Whether the load index equals the shape's template at every tap and iteration."""
    return _always_zero(N.Binary("-", index, _template(shape, lo)), lo, count, space)


def _always_zero(e: N.Expr, lo: int, count: int | None, space: _Space) -> bool:
    """Whether ``e`` (over F and the taps) is 0 for every F of the range and every tap:
    checked exactly (quasi_affine.py: generated sources' mixed-radix index arithmetic
    defeats z3), else by z3."""
    from .quasi_affine import zero_on

    found = zero_on(space.expr(e), FLAT, lo, count, {TI: space.kh, TJ: space.kw})
    return found if found is not None else space.holds(lambda i, b, F: i(e) == 0)


# --------------------------------------------------------------------------- main
def tensorize_pool_phase(ph: Phase, params: dict, limits: dict, taken: set, lower_params: dict | None = None) -> Result:
    """The phase as pool calls over NRAM bands (see the module doc). ``params``: kernel
    parameter name -> type; ``limits``: the platform config's [limits]; ``taken``: names
    in use. A declined result has reason "" when the phase is no window reduction."""
    from ...verify.extents import Z3_LOCK

    lower_params = lower_params or {}
    try:
        with Z3_LOCK:
            return _tensorize(ph, params, limits, taken, lower_params)
    except NotWindow:
        return Result(None, (), "")
    except Decline as d:
        return Result(None, (), str(d))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError, ZeroDivisionError) as e:
        return Result(None, (), f"pool tensorizer error ({type(e).__name__}: {e})")


def _consts(prelude: list) -> dict:
    """The phase's replicated declarations as closed expressions (folded when constant)."""
    out = {}
    for d in prelude:
        if isinstance(d, N.Decl) and d.init is not None:
            e = substitute(d.init, out)
            v = try_fold(e)
            out[d.name] = N.Const(v, d.dtype) if isinstance(v, (int, float)) and not isinstance(v, bool) else e
    return out


def _tensorize(ph: Phase, params: dict, limits: dict, taken: set, lower_params: dict):
    from ...platforms.registry import lookup

    if not ph.parallel:
        raise NotWindow()
    w = _parse(ph.body)

    def f32_buffer(name):
        t = params.get(name)
        return isinstance(t, T.PointerType) and t.elem == F32

    if not f32_buffer(w.out):
        raise Decline(f"the stored buffer {w.out} is not a float32 kernel parameter")
    tap_loads = [n for n in walk(w.update) if isinstance(n, N.Load)]
    srcs = {ld.base.name if isinstance(ld.base, N.Var) else None for ld in tap_loads}
    if len(srcs) != 1 or None in srcs:
        raise Decline("the window does not read exactly one buffer")
    src = srcs.pop()
    if not f32_buffer(src) or src == w.out:
        raise Decline(f"the window reads {src}, which is not a float32 input of the phase")
    if any(isinstance(n, (N.Load, N.Deref, N.AddressOf, N.Member)) for n in walk(w.value)):
        raise Decline("the stored value reads memory besides the window")
    if any(isinstance(n, (N.Deref, N.AddressOf, N.Member)) for e in (w.update, w.init) for n in walk(e)):
        raise Decline("the window reads memory other than by index")

    # every local of the iteration must have been substituted by its value (a local read
    # elsewhere than the parse follows, e.g. the accumulator before the window, is not)
    local = {n.name for n in walk(ph.body) if isinstance(n, N.Decl)} | \
        {n.var for n in walk(ph.body) if isinstance(n, N.For)}
    left = {n.name for e in [w.value, w.update, w.init, w.index, *w.guards, *(g for g, _ in w.tap_guards)]
            for n in walk(e) if isinstance(n, N.Var)} & local
    if left:
        raise Decline(f"the window's values depend on {', '.join(sorted(left))} in a way this pass does not follow")

    consts = _consts(ph.prelude)
    used = {n.name for n in walk(ph.body) if isinstance(n, N.Var)}
    kept = [l for l in ph.loops if l.var in used]
    dropped = [l for l in ph.loops if l.var not in used]
    if not kept:
        raise Decline("the stored element does not depend on the loops")
    loopvars = {l.var for l in ph.loops}
    total = Phase(kept, ph.body, []).total()
    decls = {d.name: d.init for d in index_decls(kept, N.Var(FLAT, I64))}
    kh, kw = (try_fold(substitute(x, consts)) for x in (w.kh, w.kw))
    if not all(isinstance(k, int) and k >= 1 for k in (kh, kw)):
        raise Decline("the window size is not a positive constant")
    space = _Space(total, decls, consts, kh, kw)
    lo, count, nconst = _range(w, space, consts, loopvars)
    shape = _shape(w, space, lo, nconst, kh, kw, src)
    name, tree = _value(w, space, consts, loopvars, lo, nconst, src)
    plan = _Plan(src, w.out, shape, lookup("mlu", name), tree, lo, count, nconst, dropped, kept, ph.body)
    return _emit(plan, limits, taken, lower_params)


def _range(w: _Window, space: _Space, consts: dict, loopvars: set):
    """(lo, count, constant count or None): the iterations that store, F = lo .. lo +
    count, from the guards (bounds on F; any other guard must always hold), with the
    store index proved to be F and the window's own guards proved always true."""
    lo, his = 0, []
    for g in w.guards:
        for c in _conjuncts(g):
            found = _bounds(c, space, loopvars)
            if found is None:
                if not space.holds(lambda i, b, F: b(c)):
                    raise Decline(f"the guard {text(c)} is not a bound on the flat index")
                continue
            for side, G in found:
                if side == "lo":
                    v = try_fold(substitute(G, consts))
                    if not isinstance(v, int):
                        raise Decline("the guarded range does not start at a constant")
                    lo = max(lo, v)
                else:
                    his.append(G)
    space.assume = list(w.guards)
    for g, written in w.tap_guards:
        if not space.holds(lambda i, b, F: b(g)):
            raise Decline(f"the window guard {text(written)} does not always hold (padding windows are not supported)")
    hi = space.total
    for G in his:
        hi = _min_expr(hi, G, consts)
    count = _fold(hi if lo == 0 else N.Binary("-", hi, N.Const(lo, I64)), consts)
    nconst = try_fold(count)
    if isinstance(nconst, int) and nconst <= 0:
        raise Decline("the range is empty")
    nconst = nconst if isinstance(nconst, int) else None
    if not _always_zero(N.Binary("-", w.index, N.Var(FLAT, I64)), lo, nconst, space):
        raise Decline(f"the store index of {w.out} is not the flat iteration index")
    return lo, count, nconst


def _shape(w: _Window, space: _Space, lo: int, nconst, kh: int, kw: int, src: str) -> _Shape:
    """The window's shape, read off the first load and proved for every load."""
    loads = [n for n in walk(w.update) if isinstance(n, N.Load)]
    at_flat = space.evaluator(loads[0].index)
    for cand in _candidates(lambda f, i, j: at_flat(lo + f, i, j), nconst, kh, kw):
        if all(_proves(cand, ld.index, lo, nconst, space) for ld in loads):
            return cand
    raise Decline(f"the load of {src} is not a pooling window of the output")


def _value(w: _Window, space: _Space, consts: dict, loopvars: set, lo: int, nconst, src: str):
    """(pool, cover of the stored value over the pooled result): the pool whose
    accumulation step is the update's, its initial value reconciled with the loop's."""
    from ...platforms import mlu
    from ...platforms.registry import lookup
    from .cover import accumulation

    cover = Cover("mlu")
    update = _leaves(w.update)
    pool = None
    for name in mlu.REDUCING_POOLS:
        acc = accumulation(lookup("mlu", name))
        if acc is not None and cover.equal(substitute(acc.combine, {"$acc": _acc(), "$v": N.Var(LEAF + src, F32)}),
                                           update):
            pool = acc
            break
    if pool is None:
        raise Decline(f"no pool accumulates {text(update)}")
    known = {k: v for k, v in consts.items() if isinstance(v, N.Const)}
    value, init = substitute(w.value, known), w.init
    first_tap = substitute(next(n for n in walk(w.update) if isinstance(n, N.Load)).index,
                           {TI: N.Const(0, I64), TJ: N.Const(0, I64)})
    if cover.equal(_leaves(init), pool.init):
        pass
    elif isinstance(init, N.Load) and isinstance(init.base, N.Var) and init.base.name == src \
            and _always_zero(N.Binary("-", init.index, first_tap), lo, nconst, space) \
            and cover.equal(substitute(pool.combine, {"$acc": _acc(), "$v": _acc()}), _acc()):
        pass  # the first tap, folded in twice by an idempotent combine
    elif not any(isinstance(n, (N.Load, N.Deref, N.Call)) for n in walk(init)):
        init = substitute(init, known)  # combined in afterwards
        value = substitute(value, {ACC: substitute(pool.combine, {"$acc": init, "$v": _acc()})})
    else:
        raise Decline(f"the accumulator starts from {text(init)}")
    name = pool.sig.name
    kh, kw = space.kh, space.kw
    if name == "__bang_sumpool" and cover.equal(value, N.Binary("/", _acc(), N.Const(float(kh * kw), F32))):
        name, value = "__bang_avgpool", _acc()
    if _uses(value, loopvars | {TI, TJ}):
        raise Decline("the stored value uses a loop index as data")
    return name, cover.cover(value)


def _leaves(e):
    class Leaves(Transformer):
        def visit_Load(self, ld):
            return N.Var(LEAF + ld.base.name, F32) if isinstance(ld.base, N.Var) else ld

    return Leaves()(e)


def _fold(e, consts):
    v = try_fold(substitute(e, consts))
    return N.Const(v, I64) if isinstance(v, int) and not isinstance(v, bool) else e


def _min_expr(a, b, consts):
    va, vb = try_fold(substitute(a, consts)), try_fold(substitute(b, consts))
    if isinstance(va, int) and isinstance(vb, int):
        return N.Const(min(va, vb), I64)
    return N.Select(N.Binary("<", a, b), a, b)


# --------------------------------------------------------------------------- emission
@dataclasses.dataclass
class _Plan:
    src: str
    out: str
    shape: _Shape
    pool: object  # the pool's registry signature
    tree: Op  # the stored value over the pooled row (leaf ACC)
    lo: int
    count: N.Expr  # outputs in the range (F = lo .. lo + count)
    nconst: int | None
    dropped: list  # loops the element does not depend on
    kept: list
    body: N.Block  # the source's iteration, for the partial last row


def _layout(s: _Shape, rows_max: int, outs: int, unit: int, cap: int):
    """(R, Hp, Wp, Hop, Wop): R output rows per band; the band is [Hp][Wp][C] and the
    pool's result [Hop][Wop][C], padded (extra rows and columns that no stored output
    reads) so that both lengths are multiples of ``unit`` elements; ``outs`` arrays of
    the result's size plus the band fit ``cap`` elements. With g = unit / gcd(C, unit), a
    band of g*k rows and a result of g*k' columns always qualify, so the search spans g
    more output rows and columns than needed."""
    import math

    g = unit // math.gcd(s.C, unit)
    for R in range(rows_max, 0, -1):
        hin = (R - 1) * s.sy + s.kh
        if s.C * hin * s.w_used + outs * s.C * R * s.Wo > cap:
            continue
        best = None
        for Hp in range(hin, hin + g * s.sy + 1):
            Hop = (Hp - s.kh) // s.sy + 1
            for Wp in range(s.w_used, s.w_used + g * s.sx + 1):
                Wop = (Wp - s.kw) // s.sx + 1
                if (s.C * Hp * Wp) % unit or (s.C * Hop * Wop) % unit:
                    continue
                size = s.C * Hp * Wp + outs * s.C * Hop * Wop
                if size <= cap and (best is None or size < best[0]):
                    best = (size, Hp, Wp, Hop, Wop)
        if best is not None:
            return (R,) + best[1:]
    raise Decline("no band of output rows fits the NRAM capacity in whole vector units")


def _emit(plan: _Plan, limits: dict, taken: set, lower_params: dict):
    s = plan.shape
    namer = Namer(set(taken))
    esize = 4
    ops = _ops(plan.tree)
    unit = max(1, int(limits.get("vector_align_bytes", 128)) // esize)
    unit = max(unit, constraint_value([t.pat.sig for t in ops], "bytes_multiple", 0) // esize)
    align = constraint_value([t.pat.sig for t in ops] + [plan.pool], "align", 64)
    usable = (int(limits.get("nram_bytes", 524288)) - int(limits.get("nram_stack_reserve_bytes", 0))) // esize

    # the pointwise ops after the pool, in place where an operand dies
    band, res = namer.fresh("xpiler_band"), namer.fresh("xpiler_pooled")
    temps: list = []
    length = N.Var("?", I32)  # replaced once the layout is known
    post: list = []

    def emit(t, free):
        if t.pat is None:
            return res, True
        args = [emit(k, free) for k in t.kids]
        dst = next((a for a, dead in args if dead), None) or (free.pop() if free else None)
        if dst is None:
            dst = namer.fresh("xpiler_tmp")
            temps.append(dst)
        for a, dead in args:
            if dead and a != dst:
                free.append(a)
        scal = [x if type_of(x) == F32 else N.Cast(F32, x) for x in t.scalars]
        post.append(N.ExprStmt(t.pat.call(_ptr(dst), [_ptr(a) for a, _ in args], scal, length)))
        return dst, True

    result, _ = emit(plan.tree, [])

    rows_known = None
    if plan.nconst is not None:
        rows_known = plan.nconst // (s.Wo * s.C)
        if rows_known == 0:
            raise Decline("the range holds no whole output row")
    rows_max = s.Ho
    task_dim = int(lower_params.get("task_dim", 16))
    if rows_known is not None:  # bands small enough that every task gets work
        rows_max = min(rows_max, max(1, -(-rows_known // task_dim)))
    if lower_params.get("chunk"):
        rows_max = min(rows_max, max(1, int(lower_params["chunk"]) // (s.Wo * s.C)))
    R, Hp, Wp, Hop, Wop = _layout(s, rows_max, 1 + len(temps), unit, usable)
    post = [substitute(x, {"?": N.Const(s.C * Hop * Wop, I32)}) for x in post]

    Q = -(-s.Ho // R)  # bands per plane
    row = s.Wo * s.C
    v = {k: N.Var(namer.fresh(f"xpiler_{k}"), I64) for k in ("rows", "items", "t", "q", "oh")}
    r = N.Var(namer.fresh("xpiler_r"), I32)
    count = plan.count  # a negative count gives no rows, no items and no tail: no clamp needed
    for l in plan.dropped:  # a dropped loop that runs zero times leaves nothing to do
        ext = try_fold(l.extent)
        if not isinstance(ext, int):
            count = N.Select(N.Binary(">", l.extent, N.Const(0, I64)), count, N.Const(0, I64))
        elif ext <= 0:
            raise Decline("the phase runs no iteration")
    folded = try_fold(count)
    decl_count = []
    if isinstance(folded, int):
        count = N.Const(folded, I64)
    else:
        decl_count = [N.Decl(namer.fresh("xpiler_count"), I64, count)]
        count = N.Var(decl_count[0].name, I64)
    rows = N.Const(folded // row, I64) if isinstance(folded, int) else N.Binary("/", count, N.Const(row, I64))
    const = lambda x: N.Const(x, I64)  # noqa: E731
    q, oh = v["q"], v["oh"]
    in_off = _add(_add(const(s.I0), _mul(q, s.SP)), _mul(oh, s.sy * s.SR))
    in_rows = N.Binary("+", _mul(N.Binary("-", r, N.Const(1, I32)), s.sy, I32), N.Const(s.kh, I32))
    if Wp == s.w_used and s.SR == s.w_used * s.C:  # whole rows, back to back
        load = N.Dma(_ptr(band), N.Binary("+", N.Var(plan.src), in_off), _mul(in_rows, s.SR * esize, I32), "GDRAM2NRAM")
    else:  # rows of w_used*C elements, SR apart in GDRAM and Wp*C apart in NRAM
        load = N.Dma(_ptr(band), N.Binary("+", N.Var(plan.src), in_off), N.Const(s.w_used * s.C * esize, I32),
                     "GDRAM2NRAM", (N.Const(Wp * s.C * esize, I32), N.Const(s.SR * esize, I32),
                                    N.Binary("-", in_rows, N.Const(1, I32))))
    args = dict(channel=s.C, height=Hp, width=Wp, kernel_height=s.kh, kernel_width=s.kw, stride_x=s.sx,
                stride_y=s.sy)
    call = N.Call(plan.pool.name, (_ptr(res), _ptr(band)) + tuple(N.Const(args[p.name], I32)
                                                                   for p in plan.pool.params[2:]))
    first_row = _add(_mul(q, s.Ho), oh)  # of the band, counted over all planes
    out_off = _add(const(plan.lo), _mul(first_row, row))
    if Wop == s.Wo:
        store = N.Dma(N.Binary("+", N.Var(plan.out), out_off), _ptr(result), _mul(r, row * esize, I32), "NRAM2GDRAM")
    else:
        store = N.Dma(N.Binary("+", N.Var(plan.out), out_off), _ptr(result), N.Const(row * esize, I32),
                      "NRAM2GDRAM", (N.Const(row * esize, I32), N.Const(Wop * s.C * esize, I32),
                                     N.Binary("-", r, N.Const(1, I32))))
    # r = min(R, Ho - oh, rows - first_row), without the terms that cannot be smaller
    whole_planes = isinstance(try_fold(rows), int) and try_fold(rows) % s.Ho == 0
    r_value = const(R)
    if s.Ho % R:
        r_value = _min(r_value, N.Binary("-", const(s.Ho), oh))
    if not whole_planes:
        r_value = _min(r_value, N.Binary("-", v["rows"], first_row))
    work = (load, N.ExprStmt(call), *post, store)
    item = [
        N.Decl(q.name, I64, N.Binary("/", v["t"], const(Q)) if Q > 1 else v["t"]),
        N.Decl(oh.name, I64, _mul(N.Binary("%", v["t"], const(Q)), R) if Q > 1 else const(0)),
        N.Decl(r.name, I32, N.Cast(I32, r_value)),
    ] + ([N.If(N.Binary(">", r, N.Const(0, I32)), N.Block(work))] if not whole_planes else list(work))
    sizes = {band: s.C * Hp * Wp, res: s.C * Hop * Wop, **{t: s.C * Hop * Wop for t in temps}}
    stmts = [N.Decl(a, T.ArrayType(F32, (N.Const(n, I32),), "nram"), None, "nram", (f"alignas({align})",))
             for a, n in sizes.items()]
    stmts += decl_count + [
        N.Decl(v["rows"].name, I64, rows),
        N.Decl(v["items"].name, I64, _mul(N.Binary("/", _add(v["rows"], const(s.Ho - 1)), const(s.Ho)), Q)),
        N.For(v["t"].name, I64, N.Cast(I64, N.Special("taskId")), "<", v["items"], N.Cast(I64, N.Special("taskDim")),
              N.Block(tuple(item))),
    ]
    # the count is nconst or (a dropped loop runs zero times) 0: whole rows either way
    whole = plan.nconst is not None and plan.nconst % row == 0
    if not whole:  # the outputs of a partial last row: the source's own code
        f = N.Var(namer.fresh("xpiler_f"), I64)
        start = N.Binary("+", _add(const(plan.lo), N.Binary("*", v["rows"], const(row))),
                         N.Cast(I64, N.Special("taskId")))
        stmts.append(N.For(f.name, I64, start, "<", _add(const(plan.lo), count),
                           N.Cast(I64, N.Special("taskDim")),
                           N.Block(tuple(index_decls(plan.kept, f)) + plan.body.body)))
    used = sorted({plan.pool.name, "__memcpy"} | {t.pat.sig.name for t in ops})
    what = ", ".join(n for n in used if n != "__memcpy")
    return Result(tuple(stmts), tuple(used),
                  f"pooling window {s.kh}x{s.kw} stride {s.sy}x{s.sx} over [{s.Ho}][{s.Wo}][{s.C}] planes "
                  f"tensorized ({what}) in bands of {R} output rows")


def _ops(tree: Op):
    out = [tree] if tree.pat is not None else []
    for k in tree.kids:
        out += _ops(k)
    return out


def _ptr(name: str) -> N.Expr:
    return N.Var(name, T.PointerType(F32, "nram"))


def _min(a, b):
    return N.Select(N.Binary("<", a, b), a, b)


def _add(a, b):
    return b if try_fold(a) == 0 else a if try_fold(b) == 0 else N.Binary("+", a, b)


def _mul(a, k: int, t=I64):
    return a if k == 1 else N.Binary("*", a, N.Const(k, t))
