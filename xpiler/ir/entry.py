"""The host entry point: the C function the rest of a user's repo links against.

For CUDA/HIP (and BANG files with host code) it is read from the host function: which
parameters are device buffers, their byte sizes (from the copies), their roles (copied
in, copied out, or both) and each launch with its grid/block expressed in the entry's
parameters. Files without host code (the benchmark's BANG and CPU kernels) get an entry
synthesized from the kernel itself and the platform's declared launch defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import nodes as N
from ..ir import types as T
from ..ir.roles import param_roles
from ..ir.visitor import Transformer, walk
from ..platforms.host_api import HOST_APIS


@dataclass(frozen=True)
class BufferInfo:
    name: str
    elem: T.Type
    role: str  # in | out | inout | unused
    nbytes: N.Expr | None  # in terms of the entry's parameters; None = to be inferred


@dataclass(frozen=True)
class LaunchInfo:
    kernel: str
    grid: tuple[N.Expr, ...]  # cuda/hip: (x, y, z); mlu: task dims (x, y, z)
    block: tuple[N.Expr, ...]  # cuda/hip: (x, y, z); mlu: ()
    func_type: str = ""  # mlu: BLOCK | UNION1 | ...
    args: tuple[N.Expr, ...] = ()  # kernel arguments in terms of the entry's parameters
    shared_bytes: N.Expr | None = None  # cuda/hip: dynamic shared memory (<<<g, b, bytes>>>)


@dataclass(frozen=True)
class HostEntry:
    name: str
    params: tuple[N.Param, ...]
    buffers: tuple[BufferInfo, ...]
    scalars: tuple[str, ...]
    launches: tuple[LaunchInfo, ...]
    synthesized: bool  # True: no host code in the file; built from defaults
    notes: tuple[str, ...] = field(default=())


class _Subst(Transformer):
    def __init__(self, env):
        self.env = env

    def visit_Var(self, v):
        return self.env.get(v.name, v)

    def visit_Member(self, m):
        # blockSize.x where blockSize = dim3(256): the constructor's argument
        if isinstance(m.base, N.Call) and m.base.func == "dim3" and m.field in ("x", "y", "z"):
            i = "xyz".index(m.field)
            return m.base.args[i] if i < len(m.base.args) else N.Const(1, T.I32)
        return m


def _dims(e: N.Expr | None, env) -> tuple[N.Expr, ...]:
    """A dim3-valued expression as three expressions."""
    if e is None:
        return (N.Const(1, T.I32),) * 3
    e = _Subst(env)(e)
    if isinstance(e, N.Call) and e.func == "dim3":
        args = list(e.args)
    elif isinstance(e, N.InitList):  # cnrtDim3_t dim = {16, 1, 1};
        args = list(e.values)
    else:
        args = [e]
    while len(args) < 3:
        args.append(N.Const(1, T.I32))
    return tuple(args[:3])


def host_entry(program: N.Program, config: dict | None = None) -> HostEntry | None:
    """The program's host entry, or a synthesized one; None when there is no kernel."""
    for f in program.functions:
        if f.kind == "host" and any(isinstance(s, N.Launch) for s in walk(f.body)):
            return _from_host_function(program, f)
    kernels = program.kernels
    if not kernels:
        return None
    return _synthesized(program, kernels[0], config or {})


def _from_host_function(program: N.Program, fn: N.Function) -> HostEntry:
    api = HOST_APIS.get(program.dialect)
    host_params = {p.name for p in fn.params}
    env: dict[str, N.Expr] = {}  # local scalars and dim3s -> their defining expression
    dev_bytes: dict[str, N.Expr] = {}
    dev_of_host: dict[str, str] = {}  # device buffer -> host parameter it mirrors
    copied_in, copied_out = {}, {}
    launches = []
    notes = []
    for s in walk(fn.body):
        if isinstance(s, N.Decl) and s.init is not None and not isinstance(s.dtype, T.PointerType):
            env[s.name] = _Subst(env)(s.init)
        elif isinstance(s, N.ExprStmt) and isinstance(s.expr, N.Call) and api is not None:
            c = s.expr
            name = c.func
            if name in api.malloc and len(c.args) >= 2:
                target = _var_name(c.args[0])
                if target:
                    dev_bytes[target] = _Subst(env)(c.args[1])
            elif name in api.memcpy and len(c.args) >= 4:
                dst, src = _var_name(c.args[0]), _var_name(c.args[1])
                kind = _var_name(c.args[3]) or ""
                nbytes = _Subst(env)(c.args[2])
                if kind in api.h2d and src in host_params:
                    copied_in[src] = nbytes
                    dev_of_host[dst] = src
                elif kind in api.d2h and dst in host_params:
                    copied_out[dst] = nbytes
                    dev_of_host[src] = dst
                elif kind in api.d2d:
                    notes.append(f"device-to-device copy {src} -> {dst}")
        elif isinstance(s, N.Launch):
            launches.append((s, dict(env)))
    # Launch arguments are mapped once every copy is known: outputs are copied back
    # after the launch.
    launches = [
        LaunchInfo(s.kernel, _dims(s.config[0] if s.config else None, env_at),
                   _dims(s.config[1] if len(s.config) > 1 else None, env_at), "",
                   tuple(N.Var(dev_of_host[_var_name(a)], None) if _var_name(a) in dev_of_host
                         else _Subst(env_at)(a) for a in s.args),
                   _Subst(env_at)(s.config[2]) if len(s.config) > 2 else None)
        for s, env_at in launches]
    buffers, scalars = [], []
    for p in fn.params:
        if isinstance(p.dtype, T.PointerType):
            read, wrote = p.name in copied_in, p.name in copied_out
            role = "inout" if read and wrote else "out" if wrote else "in" if read else "unused"
            nbytes = copied_in.get(p.name) or copied_out.get(p.name)
            buffers.append(BufferInfo(p.name, p.dtype.elem, role, nbytes))
        else:
            scalars.append(p.name)
    return HostEntry(fn.name, fn.params, tuple(buffers), tuple(scalars), tuple(launches), False, tuple(notes))


def _synthesized(program: N.Program, kernel: N.Function, config: dict) -> HostEntry:
    roles = param_roles(kernel, program)
    buffers, scalars = [], []
    for p in kernel.params:
        if isinstance(p.dtype, (T.PointerType, T.ArrayType)):
            buffers.append(BufferInfo(p.name, p.dtype.elem, roles[p.name], None))
        else:
            scalars.append(p.name)
    launch_cfg = config.get("launch", {})
    args = tuple(N.Var(p.name, p.dtype) for p in kernel.params)
    if program.dialect == "mlu":
        dims = launch_cfg.get("task_dim", [16, 1, 1])
        launch = LaunchInfo(kernel.name, tuple(N.Const(int(d), T.I32) for d in dims), (),
                            launch_cfg.get("func_type", "UNION1"), args)
    else:
        launch = LaunchInfo(kernel.name, (), (), "", args)
    return HostEntry(kernel.name, kernel.params, tuple(buffers), tuple(scalars), (launch,), True)


def _var_name(e: N.Expr) -> str | None:
    while isinstance(e, (N.Cast, N.AddressOf)):
        e = e.value
    return e.name if isinstance(e, N.Var) else None
