"""Loop recovery for CUDA/HIP kernels: the SIMT body becomes sequential loop nests.

The body a thread runs is wrapped in parallel loops over blocks and threads; index values
become loop variables (threadIdx.x -> a loop over the block's x extent, blockDim.x -> that
extent). Barriers split the body (loop fission): each piece between barriers runs for
every thread before the next piece starts, and variables that live across a barrier are
expanded into per-thread arrays. Control flow around a barrier must be the same for all
threads (it is required by CUDA anyway); otherwise the pass declines.

Warp-collective WMMA code is lifted at warp granularity ("warp mode") when the body does
the same thing in every lane of a warp: fragments become whole tiles and each WMMA call
is replaced by its registry meaning. Wave-collective MFMA calls are lifted by fission:
the lanes' operands are gathered into per-lane arrays and the registry meaning computes
the wave's result.
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ...ir.entry import LaunchInfo
from ...ir.visitor import Transformer, find_all, walk
from ...platforms.registry import lookup
from .expand import expand_call
from .whiles import unroll_constant_whiles
from ..base import Declined, Namer, assigned_names, substitute

PASS = "loop-recovery"
AXES = "xyz"
ONE = N.Const(1, T.I32)
ZERO = N.Const(0, T.I32)


def _is_sync(s, dialect) -> bool:
    for n in walk(s):
        if isinstance(n, N.Barrier) and n.scope in ("block", "warp"):
            return True
        if isinstance(n, N.Call):
            intr = lookup(dialect, n.func)
            if intr is not None and intr.collective:
                return True
    return False


def _const_or(e):
    v = try_fold(e)
    return N.Const(v, T.I32) if isinstance(v, int) else e


class _ReturnToGuard:
    """`if (c) return; rest` -> `if (!c) { rest }` so a thread's early exit becomes a guard."""

    @staticmethod
    def block(b: N.Block, where) -> N.Block:
        out = []
        body = list(b.body)
        for i, s in enumerate(body):
            if isinstance(s, N.Return):
                return N.Block(tuple(out), span=b.span)  # the rest is unreachable
            if isinstance(s, N.If) and _ends_in_return(s.then) and s.other is None:
                rest = _ReturnToGuard.block(N.Block(tuple(body[i + 1:]), span=b.span), where)
                pre = s.then.body[:-1]
                if any(isinstance(n, N.Return) for n in walk(N.Block(pre))):
                    raise Declined(PASS, "return nested inside a conditional early exit", s.span)
                if pre:
                    out.append(N.If(s.cond, N.Block(pre, span=s.then.span), None, span=s.span))
                out.append(N.If(N.Unary("!", s.cond), rest, None, span=s.span))
                return N.Block(tuple(out), span=b.span)
            if isinstance(s, N.If):
                s = dataclasses.replace(s, then=_ReturnToGuard.block(s.then, where),
                                        other=_ReturnToGuard.block(s.other, where) if s.other else None)
            elif isinstance(s, N.Block):
                s = _ReturnToGuard.block(s, where)
            elif any(isinstance(n, N.Return) for n in walk(s)):
                raise Declined(PASS, "return inside a loop of a kernel", s.span)
            out.append(s)
        return N.Block(tuple(out), span=b.span)


def _ends_in_return(b: N.Block) -> bool:
    return bool(b.body) and isinstance(b.body[-1], N.Return)


def _variant_names(body: N.Block, seeds: set[str]) -> set[str]:
    """Variables whose value may differ between threads (data flow from index values)."""
    variant = set(seeds)
    changed = True
    while changed:
        changed = False
        for n in walk(body):
            targets = []
            if isinstance(n, N.Decl) and n.init is not None:
                targets = [(n.name, n.init)]
            elif isinstance(n, N.Assign) and isinstance(n.target, N.Var):
                targets = [(n.target.name, n.value)]
            elif isinstance(n, N.For):
                targets = [(n.var, N.Binary("+", n.start, n.bound))]
            for name, value in targets:
                if name in variant:
                    continue
                if any(isinstance(x, N.Var) and x.name in variant for x in walk(value)):
                    variant.add(name)
                    changed = True
    return variant


@dataclasses.dataclass
class GpuLift:
    kernel: N.Function
    program: N.Program
    launch: LaunchInfo
    namer: Namer
    dialect: str
    lanes: int  # 32 (warp) or 64 (wave)
    outer_names: set = dataclasses.field(default_factory=set)  # names of the code around the kernel

    def run(self, args: dict[str, N.Expr]) -> list[N.Stmt]:
        k = self.kernel
        body = self._bind_params(k.body, args)
        body = _ReturnToGuard.block(body, k.span)
        grid = [_const_or(e) for e in self.launch.grid]
        block = [_const_or(e) for e in self.launch.block]
        self.grid, self.block = grid, block
        self.bvars = {a: self.namer.fresh(f"blockIdx_{a}") for a in AXES}
        self.tvars = {a: self.namer.fresh(f"threadIdx_{a}") for a in AXES}
        specials = {}
        for i, a in enumerate(AXES):
            specials[f"blockDim.{a}"] = block[i]
            specials[f"gridDim.{a}"] = grid[i]
        specials["warpSize"] = N.Const(self.lanes, T.I32)
        body = unroll_constant_whiles(substitute(body, specials=specials))
        shared, body = _hoist_shared(body, self.launch.shared_bytes)
        # WMMA fragments are lifted per warp; lane-wise collectives (shuffles, votes) by
        # fission, one statement `t = call(...)` each
        warp_mode = any(isinstance(n, N.Decl) and isinstance(n.dtype, T.FragmentType) for n in walk(body))
        if not warp_mode:
            body = _collectives_as_statements(body, self.dialect, self.namer)
        if warp_mode:
            inner = self._warp_mode(body)
        else:
            inner = self._fission(list(body.body))
        per_block = list(shared) + inner
        return self._block_loops(per_block)

    # -- parameters
    def _bind_params(self, body: N.Block, args: dict[str, N.Expr]) -> N.Block:
        assigned = assigned_names(body)
        decls, subst = [], {}
        taken_locals = {d.name for d in find_all(body, N.Decl)} | {f.var for f in find_all(body, N.For)}
        # A kernel local that shadows a name the arguments refer to would capture it.
        arg_names = {v.name for a in args.values() for v in walk(a) if isinstance(v, N.Var)}
        renames = {n: N.Var(self.namer.fresh(n), None) for n in taken_locals & (arg_names | self.outer_names)}
        if renames:
            body = _rename_locals(body, {k: v.name for k, v in renames.items()})
        for p in self.kernel.params:
            a = args[p.name]
            if p.name in assigned:
                fresh = self.namer.fresh(p.name)
                decls.append(N.Decl(fresh, _unconst(p.dtype), a, span=p.span))
                subst[p.name] = N.Var(fresh, _unconst(p.dtype))
            else:
                subst[p.name] = a
        body = substitute(body, vars=subst)
        return N.Block(tuple(decls) + body.body, span=body.span)

    # -- loop nests
    def _loops(self, names: dict, extents: list, body: list[N.Stmt], axis_prefix: str) -> list[N.Stmt]:
        stmts = body
        for i in (0, 1, 2):
            a = AXES[i]
            ext = extents[i]
            if try_fold(ext) == 1:
                stmts = [_subst_block(N.Block(tuple(stmts)), {names[a]: ZERO})]
                continue
            stmts = [N.For(names[a], T.I32, ZERO, "<", ext, ONE, N.Block(tuple(stmts)),
                           kind="parallel", axis=f"{axis_prefix}.{a}")]
        return stmts

    def _block_loops(self, per_block: list[N.Stmt]) -> list[N.Stmt]:
        return self._loops(self.bvars, self.grid, per_block, "blockIdx")

    def _thread_vars(self):
        return {f"threadIdx.{a}": N.Var(self.tvars[a], T.I32) for a in AXES} | \
               {f"blockIdx.{a}": N.Var(self.bvars[a], T.I32) for a in AXES}

    def _thread_loops(self, stmts: list[N.Stmt]) -> list[N.Stmt]:
        body = substitute(N.Block(tuple(stmts)), specials=self._thread_vars())
        return self._loops(self.tvars, self.block, list(body.body), "threadIdx")

    def _tid(self) -> N.Expr:
        bx, by, _ = self.block
        tx, ty, tz = (N.Var(self.tvars[a], T.I32) for a in AXES)
        e = tx
        if try_fold(bx) != 1 or try_fold(by) != 1:
            e = N.Binary("+", N.Binary("*", N.Binary("+", N.Binary("*", tz, by), ty), bx), tx)
        return e

    def _nthreads(self) -> N.Expr:
        bx, by, bz = self.block
        v = try_fold(N.Binary("*", N.Binary("*", bx, by), bz))
        return N.Const(v, T.I32) if isinstance(v, int) else N.Binary("*", N.Binary("*", bx, by), bz)

    # -- barriers: fission with privatization
    def _fission(self, stmts: list[N.Stmt]) -> list[N.Stmt]:
        if not any(_is_sync(s, self.dialect) for s in stmts):
            return self._thread_loops(stmts)
        seeds = {self.tvars[a] for a in AXES}
        body = substitute(N.Block(tuple(stmts)), specials=self._thread_vars())
        variant = _variant_names(body, seeds)
        regions = _Regions(self, variant)
        out = regions.lift(list(body.body))
        return regions.declarations() + out

    # -- warp mode (WMMA)
    def _warp_mode(self, body: N.Block) -> list[N.Stmt]:
        nthreads = try_fold(self._nthreads())
        if not isinstance(nthreads, int) or nthreads % self.lanes:
            raise Declined(PASS, f"WMMA needs whole warps per block (got {nthreads} threads)", self.kernel.span)
        if any(isinstance(n, N.Barrier) for n in walk(body)):
            raise Declined(PASS, "WMMA together with barriers is not lifted yet", self.kernel.span)
        warp = self.namer.fresh("warp")
        tid = N.Binary("*", N.Var(warp, T.I32), N.Const(self.lanes, T.I32))
        bx, by, _ = self.block
        tx = N.Binary("%", tid, bx)
        ty = N.Binary("%", N.Binary("/", tid, bx), by)
        tz = N.Binary("/", tid, N.Binary("*", bx, by))
        specials = {"threadIdx.x": tx, "threadIdx.y": ty, "threadIdx.z": tz}
        specials |= {f"blockIdx.{a}": N.Var(self.bvars[a], T.I32) for a in AXES}
        self._check_lane_uniform(body)
        lifted = substitute(body, specials=specials)
        lifted = _fold_fragment_types(lifted, {d.name: d.value for d in self.program.defines if d.value is not None})
        lifted = _Detensorize(self.dialect, self.namer)(lifted)
        lifted = _fragments_to_arrays(lifted)
        return [N.For(warp, T.I32, ZERO, "<", N.Const(nthreads // self.lanes, T.I32), ONE, lifted,
                      kind="parallel", axis="warp")]

    def _check_lane_uniform(self, body: N.Block):
        """Every use of threadIdx must give the same value in all lanes of a warp."""
        from ...verify.extents import Z3_LOCK

        with Z3_LOCK:
            self._check_lane_uniform_locked(body)

    def _check_lane_uniform_locked(self, body: N.Block):
        import z3

        lane = z3.Int("lane")
        w = z3.Int("w")
        bx, by, _ = (try_fold(e) for e in self.block)
        if not all(isinstance(v, int) for v in (bx, by)):
            raise Declined(PASS, "warp mode needs constant block sizes", self.kernel.span)
        uses = [n for n in walk(body) if isinstance(n, (N.Decl, N.Assign, N.If, N.For))]
        from ...verify.extents import _Z3

        for n in uses:
            exprs = {N.Decl: lambda x: [x.init], N.Assign: lambda x: [x.value],
                     N.If: lambda x: [x.cond], N.For: lambda x: [x.start, x.bound]}[type(n)](n)
            for e in exprs:
                if e is None or not any(isinstance(s, N.Special) and s.name.startswith("threadIdx") for s in walk(e)):
                    continue
                vals = []
                for lv in (lane, z3.IntVal(0)):
                    tid = w * self.lanes + lv
                    enc = _Z3({}, {})
                    enc.vars.update({"$threadIdx.x": tid % bx, "$threadIdx.y": (tid / bx) % by,
                                     "$threadIdx.z": tid / (bx * by)})
                    try:
                        vals.append(_encode_with_free(enc, e))
                    except ValueError:
                        raise Declined(PASS, "cannot prove the kernel is warp-uniform", getattr(n, "span", None)) from None
                s = z3.Solver()
                s.set("timeout", 2000)
                s.add(lane >= 0, lane < self.lanes, w >= 0, *enc.cons)
                s.add(vals[0] != vals[1])
                if s.check() != z3.unsat:
                    raise Declined(PASS, "WMMA kernel computes lane-dependent values; per-lane fragment "
                                   "semantics are not lifted", getattr(n, "span", None))


def _collectives_as_statements(body: N.Block, dialect: str, namer: Namer) -> N.Block:
    """Each value-returning collective call inside a larger statement (``s += __shfl_down_sync(m, s, 8)``)
    moved into a statement of its own before it (``float t; t = __shfl_down_sync(m, s, 8); s += t;``): fission
    lifts a collective only in that form. Arguments are evaluated at the same point as
    before, since nothing between the new statement and the old one changes them."""
    from ...ir.typeinfer import type_of

    def collective(c):
        intr = lookup(dialect, c.func) if isinstance(c, N.Call) else None
        return intr if intr is not None and intr.collective and intr.returns is not None else None

    class Extract(Transformer):
        def __init__(self, span):
            self.pending = []
            self.span = span  # the statement's: a decline about the call points there

        def visit_Call(self, c):
            intr = collective(c)
            if intr is None:
                return c
            operand = next((a for a, p in zip(c.args, intr.params) if p.name == "var"), None)
            dtype = (type_of(operand) if operand is not None else None) or intr.returns
            name = namer.fresh("lanes")
            self.pending += [N.Decl(name, dtype, span=self.span), N.Assign(N.Var(name, dtype), c, span=self.span)]
            return N.Var(name, dtype)

    class Split(Transformer):
        def visit_Block(self, b):
            out = []
            for st in b.body:
                if isinstance(st, N.Assign) and st.op == "=" and isinstance(st.target, N.Var) and collective(st.value):
                    out.append(st)
                    continue
                if isinstance(st, (N.Block, N.If, N.For, N.While)):
                    out.append(st)  # its own blocks are already split (bottom-up)
                    continue
                ex = Extract(getattr(st, "span", None))
                new = ex(st)
                out.extend(ex.pending + [new])
            return dataclasses.replace(b, body=tuple(out))

    return Split()(body)




def _encode_with_free(enc, e):
    """Encode ``e`` for z3, treating unknown variables as free integers."""
    import z3

    for v in walk(e):
        if isinstance(v, N.Var) and v.name not in enc.vars:
            enc.vars[v.name] = z3.Int(v.name)
        if isinstance(v, N.Special) and ("$" + v.name) not in enc.vars:
            enc.vars["$" + v.name] = z3.Int(v.name)
    return enc.int_expr(_specials_as_vars(e))


def _specials_as_vars(e):
    class S(Transformer):
        def visit_Special(self, s):
            return N.Var("$" + s.name, T.I32)
    return S()(e)


class _Detensorize(Transformer):
    """Replace collective intrinsic calls by their registry meaning."""

    def __init__(self, dialect, namer):
        self.dialect = dialect
        self.namer = namer

    def visit_ExprStmt(self, s):
        if isinstance(s.expr, N.Call):
            intr = lookup(self.dialect, s.expr.func)
            if intr is not None and intr.collective:
                body = expand_call(self.dialect, s.expr, None, self.namer)
                if body is None:
                    raise Declined(PASS, f"{intr.name} with {len(s.expr.args)} arguments has no meaning", s.span)
                return body
        return s


def _fold_fragment_types(body: N.Block, env: dict) -> N.Block:
    """Fragment shapes written with macros (BLOCK_M) become constants."""
    def fold(t):
        if isinstance(t, T.FragmentType):
            dims = []
            for d in (t.m, t.n, t.k):
                v = try_fold(d, env)
                if not isinstance(v, int):
                    raise Declined(PASS, "fragment shape is not a compile-time constant")
                dims.append(N.Const(v, T.I32))
            return dataclasses.replace(t, m=dims[0], n=dims[1], k=dims[2])
        return t

    class F(Transformer):
        def visit_Decl(self, d):
            return dataclasses.replace(d, dtype=fold(d.dtype)) if isinstance(d.dtype, T.FragmentType) else d

        def visit_Var(self, v):
            return dataclasses.replace(v, dtype=fold(v.dtype)) if isinstance(v.dtype, T.FragmentType) else v

    return F()(body)


def _fragments_to_arrays(body: N.Block) -> N.Block:
    """Fragment variables become whole-tile local arrays."""
    from ...ir.interp import fragment_shape

    frags = {d.name: d.dtype for d in find_all(body, N.Decl) if isinstance(d.dtype, T.FragmentType)}
    arrays = {}
    for name, ft in frags.items():
        r, c = fragment_shape(ft)
        arrays[name] = T.ArrayType(ft.elem, (N.Const(r * c, T.I32),))

    class F(Transformer):
        def visit_Decl(self, d):
            if d.name in arrays:
                return dataclasses.replace(d, dtype=arrays[d.name])
            return d

        def visit_Var(self, v):
            if v.name in arrays:
                return N.Var(v.name, arrays[v.name], span=v.span)
            return v

    return F()(body)


def _unconst(t):
    return dataclasses.replace(t, const=False) if isinstance(t, T.PointerType) else t


def _subst_block(b: N.Block, names: dict) -> N.Block:
    return substitute(b, vars=names)


def _rename_locals(body: N.Block, renames: dict[str, str]) -> N.Block:
    class R(Transformer):
        def visit_Var(self, v):
            return N.Var(renames[v.name], v.dtype, span=v.span) if v.name in renames else v

        def visit_Decl(self, d):
            return dataclasses.replace(d, name=renames[d.name]) if d.name in renames else d

        def visit_For(self, f):
            return dataclasses.replace(f, var=renames[f.var]) if f.var in renames else f

    return R()(body)


def _hoist_shared(body: N.Block, dynamic_bytes: N.Expr | None = None):
    """__shared__ declarations are per block: take them out of the per-thread body. An
    ``extern __shared__ T x[]`` array gets the launch's dynamic shared-memory size."""
    shared = []

    def sized(d: N.Decl) -> N.Decl:
        t = d.dtype
        if "extern" not in d.qualifiers:
            return d
        if dynamic_bytes is None or not isinstance(t, T.ArrayType) or len(t.shape) != 1:
            raise Declined(PASS, f"extern __shared__ {d.name} without a launch that gives its size", d.span)
        count = _const_or(N.Binary("/", dynamic_bytes, N.SizeOf(t.elem)))
        return dataclasses.replace(d, dtype=T.ArrayType(t.elem, (count,), t.scope),
                                   qualifiers=tuple(q for q in d.qualifiers if q != "extern"))

    class H(Transformer):
        def visit_Block(self, b):
            keep = []
            for s in b.body:
                if isinstance(s, N.Decl) and s.scope == "shared":
                    shared.append(dataclasses.replace(sized(s), scope=""))
                else:
                    keep.append(s)
            return dataclasses.replace(b, body=tuple(keep)) if len(keep) != len(b.body) else b

    return shared, H()(body)


class _Regions:
    """Fission of a per-thread statement list at barriers, with privatization."""

    def __init__(self, gpu: GpuLift, variant: set[str]):
        self.gpu = gpu
        self.extra_decls: list[N.Decl] = []
        self.variant = variant
        self.private: dict[str, N.Decl] = {}

    def lift_(self, stmts):
        return self.lift_stmts(stmts)

    def lift(self, stmts: list[N.Stmt]) -> list[N.Stmt]:
        # Variables declared in a thread region and used outside it become per-thread arrays.
        self._find_private(stmts)
        return self.lift_stmts(stmts)

    def _find_private(self, stmts):
        decls = [d for d in find_all(N.Block(tuple(stmts)), N.Decl) if d.scope == ""]
        for d in decls:
            self.private[d.name] = d

    def declarations(self) -> list[N.Stmt]:
        return [N.Decl(name + "_p", self._ptype(d), span=d.span) for name, d in self.private.items()] + self.extra_decls

    def _pvar(self, name: str) -> N.Var:
        return N.Var(name + "_p", self._ptype(self.private[name]))

    def _ptype(self, d: N.Decl) -> T.Type:
        nt = self.gpu._nthreads()
        if isinstance(d.dtype, T.ArrayType):
            return T.ArrayType(d.dtype.elem, (nt,) + d.dtype.shape)
        return T.ArrayType(d.dtype, (nt,))

    def _privatize(self, stmts: list[N.Stmt]) -> list[N.Stmt]:
        tid = self.gpu._tid()
        priv = self.private
        pvar = self._pvar

        class P(Transformer):
            def visit_Var(self, v):
                if v.name in priv:
                    return N.Load(pvar(v.name), tid)
                return v

            def visit_Decl(self, d):
                if d.name not in priv:
                    return d
                target = N.Load(pvar(d.name), tid)
                if d.init is None:
                    return N.Block(())
                if isinstance(d.init, N.InitList):
                    if isinstance(d.dtype, T.VectorType):
                        n = d.dtype.lanes
                    elif isinstance(d.dtype, T.ArrayType) and len(d.dtype.shape) == 1 and isinstance(try_fold(d.dtype.shape[0]), int):
                        n = try_fold(d.dtype.shape[0])
                    else:
                        raise Declined(PASS, "initializer list of this shape across a barrier", d.span)
                    vals = list(d.init.values) + [N.Const(0, T.I32)] * (n - len(d.init.values))
                    return N.Block(tuple(N.Assign(N.Load(target, N.Const(i, T.I32)), v, span=d.span)
                                         for i, v in enumerate(vals[:n])))
                return N.Assign(target, d.init, span=d.span)

        return list(P()(N.Block(tuple(stmts))).body)

    def _uniform(self, e, where):
        if any(isinstance(v, N.Var) and v.name in self.variant for v in walk(e)):
            raise Declined(PASS, "a barrier inside thread-dependent control flow", where)
        # a uniform value computed by every thread: read thread 0's copy
        priv = self.private
        zero = ZERO

        pvar = self._pvar

        class U(Transformer):
            def visit_Var(self, v):
                return N.Load(pvar(v.name), zero) if v.name in priv else v

        return U()(e)

    def lift_stmts(self, stmts: list[N.Stmt], preds: tuple = ()) -> list[N.Stmt]:
        """Fission of ``stmts``; ``preds`` are the per-thread predicate arrays of the
        thread-dependent conditionals around them (a thread outside them is inactive)."""
        out, run = [], []
        tid = self.gpu._tid()

        def active():
            e = None
            for p in preds:
                term = N.Load(p, tid)
                e = term if e is None else N.Binary("&&", e, term)
            return e

        def flush():
            if run:
                body = self._privatize(run)
                if preds:
                    body = [N.If(active(), N.Block(tuple(body)))]
                loops = self.gpu._loops(self.gpu.tvars, self.gpu.block, body, "threadIdx")
                out.extend(loops)
                run.clear()

        for s in stmts:
            if not _is_sync(s, self.gpu.dialect):
                run.append(s)
                continue
            flush()
            if isinstance(s, N.Barrier):
                if preds and s.scope == "block":
                    raise Declined(PASS, "__syncthreads inside thread-dependent control flow", s.span)
                continue
            if isinstance(s, N.Block):
                out.extend(self.lift_stmts(list(s.body), preds))
            elif isinstance(s, N.If):
                if self._is_variant(s.cond):
                    out.extend(self._predicated_if(s, preds))
                    continue
                cond = self._uniform(s.cond, s.span)
                out.append(N.If(cond, N.Block(tuple(self.lift_stmts(list(s.then.body), preds))),
                                N.Block(tuple(self.lift_stmts(list(s.other.body), preds))) if s.other else None,
                                span=s.span))
            elif isinstance(s, N.For):
                if s.var in self.private or s.var in self.variant:
                    raise Declined(PASS, "a barrier inside a thread-dependent loop", s.span)
                start, bound, step = (self._uniform(e, s.span) for e in (s.start, s.bound, s.step))
                out.append(dataclasses.replace(s, start=start, bound=bound, step=step,
                                               body=N.Block(tuple(self.lift_stmts(list(s.body.body), preds)))))
            else:
                out.extend(self._collective(s, preds))
        flush()
        return out

    def _is_variant(self, e) -> bool:
        return any(isinstance(v, N.Var) and v.name in self.variant for v in walk(e))

    def _predicated_if(self, s: N.If, preds: tuple) -> list[N.Stmt]:
        """A conditional that differs between threads but contains a collective: each
        thread records whether it takes each branch; the collective then runs with the
        threads outside the branch inactive (the platform's documented semantics)."""
        nt = self.gpu._nthreads()
        name = self.gpu.namer.fresh("active")
        pvar = N.Var(name, T.ArrayType(T.BOOL, (nt,)))
        self.extra_decls.append(N.Decl(name, pvar.dtype, span=s.span))
        cond = N.Cast(T.BOOL, s.cond, "c")
        out = []
        self_preds = preds
        record = [N.Assign(N.Load(pvar, self.gpu._tid()), cond)]
        body = self._privatize(record)
        out.extend(self.gpu._loops(self.gpu.tvars, self.gpu.block, body, "threadIdx"))
        out.extend(self.lift_stmts(list(s.then.body), self_preds + (pvar,)))
        if s.other is not None:
            nname = self.gpu.namer.fresh("inactive")
            nvar = N.Var(nname, pvar.dtype)
            self.extra_decls.append(N.Decl(nname, nvar.dtype, span=s.span))
            neg = [N.Assign(N.Load(nvar, self.gpu._tid()), N.Unary("!", N.Load(pvar, self.gpu._tid())))]
            out.extend(self.gpu._loops(self.gpu.tvars, self.gpu.block, neg, "threadIdx"))
            out.extend(self.lift_stmts(list(s.other.body), self_preds + (nvar,)))
        return out

    def _collective(self, s, preds: tuple = ()) -> list[N.Stmt]:
        """A wave/warp-collective statement (MFMA): gather operands per lane, apply the
        registry meaning per wave, scatter the results. Inactive lanes (outside a
        thread-dependent conditional) give zeros and receive nothing."""
        call = s.value if isinstance(s, N.Assign) else getattr(s, "expr", None)
        intr = lookup(self.gpu.dialect, call.func) if isinstance(call, N.Call) else None
        if intr is None or intr.meaning is None or not isinstance(s, N.Assign) or not isinstance(s.target, N.Var):
            raise Declined(PASS, "a collective operation in a form that is not lifted", getattr(s, "span", None))
        lanes = self.gpu.lanes
        nt = try_fold(self.gpu._nthreads())
        if not isinstance(nt, int) or nt % lanes:
            raise Declined(PASS, f"{intr.name} needs whole waves per block", s.span)
        namer = self.gpu.namer
        w = namer.fresh("wave")
        wave_base = N.Binary("*", N.Var(w, T.I32), N.Const(lanes, T.I32))
        if preds:
            body = self._predicated_collective(s, call, intr, preds, wave_base)
        else:
            args = []
            for a, p in zip(call.args, intr.params):
                if p.name in ("cbsz", "abid", "blgp"):
                    args.append(a)
                    continue
                args.append(self._lane_array(a, wave_base, s))
            result = self._lane_array(s.target, wave_base, s)
            body = expand_call(self.gpu.dialect, N.Call(call.func, tuple(args)), result, namer)
            if body is None:
                raise Declined(PASS, f"{intr.name} has no meaning for this call", s.span)
        return [N.For(w, T.I32, ZERO, "<", N.Const(nt // lanes, T.I32), ONE, body, kind="parallel", axis="wave")]

    def _predicated_collective(self, s, call, intr, preds, wave_base) -> N.Block:
        namer = self.gpu.namer
        lanes = self.gpu.lanes
        ret = intr.returns
        if not isinstance(ret, T.VectorType) or any(isinstance(p.dtype, T.VectorType) for p in intr.params[:2]):
            raise Declined(PASS, f"{intr.name} under a thread-dependent condition is not lifted", s.span)
        regs = ret.lanes
        lane = namer.fresh("lane")
        lv = N.Var(lane, T.I32)
        t = N.Binary("+", wave_base, lv)
        act = None
        for p in preds:
            act = N.Load(p, t) if act is None else N.Binary("&&", act, N.Load(p, t))
        names = {k: namer.fresh(f"mfma_{k}") for k in ("a", "b", "c", "d")}
        arrs = {k: N.Var(v, T.ArrayType(ret.elem if k in "cd" else intr.params[0].dtype,
                                          (N.Const(lanes * (regs if k in "cd" else 1), T.I32),)))
                for k, v in names.items()}
        decls = [N.Decl(v.name, v.dtype) for v in arrs.values()]
        zero = N.Const(0.0, T.F32)
        gather = []
        for k, a in (("a", call.args[0]), ("b", call.args[1])):
            src = self._lane_array(a, N.Const(0, T.I32), s)
            gather.append(N.Assign(N.Load(arrs[k], lv), N.Select(act, N.Load(src, t), zero)))
        csrc = self._lane_array(call.args[2], N.Const(0, T.I32), s)
        r = namer.fresh("reg")
        rv = N.Var(r, T.I32)
        flat = N.Binary("+", N.Binary("*", lv, N.Const(regs, T.I32)), rv)
        gflat = N.Binary("+", N.Binary("*", t, N.Const(regs, T.I32)), rv)
        gather.append(N.For(r, T.I32, ZERO, "<", N.Const(regs, T.I32), ONE,
                            N.Block((N.Assign(N.Load(arrs["c"], flat), N.Load(csrc, gflat)),))))
        gather_loop = N.For(lane, T.I32, ZERO, "<", N.Const(lanes, T.I32), ONE, N.Block(tuple(gather)))
        args = (arrs["a"], arrs["b"], arrs["c"]) + tuple(call.args[3:])
        body = expand_call(self.gpu.dialect, N.Call(call.func, args), arrs["d"], namer)
        if body is None:
            raise Declined(PASS, f"{intr.name} has no meaning for this call", s.span)
        dst = self._lane_array(s.target, N.Const(0, T.I32), s)
        scatter = N.For(lane, T.I32, ZERO, "<", N.Const(lanes, T.I32), ONE, N.Block((
            N.If(act, N.Block((N.For(r, T.I32, ZERO, "<", N.Const(regs, T.I32), ONE,
                                     N.Block((N.Assign(N.Load(dst, gflat), N.Load(arrs["d"], flat)),))),))),)))
        return N.Block(tuple(decls) + (gather_loop, body, scatter))

    def _lane_array(self, e, wave_base, s):
        """A per-lane operand as an array over the wave's lanes (a privatized variable)."""
        if isinstance(e, N.Var) and e.name in self.private:
            d = self.private[e.name]
            if isinstance(d.dtype, T.ArrayType):  # a vector kept as a small array: lane-major
                per_lane = try_fold(N.Binary("*", d.dtype.shape[0], N.Const(1, T.I32)))
                flat = N.Cast(T.PointerType(d.dtype.elem), self._pvar(e.name), "c")
                return N.Binary("+", flat, N.Binary("*", wave_base, N.Const(per_lane, T.I32)))
            if isinstance(d.dtype, T.VectorType):  # by-value vector: lane-major elements
                flat = N.Cast(T.PointerType(d.dtype.elem), self._pvar(e.name), "c")
                return N.Binary("+", flat, N.Binary("*", wave_base, N.Const(d.dtype.lanes, T.I32)))
            return N.Binary("+", self._pvar(e.name), wave_base)
        if try_fold(e) is not None:
            return e
        raise Declined(PASS, "collective operand is not a per-thread variable", getattr(s, "span", None))
