"""Lowering: the canonical program -> a target program (kernels + host entry).

- cpu: the canonical function itself (plain loops; OpenMP hints on parallel nests).
- cuda / hip: each phase becomes a kernel; its parallel nest is collapsed and bound to a
  1-D grid of 1-D blocks with a guard; serial phases run as a single thread. A GEMM-like
  phase becomes a WMMA (cuda) or MFMA (hip) kernel instead (tensorize_gpu.py), one
  warp/wave per 16x16 output tile; where that declines, the classic shared-memory tiled
  GEMM (tile_gpu.py, T x T threads per block); the report's notes say why either declined.
- mlu: each phase becomes a `__mlu_global__` kernel: `__bang_matmul` blocks with the rhs
  in WRAM when it is GEMM-like (tensorize_mlu_gemm.py), tensorized (NRAM chunks and
  `__bang_*` calls, tensorize_mlu.py) when it is elementwise or a reduction, or a
  pooling window (bands of input rows and `__bang_*pool`, tensorize_mlu_pool.py), else its
  parallel nest is distributed over the tasks (`taskId`, `taskDim`) as scalar code and
  serial phases run on task 0; the report notes each scalar fallback's reason.
The host entry keeps the source's C signature and is rendered from
templates/host/<target>.j2.
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ...lang import PRINTERS
from ..lift import Canonical
from .phases import index_decls, split_phases
from .simd import independent, simd_hints
from .tensorize_mlu import program_constants, tensorize_phase
from .tensorize_mlu_pool import tensorize_pool_phase

PASS = "lower"
IDX = "xpiler_idx"


@dataclasses.dataclass
class Lowered:
    program: N.Program  # kernels and device functions (the IR part)
    host: str  # the rendered host entry ("" for cpu: the kernel is the entry)
    launches: list  # [(kernel, grid, block)] for the report; grid/block: an expr or (x, y, z)
    intrinsics: list  # special instructions used
    notes: list


def lower(canon: Canonical, target: str, sizes: dict, params: dict | None = None) -> Lowered:
    params = params or {}
    if target == "cpu":
        return _lower_cpu(canon, params.get("tensorize", True))
    if target in ("cuda", "hip"):
        return _lower_gpu(canon, target, sizes, int(params.get("block", 256)), params.get("tensorize", True),
                          params.get("promote", True), int(params.get("tile", 16)))
    if target == "mlu":
        return _lower_mlu(canon, sizes, params)
    raise ValueError(f"unknown target {target}")


def _lower_cpu(canon: Canonical, tensorize: bool = True) -> Lowered:
    body, notes, intrinsics = [], [], []
    for i, s in enumerate(canon.function.body.body):
        vnni = _vnni(canon, i, notes) if tensorize else None
        if vnni is not None:
            body.extend(vnni[0])
            intrinsics.extend(vnni[1])
            continue
        if isinstance(s, N.For) and s.kind == "parallel":
            # threads really run these iterations at once: the marking (made by lifting)
            # must survive the dependence test, or the loop stays sequential
            why = independent(s)
            if why is None:
                body.append(N.Pragma("#pragma omp parallel for"))
            else:
                notes.append(f"no OpenMP on loop {s.var}: {why}")
        body.append(s)
    fn, hints = simd_hints(dataclasses.replace(canon.function, body=N.Block(tuple(body))))
    if hints:
        notes.append(f"{hints} innermost loop(s) with independent iterations hinted `#pragma omp simd`")
    prog = dataclasses.replace(canon.program, dialect="cpu",
                               functions=tuple(f for f in canon.program.functions if f.kind == "device") + (fn,))
    return Lowered(prog, "", [], sorted(set(intrinsics)), notes)


def _vnni(canon, i, notes):
    """Statement ``i`` of the canonical body as VNNI code when it is an integer GEMM-like
    parallel nest, else None (the reason goes to ``notes``)."""
    from ..base import Declined
    from .phases import _pure_scalar_decl, parallel_nest
    from .tensorize_cpu import tensorize_cpu_nest

    s = canon.function.body.body[i]
    nest = parallel_nest(s) if isinstance(s, N.For) and s.kind == "parallel" else None
    if nest is None:
        return None
    prelude = [d for d in canon.function.body.body[:i] if _pure_scalar_decl(d)]
    try:
        stmts, used, why = tensorize_cpu_nest(canon, nest[0], nest[1], prelude, _consts(canon))
    except Declined as e:
        notes.append(f"loop {s.var}: scalar code ({e.reason})")
        return None
    notes.extend(why)
    return stmts, used


def _consts(canon) -> dict:
    """Integer and float macro values, for the GEMM matcher."""
    return {d.name: v for d in canon.program.defines if d.value is not None
            for v in [try_fold(d.value)] if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _kernel_params(canon: Canonical) -> tuple[N.Param, ...]:
    out = []
    for p in canon.function.params:
        t = p.dtype
        if isinstance(t, T.PointerType):
            t = dataclasses.replace(t, const=False)
        out.append(N.Param(p.name, t))
    return tuple(out)


def _device_functions(canon: Canonical):
    return tuple(f for f in canon.program.functions if f.kind == "device")


def _lower_gpu(canon: Canonical, target: str, sizes: dict, block: int, tensorize: bool = True,
               promote: bool = True, tile: int = 16) -> Lowered:
    """``tile``: the side of the shared-memory tiles of a GEMM-like phase the matrix units
    decline (0: keep such phases scalar)."""
    kernels, launches, intrinsics, notes = [], [], [], []
    kparams = _kernel_params(canon)
    name = canon.function.name
    for i, ph in enumerate(split_phases(canon.function.body)):
        kname = f"{name}_kernel{i}" if i else f"{name}_kernel"
        declined = []  # why the phase is not on the matrix units / not tiled
        if ph.parallel and tensorize:
            done = _tensorize(canon, ph, target, kname, kparams, notes, declined)
            if done is not None:
                kernels.append(done[0])
                launches.append(done[1])
                intrinsics.extend(done[2])
                continue
        if ph.parallel and tile:
            done = _tile(canon, ph, target, kname, kparams, tile, notes, declined)
            if done is not None:
                kernels.append(done[0])
                launches.append(done[1])
                continue
        if declined:
            notes.append(f"{kname}: scalar code ({'; '.join(dict.fromkeys(declined))})")
        if ph.parallel:
            idx = N.Var(IDX, T.I64)
            flat = N.Binary("+", N.Binary("*", N.Cast(T.I64, N.Special("blockIdx.x"), "c"), N.Special("blockDim.x")),
                            N.Special("threadIdx.x"))
            total = ph.total()
            pro = _promote(ph, target, kparams, kname, notes, promote)
            body = ph.prelude + pro.stage + [N.Decl(IDX, T.I64, flat),
                                             N.If(N.Binary("<", idx, total),
                                                  N.Block(tuple(index_decls(ph.loops, idx)) + pro.body.body))]
            host_total = _on_host(total, ph.prelude)
            tv = try_fold(host_total)
            grid = N.Const(-(-tv // block), T.I64) if isinstance(tv, int) else \
                N.Binary("/", N.Binary("+", host_total, N.Const(block - 1, T.I64)), N.Const(block, T.I64))
            launches.append((kname, grid, N.Const(block, T.I32)))
        else:
            body = ph.prelude + list(ph.body.body)
            launches.append((kname, N.Const(1, T.I32), N.Const(1, T.I32)))
        kernels.append(N.Function(kname, kparams, T.VOID, N.Block(tuple(body)), "kernel", False,
                                  launch_bounds=(N.Const(block, T.I32),) if ph.parallel else ()))
    prog = dataclasses.replace(canon.program, dialect=target, functions=_device_functions(canon) + tuple(kernels))
    host = render_host(target, canon, sizes, launches)
    return Lowered(prog, host, launches, sorted(set(intrinsics)), notes)


def _tensorize(canon, ph, target, kname, kparams, notes, declined):
    """The phase as a WMMA/MFMA kernel, or None (the reason goes to ``declined``)."""
    from ..base import Declined
    from .tensorize_gpu import tensorize_gpu_phase

    try:
        fn, launch, used, why = tensorize_gpu_phase(canon, ph, target, kname, kparams, _consts(canon))
    except Declined as e:
        declined.append(e.reason)
        return None
    notes.append(f"{kname}: " + "; ".join(why))
    return fn, launch, used


def _tile(canon, ph, target, kname, kparams, t, notes, declined):
    """The phase as a shared-memory tiled GEMM kernel, or None (the reason goes to
    ``declined``); the note also says why the matrix units were not used."""
    from ..base import Declined
    from .tile_gpu import tile_gpu_phase

    try:
        fn, (k, grid, block), why = tile_gpu_phase(canon, ph, target, kname, kparams, _consts(canon), t)
    except Declined as e:
        if e.reason not in declined:  # the same GEMM match declines both
            declined.append(f"not tiled: {e.reason}" if declined else e.reason)
        return None
    unit = "WMMA" if target == "cuda" else "MFMA"
    notes.append(f"{kname}: " + "; ".join(why + [f"no {unit}: {r}" for r in declined]))
    return fn, (k, tuple(_on_host(d, ph.prelude) for d in grid), block)


def _promote(ph, target, kparams, kname, notes, enabled: bool = True):
    """The phase with its broadcast reads staged in ``__shared__`` (promote.py); the
    notes say what was promoted and why a candidate was not."""
    from .promote import Promotion, promote_phase

    if not enabled:
        return Promotion([], ph.body, [])

    pro = promote_phase(ph, {p.name: p.dtype for p in kparams}, target, {p.name for p in kparams} | {IDX})
    notes.extend(f"{kname}: {n}" for n in pro.notes)
    return pro


def _on_host(e: N.Expr, prelude: list) -> N.Expr:
    """``e`` (a launch size) with the phase's replicated scalar declarations substituted:
    they live in the kernel, and the host computes the grid without them."""
    from ..base import substitute

    for d in reversed(prelude):  # later declarations may use earlier ones
        e = substitute(e, {d.name: N.Cast(d.dtype, d.init, "c")})
    return e


def _lower_mlu(canon: Canonical, sizes: dict, params: dict) -> Lowered:
    from ...platforms.config import load_platform_config
    from ..base import names_in

    kernels, launches = [], []
    kparams = _kernel_params(canon)
    name = canon.function.name
    intrinsics, notes = [], []
    devices = {f.name: f for f in _device_functions(canon)}
    ptypes = {p.name: p.dtype for p in kparams}
    limits = load_platform_config("mlu")["limits"]
    for i, ph in enumerate(split_phases(canon.function.body)):
        kname = f"{name}_kernel{i}" if i else f"{name}_kernel"
        mm = None  # a GEMM: __bang_matmul blocks, rhs in WRAM
        if params.get("tensorize", True) and ph.parallel:
            from .tensorize_mlu_gemm import lower_gemm_phase
            mm = lower_gemm_phase(canon, ph, kname, limits, _consts(canon), int(params.get("task_dim", 16)), notes)
        tz = mm if mm is not None and not mm.vector else None
        if tz is None and params.get("tensorize", True):
            taken = names_in(N.Block(tuple(ph.prelude) + ph.body.body)) | set(ptypes) | set(devices)
            taken |= {l.var for l in ph.loops}
            tz = tensorize_pool_phase(ph, ptypes, limits, taken, params)  # a window: __bang_*pool
            if tz.stmts is None:
                if tz.reason:
                    notes.append(f"{kname}: no __bang_*pool: {tz.reason}")
                tz = tensorize_phase(ph, ptypes, devices, limits, taken, params.get("chunk"),
                                     program_constants(canon.program))
        if mm is not None and tz.stmts is None:  # a matrix-vector product the vector units declined
            tz = mm
        if tz is not None and tz.stmts is not None:
            body = ph.prelude + list(tz.stmts)
            intrinsics.extend(tz.intrinsics)
            notes.append(f"{kname}: {tz.reason}")
        elif ph.parallel:
            idx = N.Var(IDX, T.I64)
            body_stmts = tuple(index_decls(ph.loops, idx)) + ph.body.body
            loop = N.For(IDX, T.I64, N.Cast(T.I64, N.Special("taskId"), "c"), "<", ph.total(),
                         N.Special("taskDim"), N.Block(body_stmts))
            body = ph.prelude + [loop]
        else:
            body = ph.prelude + [N.If(N.Binary("==", N.Special("taskId"), N.Const(0, T.I32)), ph.body)]
        if tz is not None and tz.stmts is None:
            notes.append(f"{kname}: scalar fallback: {tz.reason}")
        kernels.append(N.Function(kname, kparams, T.VOID, N.Block(tuple(body)), "kernel", False))
        launches.append((kname, None, None))
    prog = dataclasses.replace(canon.program, dialect="mlu", functions=_device_functions(canon) + tuple(kernels))
    host = render_host("mlu", canon, sizes, launches, task_dim=int(params.get("task_dim", 16)))
    return Lowered(prog, host, launches, sorted(set(intrinsics)), notes)


def buffer_bytes(canon: Canonical, sizes: dict, printer) -> dict:
    """C expressions for each buffer's byte size: the source's own host-code expressions
    when it had host code, otherwise the sizes inferred for the verification arguments."""
    out = {}
    for b in canon.entry.buffers:
        if b.nbytes is not None:
            out[b.name] = printer.expr(b.nbytes)
        elif b.name in sizes:
            out[b.name] = str(sizes[b.name])
        else:
            raise ValueError(f"the size of buffer {b.name} is unknown")
    return out


def render_host(target: str, canon: Canonical, sizes: dict, launches, task_dim: int = 16) -> str:
    import jinja2

    from ... import paths

    printer = PRINTERS[target]()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(paths.templates_dir() / "host")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    nbytes = buffer_bytes(canon, sizes, printer)
    roles = {b.name: b.role for b in canon.entry.buffers}
    params, buffers, call_args = [], [], []
    for p in canon.function.params:
        params.append(printer.type_decl(p.dtype, p.name))
        if isinstance(p.dtype, T.PointerType):
            elem = printer.type_decl(p.dtype.elem, "").strip()
            buffers.append({"name": p.name, "elem": elem, "bytes": nbytes[p.name], "role": roles.get(p.name, "inout")})
            call_args.append("d_" + p.name)
        else:
            call_args.append(p.name)
    def dims(d):  # one expression, or a tuple of them (x, y, z)
        if d is None:
            return ""
        return ", ".join(printer.expr(x) for x in d) if isinstance(d, tuple) else printer.expr(d)
    ls = [{"kernel": k, "grid": dims(g), "block": dims(b), "args": ", ".join(call_args)} for k, g, b in launches]
    return env.get_template(f"{target}.j2").render(name=canon.function.name, params=", ".join(params),
                                                 buffers=buffers, launches=ls, task_dim=task_dim)
