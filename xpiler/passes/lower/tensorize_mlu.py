"""Tensorization for BANG (MLU): elementwise and reducing phases -> NRAM chunks and
`__bang_*` ops.

A phase qualifies when one iteration ``i`` of its (collapsed) loop nest stores
``out[i] = f(in0[i], ..., scalars)`` (elementwise), or first reduces
``acc = init; for k < K: acc = combine(acc, v(in[...]))`` and stores ``out[i] = f(acc, ...)``
(the accumulator may be ``out[i]`` itself), where ``i`` is the flat iteration index.
Each task takes a contiguous slice of the index space and walks it in chunks of C
outputs: ``__memcpy`` GDRAM2NRAM per input, for a reduction the K inputs of every output
as a tile reduced by one ``__bang_*pool`` call (layouts in mlu.POOL_REDUCTION_ARGS:
"rows" i*K + k, "cols" k*S + i, and "slabs", cols within each slab of S outputs whose
inputs lie K*S apart: a reduction over a middle axis, whose chunks divide S so that one
strided copy reads them), then one ``__bang_*`` call per node of ``f``, and ``__memcpy``
NRAM2GDRAM. A phase whose iteration is one loop is also tried with that loop joined to
the nest, outermost (TVM's ``for o < 8: out[o*S + i] = ...``), and with the loops
perfectly nested in it joined innermost (``for j: for k: out[k] += in[j][k]``: a
reduction over j for each k). ``*p`` reads as ``p[0]``. Where all this declines, the
phase is tried as a row program (rows_mlu.py: softmax, norms, per-channel operands,
concatenation).

Why each step is valid:
- index: z3 proves every store/load index equals the flat index over the range (the
  reduction's inputs: ``i*K + k``, ``k*S + i`` or ``(i/S)*K*S + k*S + i%S``), so a chunk
  of every buffer is exactly what its iterations touch; guards must be bounds on the
  flat index (they shorten the range). The proofs know the program's numeric macros and
  constexpr globals, and read ``(x / d) * d + x % d`` as ``x`` (recompose);
- independence: the nest is parallel, or (a serial nest, or loops joined to the nest,
  which may change their order) each iteration writes only its own element and reads
  only its own elements (and inputs the phase does not write), so iterations may run in
  any order;
- computation: an intrinsic computes a node only when z3 proves the node equal to the
  intrinsic's registry meaning (cover.py; xpiler/smt/reals.py: the real-number model,
  the usual fast-math reading; precision is left to differential verification); a pool
  replaces the loop only when its meaning's accumulation step is proved equal to the
  loop's (an initial value other than the pool's own is combined in afterwards);
- hardware rules: vector lengths are padded up to the registry's ``bytes_multiple``
  constraint (the padding lanes compute garbage that is never copied out), NRAM arrays
  get the ``align`` constraint's alignment, and C is chosen so that all NRAM arrays fit
  the configured NRAM capacity minus the stack reserve.
Anything else declines with a reason; the phase then stays scalar code.
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ...ir.typeinfer import type_of
from ...ir.visitor import Transformer, walk
from ..base import substitute
from .cover import LEAF, Cover, Decline, Op, constraint_value, is_vec, text
from .phases import Loop, Phase, index_decls, trip_count

PASS = "tensorize-mlu"
FLAT = "xpiler_flat"
I64, I32 = T.I64, T.I32


@dataclasses.dataclass
class Result:
    stmts: tuple | None  # the phase's work after its prelude; None: declined
    intrinsics: tuple = ()
    reason: str = ""  # why it declined, or what it did


# --------------------------------------------------------------------------- the body
def loop_nest(ph: Phase):
    """The phase's collapsed loops and per-iteration body: the parallel nest, a serial
    phase that is one perfect nest of counted loops, or else the serial phase as one
    iteration. ``*p`` is read as ``p[0]`` throughout."""
    ph = dataclasses.replace(ph, body=_deref_as_index(ph.body))
    if ph.parallel:
        return list(ph.loops), ph.body
    if len(ph.body.body) != 1 or not isinstance(ph.body.body[0], N.For):
        return [], ph.body  # one iteration (the body itself), e.g. a single reduction
    loops, names, cur, body = [], set(), ph.body.body[0], None
    while isinstance(cur, N.For):
        count = trip_count(cur)
        if count is None or not cur.declared or any(
                isinstance(n, N.Var) and n.name in names for e in (cur.start, cur.bound, cur.step) for n in walk(e)):
            raise Decline(f"loop {cur.var} is not a rectangular counted loop")
        loops.append(Loop(cur.var, cur.dtype, cur.start, cur.step, count))
        names.add(cur.var)
        body = cur.body
        cur = body.body[0] if len(body.body) == 1 else None
    return loops, body


def _deref_as_index(body: N.Block) -> N.Block:
    class Index(Transformer):
        def visit_Deref(self, d):
            return N.Load(d.pointer, N.Const(0, I64)) if isinstance(d.pointer, N.Var) else d

    return Index()(body)


def with_inner_loops(ph: Phase) -> list:
    """A phase whose iteration is one counted loop (a serial phase: whose body is), as
    the nest with that loop joined: outermost (TVM's ``for o < 8: out[o*S + i] = ...``)
    or, when the loop's body is a perfect nest of more loops, those innermost (``for j:
    for k: out[k] = max(out[k], in[j][k])`` becomes a reduction over j for each (i, k)).
    Sound for tensorization because _tensorize proves of the widened nest what makes its
    iterations independent (each stores only its own element and reads only its own), so
    they may run in any order, the interchanged one included."""
    stmts = [s for s in ph.body.body if not isinstance(s, N.Pragma)]
    if len(stmts) != 1 or not isinstance(stmts[0], N.For):
        return []
    f, names = stmts[0], {l.var for l in ph.loops}

    def loop(g, outer):
        count = trip_count(g)
        if count is None or not g.declared or uses(N.Block((N.ExprStmt(g.start), N.ExprStmt(g.bound))), outer):
            return None
        return Loop(g.var, g.dtype, g.start, g.step, count)

    out = []
    lf = loop(f, names)
    if lf is not None and ph.parallel:  # (a serial phase's perfect nest is loop_nest's)
        out.append(Phase([lf] + list(ph.loops), f.body, ph.prelude))
    decls, chain, cur = [], [], f  # the loops perfectly nested in f (pure declarations move inward)
    while True:
        *ds, g = [s for s in cur.body.body if not isinstance(s, N.Pragma)] or [None]
        if not isinstance(g, N.For) or not all(
                isinstance(d, N.Decl) and isinstance(d.dtype, T.ScalarType) and d.init is not None
                and not any(isinstance(n, (N.Load, N.Call, N.Deref)) for n in walk(d.init)) for d in ds):
            break
        lg = loop(g, names | {f.var} | {d.name for d in decls + ds} | {c.var for c in chain})
        if lg is None:
            break
        decls, cur = decls + ds, g
        chain.append(lg)
    if chain:  # f's inner loops join the nest, innermost; f stays the iteration's loop
        body = N.Block((dataclasses.replace(f, body=N.Block(tuple(decls) + cur.body.body)),))
        out.append(Phase(list(ph.loops) + chain, body, ph.prelude))
    return out


def inline_devices(e: N.Expr, devices: dict, depth: int = 0) -> N.Expr:
    """Calls of device helpers whose body is returns under if/else, replaced by the
    returned expression (a Select per if)."""

    class Inline(Transformer):
        def visit_Call(self, c):
            f = devices.get(c.func)
            if f is None or depth > 8 or len(f.params) != len(c.args):
                return c
            env = {p.name: (N.Cast(p.dtype, a) if isinstance(p.dtype, T.ScalarType) else a)
                   for p, a in zip(f.params, c.args)}
            r = _returned(list(f.body.body), env)
            if r is None:
                return c
            r = N.Cast(f.ret, r) if isinstance(f.ret, T.ScalarType) else r
            return inline_devices(r, devices, depth + 1)

    return Inline()(e)


def _returned(stmts: list, env: dict) -> N.Expr | None:
    for k, s in enumerate(stmts):
        if isinstance(s, N.Return) and s.value is not None:
            return substitute(s.value, env)
        if isinstance(s, N.Decl) and s.init is not None and isinstance(s.dtype, T.ScalarType):
            env = {**env, s.name: substitute(s.init, env)}
        elif isinstance(s, N.If):
            then = _returned(list(s.then.body), env)
            other = _returned(list(s.other.body) if s.other is not None else stmts[k + 1:], env)
            if then is None or other is None:
                return None
            return N.Select(substitute(s.cond, env), then, other)
        else:
            return None
    return None


ACC = LEAF + "#acc"  # the accumulator of a reduction, as a leaf of the expressions after it
KK = "xpiler_k"  # the reduction loop's iteration number, 0 <= KK < K


@dataclasses.dataclass
class _Reduction:
    init: N.Expr  # the accumulator's value before the loop
    extent: N.Expr  # K, the reduction loop's trip count
    update: N.Expr  # the accumulator's next value, over Var(ACC) and Var(KK)


@dataclasses.dataclass
class _Body:
    guards: list
    out: str  # the stored buffer
    index: N.Expr  # the stored element
    value: N.Expr  # its value (over Var(ACC) after a reduction)
    red: _Reduction | None = None


def acc_var() -> N.Var:
    return N.Var(ACC, T.F32)


def _parse(body: N.Block, prelude: dict) -> _Body:
    """Read one iteration: scalar declarations, an optional guard, and either one store
    (elementwise) or an accumulator, the loop updating it, and the store of the result
    (a reduction; the accumulator may also be the stored element itself, initialized by
    a store just before the loop). ``prelude``: the phase's replicated declarations,
    whose initial values hold when it starts."""
    env, guards, stmts, red, acc = {}, [], list(body.body), None, None
    while stmts:
        s = stmts.pop(0)
        if isinstance(s, N.Pragma):
            continue
        nxt = stmts[0] if stmts and isinstance(stmts[0], N.For) and red is None and acc is None else None
        if isinstance(s, N.Decl) and s.init is not None and isinstance(s.dtype, T.ScalarType):
            if nxt is not None and _assigns(nxt, s.name):
                acc = (s.name, substitute(s.init, env))
            else:
                env[s.name] = substitute(s.init, env)
        elif (nxt is not None and isinstance(s, N.Assign) and s.op == "=" and isinstance(s.target, N.Load)
              and _assigns(nxt, s.target)):
            acc = (s.target, substitute(s.value, env))  # out[J] = init; then the loop accumulates
        elif isinstance(s, N.If) and s.other is None and not stmts:
            guards.append(substitute(s.cond, env))
            stmts = list(s.then.body)
        elif isinstance(s, N.Block) and not stmts:
            stmts = list(s.body)
        elif isinstance(s, N.For) and red is None:
            if acc is None:  # an accumulator declared (and initialized) in the prelude
                acc = next(((n, prelude[n]) for n in prelude if _assigns(s, n)), None)
            red, mem = _reduction_loop(s, env, acc)
            if mem is not None:  # out[J] itself accumulates: the loop is the last statement
                if stmts:
                    raise Decline("statements follow a loop that accumulates in memory")
                return _Body(guards, mem[0], mem[1], acc_var(), red)
        elif (isinstance(s, N.Assign) and s.op == "=" and not stmts and isinstance(s.target, N.Load)
              and isinstance(s.target.base, N.Var)):
            value = substitute(s.value, {**env, **({acc[0]: acc_var()} if acc and isinstance(acc[0], str) else {})})
            if acc is not None and red is None:
                raise Decline("an accumulator without its loop")
            return _Body(guards, s.target.base.name, substitute(s.target.index, env), value, red)
        else:
            raise Decline(f"the body has {type(s).__name__.lower()} statements besides one store")
    raise Decline("the body stores nothing")


def _assigns(node, target) -> bool:
    """Whether ``node`` assigns the variable named ``target`` or the element ``target``."""
    if isinstance(target, str):
        target = N.Var(target)
        return any(isinstance(a, N.Assign) and isinstance(a.target, N.Var) and a.target.name == target.name
                   for a in walk(node))
    return any(isinstance(a, N.Assign) and a.target == target for a in walk(node))


def _reduction_loop(f: N.For, env: dict, acc):
    """(reduction, (buffer, index) of a memory accumulator or None) of the loop ``f``."""
    count = trip_count(f)
    if count is None or not f.declared:
        raise Decline(f"loop {f.var} is not a counted loop")
    count = substitute(count, env)  # bounds may name the iteration's own declarations
    k = N.Binary("+", substitute(f.start, env), N.Binary("*", substitute(f.step, env), N.Var(KK, I64)))
    env = {**env, f.var: k}
    stmts = [x for x in f.body.body if not isinstance(x, N.Pragma)]
    while stmts and isinstance(stmts[0], N.Decl) and stmts[0].init is not None \
            and isinstance(stmts[0].dtype, T.ScalarType):
        env[stmts[0].name] = substitute(stmts[0].init, env)
        stmts.pop(0)
    if len(stmts) != 1:
        raise Decline(f"loop {f.var} does more than update one accumulator")
    s, cond = stmts[0], None
    if isinstance(s, N.If) and s.other is None and len(s.then.body) == 1:
        cond, s = s.cond, s.then.body[0]
    if not isinstance(s, N.Assign) or s.op not in ("=", "+=", "*=", "-="):
        raise Decline(f"loop {f.var} does not update an accumulator")
    mem = None
    if acc is not None and isinstance(acc[0], str) and isinstance(s.target, N.Var) and s.target.name == acc[0]:
        env[acc[0]] = acc_var()
        init = acc[1]
    elif (acc is None or acc[0] == s.target) and isinstance(s.target, N.Load) and isinstance(s.target.base, N.Var):
        buf, J = s.target.base.name, substitute(s.target.index, env)
        if uses(J, {KK}):
            raise Decline(f"loop {f.var} stores to a different element each iteration")
        mem, init = (buf, J), N.Load(s.target.base, J)
    else:
        raise Decline(f"loop {f.var} does not update an accumulator")

    def acc_reads(e):
        e = substitute(e, env)
        if mem is None:
            return e

        class Mem(Transformer):
            def visit_Load(self, ld):
                return acc_var() if ld == init else ld

        return Mem()(e)

    value = acc_reads(s.value)
    new = value if s.op == "=" else N.Binary(s.op[0], acc_var(), value)
    if cond is not None:
        new = N.Select(acc_reads(cond), new, acc_var())
    if mem is not None and any(isinstance(x, N.Load) and x.base == init.base for x in walk(new)):
        raise Decline(f"loop {f.var} reads {mem[0]} elsewhere than its accumulator")
    if mem is not None and acc is not None:
        init = acc[1]  # the store just before the loop
    return _Reduction(init, count, new), mem


# --------------------------------------------------------------------------- z3 (indices)
def recompose(e):
    """``(x / d) * d + x % d`` -> ``x`` (an identity of C's truncating division for any
    x and d != 0): a flat index split into loop variables and put back together, which
    z3 would otherwise have to see through."""

    def bare(x):
        while isinstance(x, N.Cast) and isinstance(x.dtype, T.ScalarType) and x.dtype.is_int:
            x = x.value
        return x

    class Fold(Transformer):
        def visit_Binary(self, b):
            if b.op != "+":
                return b
            for hi, lo in ((bare(b.lhs), bare(b.rhs)), (bare(b.rhs), bare(b.lhs))):
                if not (isinstance(hi, N.Binary) and hi.op == "*" and isinstance(lo, N.Binary) and lo.op == "%"):
                    continue
                for q, d in ((bare(hi.lhs), bare(hi.rhs)), (bare(hi.rhs), bare(hi.lhs))):
                    if isinstance(q, N.Binary) and q.op == "/" and isinstance(d, N.Const) \
                            and isinstance(d.value, int) and d.value \
                            and _const_is(q.rhs, d.value) and _const_is(lo.rhs, d.value) \
                            and bare(q.lhs) == bare(lo.lhs):
                        return bare(lo.lhs)
            return b

    return Fold()(e)


def _const_is(e, value) -> bool:
    while isinstance(e, N.Cast):
        e = e.value
    return isinstance(e, N.Const) and e.value == value


def _nonneg(e, names) -> bool:
    """Syntactically >= 0: constants, the flat index and ``names`` (ranges from 0)
    combined by + * / %."""
    if isinstance(e, N.Const):
        return isinstance(e.value, (int, bool)) and e.value >= 0
    if isinstance(e, N.Var):
        return e.name == FLAT or e.name in names
    if isinstance(e, N.Cast):
        return _nonneg(e.value, names)
    return isinstance(e, N.Binary) and e.op in ("+", "*", "/", "%") and _nonneg(e.lhs, names) \
        and _nonneg(e.rhs, names)


def _int_z3(e, z3, F, vars, nonneg=frozenset()):
    if isinstance(e, N.Const) and isinstance(e.value, (int, bool)):
        return z3.IntVal(int(e.value))
    if isinstance(e, N.Var):
        if e.name == FLAT:
            return F
        return vars.setdefault(e.name, z3.Int(e.name))
    if isinstance(e, N.Cast) and isinstance(e.dtype, T.ScalarType) and e.dtype.is_int:
        return _int_z3(e.value, z3, F, vars, nonneg)  # indices stay far below the type's range
    if isinstance(e, N.Unary) and e.op == "-":
        return -_int_z3(e.operand, z3, F, vars, nonneg)
    if isinstance(e, N.Select):
        return z3.If(_bool_z3(e.cond, z3, F, vars, nonneg), _int_z3(e.then, z3, F, vars, nonneg),
                     _int_z3(e.other, z3, F, vars, nonneg))
    if isinstance(e, N.Binary) and e.op in ("+", "-", "*", "/", "%"):
        a, b = _int_z3(e.lhs, z3, F, vars, nonneg), _int_z3(e.rhs, z3, F, vars, nonneg)
        if e.op in "+-*":
            return {"+": a + b, "-": a - b, "*": a * b}[e.op]
        if isinstance(e.rhs, N.Const) and isinstance(e.rhs.value, int) and e.rhs.value > 0 \
                and _nonneg(e.lhs, nonneg):  # no sign cases: z3's division is C's here
            return a / b if e.op == "/" else a % b
        # C division truncates toward zero (z3's rounds toward minus infinity)
        q = z3.If(a >= 0, z3.If(b > 0, a / b, -(a / -b)), z3.If(b > 0, -((-a) / b), (-a) / (-b)))
        return q if e.op == "/" else a - b * q
    raise Decline(f"index expression {type(e).__name__} is outside the integer model")


def _bool_z3(e, z3, F, vars, nonneg=frozenset()):
    if isinstance(e, N.Binary) and e.op in ("&&", "||"):
        a, b = _bool_z3(e.lhs, z3, F, vars, nonneg), _bool_z3(e.rhs, z3, F, vars, nonneg)
        return z3.And(a, b) if e.op == "&&" else z3.Or(a, b)
    if isinstance(e, N.Unary) and e.op == "!":
        return z3.Not(_bool_z3(e.operand, z3, F, vars, nonneg))
    if isinstance(e, N.Binary) and e.op in ("<", "<=", ">", ">=", "==", "!="):
        a, b = _int_z3(e.lhs, z3, F, vars, nonneg), _int_z3(e.rhs, z3, F, vars, nonneg)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[e.op]
    return _int_z3(e, z3, F, vars, nonneg) != 0


class Space:
    """The flat index range ``0 <= flat < total`` and facts about it, proved by z3."""

    def __init__(self, total: N.Expr, decls: dict, consts: dict, ranges: dict | None = None):
        self.total, self.decls, self.consts = total, decls, consts
        self.ranges = ranges or {}  # other index variables: name -> extent (0 <= v < extent)
        self.assume = []  # guards known to hold (the iterations that store)

    def _expr(self, e):
        return recompose(substitute(substitute(e, self.decls), self.consts))

    def holds(self, cond_of) -> bool:
        import z3

        from ...verify.extents import Z3_LOCK

        with Z3_LOCK:
            F, vars = z3.Int(FLAT), {}
            try:
                nn = frozenset(self.ranges)  # they range from 0
                claim = cond_of(lambda e: _int_z3(self._expr(e), z3, F, vars, nn),
                                lambda e: _bool_z3(self._expr(e), z3, F, vars, nn))
                total = _int_z3(self._expr(self.total), z3, F, vars)
                extra = [z3.And(0 <= vars.setdefault(k, z3.Int(k)), vars[k] < _int_z3(self._expr(x), z3, F, vars))
                         for k, x in self.ranges.items()]
                extra += [_bool_z3(self._expr(c), z3, F, vars, nn) for c in self.assume]
            except Decline:
                return False
            s = z3.Solver()
            s.set("timeout", 3000)
            s.add(F >= 0, F < total, *extra, z3.Not(claim))
            return s.check() == z3.unsat

    def is_flat(self, e) -> bool:
        return self.holds(lambda i, b: i(e) == i(N.Var(FLAT, I64)))

    def always(self, cond) -> bool:
        return self.holds(lambda i, b: b(cond))


def conjuncts(e):
    if isinstance(e, N.Binary) and e.op == "&&":
        return conjuncts(e.lhs) + conjuncts(e.rhs)
    return [e]


def _guard_bounds(cond, space: Space, loopvars: set):
    """[(side, G)] when ``cond`` bounds the flat index by invariant G: side "hi" for
    ``flat < G``, "lo" for ``flat >= G`` (other spellings normalized); None otherwise."""
    negated = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!="}
    if isinstance(cond, N.Unary) and cond.op == "!" and isinstance(cond.operand, N.Binary) \
            and cond.operand.op in negated:
        cond = dataclasses.replace(cond.operand, op=negated[cond.operand.op])
    if not (isinstance(cond, N.Binary) and cond.op in ("<", "<=", ">", ">=", "==")):
        return None
    lhs, rhs, op = cond.lhs, cond.rhs, cond.op
    if uses(rhs, loopvars | {KK}):
        lhs, rhs, op = rhs, lhs, {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}[op]
    if uses(rhs, loopvars | {KK}) or not space.is_flat(lhs):
        return None
    one = N.Const(1, I64)
    return {"<": [("hi", rhs)], "<=": [("hi", N.Binary("+", rhs, one))], ">=": [("lo", rhs)],
            ">": [("lo", N.Binary("+", rhs, one))], "==": [("lo", rhs), ("hi", N.Binary("+", rhs, one))]}[op]


def uses(e, names: set) -> bool:
    return any(isinstance(n, N.Var) and n.name in names for n in walk(e))


# --------------------------------------------------------------------------- main
def tensorize_phase(ph: Phase, params: dict, devices: dict, limits: dict, taken: set,
                    chunk: int | None = None, macros: dict | None = None) -> Result:
    """Tensorize one phase (see the module doc); where that declines, as a row program
    (rows_mlu.py). ``params``: kernel parameter name -> type; ``devices``: device
    helpers by name; ``limits``: the platform config's [limits]; ``taken``: names in use
    in the kernel; ``macros``: the program's numeric macro values (they help the proofs)."""
    from ...smt.reals import NotReal
    from ...verify.extents import Z3_LOCK
    from .rows_mlu import tensorize_rows

    reasons = []
    joined = with_inner_loops(ph)
    attempts = [(_tensorize, ph)] + [(_tensorize, p) for p in joined] + [(tensorize_rows, ph)]
    for attempt, phase in attempts:
        try:
            with Z3_LOCK:
                return attempt(phase, params, devices, limits, taken, chunk, macros or {})
        except Decline as d:
            reasons.append(str(d))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError, NotReal) as e:
            # a shape this pass does not expect: scalar code is always a correct answer,
            # but say so loudly in the report rather than hide it
            reasons.append(f"tensorizer error ({type(e).__name__}: {e})")
    mine = {x.var for x in ph.loops}
    names = [""] + [f"with loop {', '.join(l.var for l in p.loops if l.var not in mine)} in the nest: "
                    for p in joined] + ["as rows: "]
    return Result(None, (), "; ".join(w + r for w, r in zip(names, reasons)))


def _tensorize(ph, params, devices, limits, taken, chunk, macros):
    loops, body = loop_nest(ph)
    # the prelude's variables start every iteration afresh only when there is one iteration
    b = _parse(body, {d.name: d.init for d in ph.prelude if isinstance(d, N.Decl)} if not loops else {})
    b.value = inline_devices(b.value, devices)
    red = b.red
    if red is not None:
        red.update = inline_devices(red.update, devices)
        red.init = inline_devices(red.init, devices)
    loopvars = {l.var for l in loops}
    exprs = [b.value] + ([red.update, red.init] if red is not None else [])

    def f32_buffer(name):
        t = params.get(name)
        return isinstance(t, T.PointerType) and t.elem == T.F32

    if not f32_buffer(b.out):
        raise Decline(f"the stored buffer {b.out} is not a float32 kernel parameter")
    loads = [n for e in exprs for n in walk(e) if isinstance(n, N.Load)]
    for ld in loads:
        if not (isinstance(ld.base, N.Var) and f32_buffer(ld.base.name)):
            raise Decline("a load from something other than a float32 kernel parameter")
    for e in exprs:
        if any(isinstance(n, (N.Deref, N.AddressOf, N.Member)) for n in walk(e)):
            raise Decline("the value reads memory other than by index")
        for c in (n for n in walk(e) if isinstance(n, N.Call) and n.func in devices):
            raise Decline(f"device function {c.func} is not a single expression")
    reads = {ld.base.name for ld in loads}

    # Loops the element does not depend on only repeat the same stores: drop them (the
    # range is empty when one of them runs zero times), unless a store feeds a load.
    used = set().union(*({n.name for n in walk(x) if isinstance(n, N.Var)}
                         for x in [b.index] + exprs + b.guards + ([red.extent] if red else [])))
    kept = [l for l in loops if l.var in used]
    dropped = [l for l in loops if l.var not in used]
    if dropped and b.out in reads:
        raise Decline(f"loops {', '.join(l.var for l in dropped)} repeat an in-place update")
    if loops and not kept:
        raise Decline("the stored element does not depend on the loops")
    total = Phase(kept, body, []).total()
    decls = {d.name: d.init for d in index_decls(kept, N.Var(FLAT, I64))}
    consts = {**macro_consts(macros), **{s.name: s.init for s in ph.prelude if isinstance(s, N.Decl)}}
    K = None
    if red is not None:
        K = try_fold(red.extent, consts)
        if not isinstance(K, int) or K < 1:
            raise Decline("the reduction length is not a positive constant")
    space = Space(total, decls, consts, {KK: N.Const(K, I64)} if red else None)
    bounds = []
    for g in b.guards:
        for c in conjuncts(g):
            found = _guard_bounds(c, space, loopvars)
            if found is not None:
                bounds += found
            elif not space.always(c):
                raise Decline(f"the guard {text(c)} is not a bound on the flat index")
    space.assume = list(b.guards)
    if not space.is_flat(b.index):
        raise Decline(f"the store index of {b.out} is not the flat iteration index")
    row_exprs = [b.value] + ([red.init] if red else [])
    for ld in (n for e in row_exprs for n in walk(e) if isinstance(n, N.Load)):
        if not space.is_flat(ld.index):
            raise Decline(f"the load of {ld.base.name} is not at the store's index")

    cover = Cover("mlu")
    value, tile = b.value, None
    if red is not None:
        tile_loads = [n for n in walk(red.update) if isinstance(n, N.Load)]
        if b.out in {ld.base.name for ld in tile_loads}:
            raise Decline(f"the reduction reads {b.out}, which the phase writes")
        form, stride = _tile_form(tile_loads, space, decls, consts, K)
        acc, v = match_accumulation(_leaves(red.update), cover)
        if uses(v, loopvars | {KK}):
            raise Decline("the reduced value uses a loop index as data")
        init = _leaves(red.init)
        if not cover.equal(init, acc.init):  # start from the pool's own initial value
            value = substitute(value, {ACC: substitute(acc.combine, {"$acc": init, "$v": acc_var()})})
        tile = _Tile(form, stride, K, acc.sig, cover.cover(v))
    leafy = _leaves(value)
    if uses(leafy, loopvars | {KK}):
        raise Decline("the value uses the loop index as data")
    return _emit(_Plan(b.out, total, dropped, bounds, cover.cover(leafy), tile), consts, limits, taken, chunk)


def program_constants(prog: N.Program) -> dict:
    """Numeric values of the program's macros and of its const/constexpr scalar globals
    (``constexpr int C = 128;``), for the proofs (the kernel keeps their names)."""
    out = {}
    for d in prog.defines:
        v = try_fold(d.value, out) if d.value is not None else None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[d.name] = v
    for g in prog.globals:
        if isinstance(g, N.Decl) and isinstance(g.dtype, T.ScalarType) and g.init is not None \
                and {"const", "constexpr"} & set(g.qualifiers):
            v = try_fold(g.init, out)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[g.name] = v
    return out


def macro_consts(macros: dict) -> dict:
    return {k: N.Const(v, I64 if isinstance(v, int) else T.F64) for k, v in macros.items()}


def _leaves(e):
    """Each load becomes the leaf of its buffer (its indices are proved elsewhere)."""

    class Leaves(Transformer):
        def visit_Load(self, ld):
            return N.Var(LEAF + ld.base.name, T.F32)

    return Leaves()(e)


def _tile_form(loads, space: Space, decls, consts, K):
    """How the inputs of the reduction lie: "rows" (output i reads i*K + k), "cols"
    (output i reads k*S + i), or "slabs": cols within each slab of S outputs, the slabs
    K*S apart (a reduction over a middle axis: output i reads (i/S)*K*S + k*S + i%S);
    with S."""
    forms = set()
    F, kk = N.Var(FLAT, I64), N.Var(KK, I64)
    for ld in loads:
        I = ld.index
        if space.holds(lambda i, b: i(I) == i(F) * K + i(kk)):
            forms.add(("rows", None))
            continue
        full = substitute(substitute(I, decls), consts)
        d = try_fold(N.Binary("-", full, substitute(full, {KK: N.Const(0, I64)})), {FLAT: 0, KK: 1})
        if isinstance(d, int) and d > 0 and space.holds(lambda i, b: i(I) == i(kk) * d + i(F)):
            forms.add(("cols", d))
            continue
        slab = N.Binary("+", N.Binary("*", N.Binary("/", F, N.Const(d, I64)), N.Const(K * d, I64)),
                        N.Binary("%", F, N.Const(d, I64))) if isinstance(d, int) and d > 0 else None
        if slab is not None and space.holds(lambda i, b: i(I) == i(kk) * d + i(slab)):
            forms.add(("slabs", d))
            continue
        raise Decline(f"the reduction reads {ld.base.name} neither by rows nor by columns of the outputs")
    if len(forms) != 1:
        raise Decline("the reduction's inputs lie in different layouts")
    return forms.pop()


def match_accumulation(update, cover: Cover):
    """The reducing pool whose accumulation step is ``update`` = combine(acc, v), and v."""
    from ...platforms import mlu
    from ...platforms.registry import lookup
    from .cover import accumulation

    cands = sorted((x for x in _subtrees_with_self(update) if is_vec(x) and not uses(x, {ACC})),
                   key=lambda x: -sum(1 for _ in walk(x)))
    for name in mlu.REDUCING_POOLS:
        acc = accumulation(lookup("mlu", name))
        for v in cands if acc is not None else ():
            if cover.equal(substitute(acc.combine, {"$acc": acc_var(), "$v": v}), update):
                return acc, v
    raise Decline(f"no reducing intrinsic accumulates {text(update)}")


def _subtrees_with_self(e):
    seen = {}
    for n in walk(e):
        if isinstance(n, N.Expr):
            seen.setdefault(n, None)
    return list(seen)


@dataclasses.dataclass
class _Tile:
    form: str  # rows | cols | slabs (cols per slab; the pool's layout is mlu.POOL_REDUCTION_ARGS["cols"])
    stride: int | None  # cols, slabs: distance between an output's successive inputs (the slab size)
    K: int  # inputs per output
    pool: object  # the reducing intrinsic's signature
    tree: Op  # what is pooled, computed on the tile


@dataclasses.dataclass
class _Plan:
    out: str
    total: N.Expr
    dropped: list
    bounds: list
    tree: Op  # the stored value, over input rows and the pooled accumulator (ACC)
    tile: _Tile | None


def _emit(plan: _Plan, consts, limits, taken, chunk):
    from ...platforms import mlu
    from ..base import Namer

    namer = Namer(set(taken))
    arrays, free, used = {}, {"row": [], "tile": []}, set()
    n_el, nv = N.Var(namer.fresh("xpiler_n"), I32), N.Var(namer.fresh("xpiler_nv"), I32)
    ops = [t.pat.sig for tree in [plan.tree] + ([plan.tile.tree] if plan.tile else []) for t in _ops(tree)]
    esize = 4
    align_bytes = constraint_value(ops, "bytes_multiple", int(limits.get("vector_align_bytes", 128)))
    addr_align = constraint_value(ops + ([plan.tile.pool] if plan.tile else []), "align", 64)
    A = max(1, align_bytes // esize)  # vector length unit, elements

    def new(base, cls):
        name = namer.fresh(base)
        arrays[name] = cls
        return name

    def emit(t, cls, leaf_arrays, remaining, length, out):
        """(NRAM array holding t, whether it may be overwritten afterwards). In place is
        fine: pointwise meanings allow dst identical to a source."""
        if t.pat is None:
            remaining[t.leaf] -= 1
            return leaf_arrays[t.leaf], remaining[t.leaf] == 0
        args = [emit(k, cls, leaf_arrays, remaining, length, out) for k in t.kids]
        dst = next((a for a, dead in args if dead), None) or (free[cls].pop() if free[cls] else new("xpiler_tmp", cls))
        for a, dead in args:
            if dead and a != dst:
                free[cls].append(a)
        scal = [x if type_of(x) == T.F32 else N.Cast(T.F32, x) for x in t.scalars]
        out.append(N.ExprStmt(t.pat.call(nram_ptr(dst), [nram_ptr(a) for a, _ in args], scal, length)))
        used.add(t.pat.sig.name)
        return dst, True

    off = N.Var(namer.fresh("xpiler_off"), I64)
    size = N.Binary("*", n_el, N.SizeOf(T.F32))
    work, acc_leaf = [], {}
    if plan.tile is not None:  # inputs -> tile -> pool -> the accumulator row
        tl = plan.tile
        leaves = _leaf_uses(tl.tree)
        tiles = {b: new(f"{b}_tile", "tile") for b in leaves}
        Kc = N.Const(tl.K, I32)
        for b, arr in tiles.items():
            if tl.form == "rows":
                work.append(N.Dma(nram_ptr(arr), N.Binary("+", N.Var(b), N.Binary("*", off, N.Const(tl.K, I64))),
                                  N.Binary("*", size, Kc), "GDRAM2NRAM"))
            else:  # K segments of n elements, stride apart in GDRAM, nv apart in NRAM
                slab = N.Binary("/", off, N.Const(tl.stride, I64))  # a chunk lies in one slab (below)
                src = off if tl.form == "cols" else \
                    N.Binary("+", off, N.Binary("*", slab, N.Const((tl.K - 1) * tl.stride, I64)))
                work.append(N.Dma(nram_ptr(arr), N.Binary("+", N.Var(b), src), size, "GDRAM2NRAM",
                                  (N.Binary("*", nv, N.SizeOf(T.F32)), N.Const(tl.stride * esize, I32),
                                   N.Const(tl.K - 1, I32))))
        if tl.form == "rows":
            tlen = N.Var(namer.fresh("xpiler_tv"), I32)
            work.append(N.Decl(tlen.name, I32, round_up(N.Binary("*", n_el, Kc), A)))
        else:
            tlen = N.Binary("*", Kc, nv)
        src, _ = emit(tl.tree, "tile", tiles, dict(leaves), tlen, work)
        acc_arr = new("xpiler_acc", "row")
        pargs = mlu.POOL_REDUCTION_ARGS["rows" if tl.form == "rows" else "cols"](n_el if tl.form == "rows" else nv, Kc)
        call = [nram_ptr(acc_arr), nram_ptr(src)] + [_i32(pargs[p.name]) for p in tl.pool.params[2:]]
        work.append(N.ExprStmt(N.Call(tl.pool.name, tuple(call))))
        used.add(tl.pool.name)
        acc_leaf = {ACC[len(LEAF):]: acc_arr}
    leaves = _leaf_uses(plan.tree)
    rows = {b: (acc_leaf[b] if b in acc_leaf else new(f"{b}_nram", "row")) for b in leaves}
    for b, arr in rows.items():
        if b not in acc_leaf:
            work.append(N.Dma(nram_ptr(arr), N.Binary("+", N.Var(b), off), size, "GDRAM2NRAM"))
    result, _ = emit(plan.tree, "row", rows, dict(leaves), nv, work)
    work.append(N.Dma(N.Binary("+", N.Var(plan.out), off), nram_ptr(result), size, "NRAM2GDRAM"))

    usable = int(limits.get("nram_bytes", 524288)) - int(limits.get("nram_stack_reserve_bytes", 0))
    K = plan.tile.K if plan.tile else 0
    per_row = sum(1 if c == "row" else K for c in arrays.values())
    C = usable // (per_row * esize) // A * A
    base, count, caps = _range(plan, consts)
    if caps:  # no array longer than the whole range needs
        C = min(C, max(A, -(-max(min(caps), 0) // A) * A))
    if chunk:
        C = min(C, max(A, int(chunk) // A * A))
    if C < A:
        raise Decline("the NRAM arrays do not fit the NRAM capacity")
    Cp, unit = C, A  # array length per output row; the per-task share's unit
    if plan.tile is not None and plan.tile.form == "slabs":
        # chunks of a divisor of the slab size S starting at multiples of it stay in one
        # slab (so one strided copy reads them); the range must start on a multiple
        S = plan.tile.stride
        C = max(c for c in range(1, min(C, S) + 1) if S % c == 0)
        Cp = -(-C // A) * A
        unit = C
        if try_fold(base, consts) is None or try_fold(base, consts) % C:
            raise Decline("the range of a reduction over slabs does not start at a slab chunk")

    v = {k: N.Var(namer.fresh(f"xpiler_{k}"), I64) for k in ("count", "per", "begin", "end")}
    task = N.Cast(I64, N.Special("taskId"))
    tdim = N.Cast(I64, N.Special("taskDim"))
    share = N.Binary("/", N.Binary("-", N.Binary("+", v["count"], tdim), N.Const(1, I64)), tdim)
    loop_body = [
        N.Decl(n_el.name, I32, N.Cast(I32, min_expr(N.Const(C, I64), N.Binary("-", v["end"], off)))),
        # padded up to the vector unit; lanes past n compute on stale NRAM and are not stored
        N.Decl(nv.name, I32, round_up(n_el, A)),
    ] + work
    stmts = [N.Decl(a, T.ArrayType(T.F32, (N.Const(Cp * (K if c == "tile" else 1), I32),), "nram"), None, "nram",
                    (f"alignas({addr_align})",)) for a, c in arrays.items()]
    stmts += [
        N.Decl(v["count"].name, I64, count),
        N.Decl(v["per"].name, I64, round_up(share, unit, I64)),
        N.Decl(v["begin"].name, I64, plus_expr(base, N.Binary("*", task, v["per"]))),
        N.Decl(v["end"].name, I64, min_expr(N.Binary("+", v["begin"], v["per"]), plus_expr(base, v["count"]))),
        N.For(off.name, I64, v["begin"], "<", v["end"], N.Const(C, I64), N.Block(tuple(loop_body))),
    ]
    names = tuple(sorted(used | {"__memcpy"}))
    what = ", ".join(n for n in names if n != "__memcpy") or "copy"
    return Result(tuple(stmts), names, f"tensorized ({what}) over NRAM chunks of {C} elements")


def _range(plan: _Plan, consts):
    """(first flat index, number of flat indices) to compute, and constant upper bounds
    known of the number."""
    zero = N.Const(0, I64)

    def fold(e):
        v = try_fold(e, consts)
        return N.Const(v, I64) if isinstance(v, int) else e

    def pick(a, b, less):
        va, vb = try_fold(a, consts), try_fold(b, consts)
        if isinstance(va, int) and isinstance(vb, int):
            return N.Const(min(va, vb) if less else max(va, vb), I64)
        return N.Select(N.Binary("<" if less else ">", a, b), a, b)

    hi, lo = fold(plan.total), zero
    for side, G in plan.bounds:
        hi, lo = (pick(hi, fold(G), True), lo) if side == "hi" else (hi, pick(lo, fold(G), False))
    count = pick(fold(N.Binary("-", hi, lo)), zero, False)
    for l in plan.dropped:  # a dropped loop that runs zero times leaves nothing to do
        ext = try_fold(l.extent, consts)
        if not isinstance(ext, int):
            count = N.Select(N.Binary(">", l.extent, zero), count, zero)
        elif ext <= 0:
            count = zero
    caps = [try_fold(x, consts) for x in (count, plan.total)] + \
        [try_fold(G, consts) for side, G in plan.bounds if side == "hi"]
    return lo, count, [c for c in caps if isinstance(c, int)]


def _ops(tree: Op):
    out = [tree] if tree.pat is not None else []
    for k in tree.kids:
        out += _ops(k)
    return out


def _leaf_uses(tree: Op) -> dict:
    if tree.pat is None:
        return {tree.leaf: 1}
    out = {}
    for k in tree.kids:
        for b, c in _leaf_uses(k).items():
            out[b] = out.get(b, 0) + c
    return out


def round_up(e, A: int, t=I32):
    return N.Binary("*", N.Binary("/", N.Binary("+", e, N.Const(A - 1, t)), N.Const(A, t)), N.Const(A, t))


def _i32(e):
    return N.Const(e, I32) if isinstance(e, int) else e


def nram_ptr(name: str) -> N.Expr:
    return N.Var(name, T.PointerType(T.F32, "nram"))


def plus_expr(a, b):
    return b if try_fold(a) == 0 else N.Binary("+", a, b)


def min_expr(a, b):
    return N.Select(N.Binary("<", a, b), a, b)
