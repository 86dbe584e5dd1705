"""Lowering: the canonical program -> a target program (kernels + host entry).

- cpu: the canonical function itself (plain loops; OpenMP hints on parallel nests).
- cuda / hip: each phase becomes a kernel; its parallel nest is collapsed and bound to a
  1-D grid of 1-D blocks with a guard; serial phases run as a single thread.
- mlu: each phase becomes a `__mlu_global__` kernel whose parallel nest is distributed
  over the tasks (`taskId`, `taskDim`); serial phases run on task 0.
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
from .tensorize import tensorize_mlu

PASS = "lower"
IDX = "xpiler_idx"


@dataclasses.dataclass
class Lowered:
    program: N.Program  # kernels and device functions (the IR part)
    host: str  # the rendered host entry ("" for cpu: the kernel is the entry)
    launches: list  # [(kernel, grid, block)] for the report
    intrinsics: list  # special instructions used
    notes: list


def lower(canon: Canonical, target: str, sizes: dict, params: dict | None = None) -> Lowered:
    params = params or {}
    if target == "cpu":
        return _lower_cpu(canon)
    if target in ("cuda", "hip"):
        return _lower_gpu(canon, target, sizes, int(params.get("block", 256)))
    if target == "mlu":
        return _lower_mlu(canon, sizes, params)
    raise ValueError(f"unknown target {target}")


def _lower_cpu(canon: Canonical) -> Lowered:
    body = []
    for s in canon.function.body.body:
        if isinstance(s, N.For) and s.kind == "parallel":
            body.append(N.Pragma("#pragma omp parallel for"))
        body.append(s)
    fn = dataclasses.replace(canon.function, body=N.Block(tuple(body)))
    prog = dataclasses.replace(canon.program, dialect="cpu",
                               functions=tuple(f for f in canon.program.functions if f.kind == "device") + (fn,))
    return Lowered(prog, "", [], [], ["OpenMP pragmas take effect when built with -fopenmp"])


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


def _lower_gpu(canon: Canonical, target: str, sizes: dict, block: int) -> Lowered:
    kernels, launches = [], []
    kparams = _kernel_params(canon)
    name = canon.function.name
    for i, ph in enumerate(split_phases(canon.function.body)):
        kname = f"{name}_kernel{i}" if i else f"{name}_kernel"
        if ph.parallel:
            idx = N.Var(IDX, T.I64)
            flat = N.Binary("+", N.Binary("*", N.Cast(T.I64, N.Special("blockIdx.x"), "c"), N.Special("blockDim.x")),
                            N.Special("threadIdx.x"))
            total = ph.total()
            body = ph.prelude + [N.Decl(IDX, T.I64, flat),
                                 N.If(N.Binary("<", idx, total), N.Block(tuple(index_decls(ph.loops, idx)) + ph.body.body))]
            tv = try_fold(total)
            grid = N.Const(-(-tv // block), T.I64) if isinstance(tv, int) else \
                N.Binary("/", N.Binary("+", total, N.Const(block - 1, T.I64)), N.Const(block, T.I64))
            launches.append((kname, grid, N.Const(block, T.I32)))
        else:
            body = ph.prelude + list(ph.body.body)
            launches.append((kname, N.Const(1, T.I32), N.Const(1, T.I32)))
        kernels.append(N.Function(kname, kparams, T.VOID, N.Block(tuple(body)), "kernel", False,
                                  launch_bounds=(N.Const(block, T.I32),) if ph.parallel else ()))
    prog = dataclasses.replace(canon.program, dialect=target, functions=_device_functions(canon) + tuple(kernels))
    host = render_host(target, canon, sizes, launches)
    return Lowered(prog, host, launches, [], [])


def _lower_mlu(canon: Canonical, sizes: dict, params: dict) -> Lowered:
    kernels, launches = [], []
    kparams = _kernel_params(canon)
    name = canon.function.name
    intrinsics, notes = [], []
    for i, ph in enumerate(split_phases(canon.function.body)):
        kname = f"{name}_kernel{i}" if i else f"{name}_kernel"
        if ph.parallel:
            idx = N.Var(IDX, T.I64)
            body_stmts = tuple(index_decls(ph.loops, idx)) + ph.body.body
            loop = N.For(IDX, T.I64, N.Cast(T.I64, N.Special("taskId"), "c"), "<", ph.total(),
                         N.Special("taskDim"), N.Block(body_stmts))
            body = ph.prelude + [loop]
        else:
            body = ph.prelude + [N.If(N.Binary("==", N.Special("taskId"), N.Const(0, T.I32)), ph.body)]
        fn = N.Function(kname, kparams, T.VOID, N.Block(tuple(body)), "kernel", False)
        if params.get("tensorize", True):
            fn, used = tensorize_mlu(fn)
            intrinsics.extend(used)
        kernels.append(fn)
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
    ls = [{"kernel": k, "grid": printer.expr(g) if g is not None else "", "block": printer.expr(b) if b is not None else "",
           "args": ", ".join(call_args)} for k, g, b in launches]
    return env.get_template(f"{target}.j2").render(name=canon.function.name, params=", ".join(params),
                                                 buffers=buffers, launches=ls, task_dim=task_dim)
