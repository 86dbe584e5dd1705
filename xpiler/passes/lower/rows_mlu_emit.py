"""Output of a row program (rows_mlu.py): the steps of one iteration as BANG code.

Each task takes a contiguous range of rows; the row loop declares the nest's loop
variables at the row's first element, guards the row, and runs the steps: ``__memcpy``
GDRAM2NRAM (a select-copy picks its source), the ``__bang_*`` calls and pools (one
output, over exactly the row), the per-row scalars, then ``__memcpy`` NRAM2GDRAM (or
GDRAM2GDRAM for a row only copied from an input) and the scalar stores.

NRAM arrays are assigned by liveness over the steps: a value's array is free after its
last use, and a pointwise call may write into an operand that dies there (the registry's
pointwise meanings allow dst identical to a source). Vector lengths are padded to the
registry's ``bytes_multiple``; a group-view row cut by a bound copies only its valid
prefix. The arrays must fit ``nram_bytes - nram_stack_reserve_bytes``, else it declines.
"""
from __future__ import annotations

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ...ir.typeinfer import type_of
from ...ir.visitor import walk
from ..base import substitute
from .cover import Decline, constraint_value
from .phases import index_decls
from .rows_mlu import FLAT, KV, VAL, RowProgram, split_bound
from .tensorize_mlu import Result, conjuncts, min_expr, nram_ptr, plus_expr

I64, I32 = T.I64, T.I32


def emit_rows(prog: RowProgram, limits: dict) -> Result:
    """The row loop: each task a contiguous range of rows; per row the steps, with
    NRAM arrays assigned by liveness."""
    from ...platforms import mlu

    v, namer = prog.v, prog.namer
    steps = _direct_copies(prog)
    ops = [s[2].sig for s in steps if s[0] == "op"]
    A = max(1, constraint_value(ops, "bytes_multiple", int(limits.get("vector_align_bytes", 128))) // 4)
    align = constraint_value(ops + [s[2] for s in steps if s[0] == "pool"], "align", 64)

    last = {}
    for k, s in enumerate(steps):
        for u in _step_uses(s):
            last[u] = k
    arrays, sizes, free, owner = {}, {}, {"row": [], "red": []}, {}
    for k, s in enumerate(steps):
        if s[0] in ("load", "loadsel", "op", "pool"):
            val = s[1]
            cls = "red" if prog.vals[val] == 0 else "row"
            dst = None
            if s[0] == "op":  # in place into an operand that dies here (pointwise meanings allow it)
                dst = next((arrays[x] for x in s[3] if last.get(x) == k and owner.get(arrays[x]) == x), None)
            if dst is None:
                dst = free[cls].pop() if free[cls] else namer.fresh(f"xpiler_{cls}")
            arrays[val], owner[dst] = dst, val
            sizes[dst] = max(sizes.get(dst, A), A if cls == "red" else round_up_int(prog.vals[val], A))
        for x in set(_step_uses(s)) | ({s[1]} if s[0] in ("load", "loadsel", "op", "pool") else set()):
            if last.get(x, k) == k and owner.get(arrays.get(x)) == x:
                del owner[arrays[x]]
                free["red" if prog.vals[x] == 0 else "row"].append(arrays[x])
    usable = int(limits.get("nram_bytes", 524288)) - int(limits.get("nram_stack_reserve_bytes", 0))
    if sum(sizes.values()) * 4 > usable:
        raise Decline(f"rows of {max(prog.vals.values())} elements need {sum(sizes.values()) * 4} bytes of NRAM")

    def rename(e):
        return substitute(e, {VAL + x: N.Var(a, T.PointerType(T.F32, "nram")) for x, a in arrays.items()})

    row = N.Var(namer.fresh("xpiler_row"), I64)
    start = N.Binary("*", row, N.Const(v.K, I64)) if v.K > 1 else row
    valid = N.Var(namer.fresh("xpiler_valid"), I32)  # elements of a group row below the partial bound

    def size(L, group):
        return N.Binary("*", valid, N.SizeOf(T.F32)) if group and prog.partial is not None else N.Const(L * 4, I32)

    body, used = [], set()
    for s in steps:
        if s[0] == "load":
            _, val, buf, base, L, group = s
            body.append(N.Dma(nram_ptr(arrays[val]), N.Binary("+", N.Var(buf), base), size(L, group), "GDRAM2NRAM"))
        elif s[0] == "loadsel":
            _, val, cond, ((b1, i1), (b2, i2)), L, group = s
            src = N.Select(cond, N.Binary("+", N.Var(b1), i1), N.Binary("+", N.Var(b2), i2))
            body.append(N.Dma(nram_ptr(arrays[val]), src, size(L, group), "GDRAM2NRAM"))
        elif s[0] == "op":
            _, val, pat, srcs, scal, L = s
            scal = [rename(x) if type_of(x) == T.F32 else N.Cast(T.F32, rename(x)) for x in scal]
            body.append(N.ExprStmt(pat.call(nram_ptr(arrays[val]), [nram_ptr(arrays[x]) for x in srcs], scal,
                                            N.Const(round_up_int(L, A), I32))))
            used.add(pat.sig.name)
        elif s[0] == "pool":
            _, val, sig, src, L = s
            args = mlu.POOL_REDUCTION_ARGS["rows"](1, L)
            body.append(N.ExprStmt(N.Call(sig.name, (nram_ptr(arrays[val]), nram_ptr(arrays[src]))
                                          + tuple(N.Const(args[p.name], I32) for p in sig.params[2:]))))
            used.add(sig.name)
        elif s[0] == "scalar":
            _, name, t, e = s
            body.append(N.Decl(name, t, rename(e)))
        elif s[0] == "copy":
            _, buf, base, sbuf, sbase, L, group = s
            body.append(N.Dma(N.Binary("+", N.Var(buf), base), N.Binary("+", N.Var(sbuf), sbase), size(L, group),
                              "GDRAM2GDRAM"))
        elif s[0] == "store":
            _, buf, base, val, L, group = s
            body.append(N.Dma(N.Binary("+", N.Var(buf), base), nram_ptr(arrays[val]), size(L, group), "NRAM2GDRAM"))
        else:  # sstore
            _, buf, idx, e = s
            body.append(N.Assign(N.Load(N.Var(buf), idx), rename(e)))
    if prog.guards:
        cond = prog.guards[0]
        for g in prog.guards[1:]:
            cond = N.Binary("&&", cond, g)
        body = [N.If(cond, N.Block(tuple(body)))]

    loop_body = list(index_decls(v.loops, start)) + body
    if prog.partial is not None:
        left = N.Binary("-", prog.partial, start)
        loop_body.insert(0, N.Decl(valid.name, I32, N.Cast(I32, min_expr(left, N.Const(v.K, I64)))))
    lo, count = _row_range(prog)
    x = {k: N.Var(namer.fresh(f"xpiler_{k}"), I64) for k in ("count", "per", "begin", "end")}
    task, tdim = N.Cast(I64, N.Special("taskId")), N.Cast(I64, N.Special("taskDim"))
    stmts = [N.Decl(a, T.ArrayType(T.F32, (N.Const(n, I32),), "nram"), None, "nram", (f"alignas({align})",))
             for a, n in sizes.items()]
    stmts += [
        N.Decl(x["count"].name, I64, count),
        N.Decl(x["per"].name, I64,
               N.Binary("/", N.Binary("-", N.Binary("+", x["count"], tdim), N.Const(1, I64)), tdim)),
        N.Decl(x["begin"].name, I64, plus_expr(lo, N.Binary("*", task, x["per"]))),
        N.Decl(x["end"].name, I64, min_expr(N.Binary("+", x["begin"], x["per"]), plus_expr(lo, x["count"]))),
        N.For(row.name, I64, x["begin"], "<", x["end"], N.Const(1, I64), N.Block(tuple(loop_body))),
    ]
    names = tuple(sorted(used | {"__memcpy"}))
    rows_of = max(prog.vals.values())
    what = ", ".join(sorted(used)) or "copy"
    return Result(tuple(stmts), names, f"tensorized as rows of {rows_of} elements ({what})")


def _direct_copies(prog: RowProgram) -> list:
    """The steps, with each row that is only copied (loaded from a buffer the phase does
    not write, then stored unchanged) turned into one GDRAM2GDRAM copy: no NRAM needed,
    and no store can change its source before it is read."""
    uses = {}
    for s in prog.steps:
        for u in _step_uses(s):
            uses[u] = uses.get(u, 0) + 1
    loads = {s[1]: s for s in prog.steps if s[0] == "load" and s[2] not in prog.written}
    copied = {s[3] for s in prog.steps if s[0] == "store" and s[3] in loads and uses[s[3]] == 1}
    out = []
    for s in prog.steps:
        if s[0] == "load" and s[1] in copied:
            continue
        if s[0] == "store" and s[3] in copied:
            _, buf, base, val, L, group = s
            src = loads[val]
            out.append(("copy", buf, base, src[2], src[3], L, group))
            continue
        out.append(s)
    return out


def _step_uses(s) -> list:
    """Values a step reads."""
    if s[0] == "op":
        return list(s[3])
    if s[0] == "pool":
        return [s[3]]
    if s[0] == "store":
        return [s[3]]
    if s[0] in ("scalar", "sstore"):
        return [n.name[len(VAL):] for n in walk(s[-1]) if isinstance(n, N.Var) and n.name.startswith(VAL)]
    return []


def _row_range(prog: RowProgram):
    """(first row, number of rows): the guards that bound the element index shorten the
    range (they are also kept as conditions); a dropped loop that runs zero times leaves
    nothing to do."""
    v = prog.v
    zero = N.Const(0, I64)
    lo, hi = zero, v.rows
    flat = N.Binary("+", N.Binary("*", N.Var(FLAT, I64), N.Const(v.K, I64)), N.Var(KV, I64)) if v.K > 1 \
        else N.Var(FLAT, I64)
    loopvars = {l.var for l in v.loops}
    for g in prog.guards:
        for c in conjuncts(g):
            side = split_bound(c, loopvars)
            if side is None or not prog.prove(lambda i, b: i(prog.ez(side[1])) == i(flat)):
                continue
            op, G = side[0], side[2]
            K = N.Const(v.K, I64)
            ceil = (lambda e: N.Binary("/", N.Binary("+", e, N.Const(v.K - 1, I64)), K)) if v.K > 1 else (lambda e: e)
            one = N.Const(1, I64)
            if op in ("<", "<=", "=="):
                hi = _fold_min(hi, ceil(G if op == "<" else N.Binary("+", G, one)), v.consts)
            if op in (">=", ">", "=="):
                lo = _fold_max(lo, ceil(G if op != ">" else N.Binary("+", G, one)), v.consts)
    count = _fold_max(N.Binary("-", hi, lo), zero, v.consts)
    for l in v.dropped:
        ext = try_fold(l.extent, v.consts)
        if not isinstance(ext, int):
            count = N.Select(N.Binary(">", l.extent, zero), count, zero)
        elif ext <= 0:
            count = zero
    return lo, count


def _fold_min(a, b, consts):
    va, vb = try_fold(a, consts), try_fold(b, consts)
    if isinstance(va, int) and isinstance(vb, int):
        return N.Const(min(va, vb), I64)
    return min_expr(a, b)


def _fold_max(a, b, consts):
    va, vb = try_fold(a, consts), try_fold(b, consts)
    if isinstance(va, int) and isinstance(vb, int):
        return N.Const(max(va, vb), I64)
    return N.Select(N.Binary(">", a, b), a, b)


def round_up_int(n: int, A: int) -> int:
    return -(-n // A) * A
