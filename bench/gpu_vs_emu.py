#!/usr/bin/env python3
"""Every CUDA kernel of a benchmark directory on a real GPU and on the CUDA emulator,
with the same inputs; reports how many agree within tolerance.

Run it on a machine with an NVIDIA GPU, nvcc and g++ (inputs are generated there from the
seed, so nothing large has to travel):

    python bench/gpu_vs_emu.py ../shared/xpilerbench/CUDA --jobs 16 --json gpu_vs_emu.json

Problem sizes and meaningful inputs come from the cases plugin (bench/operators.py).
Without a GPU, ``--emu-only`` runs everything but the GPU side (the GPU harness is still
compiled with nvcc), to check the script and the emulator's classification.

Disagreements that are the source's undefined behaviour, not an emulator error, are
classified with evidence instead of counted as ``differ``:

- outputs the kernel never writes (its host code copies back uninitialized device memory):
  each engine runs twice with different poison bytes in fresh device memory and in the
  output buffers (xpiler.verify.differential); elements that change between the two runs
  are undefined by the source and not compared (``partial-write-excluded``, with counts of
  those that hold the poison, i.e. were never written, and of those computed from memory
  nothing wrote, e.g. out-of-bounds reads);
- order-dependent results (races, e.g. duplicate scatter targets): the emulator runs
  forward and with XPILER_EMU_BLOCK_ORDER=reverse; defined elements that differ are
  order-dependent (``source-race``, with the count), and the GPU agrees when it equals one
  order or differs only on order-dependent elements;
- a kernel that does not compile, that AddressSanitizer or an emulator diagnostic
  convicts, or whose every output element changes with the poison (``source-defect``);
  a kernel whose defined elements differ is run under AddressSanitizer on the emulator
  too: out-of-bounds reads (of an allocation's slack on the GPU, of heap neighbours on
  the emulator) are invisible to both poisonings, and a conviction makes it a
  ``source-defect`` (the reason keeps the difference's counts).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xpiler.bench import load_cases  # noqa: E402
from xpiler.verify.compare import close_elements, compare_arrays, identical_elements  # noqa: E402
from xpiler.verify.differential import (SECOND_DEVICE_POISON, SECOND_HOST_POISON,  # noqa: E402
                                        asan_conviction, rerun_with_other_poison)
from xpiler.verify.engines import EngineError, build  # noqa: E402
from xpiler.verify.inputs import POISON_BYTE  # noqa: E402
from xpiler.verify.kernel import prepare  # noqa: E402
from xpiler.verify.selfcheck import classify_build_error, classify_run_error  # noqa: E402

REVERSE = {"XPILER_EMU_BLOCK_ORDER": "reverse"}
FIRST_POISON = (POISON_BYTE, 0xFF)  # (output buffers, fresh device memory) of a default run
SECOND_POISON = (SECOND_HOST_POISON, SECOND_DEVICE_POISON)
# summary order; "failed" = a run failed without evidence against the source
STATUSES = ("agree", "partial-write-excluded", "source-race", "differ", "source-defect",
            "engine-gap", "failed", "skipped", "error")


def _poison_like(a: np.ndarray, bytes_: tuple) -> np.ndarray:
    """Per element: every byte is one poison byte (one of ``bytes_``)."""
    if not a.size:
        return np.zeros(0, bool)
    b = a.view(np.uint8).reshape(a.size, -1)
    return np.logical_or.reduce([(b == v).all(axis=1) for v in bytes_])


def two_runs(k, ins: dict, engine: str, timeout: float, env: dict | None = None):
    """(first outputs, undefined mask, unwritten mask) per output. Undefined: changes between
    the two poisonings (the source never defines it); unwritten: holds the poison both times
    (the others are computed from memory nothing wrote: uninitialized or out-of-bounds reads)."""
    a = k.run(ins, engine, timeout=timeout, env=env).outputs
    b = rerun_with_other_poison(k, ins, timeout, engine, env)
    undefined, unwritten = {}, {}
    for name in k.outputs:
        x, y = a[name].reshape(-1), b[name].reshape(-1)
        undefined[name] = ~identical_elements(x, y)
        unwritten[name] = undefined[name] & _poison_like(x, FIRST_POISON) & _poison_like(y, SECOND_POISON)
    return a, undefined, unwritten


def failure(engine: str, e: EngineError, k, ins: dict, path: Path, timeout: float) -> tuple[str, str]:
    """(status, reason) for a build or run that failed on ``engine``."""
    if e.stage == "build":
        st, why = classify_build_error(e.log, "emu" if engine == "emu" else "gpu")
        return ("source-defect" if st == "source-defect" else "failed"), f"{engine} build: {why}"
    st, why = classify_run_error(e, str(path))
    if st == "source-defect":
        return st, f"{engine} run: {why}"
    if "timed out" not in str(e):
        try:  # a plain crash (or a GPU error): AddressSanitizer on the emulator names the culprit
            k.run(ins, "emu", asan=True, timeout=timeout * 3)
        except EngineError as ae:
            st2, why2 = classify_run_error(ae, str(path))
            if st2 == "source-defect":
                return st2, f"{engine} run failed ({str(e)[:160]}); {why2}"
    return ("engine-gap" if engine == "emu" and st == "engine-gap" else "failed"), f"{engine} run: {why}"[:400]


def classify(k, gpu_runs, emu_runs, emu_rev) -> dict:
    """Status and evidence from the GPU's two runs, the emulator's two runs and its reverse run."""
    (g, g_undef, g_unw), (e, e_undef, e_unw) = gpu_runs, emu_runs
    out = {"excluded": {}, "unwritten": {}, "order_dependent": {}}
    worst_abs = worst_rel = 0.0
    differ, race, notes = False, False, []
    for name in k.outputs:
        gv, ev, rv = (x[name].reshape(-1) for x in (g, e, emu_rev))
        excluded = g_undef[name] | e_undef[name]
        order_dep = ~excluded & ~close_elements(ev, rv)
        if order_dep.any():
            # A proven race on this buffer (writes whose order changes values beyond rounding):
            # racing writers whose values happen to lie within tolerance make forward and
            # reverse look alike, yet a third schedule (the GPU's) can keep a third writer, so
            # every element whose bits differ between the two orders is order-dependent.
            # Without such proof a rounding-only difference (e.g. atomicAdd order) is no race:
            # the GPU must then stay within tolerance there.
            order_dep = ~excluded & ~identical_elements(ev, rv)
        n_exc, n_ord = int(excluded.sum()), int(order_dep.sum())
        if n_exc:
            out["excluded"][name] = n_exc
            out["unwritten"][name] = {"gpu": int(g_unw[name].sum()), "emu": int(e_unw[name].sum())}
        if n_ord:
            out["order_dependent"][name] = n_ord
        keep = ~excluded
        c = compare_arrays(name, ev, gv, defined=keep)
        if np.isfinite(c.max_abs_err):
            worst_abs, worst_rel = max(worst_abs, c.max_abs_err), max(worst_rel, c.max_rel_err)
        race |= bool(n_ord)
        if c.ok:
            continue
        bad = ~close_elements(ev, gv) & keep
        if not (bad & ~order_dep).any():
            notes.append(f"{name}: the GPU differs from the emulator only on order-dependent elements "
                         f"({int(bad.sum())} of them)")
        elif compare_arrays(name, rv, gv, defined=keep).ok:
            notes.append(f"{name}: the GPU equals the emulator's reverse order")
        else:
            differ = True
            notes.append(c.summary() + (f" ({n_exc} undefined elements excluded)" if n_exc else ""))
    blind = [b for b, n in out["excluded"].items() if n == g[b].size]
    if blind and not differ:  # nothing left to compare: the output is garbage by construction
        status = "source-defect"
        notes.insert(0, "every element of " + ", ".join(blind) + " changes with the poison byte of fresh "
                     "memory: the kernel computes it from memory nothing wrote")
    elif differ:
        status = "differ"
    elif race:
        status = "source-race"
        notes.insert(0, "order-dependent: " + ", ".join(
            f"{n}/{g[b].size} elements of {b} differ between the emulator's forward and reverse orders"
            for b, n in out["order_dependent"].items()))
    elif out["excluded"]:
        status = "partial-write-excluded"
    else:
        status = "agree"
    if out["excluded"] and status != "differ":
        notes.append("compared only defined elements: " + ", ".join(
            _excluded_note(b, n, g[b].size, out["unwritten"][b]) for b, n in out["excluded"].items()))
    out.update(status=status, reason="; ".join(notes), max_abs_err=worst_abs, max_rel_err=worst_rel)
    return {k_: v for k_, v in out.items() if v != {}}


def _excluded_note(buf: str, n: int, size: int, unwritten: dict) -> str:
    note = (f"{n}/{size} elements of {buf} change with the poison byte of fresh memory (never written: "
            f"{unwritten['gpu']} on the GPU, {unwritten['emu']} on the emulator")
    if n > max(unwritten.values()):
        note += "; the others are computed from memory nothing wrote, e.g. out-of-bounds reads"
    return note + ")"


def check(path: Path, cases, max_bytes: int, timeout: float, emu_only: bool) -> dict:
    row = {"file": path.name, "status": "", "reason": "", "max_abs_err": None, "max_rel_err": None}
    t0 = time.perf_counter()
    try:
        case = cases.case_for(str(path), "cuda")
        if case is None:
            row.update(status="skipped", reason=f"no case: {getattr(cases, 'LAST_REASON', '')}")
            return row
        k = prepare(str(path), case.scalars, case.extents)
        if sum(k.sizes.values()) > max_bytes:
            row.update(status="skipped", reason=f"{sum(k.sizes.values()) / 1e6:.0f} MB of buffers (limit {max_bytes / 1e6:.0f} MB)")
            return row
        ins = k.inputs(0)
        given = case.make_inputs(0)
        ins.update({n: v for n, v in given.items() if n in ins and v.nbytes == k.sizes.get(n, -1)})
        try:
            emu = two_runs(k, ins, "emu", timeout)
            emu_rev = k.run(ins, "emu", timeout=timeout, env=REVERSE).outputs
        except EngineError as e:
            st, why = failure("emu", e, k, ins, path, timeout)
            row.update(status=st, reason=why)
            return row
        if emu_only:
            try:  # the GPU side as far as it goes here: compile (and link) the GPU harness
                build(k.text, "cuda", k.entry, k.sizes, "gpu", name=str(path))
            except EngineError as e:
                st, why = failure("gpu", e, k, ins, path, timeout)
                row.update(status=st, reason=why)
                return row
            gpu = emu  # stands in for the GPU: exercises the classification
        else:
            try:
                gpu = two_runs(k, ins, "gpu", timeout)
            except EngineError as e:
                st, why = failure("gpu", e, k, ins, path, timeout)
                row.update(status=st, reason=why)
                return row
        row.update(classify(k, gpu, emu, emu_rev))
        if row["status"] == "differ":
            convicted = asan_conviction(k, ins, timeout, "emu")
            if convicted:  # e.g. out-of-bounds reads: the GPU reads its allocation's slack, the
                # emulator its heap neighbours; neither poisoning reaches them, so the elements
                # computed from them are garbage that differs between the engines
                row.update(status="source-defect", reason=f"{convicted}; the engines differ on elements the "
                           f"poisonings left defined: {row['reason']}"[:600])
    except Exception as e:  # noqa: BLE001 - one kernel's failure must not stop the sweep
        row.update(status="error", reason=f"{type(e).__name__}: {e}"[:400])
    finally:
        row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


def summary_line(rows: list[dict]) -> str:
    counts = {s: 0 for s in STATUSES}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return "summary: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n or s in STATUSES[:5])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, help="the benchmark's CUDA directory (or one .cu file)")
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--match", action="append", help="only files whose name contains this (repeatable: any)")
    ap.add_argument("--limit", type=int, help="at most this many files (after --match)")
    ap.add_argument("--max-mb", type=float, default=2048, help="skip kernels whose buffers exceed this")
    ap.add_argument("--timeout", type=float, default=240, help="CPU seconds per run")
    ap.add_argument("--emu-only", action="store_true",
                    help="no GPU here: run the emulator side, compile the GPU harness, classify emu vs emu")
    args = ap.parse_args(argv)
    cases = load_cases(None)
    files = [args.dir] if args.dir.is_file() else sorted(args.dir.glob("*.cu"))
    files = [p for p in files if not args.match or any(m in p.name for m in args.match)][:args.limit]
    rows = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for row in pool.map(lambda p: check(p, cases, int(args.max_mb * 1e6), args.timeout, args.emu_only), files):
            rows.append(row)
            print(f"{row['status']:24} {row['file']} {row['reason'][:200]}", flush=True)
    print(summary_line(rows))
    ok = [r for r in rows if r["status"] in ("agree", "partial-write-excluded", "source-race")]
    ran = ok + [r for r in rows if r["status"] == "differ"]
    if ran:
        errs = [r["max_abs_err"] for r in ok if r.get("max_abs_err") is not None]
        print(f"agreement: {len(ok)}/{len(ran)} kernels that ran on both engines (undefined elements excluded, "
              f"order-dependent elements allowed)" + (f"; max abs err among them {max(errs):.3g}" if errs else ""))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
