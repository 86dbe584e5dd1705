"""Mutation benchmark of SMT repair: inject the small faults repair is for into valid
kernels, repair each mutant against its original, and report the repair rate and the
median repair time by fault kind.

    .venv/bin/python bench/repair_mutants.py [--per-kind 1] [--jobs 2] [--json build/repair.json]

Kernels: the smallest shape of each operator of ../shared/xpilerbench/CPP that uses no
AVX-512 intrinsic (run natively), plus a few BANG C kernels (run on the MLU emulator).
Faults (one per mutant):

- index+-1   an index expression (store, load, or an integer index local) off by one
- swap       two loop variables of an index expression exchanged (i*C + j -> j*C + i)
- bound      a loop bound (or a guard's bound) off by one
- size       an intrinsic's element count or a __memcpy byte count one element short

A mutant that still agrees with its original on the test inputs (an equivalent mutant)
is dropped, as usual in mutation testing, and counted. A repair counts only when the
repaired program, printed and rebuilt, agrees with the original on 3 seeds.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xpiler import paths  # noqa: E402
from xpiler.ir import nodes as N  # noqa: E402
from xpiler.ir import types as T  # noqa: E402
from xpiler.ir.visitor import walk  # noqa: E402
from xpiler.lang import parse_source  # noqa: E402
from xpiler.smt.oracle import ExecutionOracle  # noqa: E402
from xpiler.smt.repair import collect_sites, get_at, replace_at, repair  # noqa: E402

KINDS = ("index+-1", "swap", "bound", "size")
CPP_OPS = ("add", "sub", "relu", "sign", "gelu", "softmax", "avgpool", "maxpool", "sumpool", "layernorm",
           "batchnorm", "instancenorm", "concat", "conv1d", "max", "min", "sum", "gather", "scatter", "deformable")
MLU_FILES = ("add_18_128.mlu", "relu_12_3_128.mlu", "sub_1_512.mlu")


def shape_size(name: str) -> int:
    n = 1
    for x in re.findall(r"\d+", Path(name).stem):
        n *= int(x)
    return n


def _runnable_alone(path: Path) -> bool:
    """The kernel needs no scalar argument and its buffer sizes are known."""
    from xpiler.verify.kernel import prepare

    try:
        prepare(str(path))
        return True
    except Exception:  # noqa: BLE001
        return False


def pick_kernels(bench: Path, ops=CPP_OPS, mlu=MLU_FILES) -> list[Path]:
    out = []
    files = sorted((bench / "CPP").iterdir())
    for op in ops:
        cands = [f for f in files if re.fullmatch(rf"{op}(_\d+)+\.cpp", f.name) and "_mm512" not in f.read_text()]
        cands = [f for f in sorted(cands, key=lambda f: (shape_size(f.name), f.name)) if _runnable_alone(f)]
        if cands:
            out.append(cands[0])
    for name in mlu:
        f = bench / "MLU" / name
        if f.is_file():
            out.append(f)
    return out


def _terms(e):
    """Additive terms of e (top-level + chain): list of (sign, term)."""
    if isinstance(e, N.Binary) and e.op in "+-":
        left = _terms(e.lhs)
        right = _terms(e.rhs)
        if e.op == "-":
            right = [(-s, t) for s, t in right]
        return left + right
    return [(1, e)]


def _loop_var_of(term, loops):
    vs = [n.name for n in walk(term) if isinstance(n, N.Var) and n.name in loops]
    return vs[0] if len(vs) == 1 else None


def _rename(term, old, new):
    from xpiler.passes.base import substitute

    return substitute(term, {old: N.Var(new, T.I32)})


def swap_mutation(site):
    """Exchange the loop variables of two additive terms that have different
    coefficients; None if the expression has no such pair."""
    loops = {n for n, v in site.vars if isinstance(v, N.Var)}
    terms = _terms(site.expr)
    cands = [(k, _loop_var_of(t, loops)) for k, (_, t) in enumerate(terms)]
    cands = [(k, v) for k, v in cands if v]
    for a in range(len(cands)):
        for b in range(a + 1, len(cands)):
            (ka, va), (kb, vb) = cands[a], cands[b]
            if va == vb or terms[ka][1] == N.Var(va) and terms[kb][1] == N.Var(vb):
                continue
            new = list(terms)
            new[ka] = (terms[ka][0], _rename(terms[ka][1], va, vb))
            new[kb] = (terms[kb][0], _rename(terms[kb][1], vb, va))
            e = None
            for s, t in new:
                e = t if e is None and s > 0 else N.Binary("+" if s > 0 else "-", e if e is not None else N.Const(0, T.I32), t)
            return e
    return None


def mutants(program, kinds=KINDS, per_kind: int = 1, rng=None):
    rng = rng or random.Random(0)
    sites = collect_sites(program, None)
    out = []
    for kind in kinds:
        options = []
        for s in sites:
            if kind == "index+-1" and s.kind in ("store-index", "load-index", "index") and \
                    any(isinstance(n, N.Var) for n in walk(s.expr)):
                for d in (1, -1):
                    op = "+" if d > 0 else "-"
                    options.append((s, N.Binary(op, s.expr, N.Const(1, T.I32)), f"{op} 1"))
            elif kind == "swap" and s.kind in ("store-index", "load-index", "index"):
                e = swap_mutation(s)
                if e is not None:
                    options.append((s, e, "variables exchanged"))
            elif kind == "bound" and s.kind == "bound" and not isinstance(s.expr, N.Const) or \
                    kind == "bound" and s.kind == "bound" and isinstance(s.expr, N.Const) and s.expr.value > 1:
                options.append((s, N.Binary("-", s.expr, N.Const(1, T.I32)), "- 1"))
            elif kind == "size" and s.kind == "size":
                dma = s.elem_bytes == 1
                options.append((s, N.Binary("-", s.expr, N.Const(4 if dma else 1, T.I32)),
                                "- 4 bytes" if dma else "- 1 element"))
        rng.shuffle(options)
        for s, e, what in options[:per_kind * 3]:  # spares for equivalent mutants
            out.append((kind, s, replace_at(program, s.path, e), what))
    return out


def run_one(path: Path, kind, site, mutant, what, per_kind_budget: float):
    dialect = "mlu" if path.suffix == ".mlu" else "cpu"
    oracle = ExecutionOracle(path.read_text(), dialect, str(path), seeds=(0,))
    t0 = time.perf_counter()
    r = repair(mutant, oracle, budget_seconds=per_kind_budget, confirm_seeds=(0, 1, 7), final_check=True)
    secs = time.perf_counter() - t0
    status = "repaired" if r.ok else ("equivalent" if r.reason.startswith("nothing to repair") else "failed")
    return {"file": path.name, "kind": kind, "site": site.where.replace(str(path), path.name), "mutation": what,
            "status": status, "seconds": round(secs, 2), "candidates": r.candidates, "executions": r.executions,
            "method": r.method, "reason": r.reason, "changes": [str(c) for c in r.changes]}


def work(job):
    """All mutants of one fault kind in one kernel, until ``per`` non-equivalent ones ran."""
    path, per, kind, budget = job
    path = Path(path)
    dialect = "mlu" if path.suffix == ".mlu" else "cpu"
    prog = parse_source(path.read_text(), dialect, str(path))
    items = [m for m in mutants(prog, per_kind=per, rng=random.Random(path.name)) if m[0] == kind]
    done = []
    for kind, site, mut, what in items:
        if sum(r["status"] != "equivalent" for r in done) >= per:
            break
        try:
            r = run_one(path, kind, site, mut, what, budget)
        except Exception as e:  # noqa: BLE001 - a benchmark row, not a crash
            r = {"file": path.name, "kind": kind, "site": "?", "mutation": what, "status": "error",
                 "seconds": 0, "reason": f"{type(e).__name__}: {e}", "candidates": 0, "executions": 0,
                 "method": "", "changes": []}
        done.append(r)
        print(f"  {r['status']:10} {r['kind']:9} {r['file']:34} {r['site']:28} {r['mutation']:20} "
              f"{r['seconds']:6.1f}s {r['method']} {r['reason'][:90]}", flush=True)
    return done


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", default=str(paths.shared_bench_dir()))
    ap.add_argument("--per-kind", type=int, default=1, help="mutants per fault kind per kernel (default 1)")
    ap.add_argument("--mlu-per-kind", type=int, default=2, help="mutants per fault kind per BANG kernel (default 2)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--budget", type=float, default=120, help="seconds per repair (default 120)")
    ap.add_argument("--ops", help="comma-separated CPP operators (default: a fixed list)")
    ap.add_argument("--no-mlu", action="store_true")
    ap.add_argument("--json", help="write per-mutant results")
    args = ap.parse_args(argv)
    bench = Path(args.bench)
    kernels = pick_kernels(bench, tuple(args.ops.split(",")) if args.ops else CPP_OPS, () if args.no_mlu else MLU_FILES)
    jobs = []
    for path in kernels:
        dialect = "mlu" if path.suffix == ".mlu" else "cpu"
        per = args.mlu_per_kind if dialect == "mlu" else args.per_kind
        prog = parse_source(path.read_text(), dialect, str(path))
        kinds = sorted({m[0] for m in mutants(prog, per_kind=per, rng=random.Random(path.name))}, key=KINDS.index)
        jobs += [(str(path), per, kind, args.budget) for kind in kinds]
    print(f"{len(kernels)} kernels, {len(jobs)} (kernel, fault kind) jobs", flush=True)
    results = []
    t0 = time.perf_counter()
    # processes, not threads: each repair owns its z3 contexts and engine runs
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for done in pool.map(work, jobs):
            results.extend(done)
    wall = time.perf_counter() - t0
    print()
    print(table(results))
    print(f"\nwall time {wall:.0f}s with {args.jobs} jobs")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"results": results, "wall_seconds": round(wall, 1)}, indent=1))
    return 0


def table(results) -> str:
    lines = ["| fault kind | mutants | repaired | rate | median time (repaired) | equivalent (dropped) |",
             "|---|---:|---:|---:|---:|---:|"]
    tot = rep = 0
    times = []
    for kind in KINDS:
        rs = [r for r in results if r["kind"] == kind and r["status"] != "equivalent"]
        eq = sum(r["kind"] == kind and r["status"] == "equivalent" for r in results)
        ok = [r for r in rs if r["status"] == "repaired"]
        t = [r["seconds"] for r in ok]
        times += t
        tot += len(rs)
        rep += len(ok)
        lines.append(f"| {kind} | {len(rs)} | {len(ok)} | {100 * len(ok) / max(1, len(rs)):.0f}% | "
                     f"{statistics.median(t) if t else 0:.1f} s | {eq} |")
    lines.append(f"| **all** | {tot} | {rep} | {100 * rep / max(1, tot):.0f}% | "
                 f"{statistics.median(times) if times else 0:.1f} s | |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
