"""Row programs for BANG (MLU): phases whose iteration works through whole rows.

tensorize_mlu.py covers phases where one iteration computes one output element (maybe
from one reduction). This module takes the phases it declines whose iteration is a
sequence of steps over rows: softmax (max, exp, sum, divide), layer/instance norm (mean,
variance, normalize), per-channel parameters, concatenation. An iteration (a "row" r of
the collapsed nest) may hold
- scalar statements (declarations and assignments of scalars; integer loops with a
  constant trip count, e.g. an index split into an ``int offsets[4]``, are unrolled),
  and guards on the row;
- loops over the row (a perfect nest of counted loops; the counters give the element
  offset k, counted from the loops' starts) whose body writes row elements
  ``buf[base(r) + k]`` (``buf`` a float kernel parameter or a local array) and/or
  updates scalar accumulators (``acc += v``, ``if (v > acc) acc = v``, ``acc =
  fmaxf(acc, v)``);
- stores of per-row scalars, and per-row scalars in local arrays (``mean[c]``).
Three readings widen what an iteration is:
- the group view reads an elementwise body as rows of K consecutive elements (flat =
  r*K + k), so that what does not change along a row (gamma[c] for out[n][c][h][w], a
  per-channel mean every element recomputes, concat's choice of input) is computed once
  per row. K is tried from the constant divisors in the body's index arithmetic and
  their products, largest first; a bound ``flat < G`` that cuts a row copies only the
  row's first G - r*K elements;
- sibling loops over one range (instance norm's mean, variance and normalize loops over
  the channels) are fused (loops/fuse.py) and the fused loop joins the nest;
- ``if (c) out[i] = a[..]; else out[i] = b[..];`` with c fixed along the row copies
  the row from the input c picks.

The iteration is executed symbolically: each row's value is an expression over NRAM
vectors (rows copied from GDRAM, results of earlier steps) and per-row scalars. A value
is computed (materialized) when a reduction, a scalar read or the final store needs it:
its scalar parts are per-row scalar temporaries and the rest is covered with the
registry's pointwise ``__bang_*`` intrinsics (cover.py); a reduction is a
``__bang_*pool`` over the row (mlu.POOL_REDUCTION_ARGS "rows", one output) whose result
is read back as a scalar. Output (rows_mlu_emit.py): each task takes a contiguous range
of rows; per row:
``__memcpy`` GDRAM2NRAM of each row read (where first needed), the steps, ``__memcpy``
NRAM2GDRAM of each row written (GDRAM2GDRAM for a row only copied from an input), then
the scalar stores.

Why it is correct:
- indices (z3): every vector access is proved to be ``base(r) + k`` over the loop's
  range, and every scalar access, integer used as data, guard and if/else condition to
  be the same for all k of a row (so it is computed once per row, at its first
  element); indices that depend on loaded data decline;
- independence: the rows (and scalar elements) an iteration writes are proved disjoint
  from those of every other iteration (two row variables in z3), and every read of a
  buffer the phase writes is proved to lie in what this iteration writes; so no
  iteration reads what another writes, rows may run in any order, and GDRAM reads (all
  before the iteration's own stores, which come last) see what the source read. When
  grid loops the element does not use are dropped (repetitions of the same iteration),
  each such read must also follow the iteration's own write, so that a repetition
  would compute the same values. A fused loop joins the nest only when loops/parallel.py
  proves that no two of its iterations conflict;
- order: statements are executed in order and a loop's element k reads only element k
  of a row (proved), so a whole-row value between statements is exactly what the
  source's elements hold; an accumulator read after its update inside the loop (a
  prefix sum) declines;
- computation: each intrinsic is proved equal to its expression in the real-number
  model (cover.py, smt/reals.py; precision is left to differential verification), a
  pool's accumulation step to the loop's; an initial value other than the pool's own is
  combined in afterwards, and a loop from element 1 that starts from element 0 is the
  pool over the whole row;
- hardware rules: vector lengths are padded to the registry's ``bytes_multiple`` (the
  padding lanes are never stored, and pools read exactly the row: the registry gives
  pools no length rule, and ``(dst, src, 1, 1, n, 1, n, 1, 1)`` is the benchmark's own
  reduction idiom, although the emulator's strict mode asks 128-byte multiples of pool
  operands too), NRAM arrays are aligned (``align``), and the arrays, reused after
  their last use, must fit ``nram_bytes - nram_stack_reserve_bytes``; else it declines.
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ...ir.typeinfer import type_of
from ...ir.visitor import Transformer, walk
from ..base import Namer, substitute
from .cover import LEAF, Cover, Decline, is_vec, text
from .phases import Phase, index_decls, trip_count
from .tensorize_mlu import ACC, FLAT, Result, Space, acc_var, inline_devices, match_accumulation, uses

I64, I32 = T.I64, T.I32
KV = "xpiler_kv"  # the element's offset in its row in the group view
R2 = "xpiler_r2"  # a second row, for disjointness
VAL = "%"  # prefix of a value's name in scalar reads (Load(Var(VAL + v), i)): not C
UNROLL = 64  # integer loops up to this trip count are unrolled
MAX_VIEWS = 4  # group-view row lengths tried


@dataclasses.dataclass
class _View:
    """How flat iterations become rows: r = flat / K, k = flat % K."""

    loops: list  # kept (collapsed) loops, outermost first
    dropped: list  # loops the iteration does not use (repetitions)
    K: int  # elements per row in the group view; 1: the iteration is the row
    rows: N.Expr  # number of rows
    total: N.Expr  # number of iterations
    elem: dict  # loop var -> its value over FLAT (the row) and KV
    first: dict  # loop var -> its value at the row's first element
    consts: dict  # prelude scalars, closed over each other
    one: bool  # the serial phase as one iteration (it may assign the prelude's scalars)


@dataclasses.dataclass
class _Row:
    buf: str
    base: N.Expr  # first element (kernel form: counters 0, loop vars at the row's start)
    zbase: N.Expr  # the same over FLAT (z3 form)
    length: int
    local: bool  # a local array of the iteration (never stored)
    group: bool = False  # the group view's row (cut short by a partial bound)
    value: N.Expr | None = None  # current value; None: the original contents
    written: bool = False
    read_original: bool = False


@dataclasses.dataclass
class _Ctx:
    """A vector context: the element offset ``lin`` over counters with ranges."""

    ranges: dict  # counter -> (lo, hi)
    lin: N.Expr
    length: int  # the row length L (the offsets run over [lo, L))
    lo: int
    zero: dict  # explicit counters -> 0
    group: bool  # the group view's own context (writes allowed; else a loop's)
    writes: bool = True
    slots: dict = dataclasses.field(default_factory=dict)  # accumulators: slot -> placeholder name


class RowProgram:
    """The symbolic execution of one iteration (see the module doc)."""

    def __init__(self, view: _View, params: dict, devices: dict, namer: Namer, cover: Cover, written: set):
        self.v, self.params, self.devices, self.namer, self.cover = view, params, devices, namer, cover
        self.written = written  # buffers the phase writes
        self.env, self.types = {}, {}  # scalar slot -> value, declared type
        self.int_arrays = set()  # local integer arrays, kept as slots "name[c]"
        self.locals = set()  # local float arrays: rows and cells of the iteration, never stored
        self.counters = {KV, FLAT}  # loop counters and row indices (never data)
        self.rows, self.cells = [], []  # _Row; (buf, index, zindex, slot)
        self.steps, self.vals = [], {}  # steps; value -> length (0: a pool result)
        self.memo, self.temps, self.temps_t = {}, {}, {}  # tree -> value; scalar expr -> temp, its type
        self.guards, self.orig_reads = [], []  # guard conditions; (buf, zindex) read from GDRAM
        self.partial = None  # group view: an element bound G that cuts the last rows short
        self.ranges = {KV: (0, view.K)} if view.K > 1 else {}

    # ----------------------------------------------------------------- z3
    def ez(self, e):  # over FLAT and KV
        return substitute(e, self.v.elem)

    def fz(self, e):  # at the row's first element
        return substitute(e, self.v.first)

    def prove(self, claim, ranges=None) -> bool:
        """``claim(i, b)`` for every row (and every value of the counters in ``ranges``:
        name -> (lo, hi), hi None for "a row")."""
        rng = {**self.ranges, **(ranges or {})}
        ext = {k: (self.v.rows if hi is None else N.Const(hi - lo, I64)) for k, (lo, hi) in rng.items()}
        sp = Space(self.v.rows, {}, self.v.consts, ext)
        sp.assume = [self.ez(g) for g in self.guards if _is_int_cond(g)]
        # the space's counters run over [0, hi - lo): shift them
        shift = {k: N.Binary("+", N.Var(k, I64), N.Const(lo, I64)) for k, (lo, hi) in rng.items() if lo}
        return sp.holds(lambda i, b: claim(lambda e: i(substitute(e, shift)), lambda e: b(substitute(e, shift))))

    def same_for_row(self, e, ctx) -> bool:
        """``e`` (an integer expression) has one value over the row's elements."""
        e0 = substitute(e, ctx.zero) if ctx else e
        return self.prove(lambda i, b: i(self.ez(e)) == i(self.fz(e0)), ctx.ranges if ctx else None)

    # ----------------------------------------------------------------- statements
    def run(self, stmts, ctx):
        for k, s in enumerate(stmts):
            if isinstance(s, N.Pragma):
                continue
            if isinstance(s, N.Block):
                self.run(list(s.body), ctx)
            elif isinstance(s, N.Decl):
                self.decl(s, ctx)
            elif isinstance(s, N.Assign) and isinstance(s.target, N.Var):
                self.set_slot(s.target.name, s.op, s.value, ctx)
            elif isinstance(s, N.Assign) and isinstance(s.target, N.Load):
                self.write(s.target, s.op, s.value, ctx)
            elif isinstance(s, N.If) and s.other is None and all(isinstance(x, N.Pragma) for x in stmts[k + 1:]):
                self.guard(s.cond, ctx)
                self.run(list(s.then.body), ctx)
            elif isinstance(s, N.If) and s.other is not None and ctx is not None and ctx.group:
                self.select_copy(s, ctx)
            elif isinstance(s, N.For):
                self.loop(s, ctx)
            else:
                raise Decline(f"the iteration has {type(s).__name__.lower()} statements this pass does not model")

    def decl(self, s: N.Decl, ctx):
        if isinstance(s.dtype, T.ArrayType):
            shape = [try_fold(d, self.v.consts) for d in s.dtype.shape]
            if s.init is not None or len(shape) != 1 or not isinstance(shape[0], int):
                raise Decline(f"local array {s.name} is not a one-dimensional uninitialized array")
            if s.dtype.elem == T.F32:
                self.locals.add(s.name)
            elif isinstance(s.dtype.elem, T.ScalarType) and s.dtype.elem.is_int:
                self.int_arrays.add(s.name)
            else:
                raise Decline(f"local array {s.name} has type {s.dtype.elem}")
            return
        if not isinstance(s.dtype, T.ScalarType):
            raise Decline(f"declaration of {s.name} is not a scalar")
        self.types[s.name] = s.dtype
        self.env[s.name] = None if s.init is None else self.typed(s.dtype, self.value(s.init, ctx))

    def typed(self, t, e):
        """``e`` converted to the declared type ``t``, as the assignment does."""
        return e if type_of(e) == t else N.Cast(t, e)

    def set_slot(self, name, op, rhs, ctx):
        if name not in self.env and not self.v.one:
            raise Decline(f"the iteration assigns {name}, declared outside it")
        t = self.types.get(name) or type_of(N.Var(name)) or T.F32
        self.env[name] = self.typed(t, self.combine(name, op, self.value(rhs, ctx)))

    def combine(self, slot, op, v):
        if op == "=":
            return v
        cur = self.env.get(slot)
        if cur is None:
            raise Decline(f"{slot} is read before it is set")
        return N.Binary(op[:-1], cur, v)

    def guard(self, cond, ctx):
        c = self.value(cond, ctx)
        if _uses_values(c) or any(r.written for r in self.rows) or self.cells:
            raise Decline(f"the guard {text(cond)} depends on computed data or follows a store")
        if ctx is not None and not (_is_int_cond(c) and self.prove(
                lambda i, b: b(self.ez(c)) == b(self.fz(c)))):
            # the element bound flat < G: rows are cut at G (their valid prefix is copied)
            side = split_bound(c, {l.var for l in self.v.loops}) if _is_int_cond(c) else None
            flat = N.Binary("+", N.Binary("*", N.Var(FLAT, I64), N.Const(self.v.K, I64)), N.Var(KV, I64))
            if side is None or side[0] not in ("<", "<=") or self.partial is not None or not self.prove(
                    lambda i, b: i(self.ez(side[1])) == i(flat)):
                raise Decline(f"the guard {text(cond)} does not hold for whole rows")
            self.partial = side[2] if side[0] == "<" else N.Binary("+", side[2], N.Const(1, I64))
        self.guards.append(c)

    def select_copy(self, s: N.If, ctx):
        """``if (c) out[i] = a[f(i)]; else out[i] = b[g(i)];`` with c the same along the row
        (concat): the row is copied from the source c picks (a, b: inputs the phase does not
        write), so the source not picked is never read."""
        cond = self.value(s.cond, ctx)
        if _uses_values(cond) or not (_is_int_cond(cond) and self.prove(
                lambda i, b: b(self.ez(cond)) == b(self.fz(cond)))):
            raise Decline(f"the condition {text(s.cond)} of an if/else changes along the row")
        targets, sources = [], []
        for branch in (s.then, s.other):
            *decls, store = [x for x in branch.body if not isinstance(x, N.Pragma)] or [None]
            saved = dict(self.env)
            for d in decls:
                if not (isinstance(d, N.Decl) and isinstance(d.dtype, T.ScalarType) and d.dtype.is_int):
                    raise Decline("an if/else branch does more than copy one element")
                self.decl(d, ctx)
            if not (isinstance(store, N.Assign) and store.op == "=" and isinstance(store.target, N.Load)
                    and isinstance(store.value, N.Load)):
                raise Decline("an if/else branch does more than copy one element")
            for ld, out in ((store.target, targets), (store.value, sources)):
                if not isinstance(ld.base, N.Var):
                    raise Decline("an if/else branch copies through a pointer expression")
                idx = _index(self.value(ld.index, ctx))
                if not self.prove(lambda i, b: i(self.ez(idx)) == i(self.fz(idx)) + i(ctx.lin), ctx.ranges):
                    raise Decline(f"an if/else branch copies {ld.base.name} across rows")
                out.append((ld.base.name, idx))
            self.env = saved
        (t1, b1), (t2, b2) = targets
        if t1 != t2 or not self.prove(lambda i, b: i(self.fz(b1)) == i(self.fz(b2))):
            raise Decline("the branches of an if/else store to different rows")
        for buf, _ in sources:
            p = self.params.get(buf)
            if buf in self.written or not (isinstance(p, T.PointerType) and p.elem == T.F32):
                raise Decline(f"an if/else copies from {buf}, which is not a float32 input")
        v = self.new_value(ctx.length)
        self.steps.append(("loadsel", v, cond, sources, ctx.length, True))
        row = self.row(t1, b1, ctx.length, True)
        row.value, row.written = _leaf(v), True

    # ----------------------------------------------------------------- values
    def value(self, e, ctx, slots=None):
        """``e`` with scalars replaced by their values and loads classified: vector reads
        become the row's value (over leaves), the rest scalar reads."""
        prog = self
        e = inline_devices(e, self.devices)

        class Conv(Transformer):
            def visit_Var(self, v):
                if slots and v.name in slots:
                    if slots[v.name] is None:
                        raise Decline(f"{v.name} is read after its update in the loop (a prefix sum)")
                    return N.Var(slots[v.name], T.F32)
                if v.name in prog.env:
                    if prog.env[v.name] is None:
                        raise Decline(f"{v.name} is read before it is set")
                    return prog.env[v.name]
                return v

            def visit_Load(self, ld):
                return prog.read(ld, ctx, slots)

        out = Conv()(e)
        if any(isinstance(n, (N.Deref, N.AddressOf, N.Member)) for n in walk(out)):
            raise Decline("a value reads memory other than by index")
        return out

    def read(self, ld, ctx, slots):
        if not isinstance(ld.base, N.Var):
            raise Decline("a load from something other than a named buffer")
        buf, idx = ld.base.name, _index(ld.index)
        if buf in self.int_arrays:
            key = _const_slot(buf, idx, self.v.consts)
            if key not in self.env:
                raise Decline(f"{buf} is read at an index that is not constant")
            return self.env[key]
        local = buf in self.locals
        if not local and not (isinstance(self.params.get(buf), T.PointerType) and self.params[buf].elem == T.F32):
            raise Decline(f"{buf} is not a float32 kernel parameter or local array")
        if ctx is not None:
            i0 = substitute(idx, ctx.zero)
            if self.prove(lambda i, b: i(self.ez(idx)) == i(self.fz(i0)) + i(ctx.lin), ctx.ranges):
                return self.vector_read(buf, i0, ctx)
            if not self.same_for_row(idx, ctx):
                raise Decline(f"the load of {buf} is neither along the row nor the same for the whole row")
            idx = i0
        cell = self.find_cell(buf, idx)
        if cell is not None:
            return self.env[cell]
        return self.scalar_read(buf, idx, local)

    def vector_read(self, buf, base, ctx):
        row = self.row(buf, base, ctx.length, ctx.group)
        if row.value is None:
            if row.local:
                raise Decline(f"local array {buf} is read before it is written")
            row.value = self.load(row)
            row.read_original = True
        return row.value

    def load(self, row: _Row) -> N.Expr:
        v = self.new_value(row.length)
        self.steps.append(("load", v, row.buf, row.base, row.length, row.group))
        return _leaf(v)

    def row(self, buf, base, length, group=False) -> _Row:
        """The row of ``buf`` at ``base`` (found or new; rows of a buffer are equal or
        disjoint)."""
        zb = self.fz(base)
        for r in self.rows:
            if r.buf != buf:
                continue
            if r.length == length and r.group == group and self.prove(lambda i, b: i(zb) == i(r.zbase)):
                return r
            if buf in self.written or r.local:
                zr, lr = r.zbase, r.length
                if not self.prove(lambda i, b: (i(zb) + length <= i(zr)) | (i(zr) + lr <= i(zb))):
                    raise Decline(f"rows of {buf} overlap without being the same")
        if buf in [c[0] for c in self.cells]:
            raise Decline(f"{buf} is written both as rows and as scalars")
        r = _Row(buf, base, zb, length, buf in self.locals, group)
        self.rows.append(r)
        return r

    def scalar_read(self, buf, idx, local):
        """Element ``idx`` of ``buf`` as a scalar: from this iteration's rows when it has
        one holding it, else from GDRAM (an input, or an original value)."""
        zi = self.fz(idx)
        for r in self.rows:
            if r.buf != buf:
                continue
            zr, L = r.zbase, r.length
            if self.prove(lambda i, b: (i(zi) >= i(zr)) & (i(zi) < i(zr) + L)):
                if r.value is None:
                    break  # not yet read nor written here: GDRAM holds it
                return N.Load(N.Var(VAL + self.materialize(r.value, L, r), T.PointerType(T.F32)),
                              N.Binary("-", idx, r.base))
            if not self.prove(lambda i, b: (i(zi) < i(zr)) | (i(zi) >= i(zr) + L)):
                raise Decline(f"a scalar read of {buf} partly overlaps a row")
        else:
            if local:
                raise Decline(f"local array {buf} is read where it was not written")
        if buf in self.written:
            self.orig_reads.append((buf, zi))
        return N.Load(N.Var(buf, self.params.get(buf)), idx)

    def find_cell(self, buf, idx):
        zi = self.fz(idx)
        for b, _, z, slot in self.cells:
            if b == buf and self.prove(lambda i, bb: i(z) == i(zi)):
                return slot
        return None

    def write(self, target: N.Load, op, rhs, ctx, slots=None):
        if not isinstance(target.base, N.Var):
            raise Decline("a store to something other than a named buffer")
        buf, idx = target.base.name, target.index
        if buf in self.int_arrays:
            key = _const_slot(buf, self.value(idx, ctx), self.v.consts)
            self.env[key] = self.combine(key, op, self.value(rhs, ctx))
            return
        if buf not in self.locals and not (isinstance(self.params.get(buf), T.PointerType)
                                           and self.params[buf].elem == T.F32):
            raise Decline(f"the stored buffer {buf} is not a float32 kernel parameter or local array")
        idx = _index(self.value(idx, ctx, slots))
        if ctx is not None:
            i0 = substitute(idx, ctx.zero)
            if self.prove(lambda i, b: i(self.ez(idx)) == i(self.fz(i0)) + i(ctx.lin), ctx.ranges):
                if not ctx.writes or ctx.lo != 0:
                    raise Decline(f"a loop writes part of a row of {buf}, or a row inside a row")
                cur = self.vector_read(buf, i0, ctx) if op != "=" else None
                value = self.value(rhs, ctx, slots)
                if slots and uses(value, {x for x in slots.values() if x}):
                    raise Decline(f"a loop stores its running accumulator into {buf}")
                row = self.row(buf, i0, ctx.length, ctx.group)
                # scalar parts become per-row temporaries now, read where the source reads them
                row.value = self.hoist(value if op == "=" else N.Binary(op[:-1], cur, value))
                row.written = True
                return
            if not ctx.group or not self.same_for_row(idx, ctx):
                raise Decline(f"the store to {buf} is not along the row (or a loop over the row stores a scalar)")
            idx = i0
        if any(r.buf == buf for r in self.rows):
            raise Decline(f"{buf} is written both as rows and as scalars")
        slot = self.find_cell(buf, idx)
        if slot is None:
            slot = f"{buf}[{len(self.cells)}]"
            self.cells.append((buf, idx, self.fz(idx), slot))
            self.env[slot] = self.scalar_read(buf, idx, buf in self.locals) if op != "=" else None
        value = self.value(rhs, ctx, ctx.slots if ctx else None)
        if is_vec(value):
            raise Decline(f"a value that changes along the row is stored to one element of {buf}")
        self.env[slot] = self.combine(slot, op, value)

    # ----------------------------------------------------------------- loops
    def loop(self, f: N.For, ctx):
        nest, body = [f], f.body
        while len(body.body) == 1 and isinstance(body.body[0], N.For):
            nest.append(body.body[0])
            body = body.body[0].body
        bounds = []
        for g in nest:
            step = try_fold(g.step)
            lo = try_fold(self.value(g.start, ctx), self.v.consts)
            count = trip_count(g)
            count = try_fold(self.value(count, ctx), self.v.consts) if count is not None else None
            if not g.declared or step != 1 or not isinstance(lo, int) or not isinstance(count, int):
                raise Decline(f"loop {g.var} is not a counted loop with constant bounds")
            bounds.append((g.var, lo, lo + max(count, 0)))
        if self.integer_only(nest[0]):
            return self.unroll(nest[0], ctx)
        if ctx is not None and not ctx.group:
            raise Decline(f"loop {f.var} is nested in a loop over the row")
        if len(nest) > 1 and any(lo != 0 for _, lo, _ in bounds):
            raise Decline(f"loop nest {f.var} does not start at 0")
        names = {var: self.namer.fresh("xpiler_k") for var, _, _ in bounds}
        self.counters |= set(names.values())
        if len(bounds) == 1 and bounds[0][1] == 1 and self.from_element_zero(f, body):
            # acc = row[0]; for k in [1, L): acc = combine(acc, row[k]) is the pool of row[0, L)
            (var, lo, hi), = bounds
            inner = _Ctx({names[var]: (lo, hi)}, N.Var(names[var], I64), hi, 1, {names[var]: N.Const(0, I64)}, False)
        else:  # the element offset: the counters' mixed-radix number from the loops' starts
            lin, L = None, 1
            for var, lo, hi in reversed(bounds):
                k = N.Binary("-", N.Var(names[var], I64), N.Const(lo, I64)) if lo else N.Var(names[var], I64)
                lin = k if lin is None else N.Binary("+", N.Binary("*", k, N.Const(L, I64)), lin)
                L *= hi - lo
            if L < 1:
                raise Decline(f"loop {f.var} runs no iterations")
            inner = _Ctx({names[v]: (lo, hi) for v, lo, hi in bounds}, lin, L, 0,
                         {names[v]: N.Const(lo, I64) for v, lo, _ in bounds}, False)
        inner.writes = ctx is None
        if ctx is not None:  # the group view's offset must not matter inside
            inner.ranges.update({KV: (0, self.v.K)})
        saved = dict(self.env)
        for var in names:
            self.env[var] = N.Var(names[var], I64)
        self.loop_body(list(body.body), inner, f.var)
        for var in names:  # the loop's own names go out of scope
            self.env.pop(var, None)
        for k in list(self.env):
            if k not in saved and k not in self.cell_slots():
                del self.env[k]

    def from_element_zero(self, f: N.For, body: N.Block) -> bool:
        """Whether every accumulator the loop (from 1) updates starts as ``buf[i0]`` and the
        loop reads ``buf`` at ``i0`` when its variable is 0 (a syntactic check before
        running the loop; reduce() proves the rest)."""
        local = {k: v for k, v in self.env.items() if v is not None}
        loads, inits = [], []
        for s in walk(body):
            if isinstance(s, N.Decl) and s.init is not None and isinstance(s.dtype, T.ScalarType):
                local[s.name] = substitute(s.init, local)
            if isinstance(s, N.Assign) and isinstance(s.target, N.Var) and s.target.name in self.env:
                inits.append(self.env[s.target.name])
            if isinstance(s, N.Load) and isinstance(s.base, N.Var):
                loads.append((s.base.name, substitute(substitute(s.index, local), {f.var: N.Const(0, I64)})))
        if not inits:
            return False
        for init in inits:
            if not (isinstance(init, N.Load) and isinstance(init.base, N.Var)):
                return False
            z0 = self.fz(init.index)
            if not any(b == init.base.name and self.prove(lambda i, bb, x=x: i(self.fz(x)) == i(z0)) for b, x in loads):
                return False
        return True

    def cell_slots(self):
        return {c[3] for c in self.cells}

    def integer_only(self, f) -> bool:
        """Whether the loop assigns only integer scalars and local integer arrays."""
        for n in walk(f.body):
            if isinstance(n, N.Assign):
                t = n.target
                if isinstance(t, N.Var) and isinstance(self.types.get(t.name), T.ScalarType) \
                        and self.types[t.name].is_int:
                    continue
                if isinstance(t, N.Load) and isinstance(t.base, N.Var) and t.base.name in self.int_arrays:
                    continue
                return False
            if isinstance(n, (N.Decl,)) and not (isinstance(n.dtype, T.ScalarType) and n.dtype.is_int):
                return False
        return True

    def unroll(self, f: N.For, ctx):
        count = try_fold(self.value(trip_count(f), ctx), self.v.consts)
        start = try_fold(self.value(f.start, ctx), self.v.consts)
        if not isinstance(count, int) or count > UNROLL:
            raise Decline(f"integer loop {f.var} is too long to unroll")
        for it in range(max(count, 0)):
            self.env[f.var] = N.Const(start + it * try_fold(f.step), I64)
            self.run(list(f.body.body), ctx)
        self.env.pop(f.var, None)

    def loop_body(self, stmts, ctx: _Ctx, name):
        """A loop over the row: element writes and accumulator updates, in order."""
        updated = set()
        for s in walk(N.Block(tuple(stmts))):
            if isinstance(s, N.Assign) and isinstance(s.target, N.Var) and s.target.name in self.env:
                updated.add(s.target.name)
        ctx.slots = {}
        for slot in sorted(updated):
            ctx.slots[slot] = self.namer.fresh("xpiler_acc")  # the accumulator inside the loop
        updates, done = {}, set()
        for s in stmts:
            if isinstance(s, N.Pragma):
                continue
            target, value = _update(s)
            if isinstance(s, N.Decl) and s.init is not None and isinstance(s.dtype, T.ScalarType):
                self.types[s.name] = s.dtype
                self.env[s.name] = self.typed(s.dtype, self.value(s.init, ctx, self.live(ctx.slots, done)))
            elif target is not None and isinstance(target, N.Var) and target.name in ctx.slots:
                if target.name in done:
                    raise Decline(f"loop {name} updates {target.name} twice")
                v = self.value(value, ctx, self.live(ctx.slots, done))
                if isinstance(s, N.If):
                    v = N.Select(self.value(s.cond, ctx, self.live(ctx.slots, done)), v,
                                 N.Var(ctx.slots[target.name], T.F32))
                elif s.op != "=":
                    v = N.Binary(s.op[:-1], N.Var(ctx.slots[target.name], T.F32), v)
                updates[target.name] = v
                done.add(target.name)
            elif isinstance(s, N.Assign) and isinstance(s.target, N.Load):
                self.write(s.target, s.op, s.value, ctx, self.live(ctx.slots, done))
            else:
                raise Decline(f"loop {name} does more than write row elements and update accumulators")
        for slot, upd in updates.items():
            self.env[slot] = self.reduce(slot, upd, ctx, name)

    def live(self, slots, done):
        """Accumulators read inside the loop: before their update they are the running
        value; after it, a prefix sum (declined by reading a missing name)."""
        return {k: (v if k not in done else None) for k, v in slots.items()}

    def reduce(self, slot, update, ctx: _Ctx, name):
        acc = ctx.slots[slot]
        if any(isinstance(n, N.Var) and n.name in ctx.slots.values() and n.name != acc for n in walk(update)):
            raise Decline(f"loop {name} updates {slot} from another accumulator")
        update = self.hoist(substitute(update, {acc: acc_var()}))
        info, v = match_accumulation(update, self.cover)
        init = self.env[slot]
        if init is None:
            raise Decline(f"{slot} is accumulated before it is set")
        src = self.materialize(v, ctx.length)
        red = self.new_value(0)
        self.steps.append(("pool", red, info.sig, src, ctx.length))
        result = N.Load(N.Var(VAL + red, T.PointerType(T.F32)), N.Const(0, I64))
        if ctx.lo == 1:  # from element 1, starting from element 0: the pool over the whole row
            if not self.element_zero(init, v):
                raise Decline(f"loop {name} starts at 1 from something other than the row's element 0")
            return result
        if ctx.lo != 0:
            raise Decline(f"loop {name} starts at {ctx.lo}")
        if _equal(self.cover, init, info.init):
            return result
        return substitute(info.combine, {"$acc": init, "$v": result})

    def element_zero(self, init, v) -> bool:
        """Whether ``init`` reads element 0 of the row value ``v`` (a leaf): both read the
        same original row, v from NRAM and init from GDRAM before any write of it."""
        if not (isinstance(v, N.Var) and v.name.startswith(LEAF) and isinstance(init, N.Load)):
            return False
        row = next((r for r in self.rows if r.value == v and not r.written and not r.local), None)
        if row is None or not isinstance(init.base, N.Var) or init.base.name != row.buf:
            return False
        zi = self.fz(init.index)
        return self.prove(lambda i, b: i(zi) == i(row.zbase))

    # ----------------------------------------------------------------- materializing
    def new_value(self, length) -> str:
        v = f"v{len(self.vals)}"
        self.vals[v] = length
        return v

    def hoist(self, tree):
        """Scalar parts of a vector expression as scalar temporaries (computed once per
        row); constants stay."""
        prog = self
        loopvars = {l.var for l in self.v.loops}

        def scalar(e):
            if isinstance(try_fold(e, prog.v.consts), (int, float)) or isinstance(e, N.Const) or e == acc_var():
                return e
            if uses(e, {ACC}):
                raise Decline(f"the accumulator is used inside {text(e)}")
            if e in prog.temps:
                return N.Var(prog.temps[e], prog.temps_t[e])
            if isinstance(e, N.Var) and e.name in prog.temps.values():
                return e
            for n in walk(e):
                if isinstance(n, N.Var) and n.name in prog.counters:
                    raise Decline("the value uses the loop index as data")
            if prog.v.K > 1 and uses(e, loopvars):
                for x in _int_parts(e, loopvars):
                    if not prog.prove(lambda i, b: i(prog.ez(x)) == i(prog.fz(x))):
                        raise Decline("the value uses the element index as data")
            t = type_of(e)
            t = t if isinstance(t, T.ScalarType) and t.name != "bool" else T.F64
            name = prog.namer.fresh("xpiler_s")
            prog.temps[e], prog.temps_t[e] = name, t
            prog.steps.append(("scalar", name, t, e))
            return N.Var(name, t)

        class Hoist(Transformer):
            def visit(self, node):
                if isinstance(node, N.Expr) and not is_vec(node):
                    return scalar(node)
                return super().visit(node)

        return Hoist()(tree)

    def materialize(self, tree, length, row: _Row | None = None) -> str:
        """The NRAM value holding the vector expression ``tree`` of ``length`` elements."""
        tree = self.hoist(tree)
        if isinstance(tree, N.Var) and tree.name.startswith(LEAF):
            return tree.name[len(LEAF):]
        if tree not in self.memo:
            for n in walk(tree):
                if isinstance(n, N.Var) and n.name.startswith(LEAF) and self.vals[n.name[len(LEAF):]] != length:
                    raise Decline("a value combines rows of different lengths")
            self.memo[tree] = self.emit(self.cover.cover(tree), length)
        v = self.memo[tree]
        for r in self.rows:  # later reads use the computed value
            if r.value == tree:
                r.value = _leaf(v)
        return v

    def emit(self, op, length) -> str:
        if op.pat is None:
            return op.leaf
        srcs = [self.emit(k, length) for k in op.kids]
        v = self.new_value(length)
        self.steps.append(("op", v, op.pat, srcs, list(op.scalars), length))
        return v

    def finish(self):
        """The final stores; then the checks that need the whole iteration."""
        for r in self.rows:
            if r.written and not r.local:
                self.steps.append(("store", r.buf, r.base, self.materialize(r.value, r.length, r), r.length, r.group))
        for buf, idx, _, slot in self.cells:
            if buf in self.locals:
                continue  # the iteration's own scratch
            if self.env.get(slot) is None:
                raise Decline(f"{slot} is never set")
            self.steps.append(("sstore", buf, idx, self.env[slot]))
        if not any(s[0] in ("op", "pool", "loadsel", "store") for s in self.steps):
            raise Decline("the row program has no vector work (only scalars)")
        if self.v.K > 1 and not self.prove(
                lambda i, b: i(N.Var(FLAT, I64)) * self.v.K + i(N.Var(KV, I64)) < i(self.v.total)):
            raise Decline(f"the guards leave part of a row of {self.v.K} elements")
        self.check_independence()

    def check_independence(self):
        written = [(r.buf, r.zbase, r.length) for r in self.rows if r.written and not r.local]
        written += [(b, z, 1) for b, _, z, _ in self.cells if b not in self.locals]
        for r in self.rows:
            if not r.local and r.buf in self.written and not r.written:
                raise Decline(f"the iteration reads a row of {r.buf} that it does not write")
        for buf, zi in self.orig_reads:
            if not any(b == buf and self.prove(lambda i, bb: (i(zi) >= i(z)) & (i(zi) < i(z) + L))
                       for b, z, L in written):
                raise Decline(f"the iteration reads {buf} outside what it writes")
        if self.v.dropped and (self.orig_reads or any(r.read_original and r.buf in self.written for r in self.rows)):
            raise Decline("repeated iterations would read what they write")
        r2 = N.Var(R2, I64)
        for k, (buf, za, La) in enumerate(written):
            for buf2, zb, Lb in written[k:]:
                if buf2 != buf:
                    continue
                zb2 = substitute(zb, {FLAT: r2})
                guards2 = [substitute(self.fz(g), {FLAT: r2}) for g in self.guards if _is_int_cond(g)]

                def claim(i, b, za=za, zb2=zb2, La=La, Lb=Lb, guards2=guards2):
                    import z3

                    return z3.Implies(z3.And(i(N.Var(FLAT, I64)) != i(r2), *[b(g) for g in guards2]),
                                      z3.Or(i(za) + La <= i(zb2), i(zb2) + Lb <= i(za)))

                if not self.prove(claim, {R2: (0, None)}):
                    raise Decline(f"iterations may write the same elements of {buf}")


def _equal(cover: Cover, a, b) -> bool:
    """``a == b`` in the real-number model; False for what the model cannot read."""
    from ...smt.reals import NotReal

    try:
        return cover.equal(a, b)
    except NotReal:
        return False


def _int_parts(e, names):
    """Maximal integer-typed subexpressions of ``e`` that use ``names``."""
    out = []

    def go(x):
        t = type_of(x)
        if isinstance(t, T.ScalarType) and t.is_int and uses(x, names):
            out.append(x)
            return
        for c in (c for c in _kids(x)):
            go(c)

    go(e)
    return out


def _kids(e):
    from ...ir.visitor import children

    return [c for c in children(e) if isinstance(c, N.Expr)]


def _index(e):
    """An index must be integer arithmetic over scalars: computed data (a row value, a
    load) would be an unknown constant to z3, which would then prove too much."""
    if _uses_values(e) or any(isinstance(n, (N.Load, N.Deref)) for n in walk(e)):
        raise Decline(f"the index {text(e)} depends on loaded data")
    return e


def _leaf(v: str) -> N.Var:
    return N.Var(LEAF + v, T.F32)


def _uses_values(e) -> bool:
    return any(isinstance(n, N.Var) and (n.name.startswith(VAL) or n.name.startswith(LEAF)) for n in walk(e))


def _is_int_cond(e) -> bool:
    return not any(isinstance(n, (N.Load, N.Call)) for n in walk(e)) and not any(
        isinstance(type_of(n), T.ScalarType) and type_of(n).is_float for n in walk(e) if isinstance(n, N.Expr))


def _const_slot(buf, idx, consts):
    c = try_fold(idx, consts)
    if not isinstance(c, int):
        raise Decline(f"local array {buf} is indexed by a value that is not constant")
    return f"{buf}[{c}]"


def _update(s):
    """(target, value) of an assignment or ``if (c) target = value``; (None, None)."""
    if isinstance(s, N.Assign):
        return s.target, s.value
    if isinstance(s, N.If) and s.other is None and len(s.then.body) == 1 and isinstance(s.then.body[0], N.Assign) \
            and s.then.body[0].op == "=":
        return s.then.body[0].target, s.then.body[0].value
    return None, None


# --------------------------------------------------------------------------- views
def tensorize_rows(ph: Phase, params: dict, devices: dict, limits: dict, taken: set, chunk=None,
                   macros: dict | None = None) -> Result:
    """The phase as a row program (see the module doc); raises Decline. The caller holds
    the z3 lock."""
    from .tensorize_mlu import loop_nest, macro_consts

    loops, body = loop_nest(ph)
    consts = macro_consts(macros or {})
    for d in ph.prelude:  # closed over earlier prelude names, for z3
        if isinstance(d, N.Decl) and d.init is not None:
            consts[d.name] = substitute(d.init, consts)
    reasons = []
    for loops, body in [(loops, body)] + _fused_rows(loops, body):
        try:
            return _rows(ph, loops, body, consts, params, devices, limits, taken)
        except Decline as d:
            reasons.append(str(d))
    raise Decline("; fused: ".join(reasons))


def _fused_rows(loops, body) -> list:
    """[(loops, body)] for an iteration made of local array declarations and sibling
    loops over one range whose fusion has independent iterations (instance norm: per
    channel a mean loop, a variance loop and a normalizing loop that talk through
    mean[c], var[c]): the fused loop joins the nest, innermost, and the arrays become
    private to each row. loops/fuse.py proves the fusion legal (no fusion-preventing
    dependence) and loops/parallel.py that no two iterations of the fused loop
    conflict, which is what running them as separate rows in any order needs."""
    from ..base import Declined
    from ..loops.fuse import fuse
    from ..loops.parallel import parallelize
    from .phases import Loop

    stmts = [s for s in body.body if not isinstance(s, N.Pragma)]
    decls = [s for s in stmts if isinstance(s, N.Decl) and isinstance(s.dtype, T.ArrayType) and s.init is None]
    fors = stmts[len(decls):]
    if not fors or stmts[:len(decls)] != decls or not all(isinstance(f, N.For) for f in fors):
        return []
    try:
        fused = fors[0]
        for f in fors[1:]:
            fused = fuse(fused, f).node
        fused = parallelize(fused).node
    except Declined:
        return []
    count = trip_count(fused)
    if count is None or uses(N.Block((N.ExprStmt(fused.start), N.ExprStmt(count))), {l.var for l in loops}):
        return []
    inner = Loop(fused.var, fused.dtype, fused.start, fused.step, count)
    return [(list(loops) + [inner], N.Block(tuple(decls) + fused.body.body))]


def _rows(ph, loops, body, consts, params, devices, limits, taken) -> Result:
    from .rows_mlu_emit import emit_rows

    written = {a.target.base.name for a in walk(body) if isinstance(a, N.Assign)
               and isinstance(a.target, N.Load) and isinstance(a.target.base, N.Var)}
    names = {n.name for n in walk(body) if isinstance(n, N.Var)}
    kept = [l for l in loops if l.var in names]
    dropped = [l for l in loops if l.var not in names]
    if loops and not kept:
        raise Decline("the iteration does not depend on the loops")
    total = Phase(kept, body, []).total()
    reasons = []
    for K in _group_lengths(body, kept, total, consts, limits) + [1]:
        view = _make_view(kept, dropped, K, total, consts, not loops)
        prog = RowProgram(view, params, devices, Namer(set(taken) | names), Cover("mlu"), written)
        if view.one:  # one iteration: it may assign the prelude's scalars
            for d in ph.prelude:
                if isinstance(d, N.Decl) and d.init is not None:
                    prog.env[d.name], prog.types[d.name] = d.init, d.dtype
        try:
            prog.run(list(body.body), _group_ctx(K) if K > 1 else None)
            prog.finish()
            return emit_rows(prog, limits)
        except Decline as d:
            reasons.append(f"rows of {K}: {d}" if K > 1 else str(d))
    raise Decline("; ".join(reversed(reasons)))


def _group_ctx(K: int) -> _Ctx:
    return _Ctx({KV: (0, K)}, N.Var(KV, I64), K, 0, {}, True)


def _make_view(kept, dropped, K, total, consts, one) -> _View:
    F = N.Var(FLAT, I64)
    rows = total
    if K > 1:  # a last partial row must be cut off by the guards (finish() proves it)
        n = try_fold(total, consts)
        rows = N.Const(-(-n // K), I64) if isinstance(n, int) else \
            N.Binary("/", N.Binary("+", total, N.Const(K - 1, I64)), N.Const(K, I64))
    flat = N.Binary("+", N.Binary("*", F, N.Const(K, I64)), N.Var(KV, I64)) if K > 1 else F
    start = N.Binary("*", F, N.Const(K, I64)) if K > 1 else F
    elem = {d.name: d.init for d in index_decls(kept, flat)}
    first = {d.name: d.init for d in index_decls(kept, start)}
    return _View(kept, dropped, K, rows, total, elem, first, consts, one)


def _group_lengths(body, kept, total, consts, limits) -> list:
    """Row lengths for the group view: the constant divisors of the iteration's integer
    arithmetic (its scalar declarations substituted), their pairwise products
    (``x / 10 / 10``) and the extents of the nest's inner loops, largest first, below
    the number of iterations and a quarter of NRAM. Only for an iteration that stores
    outside loops (one element per iteration)."""
    n = try_fold(total, consts)
    stores_elements = any(isinstance(s, N.Assign) and isinstance(s.target, N.Load) for s in _outside_loops(body))
    if not kept or not stores_elements:
        return []
    n = n if isinstance(n, int) else None
    env, found = dict(consts), set()
    for s in walk(body):
        if isinstance(s, N.Decl) and s.init is not None and isinstance(s.dtype, T.ScalarType) and s.dtype.is_int:
            env[s.name] = substitute(s.init, env)
        divisor = s.rhs if isinstance(s, N.Binary) and s.op in ("/", "%") else \
            s.value if isinstance(s, N.Assign) and s.op in ("/=", "%=") else None
        d = try_fold(divisor, env) if divisor is not None else None
        if isinstance(d, int) and 1 < d and (n is None or d < n):
            found.add(d)
    found |= {a * b for a in found for b in found if n is None or a * b < n}
    inner = 1  # the inner loops of the nest: rows of out[i][j] for bias[j]
    for l in reversed(kept[1:]):
        ext = try_fold(l.extent, consts)
        if not isinstance(ext, int):
            break
        inner *= ext
        found.add(inner)
    cap = (int(limits.get("nram_bytes", 524288)) - int(limits.get("nram_stack_reserve_bytes", 0))) // 4 // 4
    return sorted((d for d in found if d <= cap), reverse=True)[:MAX_VIEWS]


def _outside_loops(block):
    for s in block.body:
        if isinstance(s, N.Block):
            yield from _outside_loops(s)
        elif isinstance(s, N.If):
            yield from _outside_loops(s.then)
            if s.other is not None:
                yield from _outside_loops(s.other)
        elif not isinstance(s, (N.For, N.While)):
            yield s


def split_bound(c, loopvars):
    """(op, lhs, G) for ``lhs op G`` with G free of the loop variables (mirrored if
    needed); None otherwise."""
    negated = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}
    if isinstance(c, N.Unary) and c.op == "!" and isinstance(c.operand, N.Binary) and c.operand.op in negated:
        c = dataclasses.replace(c.operand, op=negated[c.operand.op])
    if not (isinstance(c, N.Binary) and c.op in ("<", "<=", ">", ">=", "==")):
        return None
    lhs, rhs, op = c.lhs, c.rhs, c.op
    if uses(rhs, loopvars):
        lhs, rhs, op = rhs, lhs, {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}[op]
    return None if uses(rhs, loopvars) else (op, lhs, rhs)
