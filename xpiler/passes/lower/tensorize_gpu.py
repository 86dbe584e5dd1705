"""Tensorization for CUDA (WMMA) and HIP (MFMA): a GEMM-like phase becomes a kernel in
which each warp (32 lanes, WMMA m16n16k16) or wave (64 lanes, MFMA 16x16) computes one
16x16 tile of the output.

gemm_match.py recognizes the phase (``C[c] = epilogue(init + sum A[a] * B[b])`` with affine
indices); here the counters are laid out on the matrix unit:
- counters of one role that address memory as one (``i*16 + j`` in every index) merge;
- one row counter and one column counter whose extents are multiples of 16 are split into
  (tile, position in tile); one reduction counter whose extent is a multiple of the
  instruction's K is split likewise;
- every other output counter (parallel ones, batch, the tile numbers) enumerates the
  warps/waves of the grid; the other reduction counters are loops inside the warp.
The phase's guard (over its parallel counters, so uniform per warp) is kept as it is.
Operand values are converted exactly to the instruction's input type (a rounding
conversion declines); the accumulation is float32, which is exact for integer operands
only below 2^24 (checked) and otherwise differs from the source's order of summation by
rounding, as every tiled GEMM does.

``tensorize_gpu_phase`` returns the kernel or the reason it declined; the caller then
tries the shared-memory tiled kernel (tile_gpu.py), else keeps the scalar kernel.
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ...ir.visitor import walk
from ...platforms import cuda as cuda_platform
from ...platforms import hip as hip_platform
from ..base import Declined, Namer, names_in
from .affine import Lin, Sym
from .gemm_match import HOLE, TIdx, TLoad, TOp, IRNames, _exact, guard_ir, lin_ir, match_gemm, summarize, term_ir
from .phases import Loop, Phase, index_decls

PASS = "tensorize"
WAVES_PER_BLOCK = 4  # warps/waves per block: 128 CUDA / 256 HIP threads
I32, I64 = T.I32, T.I64


def _decline(reason):
    raise Declined(PASS, reason)


@dataclasses.dataclass
class Plan:
    unit: dict  # the instruction: m, n, k, elem (A/B input type), name
    grid: list  # [(Sym, extent expr)]: what enumerates warps/waves, outermost first
    inner: list  # [Sym]: reduction loops inside the warp (the K tiles innermost)
    rho: Sym  # row in the tile
    gamma: Sym  # column in the tile
    kappa: Sym  # k in the tile
    forms: tuple  # A, B, C indices, epilogue and init terms over grid, inner and rho/gamma/kappa
    guard: tuple  # Conds over grid counters
    notes: list


# --------------------------------------------------------------------------- planning
def _map_lins(t, fn):
    """``t`` with every index form inside replaced by fn(form)."""
    from .gemm_match import _rebuild

    if t is None:
        return None

    def leaf(n):
        if isinstance(n, TLoad):
            return dataclasses.replace(n, index=fn(n.index))
        if isinstance(n, TIdx):
            return dataclasses.replace(n, lin=fn(n.lin))
        return None
    return _rebuild(t, leaf)


def _all_forms(g) -> list:
    from .gemm_match import nodes

    out = [g.a.index, g.b.index, g.c.index]
    for t in (g.epilogue, g.init):
        if t is not None:
            out += [n.index for n in nodes(t) if isinstance(n, TLoad)]
            out += [n.lin for n in nodes(t) if isinstance(n, TIdx)]
    return out


def _merged(f: Lin, u: Sym, v: Sym, w: Sym) -> Lin:
    """f with u * extent(v) + v replaced by w (valid where coef(u) == extent(v) * coef(v))."""
    c = {s: k for s, k in f.terms if s is not u and s is not v}
    c[w] = f.coef(v)
    return Lin.make(c, f.const)


def _merge(syms: list, forms: list) -> tuple:
    """Merge counters of one role that every index uses as one: (counters, merges)."""
    merges = []
    changed = True
    while changed:
        changed = False
        for u in syms:
            for v in syms:
                if u is v or not all(f.coef(u) == v.extent * f.coef(v) for f in forms):
                    continue
                w = Sym(f"{u.name}*{v.name}", u.extent * v.extent)
                merges.append((u, v, w))
                forms = [_merged(f, u, v, w) for f in forms]
                syms = [s for s in syms if s is not u and s is not v] + [w]
                changed = True
                break
            if changed:
                break
    return syms, merges, forms


def _accumulation(g, kext: int) -> str | None:
    """Why float32 accumulation cannot stand for the source's, or None."""
    a, b = g.a.dtype, g.b.dtype
    if a.is_float or b.is_float:
        return None if g.acc.is_float else f"the source accumulates float products in {g.acc.name}"
    top = {"int8": 128, "uint8": 255, "int16": 32768, "uint16": 65535}
    if a.name not in top or b.name not in top:
        return f"{a.name} x {b.name} products do not fit float32 exactly"
    if kext * top[a.name] * top[b.name] >= 1 << 24:
        return f"sums of {kext} {a.name} x {b.name} products may exceed 2^24 (float32 accumulation would round)"
    return None


def plan(g, units: list) -> Plan:
    psyms = {s for s, _ in g.psyms}
    guard_syms = set().union(*(c.lin.syms for c in g.guard)) if g.guard else set()
    forms = _all_forms(g)
    merges, merged = [], {}
    for role in ("row", "col", "red", "batch"):
        own = [s for s, r in g.roles.items() if r == role]
        # a parallel counter may merge too unless the guard or a run-time extent needs it
        fixed = [s for s in own if s in psyms and (s.extent is None or s in guard_syms)]
        syms, m, forms = _merge([s for s in own if s not in fixed], forms)
        merges += m
        merged[role] = syms + fixed
    fa, fb, fc = forms[:3]
    kext = 1
    for s in g.red:
        kext *= s.extent
    reasons = []
    for unit in units:
        if not (_exact(g.a.dtype, unit["elem"]) and _exact(g.b.dtype, unit["elem"])):
            reasons.append(f"{unit['name']} takes {unit['elem'].name} operands; "
                           f"{g.a.dtype.name} x {g.b.dtype.name} would be rounded")
            continue
        why = _accumulation(g, kext)
        if why:
            reasons.append(why)
            continue

        def pick(role, size, what):
            fits = [s for s in merged.get(role, []) if s.extent is not None and s.extent % size == 0]
            cands = [s for s in fits if s not in guard_syms]  # a guarded tile would be partial
            cands.sort(key=lambda s: (s in psyms, min(abs(f.coef(s)) or 1 << 62 for f in (fa, fb, fc))))
            if cands:
                return cands[0]
            if fits:
                reasons.append(f"the {what}s are bounded by a condition (partial tiles are not tensorized)")
            else:
                reasons.append(f"no {what} extent is a multiple of {size} "
                               f"({', '.join(_extent_text(s) for s in merged.get(role, [])) or 'none'})")
            return None
        row, col, kred = pick("row", unit["m"], "row"), pick("col", unit["n"], "column"), \
            pick("red", unit["k"], "reduction")
        if row is None or col is None or kred is None:
            continue
        rho, gamma, kappa = Sym("rho", unit["m"]), Sym("gamma", unit["n"]), Sym("kappa", unit["k"])
        tiles = {s: Sym(s.name + "/tile", s.extent // size) for s, size in
                 ((row, unit["m"]), (col, unit["n"]), (kred, unit["k"]))}
        sub = {row: Lin.of(tiles[row], unit["m"]) + Lin.of(rho), col: Lin.of(tiles[col], unit["n"]) + Lin.of(gamma),
               kred: Lin.of(tiles[kred], unit["k"]) + Lin.of(kappa)}
        grid = []
        gone = {x for u, v, _ in merges for x in (u, v)}
        for s, l in g.psyms:
            if s in gone:
                continue
            if s in (row, col):
                grid.append((tiles[s], N.Const(tiles[s].extent, I64)))
            elif g.roles.get(s) == "none" and s not in guard_syms and isinstance(try_fold(l.extent), int):
                sub[s] = Lin()  # every iteration stores the same values: one suffices
            else:
                grid.append((s, l.extent))
        for role in ("batch", "row", "col"):
            for s in merged.get(role, []):
                if s not in psyms:
                    t = tiles.get(s, s)
                    grid.append((t, N.Const(t.extent, I64)))
        inner = [s for s in merged["red"] if s is not kred] + [tiles[kred]]
        ones = {s: Lin() for s in [s for s, _ in grid] + inner if s.extent == 1}  # one-point counters
        grid = [(s, e) for s, e in grid if s.extent != 1]
        inner = [s for s in inner if s.extent != 1]

        def rewrite(f: Lin) -> Lin:
            for u, v, w in merges:
                if f.coef(u) or f.coef(v):
                    f = _merged(f, u, v, w)
            return f.subst(sub).subst(ones)
        out = (rewrite(g.a.index), rewrite(g.b.index), rewrite(g.c.index),
               _map_lins(g.epilogue, rewrite), _map_lins(g.init, rewrite))
        notes = [f"{unit['name']} tiles of a {_axis(g, 'row')}x{_axis(g, 'col')}x{kext} GEMM"]
        return Plan(unit, grid, inner, rho, gamma, kappa, out, g.guard, notes)
    _decline("; ".join(dict.fromkeys(reasons)))


def _extent_text(s: Sym) -> str:
    return f"{s.name.split('#')[0]}: {s.extent if s.extent is not None else '?'}"


def _axis(g, role) -> str:
    n = 1
    for s, r in g.roles.items():
        if r == role:
            if s.extent is None:
                return "?"
            n *= s.extent
    return str(n)


# --------------------------------------------------------------------------- IR helpers
def _for(var: N.Var, extent: int, body: list) -> N.For:
    return N.For(var.name, I32, N.Const(0, I32), "<", N.Const(extent, I32), N.Const(1, I32), N.Block(tuple(body)))


def _value(g, epi, init, env, names, acc: N.Expr) -> N.Expr:
    """What is stored for one accumulated element ``acc`` (float32)."""
    v = acc if g.acc == T.F32 else N.Cast(g.acc, acc, "c")
    if init is not None:
        v = N.Binary("+", term_ir(init, env, names, v), v)
    return term_ir(epi, env, names, v)


def _to(elem: T.Type, x: N.Expr, src: T.Type) -> N.Expr:
    """x (of type src) converted exactly to the unit's input type; through float because
    the half types of the runtimes convert from float, not from each other."""
    if src == elem:
        return x
    f = x if src == T.F32 else N.Cast(T.F32, x, "c")
    return f if elem == T.F32 else N.Cast(elem, f, "c")


# --------------------------------------------------------------------------- kernels
def _skeleton(ph, plan, names, lanes: int, tile_body):
    """The kernel: one warp/wave per point of the plan's grid; ``tile_body(lane, warp_in_block,
    env)`` gives the statements computing that point's tile."""
    wave = N.Var(names.namer.fresh("xpiler_wave"), I64)
    lane = N.Var(names.namer.fresh("xpiler_lane"), I32)
    local = N.Var(names.namer.fresh("xpiler_w"), I32)
    tid = N.Special("threadIdx.x")
    loops = [Loop(names.var(s).name, I32, N.Const(0, I32), N.Const(1, I32), ext) for s, ext in plan.grid]
    total = Phase(loops, N.Block(()), []).total() if loops else N.Const(1, I64)
    env = {}
    inner = tile_body(lane, local, env)
    guard = guard_ir(plan.guard, env, names)
    if guard is not None:
        inner = [N.If(guard, N.Block(tuple(inner)))]
    flat = N.Binary("+", N.Binary("*", N.Cast(I64, N.Special("blockIdx.x"), "c"), N.Const(WAVES_PER_BLOCK, I64)),
                    N.Binary("/", tid, N.Const(lanes, I32)))
    uses_local = any(isinstance(n, N.Var) and n.name == local.name for s in inner for n in walk(s))
    body = list(ph.prelude) + [
        N.Decl(wave.name, I64, flat),
        N.Decl(lane.name, I32, N.Binary("%", tid, N.Const(lanes, I32)))] + \
        ([N.Decl(local.name, I32, N.Binary("/", tid, N.Const(lanes, I32)))] if uses_local else []) + [
        N.If(N.Binary("<", wave, total), N.Block(tuple(index_decls(loops, wave)) + tuple(inner)))]
    tv = try_fold(total)
    grid = N.Const(-(-tv // WAVES_PER_BLOCK), I64) if isinstance(tv, int) else \
        N.Binary("/", N.Binary("+", total, N.Const(WAVES_PER_BLOCK - 1, I64)), N.Const(WAVES_PER_BLOCK, I64))
    return body, grid, N.Const(WAVES_PER_BLOCK * lanes, I32)


def _mfma_tile(g, plan, names):
    unit = plan.unit
    suffix = unit["suffix"]
    fa, fb, fc, epi, init = plan.forms

    def body(lane, _local, env):
        vec = T.VectorType(unit["lane_type"], unit["kpl"]) if unit["kpl"] > 1 else None
        acc_t = T.VectorType(T.F32, unit["regs"])
        acc = N.Var(names.namer.fresh("xpiler_acc"), acc_t)
        a = N.Var(names.namer.fresh("xpiler_a"), vec or T.F32)
        b = N.Var(names.namer.fresh("xpiler_b"), vec or T.F32)
        step = []
        for v in range(unit["kpl"]):
            i, k = hip_platform.mfma_operand_coord(suffix, lane, v)
            env_a = {plan.rho: i, plan.kappa: k}
            env_b = {plan.gamma: i, plan.kappa: k}
            xa = _to(unit["lane_type"] if vec else T.F32, N.Load(N.Var(g.a.buf), lin_ir(fa, env_a, names)), g.a.dtype)
            xb = _to(unit["lane_type"] if vec else T.F32, N.Load(N.Var(g.b.buf), lin_ir(fb, env_b, names)), g.b.dtype)
            if vec:
                step += [N.Assign(N.Load(a, N.Const(v, I32)), xa), N.Assign(N.Load(b, N.Const(v, I32)), xb)]
            else:
                step += [N.Decl(a.name, T.F32, xa), N.Decl(b.name, T.F32, xb)]
        if vec:
            step = [N.Decl(a.name, vec), N.Decl(b.name, vec)] + step
        zero = tuple(N.Const(0, I32) for _ in range(3))
        step.append(N.Assign(acc, N.Call(unit["builtin"], (a, b, acc) + zero)))
        loop = step
        for s in reversed(plan.inner):
            loop = [_for(names.var(s), s.extent, loop)]
        out = [N.Decl(acc.name, acc_t, N.InitList((N.Const(0, I32),)))] + loop
        for r in range(unit["regs"]):
            row, col = hip_platform.mfma_result_coord(suffix, lane, r)
            e = {plan.rho: row, plan.gamma: col}
            out.append(N.Assign(N.Load(N.Var(g.c.buf), lin_ir(fc, e, names)),
                                _value(g, epi, init, e, names, N.Load(acc, N.Const(r, I32)))))
        return out
    return body


def _wmma_layout(form: Lin, r: Sym, c: Sym, elem: T.Type, unit) -> tuple | None:
    """(layout, ldm) when the 16x16 tile (r, c) of ``form`` is a row- or column-major
    matrix that load/store_matrix_sync may address (ldm and alignment rules)."""
    sr, sc = form.coef(r), form.coef(c)
    size = T.byte_size(elem)
    if sc == 1 and sr > 0:
        layout, ldm = "row_major", sr
    elif sr == 1 and sc > 0:
        layout, ldm = "col_major", sc
    else:
        return None
    base = form.subst({r: Lin(), c: Lin()})
    align = unit["align_bytes"] // size
    if (ldm * size) % unit["ldm_bytes"] or base.const % align or any(k % align for _, k in base.terms):
        return None
    return layout, ldm


def _wmma_tile(g, plan, names, notes):
    unit = plan.unit
    fa, fb, fc, epi, init = plan.forms
    half = unit["elem"]
    frag = cuda_platform.frag
    direct_a = g.a.dtype == half and _wmma_layout(fa, plan.rho, plan.kappa, half, unit)
    direct_b = g.b.dtype == half and _wmma_layout(fb, plan.kappa, plan.gamma, half, unit)
    identity = isinstance(epi, TOp) and epi.op == HOLE and init is None and g.acc == T.F32
    direct_c = identity and g.c.dtype == T.F32 and _wmma_layout(fc, plan.rho, plan.gamma, T.F32, unit)
    notes.append("WMMA operands: A " + (f"{direct_a[0]} ldm {direct_a[1]}" if direct_a else "staged in shared memory")
                 + ", B " + (f"{direct_b[0]} ldm {direct_b[1]}" if direct_b else "staged in shared memory")
                 + ", C " + ("stored directly" if direct_c else "through shared memory"))
    tile = unit["m"] * unit["n"]
    shared = {}

    def staging(name, elem):
        if name not in shared:
            shared[name] = N.Var(names.namer.fresh(name), T.PointerType(elem))
            size = (N.Const(WAVES_PER_BLOCK * tile, I32),)
            shared[name + "/decl"] = N.Decl(shared[name].name, T.ArrayType(elem, size), None, "shared")
        return shared[name]

    def body(lane, local, env):
        fa_v = N.Var(names.namer.fresh("xpiler_fa"), frag("matrix_a", half, direct_a[0] if direct_a else "row_major"))
        fb_v = N.Var(names.namer.fresh("xpiler_fb"), frag("matrix_b", half, direct_b[0] if direct_b else "row_major"))
        acc = N.Var(names.namer.fresh("xpiler_acc"), frag("accumulator", T.F32))
        slot = N.Binary("*", local, N.Const(tile, I32))
        e_var = N.Var(names.namer.fresh("xpiler_e"), I32)
        row_of, col_of = N.Binary("/", e_var, N.Const(16, I32)), N.Binary("%", e_var, N.Const(16, I32))

        def operand(op, form, r, c, direct, which):
            if direct:
                at = lin_ir(form.subst({r: Lin(), c: Lin()}), env, names)
                return [N.ExprStmt(N.Call("wmma::load_matrix_sync", (which, N.Binary("+", N.Var(op.buf), at),
                                                                     N.Const(direct[1], I32))))]
            buf = staging(f"xpiler_s{op.buf}", half)
            x = N.Load(N.Var(op.buf), lin_ir(form, {**env, r: row_of, c: col_of}, names))
            fill = N.For(e_var.name, I32, lane, "<", N.Const(tile, I32), N.Const(32, I32),
                         N.Block((N.Assign(N.Load(buf, N.Binary("+", slot, e_var)), _to(half, x, op.dtype)),)))
            return [fill, N.Barrier("warp"),
                    N.ExprStmt(N.Call("wmma::load_matrix_sync", (which, N.Binary("+", buf, slot), N.Const(16, I32))))]
        step = operand(g.a, fa, plan.rho, plan.kappa, direct_a, fa_v) + \
            operand(g.b, fb, plan.kappa, plan.gamma, direct_b, fb_v) + \
            [N.ExprStmt(N.Call("wmma::mma_sync", (acc, fa_v, fb_v, acc)))]
        if not (direct_a and direct_b):
            step.append(N.Barrier("warp"))  # the next fill must not overwrite a tile still being loaded
        loop = step
        for s in reversed(plan.inner):
            loop = [_for(names.var(s), s.extent, loop)]
        out = [N.Decl(fa_v.name, fa_v.dtype), N.Decl(fb_v.name, fb_v.dtype), N.Decl(acc.name, acc.dtype),
               N.ExprStmt(N.Call("wmma::fill_fragment", (acc, N.Const(0.0, T.F32))))] + loop
        mem = N.Var("wmma::mem_row_major")
        if direct_c:
            at = lin_ir(fc.subst({plan.rho: Lin(), plan.gamma: Lin()}), env, names)
            mem = N.Var("wmma::mem_row_major" if direct_c[0] == "row_major" else "wmma::mem_col_major")
            out.append(N.ExprStmt(N.Call("wmma::store_matrix_sync", (N.Binary("+", N.Var(g.c.buf), at), acc,
                                                                      N.Const(direct_c[1], I32), mem))))
        else:
            buf = staging("xpiler_sC", T.F32)
            e = {**env, plan.rho: row_of, plan.gamma: col_of}
            put = N.Assign(N.Load(N.Var(g.c.buf), lin_ir(fc, e, names)),
                           _value(g, epi, init, e, names, N.Load(buf, N.Binary("+", slot, e_var))))
            sync = (N.Binary("+", buf, slot), acc, N.Const(16, I32), mem)
            out += [N.ExprStmt(N.Call("wmma::store_matrix_sync", sync)),
                    N.Barrier("warp"),
                    N.For(e_var.name, I32, lane, "<", N.Const(tile, I32), N.Const(32, I32), N.Block((put,)))]
        return out
    return body, shared


def tensorize_gpu_phase(canon, ph, target: str, kname: str, kparams, consts: dict):
    """(kernel, launch, intrinsics, notes) for a GEMM-like phase; Declined otherwise."""
    g = match_gemm(summarize(ph.loops, ph.body, ph.prelude, canon.function.params, consts))
    if target == "hip":
        units = []
        for suffix in hip_platform.TENSORIZE:
            s = hip_platform.mfma_shape(suffix)
            units.append({**s, "suffix": suffix, "name": s["builtin"]})
        lanes = hip_platform.WAVE
    else:
        units = [{**cuda_platform.TENSORIZE, "name": "wmma::mma_sync m16n16k16"}]
        lanes = cuda_platform.TENSORIZE["warp"]
    p = plan(g, units)
    names = IRNames(Namer(names_in(canon.program)))
    notes = list(p.notes)
    shared = {}
    if target == "hip":
        tile_body = _mfma_tile(g, p, names)
    else:
        tile_body, shared = _wmma_tile(g, p, names, notes)
    body, grid, block = _skeleton(ph, p, names, lanes, tile_body)
    decls = [v for k, v in shared.items() if k.endswith("/decl")]
    fn = N.Function(kname, kparams, T.VOID, N.Block(tuple(decls + body)), "kernel", False,
                    launch_bounds=(block,))
    from ...describe import intrinsics_used

    used = [n for n in intrinsics_used(dataclasses.replace(canon.program, dialect=target), fn)
            if not n.startswith("barrier:")]
    return fn, (kname, grid, block), used, notes
