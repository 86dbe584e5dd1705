"""Shared-memory tiling for CUDA and HIP: the classic tiled GEMM for a GEMM-like phase that
the matrix units decline (float or integer operands on CUDA, shapes that are not
multiples of 16, guarded partial tiles, accumulations float32 cannot stand for).

gemm_match.py recognizes ``C[c] = epilogue(init + sum_k A[a] * B[b])``; counters of one
role that address memory as one merge (as for WMMA). Then:
- a block of T x T threads computes a T x T tile of the output: ``threadIdx.x`` walks
  one column counter, ``threadIdx.y`` one row counter; the grid is (column tiles, row
  tiles, the other output counters flattened), or one flat dimension when that does not
  provably fit the platform's grid limits;
- one reduction counter is strip-mined by T (loops/split.py with the guard remainder:
  k = kt + e, e in [0, T), kept where k < K); the other reduction counters are loops
  around it. Per K tile each thread copies one element of the A tile and one of the B
  tile into ``__shared__`` (zero where the element lies outside the ranges), a barrier,
  T multiply-adds from shared memory, a barrier; then the guarded epilogue store.

Why the result equals the source's:
- every thread accumulates, in the source's accumulation type, the products of the same
  k in increasing order (the strip-mined counter is the innermost-or-largest reduction
  counter; the K tiles run in order); zero-filled elements add exact zeros. Integer
  products of narrow sources are exact in the (wider) accumulator; float sums keep the
  source's order when the tiled counter is the source's innermost one;
- ``init`` is added first, as a loop ``acc = init; acc += ...`` does;
- a copy reads only elements the source reads: a row of A is loaded only when the row is
  in range and satisfies the guard's conditions on rows (and the other output counters),
  and some column satisfies the conditions on columns (checked here; likewise for B);
- the barriers sit outside every condition and the K loops have constant bounds: every
  thread of the block reaches each barrier equally often.

``tile_gpu_phase`` returns the kernel, or raises Declined with the reason.
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ..base import Declined, Namer, names_in
from .affine import Lin, Sym
from .gemm_match import IRNames, guard_ir, lin_ir, match_gemm, summarize, term_ir
from .phases import Loop, Phase, index_decls
from .tensorize_gpu import _all_forms, _map_lins, _merge, _merged

PASS = "tile"
I32, I64 = T.I32, T.I64


def _decline(reason):
    raise Declined(PASS, reason)


@dataclasses.dataclass
class Layout:
    row: Sym  # the counter along threadIdx.y
    col: Sym  # the counter along threadIdx.x
    red: Sym  # the strip-mined reduction counter
    outer: list  # the other reduction counters (loops around the K tiles), outermost first
    batch: list  # the other output counters: enumerated by the grid
    forms: tuple  # A, B, C indices, epilogue and init terms over the counters above
    guard: tuple  # Conds over output counters
    extents: dict  # Sym -> N.Expr (trip count; an expression for run-time parallel loops)


# --------------------------------------------------------------------------- layout
def layout(g) -> Layout:
    loops = dict(g.psyms)
    order = list(dict.fromkeys([s for s, _ in g.psyms] + list(g.dom) + list(g.red)))
    forms = _all_forms(g) + [c.lin for c in g.guard]
    merges, merged = [], {}
    for role in ("row", "col", "red", "batch"):
        own = [s for s in order if g.roles.get(s) == role]
        # partial tiles are guarded anyway, so guarded counters may merge too: the guard's
        # forms take part in the test, so they are rewritten consistently
        syms, m, forms = _merge([s for s in own if s.extent is not None], forms)
        merges += m
        merged[role] = syms + [s for s in own if s.extent is None]
    guard_syms = set().union(*(c.lin.syms for c in g.guard)) if g.guard else set()
    sub = {}
    for s in order:
        if g.roles.get(s) == "none":
            if s.extent is not None and s.extent > 0 and s not in guard_syms:
                sub[s] = Lin()  # every iteration stores the same values: one suffices
            else:
                merged["batch"].append(s)
    for role in merged:
        for s in merged[role]:
            if s.extent == 1:
                sub[s] = Lin()
        merged[role] = [s for s in merged[role] if s.extent != 1]
    if not merged["row"] or not merged["col"] or not merged["red"]:
        _decline("no row, column or reduction counter with more than one point")

    def rewrite(f: Lin) -> Lin:
        for u, v, w in merges:
            if f.coef(u) or f.coef(v):
                f = _merged(f, u, v, w)
        return f.subst(sub)
    fa, fb, fc = (rewrite(f) for f in (g.a.index, g.b.index, g.c.index))
    big = 1 << 62
    # threadIdx.x along the column with the smallest stride in C: coalesced stores
    col = min(merged["col"], key=lambda s: (abs(fc.coef(s)) or big, -(s.extent or big)))
    row = min(merged["row"], key=lambda s: (-(s.extent or big), abs(fc.coef(s)) or big))
    reds = merged["red"]
    red = max(reds, key=lambda s: (s.extent, reds.index(s)))  # the largest; ties: the inner
    batch = [s for s in merged["batch"] + merged["row"] + merged["col"] if s not in (row, col)]
    extents = {}
    for s in [row, col] + batch + reds:
        extents[s] = loops[s].extent if s.extent is None else N.Const(s.extent, I64)
    guard = tuple(dataclasses.replace(c, lin=rewrite(c.lin)) for c in g.guard)
    forms = (fa, fb, fc, _map_lins(g.epilogue, rewrite), _map_lins(g.init, rewrite))
    return Layout(row, col, red, [s for s in reds if s is not red], batch, forms, guard, extents)


def _holds(c, v: int) -> bool:
    """Condition ``c`` (over one counter) at counter value ``v``."""
    x = c.lin.const + sum(k * v for _, k in c.lin.terms)
    return {"<": x < 0, "<=": x <= 0, "==": x == 0, "!=": x != 0}[c.op]


def _somewhere(conds: list, s: Sym) -> bool:
    """Whether some value of ``s`` in its range satisfies every condition (each over
    ``s`` alone); a run-time or very large range is tried at 0 only (conservative)."""
    values = range(s.extent) if s.extent is not None and s.extent <= 1 << 16 else (0,)
    return any(all(_holds(c, v) for c in conds) for v in values)


def _sides(lay: Layout) -> tuple:
    """The guard split into conditions on (the other output counters only, rows, columns);
    a copy of an A (B) element obeys the first two (the first and the last)."""
    grid, rows, cols = [], [], []
    for c in lay.guard:
        syms = c.lin.syms
        if lay.row in syms and lay.col in syms:
            _decline("the guard couples rows and columns (a copy could read what the source does not)")
        if (lay.row in syms or lay.col in syms) and len(syms) > 1:
            _decline("a guard on rows or columns also depends on another counter")
        (rows if lay.row in syms else cols if lay.col in syms else grid).append(c)
    if not _somewhere(cols, lay.col) or not _somewhere(rows, lay.row):
        _decline("the guard may exclude every column (or row): the source would read no operand there")
    return grid, rows, cols


# --------------------------------------------------------------------------- IR helpers
def _c(v: int, t=I32) -> N.Const:
    return N.Const(v, t)


def _add(a, b):
    return N.Binary("+", a, b)


def _mul(a, b):
    return N.Binary("*", a, b)


def _and(conds: list):
    e = None
    for c in conds:
        if c is not None:
            e = c if e is None else N.Binary("&&", e, c)
    return e


def _small(e: N.Expr) -> N.Expr:
    """A constant that fits int as an int (readable launch sizes and bounds)."""
    v = try_fold(e)
    return _c(v) if isinstance(v, int) and abs(v) < 1 << 31 else e


def _below(x: N.Expr, extent: N.Expr, t: int, conds=()) -> N.Expr | None:
    """``x < extent``, or None where the tiles cover the range exactly or one of
    ``conds`` (over x's counter alone: the source's guard) already bounds it."""
    v = try_fold(extent)
    if isinstance(v, int) and (v % t == 0 or any(_bound(c) is not None and _bound(c) <= v for c in conds)):
        return None
    return N.Binary("<", x, _small(extent))


def _bound(c) -> int | None:
    """n where condition ``c`` on one counter s reads s < n, else None."""
    if len(c.lin.terms) != 1 or c.lin.terms[0][1] <= 0 or c.op not in ("<", "<="):
        return None
    a, k = c.lin.terms[0][1], c.lin.const
    return -(k // a) if c.op == "<" else -k // a + 1  # a*s + k < 0 <=> s < ceil(-k / a)


def _zero(t: T.Type) -> N.Expr:
    if t == T.F32:
        return N.Const(0.0, T.F32)
    return N.Cast(t, N.Const(0.0, T.F32) if t.is_float else _c(0), "c")  # half converts from float


def _as(t: T.Type, x: N.Expr, src: T.Type) -> N.Expr:
    return x if t == src else N.Cast(t, x, "c")


def _tiles(extent: N.Expr, t: int) -> N.Expr:
    v = try_fold(extent)
    if isinstance(v, int):
        return N.Const(max(-(-v // t), 0), I64)
    return N.Binary("/", _add(extent, _c(t - 1, I64)), _c(t, I64))


# --------------------------------------------------------------------------- the kernel
def _grid(lay: Layout, names: IRNames, t: int, limits: dict):
    """(declarations of the tile numbers and the batch counters, (row tile, column tile)
    variables, grid dims)."""
    rt = N.Var(names.namer.fresh("xpiler_row_tile"), I32)
    ct = N.Var(names.namer.fresh("xpiler_col_tile"), I32)
    batch = [Loop(names.var(s).name, I32, _c(0), _c(1), lay.extents[s]) for s in lay.batch]
    nb = Phase(batch, N.Block(()), []).total() if batch else _c(1, I64)
    nr, nc = _tiles(lay.extents[lay.row], t), _tiles(lay.extents[lay.col], t)
    dims = [try_fold(e) for e in (nc, nr, nb)]
    top = limits.get("max_grid_dim", [2147483647, 65535, 65535])
    if all(isinstance(v, int) and v <= m for v, m in zip(dims, top)):
        decls = [N.Decl(ct.name, I32, N.Cast(I32, N.Special("blockIdx.x"), "c")),
                 N.Decl(rt.name, I32, N.Cast(I32, N.Special("blockIdx.y"), "c"))]
        if batch:
            decls += index_decls(batch, N.Cast(I64, N.Special("blockIdx.z"), "c"))
        return decls, (rt, ct), (nc, nr, nb)
    # a run-time or large count: one flat dimension of blocks, decomposed as phases are
    flat = batch + [Loop(rt.name, I32, _c(0), _c(1), nr), Loop(ct.name, I32, _c(0), _c(1), nc)]
    total = Phase(flat, N.Block(()), []).total()
    tv = try_fold(total)
    if isinstance(tv, int) and tv > top[0]:
        _decline(f"{tv} blocks exceed the grid")
    return index_decls(flat, N.Cast(I64, N.Special("blockIdx.x"), "c")), (rt, ct), (total, _c(1, I64), _c(1, I64))


def tile_kernel(g, ph, names: IRNames, t: int, limits: dict):
    """(body statements, grid dims, block dims, notes) of the tiled kernel for Gemm ``g``."""
    lay = layout(g)
    grid_conds, row_conds, col_conds = _sides(lay)
    fa, fb, fc, epi, init = lay.forms
    ea, eb, acc_t = g.a.dtype, g.b.dtype, g.acc
    cap = limits.get("shared_mem_per_block_static") or limits.get("shared_mem_per_block") or 48 * 1024
    if t * t > limits.get("max_threads_per_block", 1024) or t * t * (T.byte_size(ea) + T.byte_size(eb)) > cap:
        _decline(f"a {t}x{t} tile exceeds the block's threads or shared memory")
    sa = N.Var(names.namer.fresh(f"xpiler_s{g.a.buf}"), T.PointerType(ea))
    sb = N.Var(names.namer.fresh(f"xpiler_s{g.b.buf}"), T.PointerType(eb))
    shared = [N.Decl(v.name, T.ArrayType(e, (_c(t * t),)), None, "shared") for v, e in ((sa, ea), (sb, eb))]
    tx, ty = N.Var(names.namer.fresh("xpiler_tx"), I32), N.Var(names.namer.fresh("xpiler_ty"), I32)
    grid_decls, (rt, ct), dims = _grid(lay, names, t, limits)
    r, c = N.Var(names.namer.fresh("xpiler_row"), I32), N.Var(names.namer.fresh("xpiler_col"), I32)
    kt, e = N.Var(names.namer.fresh("xpiler_kt"), I32), N.Var(names.namer.fresh("xpiler_e"), I32)
    r0, c0 = _mul(rt, _c(t)), _mul(ct, _c(t))
    kext = lay.red.extent
    K = _c(kext)
    out_env = {lay.row: r, lay.col: c}

    # copies: the thread index along the operand's smaller stride walks memory contiguously
    a_t = abs(fa.coef(lay.row)) < abs(fa.coef(lay.red))
    b_t = abs(fb.coef(lay.red)) < abs(fb.coef(lay.col))
    ar, ak = (tx, ty) if a_t else (ty, tx)
    bk, bc = (tx, ty) if b_t else (ty, tx)
    env_a = {lay.row: _add(r0, tx) if a_t else r, lay.red: _add(kt, ak)}
    env_b = {lay.red: _add(kt, bk), lay.col: _add(c0, ty) if b_t else c}
    ka = _below(_add(kt, ak), K, t)
    kb = _below(_add(kt, bk), K, t)
    in_a = _and([_below(env_a[lay.row], lay.extents[lay.row], t, row_conds), ka, guard_ir(grid_conds, {}, names),
                 guard_ir(row_conds, env_a, names)])
    in_b = _and([kb, _below(env_b[lay.col], lay.extents[lay.col], t, col_conds), guard_ir(grid_conds, {}, names),
                 guard_ir(col_conds, env_b, names)])

    def copy(buf, slot, form, env, cond, elem):
        x = N.Load(N.Var(buf), lin_ir(form, env, names))
        return N.Assign(N.Load(slot[0], slot[1]), x if cond is None else N.Select(cond, x, _zero(elem)))
    step = [copy(g.a.buf, (sa, _add(_mul(ar, _c(t)), ak)), fa, env_a, in_a, ea),
            copy(g.b.buf, (sb, _add(_mul(bk, _c(t)), bc)), fb, env_b, in_b, eb),
            N.Barrier("block")]
    prod = _mul(_as(acc_t, N.Load(sa, _add(_mul(ty, _c(t)), e)), ea),
                _as(acc_t, N.Load(sb, _add(_mul(e, _c(t)), tx)), eb))
    acc = N.Var(names.namer.fresh("xpiler_acc"), acc_t)
    step += [N.For(e.name, I32, _c(0), "<", _c(t), _c(1), N.Block((N.Assign(acc, prod, "+="),))),
             N.Barrier("block")]  # the next copy must not overwrite a tile still being read
    loop = N.For(kt.name, I32, _c(0), "<", K, _c(t), N.Block(tuple(step)))
    for s in reversed(lay.outer):
        loop = N.For(names.var(s).name, I32, _c(0), "<", _c(s.extent), _c(1), N.Block((loop,)))

    store_in = _and([_below(r, lay.extents[lay.row], t, row_conds), _below(c, lay.extents[lay.col], t, col_conds),
                     guard_ir(lay.guard, out_env, names)])
    first = _zero(acc_t)
    if init is not None:  # added first, as `acc = init; acc += ...` does; read only where stored
        v = _as(acc_t, term_ir(init, out_env, names, None), init.dtype)
        first = v if store_in is None else N.Select(store_in, v, first)
    put = N.Assign(N.Load(N.Var(g.c.buf), lin_ir(fc, out_env, names)), term_ir(epi, out_env, names, acc))
    body = shared + list(ph.prelude) + [
        N.Decl(tx.name, I32, N.Cast(I32, N.Special("threadIdx.x"), "c")),
        N.Decl(ty.name, I32, N.Cast(I32, N.Special("threadIdx.y"), "c"))] + grid_decls + [
        N.Decl(r.name, I32, _add(r0, ty)), N.Decl(c.name, I32, _add(c0, tx)),
        N.Decl(acc.name, acc_t, first), loop,
        put if store_in is None else N.If(store_in, N.Block((put,)))]
    note = (f"tiled {t}x{t} with __shared__ A/B tiles ({g.a.buf}, {g.b.buf}): rows {_axis(lay, lay.row)}, "
            f"columns {_axis(lay, lay.col)}, K {kext} in {-(-kext // t)} tile(s)"
            + (f", {len(lay.batch)} batch counter(s)" if lay.batch else "") + f", {acc_t.name} accumulation")
    return body, tuple(_small(d) for d in dims), (_c(t), _c(t), _c(1)), [note]


def _axis(lay, s) -> str:
    v = try_fold(lay.extents[s])
    return str(v) if isinstance(v, int) else "?"


def tile_gpu_phase(canon, ph, target: str, kname: str, kparams, consts: dict, t: int):
    """(kernel, launch, notes) for a GEMM-like phase; Declined otherwise."""
    from ...platforms.config import load_platform_config

    if t < 2:
        _decline(f"tile size {t}")
    g = match_gemm(summarize(ph.loops, ph.body, ph.prelude, canon.function.params, consts))
    names = IRNames(Namer(names_in(canon.program)))
    body, grid, block, notes = tile_kernel(g, ph, names, t, load_platform_config(target).get("limits", {}))
    fn = N.Function(kname, kparams, T.VOID, N.Block(tuple(body)), "kernel", False, launch_bounds=(_c(t * t),))
    return fn, (kname, grid, block), notes
