#!/usr/bin/env python3
"""Every CUDA kernel of a benchmark directory on a real GPU and on the CUDA emulator,
with the same inputs; reports how many agree within tolerance.

Run it on a machine with an NVIDIA GPU, nvcc and g++ (inputs are generated there from the
seed, so nothing large has to travel):

    python bench/gpu_vs_emu.py ../shared/xpilerbench/CUDA --jobs 16 --json gpu_vs_emu.json

Problem sizes and meaningful inputs come from the cases plugin (bench/operators.py).
A disagreement means the emulator is wrong (or the kernel is non-deterministic, e.g. it
races or reads memory it never wrote: the row says which).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xpiler.bench import load_cases  # noqa: E402
from xpiler.verify.compare import compare_arrays  # noqa: E402
from xpiler.verify.engines import EngineError  # noqa: E402
from xpiler.verify.kernel import prepare  # noqa: E402


def check(path: Path, cases, max_bytes: int, timeout: float) -> dict:
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
        results = {}
        for engine in ("gpu", "emu"):
            try:
                results[engine] = k.run(ins, engine, timeout=timeout).outputs
            except EngineError as e:
                row.update(status=f"{engine}-{e.stage}-failed", reason=str(e)[:400])
                return row
        worst_abs = worst_rel = 0.0
        for name in k.outputs:
            c = compare_arrays(name, results["gpu"][name], results["emu"][name])
            worst_abs, worst_rel = max(worst_abs, c.max_abs_err), max(worst_rel, c.max_rel_err)
            if not c.ok:
                row.update(status="differ", reason=c.summary())
                break
        else:
            row["status"] = "agree"
        row.update(max_abs_err=worst_abs, max_rel_err=worst_rel)
    except Exception as e:  # noqa: BLE001 - one kernel's failure must not stop the sweep
        row.update(status="error", reason=f"{type(e).__name__}: {e}"[:400])
    finally:
        row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, help="the benchmark's CUDA directory")
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--match", help="only files whose name contains this")
    ap.add_argument("--max-mb", type=float, default=2048, help="skip kernels whose buffers exceed this")
    ap.add_argument("--timeout", type=float, default=240, help="seconds per run")
    args = ap.parse_args()
    cases = load_cases(None)
    files = sorted(p for p in args.dir.glob("*.cu") if not args.match or args.match in p.name)
    rows = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for row in pool.map(lambda p: check(p, cases, int(args.max_mb * 1e6), args.timeout), files):
            rows.append(row)
            print(f"{row['status']:24} {row['file']} {row['reason'][:160]}", flush=True)
    counts: dict = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print("summary:", json.dumps(counts, sort_keys=True))
    ran = [r for r in rows if r["status"] in ("agree", "differ")]
    agree = [r["max_abs_err"] for r in ran if r["status"] == "agree"]
    if ran:
        print(f"agreement: {len(agree)}/{len(ran)} kernels that ran on both engines"
              + (f"; max abs err among agreeing kernels {max(agree):.3g}" if agree else ""))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
