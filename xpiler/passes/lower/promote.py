"""Promoting broadcast reads of a GPU phase to ``__shared__`` memory.

A scalar GPU phase runs one collapsed iteration per thread. When a serial loop inside
the iteration reads an input-only buffer at an index that depends only on that loop's
own variables (and constants) -- never on the thread's collapsed loop variables -- every
thread of the block reads the same elements: a broadcast (``x[k]`` of a matrix-vector
product). The slice is then staged once per block: each thread copies a strided part
into a ``__shared__`` array, ``__syncthreads()``, and the loop reads from shared memory.

What makes it correct (else the phase keeps its global reads and the note says why):

- the buffer is a kernel pointer parameter that the phase never writes and never uses
  other than as the base of a read (no aliasing: the host entry allocates each buffer
  separately);
- every read of it sits in serial loops with constant bounds, unconditionally (no
  enclosing ``if``/``while``, no ``?:``/``&&``/``||`` around it, no ``break``/``continue``/
  ``return`` in the phase, loop variables not reassigned), and its index is affine in
  those loop variables: the staged slice is the exact hull of the addresses every valid
  thread reads, so staging reads nothing outside the buffer's allocation;
- the slice length is a compile-time constant and all staged slices fit a budget well
  under the target's static shared memory per block;
- z3 proves each rewritten index ``idx - lo`` lies in ``[0, len)`` over the loops'
  domain, so ``sh[idx - lo] == buf[lo + (idx - lo)] == buf[idx]``;
- the barrier is at the kernel's top level, before the bounds guard: every thread of
  the block reaches it (the guard then wraps only the compute).
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ...ir.visitor import Transformer, walk
from ..base import names_in
from .phases import trip_count

BUDGET_FRACTION = 4  # use at most a quarter of the static shared memory per block
HARD_CAP = 48 * 1024


class _No(Exception):
    pass


@dataclasses.dataclass
class Promotion:
    stage: list  # statements before the guard: shared decls, copy loops, the barrier
    body: N.Block  # the phase body reading shared memory
    notes: list  # what was promoted, and what was not (with reasons)


def _elem_bytes(t) -> int | None:
    if isinstance(t, T.ScalarType) and t.name != "void" and t.bytes > 0:
        return t.bytes
    return None


def _linear(e: N.Expr, loops: dict, consts: dict):
    """``e`` as (coefficients by loop variable, constant), or raise _No."""
    if isinstance(e, N.Const) and isinstance(e.value, int) and not isinstance(e.value, bool):
        return {}, e.value
    if isinstance(e, N.Var):
        if e.name in loops:
            return {e.name: 1}, 0
        if e.name in consts:
            return {}, consts[e.name]
        raise _No(f"its index uses {e.name}, which is not a loop variable of the read's loops")
    if isinstance(e, N.Cast) and isinstance(e.dtype, T.ScalarType) and e.dtype.is_int:
        return _linear(e.value, loops, consts)
    if isinstance(e, N.Unary) and e.op in ("-", "+"):
        c, k = _linear(e.operand, loops, consts)
        return ({v: -a for v, a in c.items()}, -k) if e.op == "-" else (c, k)
    if isinstance(e, N.Binary) and e.op in ("+", "-"):
        (ca, ka), (cb, kb) = _linear(e.lhs, loops, consts), _linear(e.rhs, loops, consts)
        s = 1 if e.op == "+" else -1
        out = dict(ca)
        for v, a in cb.items():
            out[v] = out.get(v, 0) + s * a
        return out, ka + s * kb
    if isinstance(e, N.Binary) and e.op == "*":
        (ca, ka), (cb, kb) = _linear(e.lhs, loops, consts), _linear(e.rhs, loops, consts)
        if ca and cb:
            raise _No("its index is not affine")
        if not ca:
            return {v: ka * a for v, a in cb.items()}, ka * kb
        return {v: kb * a for v, a in ca.items()}, ka * kb
    v = try_fold(e)
    if isinstance(v, int) and not isinstance(v, bool):
        return {}, v
    raise _No("its index is not affine in the loop variables")


def _prove(index: N.Expr, lo: int, length: int, loops: dict, consts: dict) -> None:
    """z3: for every point of the loops' domain, 0 <= index - lo < length."""
    import z3

    from ..loops.smt import Encoder, Unencodable, Z3_LOCK, valid

    with Z3_LOCK:
        env, dom = {}, []
        for v, (start, step, trips) in loops.items():
            n = z3.Int(f"n_{v}")
            env[v] = start + step * n
            dom += [n >= 0, n < trips]
        for v, c in consts.items():
            env[v] = z3.IntVal(c)

        def symbol(name):
            raise Unencodable(name)

        try:
            e = Encoder(env, symbol).int(index)
        except Unencodable:
            raise _No("z3 cannot encode its index") from None
        ok, why = valid(z3.Implies(z3.And(*dom), z3.And(e - lo >= 0, e - lo < length)))
    if not ok:
        raise _No(f"z3 did not prove the staged index in range ({why})")


class _Reads:
    """Every read of each pointer parameter in the phase body, with its enclosing serial
    loops, or the reason it cannot be staged."""

    def __init__(self, pointers: set, consts: dict):
        self.pointers = pointers
        self.consts = consts
        self.reads: dict = {b: [] for b in pointers}  # name -> [(Load, loops)]
        self.bad: dict = {}  # name -> reason
        self.loopvars: set = set()

    def fail(self, b, why):
        self.bad.setdefault(b, why)

    def stmt(self, s, loops: dict, cond: bool):
        if isinstance(s, N.Block):
            for t in s.body:
                self.stmt(t, loops, cond)
        elif isinstance(s, N.For):
            for e in (s.start, s.bound, s.step):
                self.expr(e, loops, True)
            count = trip_count(s)
            start, step = try_fold(s.start), try_fold(s.step)
            inner = dict(loops)
            if isinstance(try_fold(count) if count is not None else None, int) and isinstance(start, int) \
                    and isinstance(step, int) and not any(isinstance(n, N.Decl) and n.name == s.var
                                                          for n in walk(s.body)) \
                    and not any(isinstance(n, N.Assign) and isinstance(n.target, N.Var) and n.target.name == s.var
                                for n in walk(s.body)):
                inner[s.var] = (start, step, try_fold(count))
            else:
                inner.pop(s.var, None)  # not a usable domain: reads indexed by it decline
            self.loopvars.add(s.var)
            self.stmt(s.body, inner, cond)
        elif isinstance(s, N.If):
            self.expr(s.cond, loops, cond)
            self.stmt(s.then, loops, True)
            if s.other is not None:
                self.stmt(s.other, loops, True)
        elif isinstance(s, N.While):
            self.expr(s.cond, loops, True)
            self.stmt(s.body, loops, True)
        elif isinstance(s, N.Assign):
            t = s.target
            if isinstance(t, N.Load) and isinstance(t.base, N.Var) and t.base.name in self.pointers:
                self.fail(t.base.name, "it is written in the phase")
                self.expr(t.index, loops, cond)
            else:
                self.expr(t, loops, cond)
            self.expr(s.value, loops, cond)
        elif isinstance(s, N.Decl):
            if s.name in self.pointers:
                self.fail(s.name, "a local declaration shadows it")
            if s.init is not None:
                self.expr(s.init, loops, cond)
        elif isinstance(s, N.ExprStmt):
            self.expr(s.expr, loops, cond)
        elif isinstance(s, (N.Break, N.Continue, N.Return)):
            for b in self.pointers:
                self.fail(b, "the phase has break/continue/return")
            if isinstance(s, N.Return) and s.value is not None:
                self.expr(s.value, loops, cond)
        elif isinstance(s, N.Pragma):
            pass
        else:
            for b in self.pointers:
                self.fail(b, f"the phase has a {type(s).__name__} statement")

    def expr(self, e, loops: dict, cond: bool):
        if isinstance(e, N.Load) and isinstance(e.base, N.Var) and e.base.name in self.pointers:
            b = e.base.name
            if cond:
                self.fail(b, "a read of it is conditional")
            elif not loops:
                self.fail(b, "a read of it is outside every serial loop")
            self.reads[b].append((e, dict(loops)))
            self.expr(e.index, loops, cond)
            return
        if isinstance(e, N.Var) and e.name in self.pointers:
            self.fail(e.name, "it is used other than as the base of a read")
            return
        if isinstance(e, N.Select):
            self.expr(e.cond, loops, cond)
            self.expr(e.then, loops, True)
            self.expr(e.other, loops, True)
            return
        if isinstance(e, N.Binary) and e.op in ("&&", "||"):
            self.expr(e.lhs, loops, cond)
            self.expr(e.rhs, loops, True)
            return
        if isinstance(e, N.Assign):  # defensive: assignments as expressions
            self.stmt(e, loops, cond)
            return
        from ...ir.visitor import children
        for c in children(e):
            if isinstance(c, N.Expr):
                self.expr(c, loops, cond)


class _Rewrite(Transformer):
    def __init__(self, table: dict):
        self.table = table  # id(original Load) -> new Load
        super().__init__()

    def visit(self, node):
        if isinstance(node, N.Load) and id(node) in self.table:
            return self.table[id(node)]
        return super().visit(node)


def promote_phase(ph, ptypes: dict, target: str, taken: set) -> Promotion:
    """Stage the phase's broadcast reads in ``__shared__`` memory. ``stage`` is empty when
    nothing is promoted; ``notes`` then says why for each candidate buffer."""
    from ...platforms.config import load_platform_config

    limits = load_platform_config(target).get("limits", {})
    cap = limits.get("shared_mem_per_block_static") or limits.get("shared_mem_per_block") or HARD_CAP
    budget = min(int(cap), HARD_CAP) // BUDGET_FRACTION
    consts = {}
    for d in ph.prelude:
        v = try_fold(d.init) if isinstance(d, N.Decl) and d.init is not None else None
        if isinstance(v, int) and not isinstance(v, bool) and isinstance(d.dtype, T.ScalarType) and d.dtype.is_int:
            consts[d.name] = v
    for n in walk(ph.body):  # a body declaration shadows the prelude's constant
        if isinstance(n, N.Decl) or isinstance(n, N.For):
            consts.pop(n.name if isinstance(n, N.Decl) else n.var, None)
    pointers = {n for n, t in ptypes.items() if isinstance(t, T.PointerType)}
    collapsed = {l.var for l in ph.loops}
    an = _Reads(pointers, consts)
    an.stmt(ph.body, {}, False)
    notes, stage, table, used = [], [], {}, 0
    taken = set(taken) | names_in(ph.body) | {d.name for d in ph.prelude if isinstance(d, N.Decl)}
    tid = "xpiler_t"
    while tid in taken:
        tid += "_"
    for b in sorted(pointers):
        reads = an.reads[b]
        # only thread-independent reads are candidates: an index using a collapsed
        # variable differs between the block's threads
        if not reads or any(isinstance(n, N.Var) and n.name in collapsed for r, _ in reads for n in walk(r.index)):
            continue
        try:
            if b in an.bad:
                raise _No(an.bad[b])
            shadow = (collapsed | {d.name for d in ph.prelude if isinstance(d, N.Decl)}) - set(consts)
            lo = hi = None
            for r, loops in reads:
                for n in walk(r.index):
                    if isinstance(n, N.Var) and n.name in an.loopvars and n.name not in loops:
                        raise _No(f"loop {n.name} has no constant domain")
                    if isinstance(n, N.Var) and n.name in shadow:
                        raise _No(f"its index uses {n.name}")
                coef, k = _linear(r.index, loops, consts)
                rlo = rhi = k
                for v, a in coef.items():
                    start, step, trips = loops[v]
                    if trips <= 0:
                        raise _No(f"loop {v} may not run")
                    ends = (a * start, a * (start + step * (trips - 1)))
                    rlo += min(ends)
                    rhi += max(ends)
                lo = rlo if lo is None else min(lo, rlo)
                hi = rhi if hi is None else max(hi, rhi)
            length = hi - lo + 1
            elem = ptypes[b].elem
            size = _elem_bytes(elem)
            if size is None:
                raise _No(f"its element type {elem} has no known size")
            if used + length * size > budget:
                raise _No(f"{length} elements ({length * size} bytes) exceed the shared-memory budget "
                          f"({budget - used} of {budget} bytes left)")
            for r, loops in reads:
                _prove(r.index, lo, length, loops, consts)
        except _No as e:
            notes.append(f"{b}: not promoted to __shared__ ({e})")
            continue
        sh = f"xpiler_sh_{b}"
        while sh in taken:
            sh += "_"
        taken.add(sh)
        used += length * size
        shv = N.Var(sh, T.ArrayType(elem, (N.Const(length, T.I32),), "shared"))
        for r, _ in reads:
            idx = r.index if lo == 0 else N.Binary("-", r.index, N.Const(lo, T.I32))
            table[id(r)] = N.Load(shv, idx)
        t = N.Var(tid, T.I32)
        src = t if lo == 0 else N.Binary("+", N.Const(lo, T.I32), t)
        stage.append(N.Decl(sh, T.ArrayType(elem, (N.Const(length, T.I32),), "shared"), None, "shared"))
        stage.append(N.For(tid, T.I32, N.Cast(T.I32, N.Special("threadIdx.x"), "c"), "<", N.Const(length, T.I32),
                           N.Cast(T.I32, N.Special("blockDim.x"), "c"),
                           N.Block((N.Assign(N.Load(shv, t), N.Load(N.Var(b, ptypes[b]), src)),))))
        notes.append(f"{b}[{lo}..{hi + 1}) ({length * size} bytes), read by every thread of the block at a "
                     f"thread-independent index, staged in __shared__ {sh} (index range proved by z3)")
    if not stage:
        return Promotion([], ph.body, notes)
    stage.append(N.Barrier("block"))
    return Promotion(stage, _Rewrite(table)(ph.body), notes)
