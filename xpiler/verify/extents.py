"""Buffer extents inferred from the IR: how many bytes of each pointer parameter a kernel
touches, for the given scalar arguments and launch.

Every access through a parameter (loads, stores, DMA copies, intrinsic arguments) is
turned into a byte range [offset, offset + length) whose offset is an integer expression
over loop variables, task/thread indices and constants. Loop ranges, index ranges and
the guards on the access's path become z3 constraints, and z3 maximizes the end of the
range. A guard z3 cannot express is dropped, which can only make the bound larger (safe:
a buffer is never too small). What cannot be bounded at all is reported, so the user can
declare the extent instead.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import XpilerError
from ..ir import nodes as N
from ..ir import types as T
from ..ir.consteval import try_fold


class ExtentError(XpilerError):
    pass


@dataclass
class _Access:
    root: str
    start: N.Expr | None  # byte offset; None = unknown
    length: N.Expr  # bytes
    path: tuple  # guards (Expr) and loops (For) enclosing the access
    where: object = None


def _esize(t) -> int:
    return T.byte_size(t) or 1


class _Collector:
    """Walks a kernel and records every byte range it touches in each parameter."""

    def __init__(self, program: N.Program, kernel: N.Function, env: dict):
        self.program = program
        self.params = {p.name: p.dtype for p in kernel.params if isinstance(p.dtype, (T.PointerType, T.ArrayType))}
        self.env = dict(env)  # name -> Expr (constant scalars, defines)
        self.ptr = {}  # local pointer -> (root, byte offset expr, elem type)
        self.assigned: set[str] = set()  # scalars assigned after declaration: not substitutable
        self.accesses: list[_Access] = []
        for s in _walk_stmts(kernel.body):
            if isinstance(s, N.Assign) and isinstance(s.target, N.Var):
                self.assigned.add(s.target.name)
            if isinstance(s, N.For) and not s.declared:
                self.assigned.add(s.var)

    # pointer expression -> (root, byte offset, element type)
    def pointer(self, e):
        if isinstance(e, N.Var):
            if e.name in self.params:
                t = self.params[e.name]
                return e.name, N.Const(0, T.I64), t.elem
            return self.ptr.get(e.name)
        if isinstance(e, N.Cast):
            inner = self.pointer(e.value)
            if inner and isinstance(e.dtype, T.PointerType):
                return inner[0], inner[1], e.dtype.elem
            return inner
        if isinstance(e, N.Binary) and e.op in ("+", "-"):
            p = self.pointer(e.lhs)
            other = e.rhs
            if p is None and e.op == "+":
                p, other = self.pointer(e.rhs), e.lhs
            if p is None:
                return None
            scaled = N.Binary("*", other, N.Const(_esize(p[2]), T.I64))
            return p[0], N.Binary(e.op, p[1], scaled), p[2]
        if isinstance(e, N.AddressOf) and isinstance(e.value, N.Load):
            p = self.pointer(e.value.base)
            if p is None:
                return None
            return p[0], N.Binary("+", p[1], N.Binary("*", e.value.index, N.Const(_esize(p[2]), T.I64))), p[2]
        return None

    def record(self, root, start, length, path, where):
        # Substitute local definitions now: a name may be redefined later in the kernel.
        self.accesses.append(_Access(root, _subst(start, self.env), _subst(length, self.env), path, where))

    def touch(self, ptr_expr, length_bytes, path, where=None):
        p = self.pointer(ptr_expr)
        if p is not None:
            self.record(p[0], p[1], length_bytes, path, where)

    def expr(self, e, path):
        if isinstance(e, N.Load):
            p = self.pointer(e.base)
            if p is not None:
                self.record(p[0], N.Binary("+", p[1], N.Binary("*", e.index, N.Const(_esize(p[2]), T.I64))),
                            N.Const(_esize(p[2]), T.I64), path, e.span)
        elif isinstance(e, N.Deref):
            p = self.pointer(e.pointer)
            if p is not None:
                self.record(p[0], p[1], N.Const(_esize(p[2]), T.I64), path, e.span)
        elif isinstance(e, N.Call):
            self.call(e, path)
        from ..ir.visitor import children

        for c in children(e):
            if isinstance(c, N.Expr):
                self.expr(c, path)

    def call(self, call: N.Call, path):
        from ..platforms.registry import _static_type, resolve

        intrinsic = resolve(self.program.dialect, call.func, len(call.args), tuple(_static_type(a) for a in call.args))
        if intrinsic is None:
            return
        count = _count_arg(intrinsic, call)
        for i, a in enumerate(call.args):
            if i < len(intrinsic.params) and intrinsic.params[i].role in ("in", "out", "inout"):
                p = self.pointer(a)
                if p is None:
                    continue
                width = _esize(intrinsic.params[i].dtype) if isinstance(intrinsic.params[i].dtype, T.ScalarType) else _esize(p[2])
                length = N.Binary("*", count, N.Const(width, T.I64)) if count is not None else None
                if length is None:
                    if intrinsic.params[i].dtype and isinstance(intrinsic.params[i].dtype, T.VectorType):
                        length = N.Const(intrinsic.params[i].dtype.bytes, T.I64)
                    else:
                        length = N.Const(width, T.I64)
                self.record(p[0], p[1], length, path, call.span)

    def stmt(self, s, path):
        if isinstance(s, N.Decl):
            if s.init is not None:
                self.expr(s.init, path)
                if isinstance(s.dtype, T.PointerType):
                    p = self.pointer(s.init)
                    if p is not None:
                        self.ptr[s.name] = p
                elif s.name not in self.assigned and not isinstance(s.dtype, (T.ArrayType, T.FragmentType)):
                    self.env[s.name] = _subst(s.init, self.env)
        elif isinstance(s, N.Assign):
            self.expr(s.value, path)
            if isinstance(s.target, N.Var):
                if s.target.name in self.ptr:
                    p = self.pointer(s.value) if s.op == "=" else None
                    if p is not None:
                        self.ptr[s.target.name] = p
                    else:
                        self.ptr.pop(s.target.name)  # moving pointer: accesses through it are not bounded
            else:
                self.expr(s.target, path)
        elif isinstance(s, N.Dma):
            nseg = N.Const(1, T.I64)
            dst_stride = src_stride = N.Const(0, T.I64)
            if len(s.strides) == 3:
                dst_stride, src_stride, seg = s.strides
                nseg = N.Binary("+", seg, N.Const(1, T.I64))
            for ptr, stride in ((s.dst, dst_stride), (s.src, src_stride)):
                span = N.Binary("+", N.Binary("*", N.Binary("-", nseg, N.Const(1, T.I64)), stride), s.size)
                self.touch(ptr, span, path, s.span)
            for e in (s.dst, s.src, s.size) + s.strides:
                self.expr(e, path)
        elif isinstance(s, N.ExprStmt):
            self.expr(s.expr, path)
        elif isinstance(s, N.Block):
            for c in s.body:
                self.stmt(c, path)
        elif isinstance(s, N.If):
            self.expr(s.cond, path)
            cond = _subst(s.cond, self.env)
            self.stmt(s.then, path + (cond,))
            if s.other is not None:
                self.stmt(s.other, path + (N.Unary("!", cond),))
        elif isinstance(s, N.For):
            for e in (s.start, s.bound, s.step):
                self.expr(e, path)
            import dataclasses
            loop = dataclasses.replace(s, start=_subst(s.start, self.env), bound=_subst(s.bound, self.env),
                                       step=_subst(s.step, self.env), body=N.Block())
            saved = self.env.pop(s.var, None)
            self.stmt(s.body, path + (loop,))
            if saved is not None:
                self.env[s.var] = saved
        elif isinstance(s, N.While):
            self.expr(s.cond, path)
            self.stmt(s.body, path + (N.Const(True, T.BOOL),))


def _count_arg(intrinsic, call):
    """The element-count argument of a vector intrinsic (``n``), if it has one."""
    for i, p in enumerate(intrinsic.params):
        if p.role == "scalar" and p.name in ("n", "count", "elem_count", "num", "size") and i < len(call.args):
            return call.args[i]
    return None


def _walk_stmts(s):
    stack = [s]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, N.Block):
            stack.extend(n.body)
        elif isinstance(n, N.If):
            stack.append(n.then)
            if n.other is not None:
                stack.append(n.other)
        elif isinstance(n, (N.For, N.While)):
            stack.append(n.body)


def _subst(e, env):
    from ..ir.visitor import Transformer

    class S(Transformer):
        def visit_Var(self, v):
            return env.get(v.name, v)

    return S()(e)


# --------------------------------------------------------------------- z3 encoding
class _Z3:
    def __init__(self, env: dict, specials: dict):
        import z3

        self.z3 = z3
        self.env = env
        self.specials = specials  # name -> (lo, hi) inclusive
        self.vars: dict[str, object] = {}
        self.cons: list = []

    def var(self, name, lo=None, hi=None):
        z3 = self.z3
        if name not in self.vars:
            v = z3.Int(name)
            self.vars[name] = v
            if lo is not None:
                self.cons.append(v >= lo)
            if hi is not None:
                self.cons.append(v <= hi)
        return self.vars[name]

    def int_expr(self, e):
        z3 = self.z3
        if isinstance(e, N.Const):
            if isinstance(e.value, bool):
                return z3.IntVal(int(e.value))
            if isinstance(e.value, int):
                return z3.IntVal(e.value)
            raise ValueError("float")
        if isinstance(e, N.Var):
            if e.name in self.vars:
                return self.vars[e.name]
            if e.name in self.env and isinstance(self.env[e.name], (int, N.Expr)) and not isinstance(self.env[e.name], bool):
                v = self.env[e.name]
                return z3.IntVal(v) if isinstance(v, int) else self.int_expr(v)
            raise ValueError(f"unbounded {e.name}")
        if isinstance(e, N.Special):
            if e.name not in self.specials:
                raise ValueError(f"unknown index {e.name}")
            lo, hi = self.specials[e.name]
            return self.var("$" + e.name, lo, hi)
        if isinstance(e, N.Cast):
            if isinstance(e.dtype, T.ScalarType) and e.dtype.is_int:
                return self.int_expr(e.value)
            raise ValueError("cast")
        if isinstance(e, N.SizeOf):
            v = try_fold(e)
            if v is None:
                raise ValueError("sizeof")
            return z3.IntVal(v)
        if isinstance(e, N.Unary) and e.op == "-":
            return -self.int_expr(e.operand)
        if isinstance(e, N.Binary):
            a, b = self.int_expr(e.lhs), self.int_expr(e.rhs)
            if e.op == "+":
                return a + b
            if e.op == "-":
                return a - b
            if e.op == "*":
                return a * b
            if e.op == "/":  # operands are non-negative here (indices), where C and z3 agree
                return a / b
            if e.op == "%":
                return a % b
            if e.op == "<<":
                return a * (2 ** b.as_long()) if z3.is_int_value(b) else _raise()
            if e.op == ">>":
                return a / (2 ** b.as_long()) if z3.is_int_value(b) else _raise()
        if isinstance(e, N.Select):
            return z3.If(self.bool_expr(e.cond), self.int_expr(e.then), self.int_expr(e.other))
        raise ValueError(type(e).__name__)

    def bool_expr(self, e):
        z3 = self.z3
        if isinstance(e, N.Binary) and e.op in ("<", "<=", ">", ">=", "==", "!="):
            a, b = self.int_expr(e.lhs), self.int_expr(e.rhs)
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[e.op]
        if isinstance(e, N.Binary) and e.op in ("&&", "||"):
            a, b = self.bool_expr(e.lhs), self.bool_expr(e.rhs)
            return z3.And(a, b) if e.op == "&&" else z3.Or(a, b)
        if isinstance(e, N.Unary) and e.op == "!":
            return z3.Not(self.bool_expr(e.operand))
        return self.int_expr(e) != 0

    def loop(self, f: N.For, index: int):
        v = self.var(f"{f.var}#{index}")
        start, bound = self.int_expr(f.start), self.int_expr(f.bound)
        step = try_fold(f.step, self.env)
        if not isinstance(step, int) or step == 0:
            raise ValueError("step")
        k = self.var(f"{f.var}#{index}#k", 0)
        self.cons.append(v == start + step * k)
        cmp = {"<": v < bound, "<=": v <= bound, ">": v > bound, ">=": v >= bound, "!=": v != bound}[f.cmp]
        self.cons.append(cmp)
        return v


def _raise():
    raise ValueError("shift")


def _max_end(access: _Access, env: dict, specials: dict) -> int | None:
    import z3

    enc = _Z3(env, specials)
    try:
        for i, step in enumerate(access.path):
            if isinstance(step, N.For):
                v = enc.loop(step, i)
                enc.env = {**enc.env}
                enc.vars[step.var] = v
        for step in access.path:
            if not isinstance(step, N.For):
                try:
                    enc.cons.append(enc.bool_expr(step))
                except (ValueError, z3.Z3Exception):
                    pass  # a guard we cannot model only loosens the bound
        end = enc.int_expr(access.start) + enc.int_expr(access.length)
    except (ValueError, z3.Z3Exception, AttributeError):
        return None
    opt = z3.Optimize()
    opt.set("timeout", 5000)
    opt.add(*enc.cons)
    h = opt.maximize(end)
    if opt.check() != z3.sat:
        return 0  # the access is unreachable
    val = opt.upper(h)
    if not z3.is_int_value(val):
        return None
    return val.as_long()


# z3 contexts are not thread-safe: callers that run kernels from threads serialize here.
Z3_LOCK = __import__("threading").RLock()


def infer_extents(program: N.Program, kernel: N.Function, scalars: dict, specials: dict,
                  declared: dict | None = None) -> dict[str, int]:
    with Z3_LOCK:
        return _infer_extents(program, kernel, scalars, specials, declared)


def _infer_extents(program: N.Program, kernel: N.Function, scalars: dict, specials: dict,
                   declared: dict | None = None) -> dict[str, int]:
    """Bytes needed for each pointer parameter of ``kernel``.

    ``scalars``: values of the kernel's scalar parameters; ``specials``: inclusive ranges of
    the platform's index values (threadIdx.x, clusterId, ...); ``declared``: user-declared
    byte sizes that take precedence."""
    declared = declared or {}
    env = {d.name: d.value for d in program.defines if d.value is not None}
    env.update({k: v for k, v in scalars.items()})
    col = _Collector(program, kernel, env)
    col.stmt(kernel.body, ())
    out, unknown = {}, []
    for name in col.params:
        if name in declared:
            out[name] = int(declared[name])
            continue
        best = 0
        ok = True
        for a in (a for a in col.accesses if a.root == name):
            end = _max_end(a, col.env, specials)
            if end is None:
                ok = False
                where = f" at {a.where}" if a.where else ""
                unknown.append(f"{name}{where}")
                break
            best = max(best, end)
        if ok:
            out[name] = best
    if unknown:
        raise ExtentError("cannot bound the extent of " + ", ".join(unknown) +
                          "; declare it (e.g. --extent NAME=ELEMENTS)")
    return out
