"""Tensorization for the CPU: an integer GEMM-like parallel nest becomes AVX-512 VNNI dot
products (``_mm512_dpwssd_epi32``).

gemm_match.py recognizes the nest. Operands of 8 or 16 bits (int8, uint8, int16) are
widened to int16 while they are packed: A by rows and B by columns, each row/column
contiguous along the (flattened) reduction and zero-padded to a multiple of 32, so every
output element is a sequence of 32-pair ``dpwssd`` steps and one horizontal sum, with no
remainder loop (the padding contributes 0). Widening to int16 handles every signedness
(``dpbusd`` would need one unsigned and one signed byte operand). The int32 sum is exact,
which the source's accumulation also is only below its own type's limit: checked
(K * max|a| * max|b| below 2^24 for a float32 accumulator, 2^31 otherwise), else declined.
"""
from __future__ import annotations

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ..base import Declined, Namer, names_in
from .affine import Lin
from .gemm_match import IRNames, guard_ir, lin_ir, match_gemm, summarize, term_ir
from .phases import Loop, index_decls

PASS = "tensorize"
LANES = 32  # int16 pairs per 512-bit dpwssd step
TOP = {"int8": 128, "uint8": 255, "int16": 32768}
M512I = T.VectorType(T.I64, 8, "__m512i")  # as the front end types it (platforms/cpu.py)
I32 = T.I32


def _decline(reason):
    raise Declined(PASS, reason)


def _nest(syms, names, inner: list) -> list:
    for s in reversed(syms):
        inner = [N.For(names.var(s).name, I32, N.Const(0, I32), "<", N.Const(s.extent, I32), N.Const(1, I32),
                       N.Block(tuple(inner)))]
    return inner


def _flat(syms) -> Lin:
    """The row-major position of a point of the box of ``syms``."""
    out, w = Lin(), 1
    for s in reversed(syms):
        out = out + Lin.of(s, w)
        w *= s.extent
    return out


def tensorize_cpu_nest(canon, loops, body, prelude, consts: dict) -> tuple:
    """(statements replacing the nest, intrinsics, notes); Declined otherwise."""
    g = match_gemm(summarize(loops, body, prelude, canon.function.params, consts))
    for t in (g.a.dtype, g.b.dtype):
        if t.name not in TOP:
            _decline(f"VNNI takes integer operands of 8 or 16 bits, not {t.name}")
    kext = 1
    for s in g.red:
        kext *= s.extent
    limit = 1 << (24 if g.acc == T.F32 else 53 if g.acc == T.F64 else 31)
    if kext * TOP[g.a.dtype.name] * TOP[g.b.dtype.name] >= min(limit, 1 << 31):
        _decline(f"sums of {kext} {g.a.dtype.name} x {g.b.dtype.name} products may not be exact")
    guard_syms = set().union(*(c.lin.syms for c in g.guard)) if g.guard else set()
    # outer-to-inner as the output is laid out, so packed rows are visited in memory order
    rows = sorted((s for s, r in g.roles.items() if r == "row"), key=lambda s: -abs(g.c.index.coef(s)))
    cols = sorted((s for s, r in g.roles.items() if r == "col"), key=lambda s: -abs(g.c.index.coef(s)))
    if any(s.extent is None or s in guard_syms for s in rows + cols):
        _decline("a row or column extent is not a constant (or is bounded by a condition)")
    psyms = [s for s, _ in g.psyms]
    sub = {s: Lin() for s, l in g.psyms if g.roles.get(s) == "none" and s not in guard_syms
           and isinstance(try_fold(l.extent), int)}  # iterations that store the same values
    batch_p = [(s, l) for s, l in g.psyms if g.roles.get(s) in ("batch", "none") and s not in sub]
    batch_d = [s for s, r in g.roles.items() if r == "batch" and s not in psyms]
    m = n = 1
    for s in rows:
        m *= s.extent
    for s in cols:
        n *= s.extent
    kp = -(-kext // LANES) * LANES
    names = IRNames(Namer(names_in(canon.program)))
    nm = names.namer
    pa, pb = (N.Var(nm.fresh(x), T.PointerType(T.I16)) for x in ("xpiler_pa", "xpiler_pb"))
    ri, ci, k0 = (N.Var(nm.fresh(x), I32) for x in ("xpiler_ri", "xpiler_ci", "xpiler_k0"))
    acc, total = N.Var(nm.fresh("xpiler_acc"), M512I), N.Var(nm.fresh("xpiler_sum"), I32)
    lanes, t = N.Var(nm.fresh("xpiler_lanes"), T.PointerType(I32)), N.Var(nm.fresh("xpiler_t"), I32)
    a_idx, b_idx, c_idx = (f.subst(sub) for f in (g.a.index, g.b.index, g.c.index))
    kflat = _flat(g.red)

    def pack(buf, idx, outer, dst):
        """dst[outer * kp + k] = (int16) buf[idx] over the box of outer x reduction; zeros after K."""
        pos = lin_ir(_flat(outer).scale(kp), {}, names)
        put = N.Assign(N.Load(dst, N.Binary("+", pos, lin_ir(kflat, {}, names))),
                       N.Cast(T.I16, N.Load(N.Var(buf), lin_ir(idx, {}, names)), "c"))
        stmts = _nest(outer + list(g.red), names, [put])
        if kp > kext:
            z = N.Var(nm.fresh("xpiler_z"), I32)
            zero = N.Assign(N.Load(dst, N.Binary("+", pos, z)), N.Const(0, T.I16))
            stmts += _nest(outer, names, [N.For(z.name, I32, N.Const(kext, I32), "<", N.Const(kp, I32),
                                                N.Const(1, I32), N.Block((zero,)))])
        return stmts

    def alloc(v, count):
        size = N.Binary("*", N.Const(count, T.I64), N.SizeOf(T.I16))
        return N.Decl(v.name, v.dtype, N.Cast(v.dtype, N.Call("malloc", (size,)), "c"))

    step = N.Assign(acc, N.Call("_mm512_dpwssd_epi32", (
        acc, N.Call("_mm512_loadu_si512", (N.Binary("+", pa, N.Binary("+", N.Binary("*", ri, N.Const(kp, I32)), k0)),)),
        N.Call("_mm512_loadu_si512", (N.Binary("+", pb, N.Binary("+", N.Binary("*", ci, N.Const(kp, I32)), k0)),)))))
    sum_t = N.Var(total.name, I32)
    hole = sum_t if g.acc == I32 else N.Cast(g.acc, sum_t, "c")
    if g.init is not None:
        hole = N.Binary("+", term_ir(_subst(g.init, sub), {}, names, hole), hole)
    value = term_ir(_subst(g.epilogue, sub), {}, names, hole)
    row_loops = [Loop(names.var(s).name, I32, N.Const(0, I32), N.Const(1, I32), N.Const(s.extent, I32)) for s in rows]
    col_loops = [Loop(names.var(s).name, I32, N.Const(0, I32), N.Const(1, I32), N.Const(s.extent, I32)) for s in cols]
    dot = N.For(ci.name, I32, N.Const(0, I32), "<", N.Const(n, I32), N.Const(1, I32), N.Block(
        tuple(index_decls(col_loops, ci)) + (
            N.Decl(acc.name, M512I, N.Call("_mm512_setzero_si512", ())),
            N.For(k0.name, I32, N.Const(0, I32), "<", N.Const(kp, I32), N.Const(LANES, I32), N.Block((step,))),
            # the horizontal sum through memory: SIMDe (no AVX-512 here) lacks
            # _mm512_reduce_add_epi32, and GCC expands that to the same shuffles anyway
            N.Decl(lanes.name, T.ArrayType(I32, (N.Const(16, I32),))),
            N.ExprStmt(N.Call("_mm512_storeu_si512", (lanes, acc))),
            N.Decl(total.name, I32, N.Const(0, I32)),
            N.For(t.name, I32, N.Const(0, I32), "<", N.Const(16, I32), N.Const(1, I32),
                  N.Block((N.Assign(total, N.Load(lanes, t), "+="),))),
            N.Assign(N.Load(N.Var(g.c.buf), lin_ir(c_idx, {}, names)), value))))
    rows_loop = N.For(ri.name, I32, N.Const(0, I32), "<", N.Const(m, I32), N.Const(1, I32),
                      N.Block(tuple(index_decls(row_loops, ri)) + (dot,)))
    inner = [alloc(pa, m * kp), alloc(pb, n * kp)] + pack(g.a.buf, a_idx, rows, pa) + pack(g.b.buf, b_idx, cols, pb) \
        + [N.Pragma("#pragma omp parallel for"), rows_loop,
           N.ExprStmt(N.Call("free", (pa,))), N.ExprStmt(N.Call("free", (pb,)))]
    if g.guard:

        inner = [N.If(guard_ir(g.guard, {}, names), N.Block(tuple(inner)))]
    inner = _nest(batch_d, names, inner)
    for s, l in reversed(batch_p):
        inner = [N.For(names.var(s).name, I32, N.Const(0, I32), "<", l.extent, N.Const(1, I32), N.Block(tuple(inner)))]
    from ...ir.visitor import walk
    from ...platforms.registry import lookup

    used = sorted({n.func for st in inner for n in walk(st) if isinstance(n, N.Call) and lookup("cpu", n.func)})
    note = (f"VNNI _mm512_dpwssd_epi32 dot products of a {m}x{n}x{kext} {g.a.dtype.name} x {g.b.dtype.name} GEMM "
            f"(operands packed to int16, K padded to {kp})")
    return [N.Block(tuple(inner))], used, [note]


def _subst(t, sub):
    from .gemm_match import subst

    return subst(t, sub) if t is not None else None
