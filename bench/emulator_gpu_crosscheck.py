#!/usr/bin/env python3
"""Cross-check the CUDA CPU emulator against a real NVIDIA GPU.

The hand-written kernels of tests/test_runtime_gpu.py (shuffles, votes, atomics, dynamic shared
memory, 3-D grids, WMMA in every layout and shape, x[] lane ownership, half arithmetic) and a
few benchmark kernels are compiled twice: natively with nvcc, and with g++ against
cuda_emu.h. Both run on the same input files; outputs must agree.

    python bench/emulator_gpu_crosscheck.py prepare build/xcheck   # here: nvcc builds + inputs
    (on the GPU machine)  build/xcheck/run.sh OUTDIR               # writes OUTDIR/<prog>/<case>_<i>.out
    python bench/emulator_gpu_crosscheck.py compare build/xcheck OUTDIR
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import test_runtime_gpu as T  # noqa: E402

NVCC_PRELUDE = r"""
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#include <cuda_fp16.h>
#include <mma.h>
namespace wmma = nvcuda::wmma;
// atomicMin on float is an extension of the emulator; the GPU side gets a CAS loop
__device__ float atomicMin(float* a, float v) {
  int* p = (int*)a; int old = *p, assumed;
  do { assumed = old; if (__int_as_float(assumed) <= v) break;
       old = atomicCAS(p, assumed, __float_as_int(v)); } while (old != assumed);
  return __int_as_float(old);
}
"""
# cases whose GPU result is not deterministic or that must not run there
SKIP = {"reduce_nobarrier", "deadlock_barrier", "deadlock_shuffle", "overflow"}
BENCH = ["cuda_add", "cuda_softmax", "cuda_gemm", "cuda_bmm", "cuda_conv2d", "cuda_layernorm"]


def programs():
    """name -> (source, cases)"""
    progs = {"hand": (T.CUDA_SRC, {k: v for k, v in T.CUDA_CASES.items() if k not in SKIP})}
    for key in BENCH:
        dialect, fname, entry, args = T.BENCH_CASES[key]
        progs[key] = (T._bench(dialect, fname), {key: (entry, args)})
    return progs


def prepare(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lines = ["#!/bin/sh", "set -e", 'D=$(cd "$(dirname "$0")" && pwd)', 'O="$1"']
    for name, (src, cases) in programs().items():
        d = out / name
        d.mkdir(exist_ok=True)
        (d / "prog.cu").write_text(NVCC_PRELUDE + src + T._main_source(cases))
        subprocess.run(["nvcc", "-O2", "-arch=sm_80", "-gencode", "arch=compute_90,code=sm_90",
                        "-gencode", "arch=compute_80,code=sm_80", "-o", str(d / "prog"), str(d / "prog.cu")],
                       check=True)
        for case, (_, args) in cases.items():
            for i, a in enumerate(args):
                if isinstance(a, T.In):
                    a.array.tofile(d / f"{case}_{i}.bin")
            lines += [f'mkdir -p "$O/{name}"; cp "$D/{name}/"*.bin "$O/{name}/" 2>/dev/null || true',
                      f'"$D/{name}/prog" {case} "$O/{name}"']
    (out / "run.sh").write_text("\n".join(lines) + "\n")
    (out / "run.sh").chmod(0o755)


def compare(out: Path, gpu_dir: Path) -> int:
    bad = 0
    for name, (src, cases) in programs().items():
        prog = T.Program(out / ("emu_" + name), src, "cuda", cases)
        for case, (_, args) in cases.items():
            emu = prog.outputs(case)
            k = 0
            for i, a in enumerate(args):
                if not isinstance(a, T.Out):
                    continue
                gpu = np.fromfile(gpu_dir / name / f"{case}_{i}.out", dtype=a.dtype).reshape(a.shape)
                e = emu[k].astype(np.float64)
                g = gpu.astype(np.float64)
                k += 1
                # NaN in the emulator's output = device memory the kernel never wrote (poison);
                # the GPU leaves whatever was there, so those entries are not compared
                written = ~np.isnan(e)
                same = np.allclose(e[written], g[written], rtol=1e-3, atol=1e-3)
                worst = float(np.nanmax(np.abs(e - g))) if e.size else 0.0
                print(f"{name:16} {case:18} out{i}: {'same' if same else 'DIFFERENT'} (max |emu - gpu| = {worst:.3g})")
                bad += not same
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["prepare", "compare"])
    ap.add_argument("dir", type=Path)
    ap.add_argument("gpu_out", type=Path, nargs="?")
    a = ap.parse_args()
    if a.action == "prepare":
        if a.dir.exists():
            shutil.rmtree(a.dir)
        prepare(a.dir)
    else:
        sys.exit(1 if compare(a.dir, a.gpu_out) else 0)


if __name__ == "__main__":
    main()
