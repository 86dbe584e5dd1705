"""Tensorization for BANG (MLU): a GEMM-like parallel phase -> ``__bang_matmul`` with the
right-hand operand staged in WRAM.

gemm_match.py recognizes ``C[c] = epilogue(init + sum_k A[a] * B[b])`` (matrix-vector
products too: a missing row or column dimension has extent 1, padded like any other, so
_lower_mlu uses them only where the vector tensorizers decline; dot products, with
neither dimension, are left to those). Here its counters become
matrix dimensions: M (rows), N (columns), K (reductions), each an ordered list of counters
read as one mixed-radix index, and one dimension per batch counter. A guard that bounds
the top counters of one dimension shortens that dimension (``blockIdx.y * 16 < 128``);
any other guard declines.

The kernel: the output is cut into work items (batch point, column block of Nc, row
block of Mb) and every task takes a contiguous range of items (rows vary fastest, so
consecutive items share their B block). Per item, for each K piece of Kc:
- B's [kb][nb] block goes to WRAM as row-major [K][N] (the registry's and emulator's
  default rhs layout, [UNCERTAIN] on hardware): one strided ``__memcpy`` GDRAM2WRAM
  when its columns are contiguous, through NRAM and ``__bang_transpose`` when its
  reduction is contiguous (B stored [N][K]), else packed by scalar code in NRAM;
  skipped when the previous item of the task loaded the same block;
- A's [mb][kb] block goes to NRAM (strided ``__memcpy`` or scalar packing);
- ``__bang_matmul`` computes the [mp][np] block (K pieces summed with ``__bang_add``);
- the epilogue (scalar code over the block) and a strided ``__memcpy`` NRAM2GDRAM (or
  scalar stores where C's columns are not contiguous).

Why it is right: the items partition the (shortened) output domain, each element is the
full sum over K of the same products the source multiplies, and the copies move exactly
the elements those products read and the output elements (the dimension strides are
checked on every operand's affine index form, so no z3 is needed; scalar code handles
the layouts that fail the check). Rows and columns are padded to the
registry's 128-byte ``bytes_multiple`` unit (strict emulator rule: every matmul operand's
length); padded rows/columns hold stale data and only produce results that are never
stored, and K is never padded, so no padding enters a stored sum. Accumulation: float
operands accumulate in float32 like the source's float32 accumulator (K pieces re-add
partial sums: rounding differs as in any blocked GEMM); integer operands accumulate
exactly and the float32 result is exact while K * max|a| * max|b| < 2^24 (checked; a
source accumulator narrower than 32 bits, which would wrap, declines).
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ..base import Declined, Namer, names_in
from .affine import Lin, Sym
from .gemm_match import HOLE, IRNames, TOp, lin_ir, match_gemm, subst, summarize, term_ir

PASS = "tensorize-mlu-gemm"
I32, I64 = T.I32, T.I64
TOP = {"int8": 128, "int16": 32768}  # largest magnitude of an integer operand


def _decline(reason):
    raise Declined(PASS, reason)


# --------------------------------------------------------------------------- IR helpers
def _c(v, t=I32) -> N.Const:
    return N.Const(v, t)


def _fold(e: N.Expr, t=I32) -> N.Expr:
    v = try_fold(e)
    return _c(v, t) if isinstance(v, int) else e


def _op(op, a, b, t=I32):
    """a op b, folded, without the identities (+ 0, * 1, / 1, * 0) that clutter the output."""
    va, vb = try_fold(a), try_fold(b)
    if op == "*" and 0 in (va, vb):
        return _c(0, t)
    if (op == "+" and vb == 0) or (op in "*/" and vb == 1):
        return a
    if (op == "+" and va == 0) or (op == "*" and va == 1):
        return b
    return _fold(N.Binary(op, a, b), t)


def _min(a, b, t=I32):
    va, vb = try_fold(a), try_fold(b)
    if isinstance(va, int) and isinstance(vb, int):
        return _c(min(va, vb), t)
    return N.Select(N.Binary("<", a, b), a, b)


def _round_up(e, unit: int, t=I32):
    return _op("*", _op("/", _op("+", e, _c(unit - 1, t), t), _c(unit, t), t), _c(unit, t), t)


def _for(var: str, extent, body: list, start=None, step=None, t=I32) -> N.For:
    return N.For(var, t, start if start is not None else _c(0, t), "<", extent,
                 step if step is not None else _c(1, t), N.Block(tuple(body)))


# --------------------------------------------------------------------------- dimensions
@dataclasses.dataclass
class Dim:
    """Counters read as one mixed-radix index (outermost first), shortened by guards."""
    syms: list
    exts: dict  # Sym -> IR extent
    bounds: list = dataclasses.field(default_factory=list)  # flat index < each (ints)

    def extent(self) -> N.Expr:
        e = _c(1)
        for s in self.syms:
            x = self.exts[s]
            if not isinstance(try_fold(x), int):  # a run-time extent may be negative
                x = N.Select(N.Binary(">", x, _c(0)), x, _c(0))
            e = _op("*", e, x)
        for b in self.bounds:
            e = _min(e, _c(b))
        return e

    def cap(self) -> int | None:
        """A constant upper bound of the extent, if any."""
        v = try_fold(self.extent())
        if isinstance(v, int):
            return v
        return min(self.bounds) if self.bounds else None

    def inner(self, i: int) -> N.Expr:
        e = _c(1)
        for s in self.syms[i + 1:]:
            e = _op("*", e, self.exts[s])
        return e

    def values(self, flat: N.Expr) -> dict:
        """Each counter's value at flat index ``flat``."""
        out = {}
        for i, s in enumerate(self.syms):
            q = flat if try_fold(self.inner(i)) == 1 else N.Binary("/", flat, self.inner(i))
            out[s] = q if i == 0 else N.Binary("%", q, self.exts[s])
        return out

    def stride(self, form: Lin) -> int | None:
        """The element distance in ``form`` between consecutive flat indices, when the
        counters address memory as one (0 for a dimension of no counters); else None."""
        if not self.syms:
            return 0
        for u, v in zip(self.syms, self.syms[1:]):
            ev = try_fold(self.exts[v])
            if not isinstance(ev, int) or form.coef(u) != ev * form.coef(v):
                return None
        return form.coef(self.syms[-1])


def _guard_bound(cond, dims: list):
    """(dim, bound) for a guard ``lin < 0`` / ``lin <= 0`` over the top counters of one
    dimension, proportional to their mixed-radix weights; None otherwise."""
    syms = cond.lin.syms
    for d in dims:
        if not syms or not syms <= set(d.syms):
            continue
        q = max(d.syms.index(s) for s in syms)
        weights, w = {}, 1
        for s in reversed(d.syms[:q + 1]):
            weights[s] = w
            ev = try_fold(d.exts[s])
            w = w * ev if isinstance(ev, int) else None
            if w is None and s is not d.syms[0]:
                return None
        c = cond.lin.coef(d.syms[q])
        if c <= 0 or any(cond.lin.coef(s) != c * weights[s] for s in d.syms[:q + 1]):
            return None
        lim = -cond.lin.const  # c * top < lim (or <=)
        top = -(-lim // c) if cond.op == "<" else lim // c + 1 if cond.op == "<=" else None
        if top is None:
            return None
        inner = try_fold(d.inner(q))
        return (d, max(top, 0) * inner) if isinstance(inner, int) else None
    return None


# --------------------------------------------------------------------------- planning
@dataclasses.dataclass
class Plan:
    g: object  # the Gemm, "none" counters fixed to 0
    M: Dim
    N: Dim
    K: Dim
    batch: list  # [Dim] of one counter each
    op_t: T.Type  # operand type (A and B)
    Mb: int  # rows per block (padding unit multiple)
    Nc: int  # columns per block
    Kc: int  # reduction piece
    unit: int  # padding unit of M and N, elements
    align: int  # NRAM/WRAM array alignment, bytes
    notes: list


def _types(g, sig) -> T.Type:
    lhs = next(p for p in sig.params if p.name == "lhs")
    allowed = {T.type_str(t) for t in (lhs.dtype,) + tuple(lhs.alt_dtypes)}
    a, b = g.a.dtype, g.b.dtype
    if T.type_str(a) != T.type_str(b):
        _decline(f"the operands have different types ({T.type_str(a)} x {T.type_str(b)})")
    if T.type_str(a) not in allowed:
        _decline(f"__bang_matmul takes {', '.join(sorted(allowed))} operands, not {T.type_str(a)}")
    return a


def _exactness(g, op_t, K: int):
    if op_t.is_float:
        if g.acc != T.F32:
            _decline(f"the source accumulates {op_t.name} products in {T.type_str(g.acc)}; "
                     "__bang_matmul accumulates floats in float32")
        return
    if g.acc.is_int and T.byte_size(g.acc) < 4:
        _decline(f"the source accumulates in {T.type_str(g.acc)}, which wraps where __bang_matmul is exact")
    top = TOP.get(op_t.name)
    if top is None or K * top * top >= 1 << 24:
        _decline(f"sums of {K} {op_t.name} x {op_t.name} products may exceed 2^24 "
                 "(the float32 result of __bang_matmul would round)")


def plan(g, limits: dict, sig, task_dim: int) -> Plan:
    from .cover import constraint_value

    op_t = _types(g, sig)
    exts = {}
    for s, l in g.psyms:
        exts[s] = l.extent
    for s in g.roles:
        if s not in exts:
            if s.extent is None:
                _decline(f"counter {s.name.split('#')[0]} has no constant extent")
            exts[s] = _c(s.extent)
    fixed = {}
    for s, r in g.roles.items():
        if r == "none":  # every iteration stores the same values: one suffices
            if not isinstance(try_fold(exts[s]), int) or try_fold(exts[s]) < 1:
                _decline(f"parallel loop {s.name.split('#')[0]} does not index the output and has a run-time extent")
            fixed[s] = Lin()
    if any(c.lin.syms & set(fixed) for c in g.guard):
        _decline("a guard depends on a loop that does not index the output")
    if fixed:
        g = dataclasses.replace(g, a=_sub_op(g.a, fixed), b=_sub_op(g.b, fixed), c=_sub_op(g.c, fixed),
                                epilogue=subst(g.epilogue, fixed),
                                init=subst(g.init, fixed) if g.init is not None else None)

    def role(r, by):
        return Dim(sorted((s for s, x in g.roles.items() if x == r), key=lambda s: -abs(by.coef(s))), exts)
    M, Nd, K = role("row", g.c.index), role("col", g.c.index), role("red", g.b.index)
    if not M.syms and not Nd.syms:
        _decline("dot products (no row and no column dimension): a 1x1 matmul each")
    batch = [Dim([s], exts) for s in sorted((s for s, x in g.roles.items() if x == "batch"),
                                           key=lambda s: -abs(g.c.index.coef(s)))]
    for c in g.guard:
        found = _guard_bound(c, [M, Nd] + batch) if c.op in ("<", "<=") else None
        if found is None:
            _decline("a guard is not an upper bound on one output dimension")
        found[0].bounds.append(found[1])
    kext = K.cap()
    _exactness(g, op_t, kext)

    esz = T.byte_size(op_t)
    unit = max(1, constraint_value([sig], "bytes_multiple", int(limits.get("vector_align_bytes", 128))) // esz)
    align = constraint_value([sig], "align", 64)
    b_path = _b_path(g, Nd, K)
    out_bytes = T.byte_size(g.c.dtype) if _needs_epilogue(g) and g.c.dtype != T.F32 else 0
    Kc, Nc, Mb = _blocks(kext, Nd.cap(), esz, unit, {"direct": 0, "transpose": 2, "packed": 1}[b_path], out_bytes,
                         int(limits["wram_bytes"]),
                         int(limits["nram_bytes"]) - int(limits.get("nram_stack_reserve_bytes", 0)))
    Mb, Nc = _spread(M.cap(), Nd.cap(), batch, Mb, Nc, unit, task_dim)
    notes = [f"{_text(M)}x{_text(Nd)}x{kext} {op_t.name} GEMM: __bang_matmul on blocks of {Mb}x{Nc} "
             f"(K pieces of {Kc}), rhs in WRAM ({b_path})"]
    return Plan(g, M, Nd, K, batch, op_t, Mb, Nc, Kc, unit, align, notes)


def _spread(mcap, ncap, batch, Mb: int, Nc: int, unit: int, task_dim: int) -> tuple:
    """(Mb, Nc) made smaller (in padding units) until there are about ``task_dim`` work
    items, so that every task has work: rows first, then columns."""
    def blocks(cap, size):
        return task_dim if cap is None else -(-cap // size)
    if mcap is not None:
        Mb = min(Mb, max(unit, -(-mcap // unit) * unit))
    others = 1
    for d in batch:
        others *= d.cap() or task_dim
    if mcap is not None and others * blocks(ncap, Nc) < task_dim:
        want = -(-mcap // -(-task_dim // (others * blocks(ncap, Nc))))
        Mb = max(unit, min(Mb, -(-want // unit) * unit))
    if ncap is not None and others * blocks(mcap, Mb) * blocks(ncap, Nc) < task_dim:
        want = -(-ncap // -(-task_dim // (others * blocks(mcap, Mb))))
        Nc = max(unit, min(Nc, -(-want // unit) * unit))
    return Mb, Nc


def _blocks(K: int, ncap, esz: int, unit: int, stages: int, out_bytes: int, wram: int, nram: int) -> tuple:
    """(Kc, Nc, Mb): the K piece, columns and rows of a block. The rhs piece [Kc][Nc]
    fits WRAM; NRAM holds the lhs [Mb][Kc], the float32 result [Mb][Nc] (twice with K
    pieces: partial and sum), ``stages`` NRAM copies of the rhs piece (transposing or
    packing it) and an output of ``out_bytes`` elements when the epilogue changes type.
    Nc and Mb are multiples of ``unit`` (elements of 128 bytes: the padding unit)."""
    def nram_use(mb, nc, kc, pieces):
        return mb * kc * esz + mb * nc * 4 * (2 if pieces > 1 else 1) + stages * kc * nc * esz + mb * nc * out_bytes
    # the longest K piece that one unit x unit block admits
    fixed = unit * unit * (8 + out_bytes)
    Kc = min(K, wram // (unit * esz), max(0, nram - fixed) // (unit * esz * (1 + stages)))
    if Kc < 1:
        _decline(f"a {unit}x{unit} block does not fit NRAM ({nram} bytes usable)")
    pieces = -(-K // Kc)
    Nc = unit
    if pieces == 1:  # as many columns as WRAM and NRAM admit, no more than there are
        nc = min(wram // (K * esz), (nram - unit * K * esz) // (unit * 4 + stages * K * esz + unit * out_bytes))
        if ncap is not None:
            nc = min(nc, -(-ncap // unit) * unit)
        Nc = max(unit, nc // unit * unit)
    per_row = nram_use(1, Nc, Kc, pieces) - stages * Kc * Nc * esz
    Mb = (nram - stages * Kc * Nc * esz) // per_row // unit * unit
    if Mb < unit or nram_use(Mb, Nc, Kc, pieces) > nram or Kc * Nc * esz > wram:  # never: the bounds above
        _decline(f"blocks of {Kc}x{Nc} do not fit WRAM and NRAM")
    return Kc, Nc, Mb


def _base(s: Sym) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in s.name.split("#")[0]).removeprefix("xpiler_")


def _sub_op(op, fixed):
    return dataclasses.replace(op, index=op.index.subst(fixed))


def _text(d: Dim) -> str:
    c = d.cap()
    return str(c) if c is not None else "?"


def _needs_epilogue(g) -> bool:
    identity = isinstance(g.epilogue, TOp) and g.epilogue.op == HOLE and g.init is None
    return not (identity and g.acc == T.F32 and g.c.dtype == T.F32)


def _b_path(g, Nd: Dim, K: Dim) -> str:
    sn, sk = Nd.stride(g.b.index), K.stride(g.b.index)
    if sn is not None and sk is not None and (sn == 1 or not Nd.syms):
        return "direct"
    if sn is not None and sk == 1:
        return "transpose"
    return "packed"


# --------------------------------------------------------------------------- emission
class _Emitter:
    def __init__(self, p: Plan, names: IRNames):
        self.p, self.names, self.nm = p, names, names.namer
        self.decls, self.used = [], {"__bang_matmul", "__memcpy"}

    def var(self, base, t=I32) -> N.Var:
        return N.Var(self.nm.fresh(base), t)

    def array(self, base, elem, count, scope="nram") -> N.Var:
        v = self.var(base, T.PointerType(elem, scope))
        self.decls.append(N.Decl(v.name, T.ArrayType(elem, (_c(count),), scope), None, scope,
                                 (f"alignas({self.p.align})",)))
        return v

    def copy_in(self, op, form: Lin, rows: Dim, cols: Dim, r0, rb, c0, cb, dst: N.Var, stride, direction,
                env) -> list:
        """dst[r * stride + c] = op[form] for r < rb, c < cb (rows/cols offset by r0/c0):
        one strided __memcpy when the block's columns are contiguous, else scalar code."""
        sr, sc = rows.stride(form), cols.stride(form)
        esz = T.byte_size(op.dtype)
        if sr is not None and sc is not None and (sc == 1 or not cols.syms):
            base = lin_ir(form.subst({s: Lin() for s in rows.syms + cols.syms}), env, self.names)
            src = N.Binary("+", N.Var(op.buf), _op("+", base, _op("+", _op("*", r0, _c(sr)), c0)))
            return [N.Dma(dst, src, _op("*", cb, _c(esz)), direction,
                          (_op("*", stride, _c(esz)), _c(sr * esz), _op("-", rb, _c(1))))]
        r, c = self.var("xpiler_r"), self.var("xpiler_c")
        at = {**env, **rows.values(_op("+", r0, r)), **cols.values(_op("+", c0, c))}
        put = N.Assign(N.Load(dst, _op("+", _op("*", r, stride), c)),
                       N.Load(N.Var(op.buf), lin_ir(form, at, self.names)))
        return [_for(r.name, rb, [_for(c.name, cb, [put])])]

    def load_b(self, env, k0, kb, n0, nb, np_, rhs) -> list:
        p, g = self.p, self.p.g
        path = _b_path(g, p.N, p.K)
        if path == "direct":  # rows of B straight into WRAM
            return self.copy_in(g.b, g.b.index, p.K, p.N, k0, kb, n0, nb, rhs, np_, "GDRAM2WRAM", env)
        stage = self.stage_b
        if path == "transpose":  # B is [N][K]: copy [np][kb] rows, transpose to [kb][np]
            out = self.copy_in(g.b, g.b.index, p.N, p.K, n0, nb, k0, kb, self.stage_t, kb, "GDRAM2NRAM", env)
            out.append(N.ExprStmt(N.Call("__bang_transpose", (stage, self.stage_t, np_, kb))))
            self.used.add("__bang_transpose")
        else:
            out = self.copy_in(g.b, g.b.index, p.K, p.N, k0, kb, n0, nb, stage, np_, "", env)
        esz = T.byte_size(p.op_t)
        return out + [N.Dma(rhs, stage, _op("*", _op("*", kb, np_), _c(esz)), "NRAM2WRAM")]


def _kernel(p: Plan, names: IRNames) -> tuple:
    g, em = p.g, _Emitter(p, names)
    pieces = -(-p.K.cap() // p.Kc)
    lhs = em.array("xpiler_lhs", p.op_t, p.Mb * p.Kc)
    rhs = em.array("xpiler_rhs", p.op_t, p.Kc * p.Nc, "wram")
    dst = em.array("xpiler_dst", T.F32, p.Mb * p.Nc)
    part = em.array("xpiler_part", T.F32, p.Mb * p.Nc) if pieces > 1 else None
    path = _b_path(g, p.N, p.K)
    if path != "direct":
        em.stage_b = em.array("xpiler_bstage", p.op_t, p.Kc * p.Nc)
        if path == "transpose":
            em.stage_t = em.array("xpiler_bt", p.op_t, p.Kc * p.Nc)
    staged_out = _needs_epilogue(g) and g.c.dtype != T.F32
    out = em.array("xpiler_out", g.c.dtype, p.Mb * p.Nc) if staged_out else dst

    # work items: (batch point, column block, row block), rows fastest
    head = []

    def named(base, e, t=I32):  # a run-time value gets a name, a constant stays inline
        if isinstance(try_fold(e), int):
            return _fold(e, t)
        x = em.var(base, t)
        head.append(N.Decl(x.name, t, e))
        return x
    Mx, Nx = named("xpiler_M", p.M.extent()), named("xpiler_N", p.N.extent())
    IB = named("xpiler_row_blocks", _op("/", _op("+", Mx, _c(p.Mb - 1)), _c(p.Mb)))
    JB = named("xpiler_col_blocks", _op("/", _op("+", Nx, _c(p.Nc - 1)), _c(p.Nc)))
    total = N.Cast(I64, _op("*", IB, JB), "c")
    bext = [named("xpiler_" + _base(d.syms[0]) + "_n", d.extent()) for d in p.batch]
    for e in bext:
        total = _op("*", total, N.Cast(I64, e, "c"), I64)
    v = {k: em.var(f"xpiler_{k}", I64) for k in ("items", "per", "begin", "end", "item", "loaded", "q", "bq")}
    task, tdim = N.Cast(I64, N.Special("taskId"), "c"), N.Cast(I64, N.Special("taskDim"), "c")
    head += [N.Decl(v["items"].name, I64, _fold(total, I64)),
            N.Decl(v["per"].name, I64, N.Binary("/", N.Binary("+", v["items"], N.Binary("-", tdim, _c(1, I64))), tdim)),
            N.Decl(v["begin"].name, I64, N.Binary("*", task, v["per"])),
            N.Decl(v["end"].name, I64, _min(N.Binary("+", v["begin"], v["per"]), v["items"], I64))]
    if pieces == 1:  # which B block WRAM holds (the item's q)
        head.append(N.Decl(v["loaded"].name, I64, _c(-1, I64)))
    ib, jb = em.var("xpiler_ib"), em.var("xpiler_jb")
    m0, mb, mp = em.var("xpiler_m0"), em.var("xpiler_mb"), em.var("xpiler_mp")
    n0, nb, np_ = em.var("xpiler_n0"), em.var("xpiler_nb"), em.var("xpiler_np")
    body = [N.Decl(ib.name, I32, N.Cast(I32, N.Binary("%", v["item"], N.Cast(I64, IB, "c")), "c")),
            N.Decl(v["q"].name, I64, N.Binary("/", v["item"], N.Cast(I64, IB, "c"))),
            N.Decl(jb.name, I32, N.Cast(I32, N.Binary("%", v["q"], N.Cast(I64, JB, "c")), "c"))]
    if p.batch:
        body.append(N.Decl(v["bq"].name, I64, N.Binary("/", v["q"], N.Cast(I64, JB, "c"))))
    env = {}
    rest = v["bq"]
    for d, e in reversed(list(zip(p.batch, bext))):  # innermost batch counter first
        x = em.var("xpiler_" + _base(d.syms[0]))
        ext = N.Cast(I64, e, "c")
        body.append(N.Decl(x.name, I32, N.Cast(I32, N.Binary("%", rest, ext) if d is not p.batch[0] else rest, "c")))
        rest = N.Binary("/", rest, ext)
        env[d.syms[0]] = x
    body += [N.Decl(m0.name, I32, N.Binary("*", ib, _c(p.Mb))),
             N.Decl(mb.name, I32, _min(_c(p.Mb), N.Binary("-", Mx, m0))),
             N.Decl(mp.name, I32, _round_up(mb, p.unit)),
             N.Decl(n0.name, I32, N.Binary("*", jb, _c(p.Nc))),
             N.Decl(nb.name, I32, _min(_c(p.Nc), N.Binary("-", Nx, n0))),
             N.Decl(np_.name, I32, _round_up(nb, p.unit))]

    def step(k0, kb, into):
        load_b = em.load_b(env, k0, kb, n0, nb, np_, rhs)
        if pieces == 1:  # the same B block as the task's previous item: keep it
            load_b = [N.If(N.Binary("!=", v["q"], v["loaded"]),
                           N.Block(tuple(load_b) + (N.Assign(v["loaded"], v["q"]),)))]
        load_a = em.copy_in(g.a, g.a.index, p.M, p.K, m0, mb, k0, kb, lhs, kb, "GDRAM2NRAM", env)
        return load_b + load_a + [N.ExprStmt(N.Call("__bang_matmul", (into, lhs, rhs, mp, kb, np_)))]

    if pieces == 1:
        body += step(_c(0), _c(p.Kc), dst)
    else:
        k0, kb = em.var("xpiler_k0"), em.var("xpiler_kb")
        count = _op("*", mp, np_)
        em.used |= {"__bang_write_zero", "__bang_add"}
        body.append(N.ExprStmt(N.Call("__bang_write_zero", (dst, count))))
        inner = [N.Decl(kb.name, I32, _min(_c(p.Kc), N.Binary("-", _c(p.K.cap()), k0)))] + step(k0, kb, part) + \
            [N.ExprStmt(N.Call("__bang_add", (dst, dst, part, count)))]
        body.append(_for(k0.name, _c(p.K.cap()), inner, step=_c(p.Kc)))
    body += _store(p, em, env, dst, out, m0, mb, n0, nb, np_)
    loop = N.For(v["item"].name, I64, v["begin"], "<", v["end"], _c(1, I64), N.Block(tuple(body)))
    return em.decls + head + [loop], sorted(em.used)


def _store(p, em, env, dst, out, m0, mb, n0, nb, np_) -> list:
    """The epilogue over the block (scalar code) and the copy to C."""
    g, names = p.g, em.names
    stmts = []
    form = g.c.index
    sr, sc = p.M.stride(form), p.N.stride(form)
    direct = sr is not None and sc is not None and (sc == 1 or not p.N.syms)
    r, c = em.var("xpiler_r"), em.var("xpiler_c")
    at = {**env, **p.M.values(N.Binary("+", m0, r)), **p.N.values(N.Binary("+", n0, c))}
    pos = N.Binary("+", N.Binary("*", r, np_), c)
    acc = N.Load(dst, pos)
    hole = acc if g.acc == T.F32 else N.Cast(g.acc, acc, "c")
    if g.init is not None:
        hole = N.Binary("+", term_ir(g.init, at, names, hole), hole)
    value = term_ir(g.epilogue, at, names, hole)
    if not direct:  # scalar stores straight from the block
        put = N.Assign(N.Load(N.Var(g.c.buf), lin_ir(form, at, names)), value)
        return [_for(r.name, mb, [_for(c.name, nb, [put])])]
    if _needs_epilogue(g):
        stmts.append(_for(r.name, mb, [_for(c.name, nb, [N.Assign(N.Load(out, pos), value)])]))
    esz = T.byte_size(g.c.dtype)
    base = lin_ir(form.subst({s: Lin() for s in p.M.syms + p.N.syms}), env, names)
    at_c = N.Binary("+", N.Var(g.c.buf), _op("+", base, _op("+", _op("*", m0, _c(sr)), n0)))
    stmts.append(N.Dma(at_c, out, _op("*", nb, _c(esz)), "NRAM2GDRAM",
                       (_c(sr * esz), _op("*", np_, _c(esz)), _op("-", mb, _c(1)))))
    return stmts


# --------------------------------------------------------------------------- entry
def tensorize_mlu_gemm(canon, g, limits: dict, task_dim: int = 16) -> tuple:
    """(statements after the phase's prelude, intrinsics, notes) for the phase whose
    GEMM ``g`` match_gemm found; Declined otherwise."""
    from ...platforms.registry import lookup

    p = plan(g, limits, lookup("mlu", "__bang_matmul"), task_dim)
    stmts, used = _kernel(p, IRNames(Namer(names_in(canon.program))))
    return stmts, used, p.notes


@dataclasses.dataclass
class Lowering:
    """What _lower_mlu takes (the fields of tensorize_mlu.Result) and whether it is a
    matrix-vector product, which only pays where the vector tensorizers decline (its
    missing dimension is padded to 128 bytes)."""
    stmts: tuple
    intrinsics: tuple
    reason: str
    vector: bool


def lower_gemm_phase(canon, ph, kname: str, limits: dict, consts: dict, task_dim: int, notes: list):
    """``tensorize_mlu_gemm`` for _lower_mlu: a Lowering or None. A phase the matcher
    does not take is not a GEMM (no note: the other tensorizers may take it); a GEMM
    this pass declines gets a note with the reason."""
    try:
        g = match_gemm(summarize(ph.loops, ph.body, ph.prelude, canon.function.params, consts),
                       vectors=True, loop_guards=True)
    except Declined:
        return None
    try:
        stmts, used, why = tensorize_mlu_gemm(canon, g, limits, task_dim)
    except Declined as e:
        notes.append(f"{kname}: no __bang_matmul ({e.reason})")
        return None
    vector = not any(r == "row" for r in g.roles.values()) or not any(r == "col" for r in g.roles.values())
    return Lowering(tuple(stmts), tuple(used), "; ".join(why), vector)
