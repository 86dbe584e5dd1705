"""Lifting: a platform program -> the canonical program.

The canonical program is one C function with the source's host-entry signature whose
body is sequential loop nests (parallel loops marked), with no platform index values,
no intrinsics, no DMA and one memory space; device helper functions are kept. It means
exactly what the source's host entry does, and it prints as plain C++.
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ...ir.entry import HostEntry, host_entry
from ...ir.visitor import Transformer, walk
from ...platforms.host_api import HOST_APIS
from ...platforms.registry import lookup
from .expand import expand_call
from ..base import Declined, Namer, flatten_blocks, names_in, substitute
from .mathfns import canonical_math
from .memory import demote_memory, fold_array_sizes, vectors_to_arrays
from .threads import GpuLift, _ReturnToGuard, _Detensorize
from .unshadow import unshadow

PASS = "lift"
LANES = {"cuda": 32, "hip": 64}


@dataclasses.dataclass
class Canonical:
    program: N.Program  # dialect "cpu": prints as plain C++
    entry: HostEntry
    function: N.Function
    notes: list


def lift_program(program: N.Program, config: dict) -> Canonical:
    entry = host_entry(program, config)
    if entry is None:
        raise Declined(PASS, "the file has no kernel")
    namer = Namer(names_in(program))
    notes = []
    if entry.synthesized:
        kernel = program.function(entry.launches[0].kernel)
        if program.dialect == "mlu":
            body = lift_tasks(kernel, program, entry, config, namer)
        elif program.dialect == "cpu":
            body = list(kernel.body.body)
        else:
            raise Declined(PASS, f"{kernel.name} has no host code to take its launch configuration from", kernel.span)
        params = kernel.params
    else:
        fn = program.function(entry.name)
        body = lift_host(fn, entry, program, namer, notes)
        params = fn.params
    block = N.Block(tuple(body))
    block, atomic = detensorize_atomics(block, program.dialect, namer)
    block = named_constants(block, program.dialect)
    block = demote_memory(block)
    block = flatten_blocks(canonical_math(fold_array_sizes(vectors_to_arrays(block))))
    block = unshadow(block, {p.name for p in params}, namer)
    _check_canonical(block, program.dialect)
    devices = tuple(_canonical_device(f, program, namer) for f in program.functions if f.kind == "device")
    if program.dialect == "cpu":  # plain C marks no parallelism: find the loops that are
        block, found = _find_parallelism(block, devices, program)
        notes.extend(found)
    elif atomic:  # threads updating one element atomically: sequential loops need not race
        block, found = _serialize_conflicting(block, devices, program)
        notes.extend(found)
    fn = N.Function(entry.name, params, T.VOID, block, "kernel", True)
    globals_ = tuple(g for g in program.globals if not _platform_only(g))
    canon = N.Program("cpu", program.defines, globals_, devices + (fn,))
    return Canonical(canon, entry, fn, notes)


def _platform_only(g) -> bool:
    """A global of the source's toolchain that the canonical (plain C++) program must not
    keep: ``using namespace nvcuda;``, ``#include <hip/hip_runtime.h>``."""
    from ...platforms.config import is_vendor_include

    return isinstance(g, N.Pragma) and (g.text.strip().startswith("using namespace") or is_vendor_include(g.text))


def _find_parallelism(block: N.Block, devices, program) -> tuple[N.Block, list]:
    """Scratch declarations moved into the loops they are private to, then the loops whose
    iterations are independent marked parallel (loops/privatize.py, loops/parallel.py)."""
    from ..loops.dependence import pure_functions
    from ..loops.parallel import mark_parallel_loops
    from ..loops.privatize import sink_scratch_declarations

    stmts, sunk = sink_scratch_declarations(list(block.body))
    pure = pure_functions(devices, {d.name for d in program.defines})
    stmts, why_serial = mark_parallel_loops(stmts, pure)
    return N.Block(tuple(stmts)), sunk + why_serial


def _serialize_conflicting(block: N.Block, devices, program) -> tuple[N.Block, list]:
    """Top-level parallel loops whose iterations update a common element (lifted atomics)
    made serial, with the dependence as the note."""
    from ..loops.dependence import pure_functions
    from ..loops.parallel import parallelize

    pure = pure_functions(devices, {d.name for d in program.defines})
    out, notes = [], []
    for s in block.body:
        if isinstance(s, N.For) and s.kind == "parallel":
            try:
                parallelize(dataclasses.replace(s, kind="serial"), pure)
            except Declined as e:
                s = dataclasses.replace(s, kind="serial")
                notes.append(f"serial: atomic updates: {e.reason}")
        out.append(s)
    return dataclasses.replace(block, body=tuple(out)), notes


def _canonical_device(f: N.Function, program, namer) -> N.Function:
    body = named_constants(detensorize(f.body, program.dialect, namer), program.dialect)
    body = canonical_math(vectors_to_arrays(demote_memory(body)))
    _check_canonical(body, program.dialect)
    return dataclasses.replace(f, body=body, qualifiers=tuple(q for q in f.qualifiers if q in ("inline", "static")),
                               launch_bounds=())


def _check_canonical(block, dialect):
    for n in walk(block):
        if isinstance(n, N.Special):
            raise Declined(PASS, f"{n.name} is used where it cannot be lifted", n.span)
        if isinstance(n, N.Barrier):
            raise Declined(PASS, f"a {n.scope} barrier could not be removed", n.span)
        if isinstance(n, N.Call) and lookup(dialect, n.func) is not None and lookup(dialect, n.func).meaning is not None \
                and not _is_plain_math(n.func):
            raise Declined(PASS, f"intrinsic {n.func} is left in the canonical program", n.span)


def _is_plain_math(name: str) -> bool:
    from ...platforms.registry import C_MATH

    return name in C_MATH


# ------------------------------------------------------------------- intrinsics
class _DetensorizeAll(_Detensorize):
    """Every intrinsic call with a meaning (statement or value-returning) becomes its
    meaning; value-returning ones assign the variable they initialize or are assigned to."""

    def visit_Block(self, b):
        out = []
        for s in b.body:
            out.extend(self._expand(s))
        return dataclasses.replace(b, body=tuple(out))

    def _expand(self, s):
        call, target, decl = None, None, None
        if isinstance(s, N.ExprStmt) and isinstance(s.expr, N.Call):
            call = s.expr
        elif isinstance(s, N.Assign) and s.op == "=" and isinstance(s.value, N.Call):
            call, target = s.value, s.target
        elif isinstance(s, N.Decl) and isinstance(s.init, N.Call):
            call, target, decl = s.init, N.Var(s.name, s.dtype), s
        intr = lookup(self.dialect, call.func) if call is not None else None
        if intr is None or intr.meaning is None or _is_plain_math(call.func):
            self._no_nested_intrinsics(s)
            return [s]
        if intr.returns is not None and target is None:
            if not intr.atomic:
                raise Declined("detensorize", f"the result of {intr.name} is not stored", s.span)
            old = self.namer.fresh("old")  # the value it returns, unused
            decl = N.Decl(old, intr.returns, None, span=s.span)
            target = N.Var(old, intr.returns)
        self.atomic = self.atomic or intr.atomic
        body = expand_call(self.dialect, call, target, self.namer)
        if body is None:
            raise Declined("detensorize", f"{call.func} with {len(call.args)} arguments has no meaning", s.span)
        pre = [dataclasses.replace(decl, init=None)] if decl is not None else []
        return pre + [body]

    def _no_nested_intrinsics(self, s):
        for n in walk(s):
            if isinstance(n, N.Call):
                intr = lookup(self.dialect, n.func)
                if intr is not None and intr.meaning is not None and not _is_plain_math(n.func):
                    if intr.returns is None or not isinstance(s, (N.Block, N.If, N.For, N.While)):
                        raise Declined("detensorize", f"{n.func} used inside an expression", n.span)


def detensorize(block: N.Block, dialect: str, namer) -> N.Block:
    return detensorize_atomics(block, dialect, namer)[0]


def detensorize_atomics(block: N.Block, dialect: str, namer) -> tuple[N.Block, bool]:
    """The block with intrinsics replaced by their meanings, and whether any of them was an
    atomic update (whose loops lifting marked parallel must then be checked)."""
    d = _DetensorizeAll(dialect, namer)
    d.atomic = False
    return d(block), d.atomic


def named_constants(block, dialect):
    """Platform constants a meaning may refer to (wmma::mem_row_major) become values."""
    from ...platforms.registry import facts

    table = {k: v for k, v in facts(dialect).constants.items()} if facts(dialect) else {}
    if not table:
        return block

    class C(Transformer):
        def visit_Var(self, v):
            if v.name in table:
                val = table[v.name]
                return N.Const(val, T.I32 if isinstance(val, int) else T.F32, span=v.span)
            return v

    return C()(block)


# ------------------------------------------------------------------- host code
def lift_host(fn: N.Function, entry: HostEntry, program: N.Program, namer, notes) -> list[N.Stmt]:
    api = HOST_APIS.get(program.dialect)
    if api is None:
        raise Declined(PASS, f"no host API table for {program.dialect}", fn.span)
    params = {p.name: p for p in fn.params}
    host_of: dict[str, str] = {}
    for s in walk(fn.body):  # device buffer -> the host buffer it ends up in
        if isinstance(s, N.ExprStmt) and isinstance(s.expr, N.Call) and s.expr.func in api.memcpy and len(s.expr.args) >= 4:
            dst, src, kind = (_name(a) for a in (s.expr.args[0], s.expr.args[1], s.expr.args[3]))
            if kind in api.d2h and dst in params:
                host_of[src] = dst
            elif kind in api.h2d and src in params:
                host_of.setdefault(dst, src)
    for s in walk(fn.body):
        if isinstance(s, N.ExprStmt) and isinstance(s.expr, N.Call) and s.expr.func in api.malloc:
            d = _name(s.expr.args[0])
            if d not in host_of:  # a scratch buffer the host never sees
                raise Declined(PASS, f"device buffer {d} has no host counterpart (scratch buffers are not lifted yet)", s.span)
    state = {"launch": 0}
    return _lift_host_stmts(list(fn.body.body), fn, entry, program, namer, notes, api, params, host_of, state)


def _lift_host_stmts(stmts, fn, entry, program, namer, notes, api, params, host_of, state) -> list[N.Stmt]:
    out: list[N.Stmt] = []
    for s in stmts:
        if isinstance(s, N.Decl):
            if s.name in host_of or isinstance(s.dtype, T.NamedType) and s.dtype.name in ("dim3", "cudaError_t", "hipError_t"):
                continue
            out.append(s)
        elif isinstance(s, N.ExprStmt) and isinstance(s.expr, N.Call):
            c = s.expr
            if c.func in api.memcpy:
                out.extend(_copy(c, api, host_of, params, s.span))
            elif c.func in api.memset:
                out.extend(_memset(c, host_of, params, s.span))
            elif c.func in api.malloc or c.func in api.free or c.func.endswith(("DeviceSynchronize", "GetLastError",
                                                                              "QueueSync", "SyncDevice")) \
                    or c.func in ("printf", "fprintf"):
                continue
            else:
                raise Declined(PASS, f"host call {c.func} is not lifted", s.span)
        elif isinstance(s, N.Launch):
            launch = entry.launches[state["launch"]]
            state["launch"] += 1
            kernel = program.function(s.kernel)
            if kernel is None:
                raise Declined(PASS, f"launch of unknown kernel {s.kernel}", s.span)
            args = {p.name: _host_arg(a, host_of) for p, a in zip(kernel.params, s.args)}
            local_launch = dataclasses.replace(launch, grid=tuple(substitute(g, _host_env(fn)) for g in launch.grid),
                                               block=tuple(substitute(b, _host_env(fn)) for b in launch.block))
            lifter = GpuLift(kernel, program, local_launch, namer, program.dialect, LANES.get(program.dialect, 32),
                             names_in(fn) | {d.name for d in program.defines} | _global_names(program))
            out.extend(lifter.run(args))
        elif isinstance(s, N.If) and _is_error_check(s):
            notes.append(f"dropped host error check at line {s.span.line if s.span else '?'}")
        elif isinstance(s, N.If) and not any(isinstance(n, N.Launch) for n in walk(s)):
            # e.g. `if (h_gamma) cudaMemcpy(...)`: device buffers alias host ones here
            parts = [_lift_host_stmts(list(b.body), fn, entry, program, namer, notes, api, params, host_of, state)
                     if b is not None else [] for b in (s.then, s.other)]
            if parts[0] or parts[1]:
                out.append(N.If(s.cond, N.Block(tuple(parts[0])), N.Block(tuple(parts[1])) if parts[1] else None, span=s.span))
        elif isinstance(s, N.Block):
            out.append(N.Block(tuple(_lift_host_stmts(list(s.body), fn, entry, program, namer, notes, api, params,
                                                      host_of, state)), span=s.span))
        else:
            raise Declined(PASS, f"host statement {type(s).__name__} is not lifted", s.span)
    return out


def _global_names(program) -> set:
    return {g.name for g in program.globals if isinstance(g, (N.Decl, N.TypeAlias))}


def _host_env(fn):
    return {}


def _is_error_check(s: N.If) -> bool:
    names = {v.name for v in walk(s.cond) if isinstance(v, N.Var)}
    return any(n.endswith("Success") for n in names)


def _name(e):
    while isinstance(e, (N.Cast, N.AddressOf)):
        e = e.value
    return e.name if isinstance(e, N.Var) else None


def _host_arg(a, host_of):
    n = _name(a)
    if n in host_of:
        return N.Var(host_of[n], None)
    return a


def _elem(params, name):
    p = params.get(name)
    return p.dtype.elem if p is not None and isinstance(p.dtype, T.PointerType) else None


def _copy(c: N.Call, api, host_of, params, span) -> list[N.Stmt]:
    dst, src, kind = _name(c.args[0]), _name(c.args[1]), _name(c.args[3])
    if kind in api.h2d:
        real_dst = host_of.get(dst)
        if real_dst == src:
            return []
        return _copy_loop(real_dst, src, c.args[2], params, span)
    if kind in api.d2h:
        if host_of.get(src) == dst:
            return []
        return _copy_loop(dst, host_of.get(src), c.args[2], params, span)
    if kind in api.d2d:
        return _copy_loop(host_of.get(dst), host_of.get(src), c.args[2], params, span)
    raise Declined(PASS, f"memory copy of kind {kind} is not lifted", span)


def _copy_loop(dst, src, nbytes, params, span):
    if dst is None or src is None:
        raise Declined(PASS, "a copy between buffers the host entry does not own", span)
    elem = _elem(params, dst)
    if elem is None or elem != _elem(params, src):
        raise Declined(PASS, "a copy between buffers of different element types", span)
    i = N.Var("xpiler_i", T.I64)
    count = N.Binary("/", nbytes, N.SizeOf(elem))
    body = N.Block((N.Assign(N.Load(N.Var(dst, params[dst].dtype), i), N.Load(N.Var(src, params[src].dtype), i)),))
    return [N.For("xpiler_i", T.I64, N.Const(0, T.I64), "<", count, N.Const(1, T.I32), body, kind="parallel", span=span)]


def _memset(c: N.Call, host_of, params, span):
    d = host_of.get(_name(c.args[0]))
    value = try_fold(c.args[1])
    if d is None or value != 0:
        raise Declined(PASS, "memset other than zeroing a host-visible buffer", span)
    elem = _elem(params, d)
    i = N.Var("xpiler_i", T.I64)
    count = N.Binary("/", c.args[2], N.SizeOf(elem))
    body = N.Block((N.Assign(N.Load(N.Var(d, params[d].dtype), i), N.Cast(elem, N.Const(0, T.I32))),))
    return [N.For("xpiler_i", T.I64, N.Const(0, T.I64), "<", count, N.Const(1, T.I32), body, kind="parallel", span=span)]


# ------------------------------------------------------------------- BANG tasks
def lift_tasks(kernel: N.Function, program, entry: HostEntry, config: dict, namer) -> list[N.Stmt]:
    launch = entry.launches[0]
    dims = [try_fold(d) for d in launch.grid]
    if not all(isinstance(d, int) for d in dims):
        raise Declined(PASS, "task dimensions are not constant", kernel.span)
    task_dim = dims[0] * dims[1] * dims[2]
    cores = 1 if launch.func_type == "BLOCK" else int(config.get("launch", {}).get("cores_per_cluster", 4))
    clusters = max(1, task_dim // cores)
    if any(isinstance(n, N.Barrier) for n in walk(kernel.body)):
        raise Declined(PASS, "task synchronization (__sync_*) is not lifted yet", kernel.span)
    c, k = namer.fresh("clusterId"), namer.fresh("coreId")
    cv, kv = N.Var(c, T.I32), N.Var(k, T.I32)
    task = N.Binary("+", N.Binary("*", cv, N.Const(cores, T.I32)), kv)
    specials = {"clusterId": cv, "coreId": kv, "taskId": task, "taskIdX": task,
                "taskDim": N.Const(task_dim, T.I32), "taskDimX": N.Const(task_dim, T.I32),
                "taskDimY": N.Const(1, T.I32), "taskDimZ": N.Const(1, T.I32), "taskIdY": N.Const(0, T.I32),
                "taskIdZ": N.Const(0, T.I32), "clusterDim": N.Const(clusters, T.I32), "coreDim": N.Const(cores, T.I32)}
    body = _ReturnToGuard.block(kernel.body, kernel.span)
    body = substitute(body, specials=specials)
    inner = N.For(k, T.I32, N.Const(0, T.I32), "<", N.Const(cores, T.I32), N.Const(1, T.I32), body,
                  kind="parallel", axis="coreId")
    outer = N.For(c, T.I32, N.Const(0, T.I32), "<", N.Const(clusters, T.I32), N.Const(1, T.I32),
                  N.Block((inner,)), kind="parallel", axis="clusterId")
    return [outer]
