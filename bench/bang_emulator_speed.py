#!/usr/bin/env python3
"""Speed of the BANG C (MLU) CPU emulator, xpiler/verify/runtime/bang_emu.h.

Prints elements/second for
  1. a large element-wise kernel (16 tasks, UNION1; each task streams its slice through
     NRAM in chunks: two GDRAM2NRAM copies, __bang_add, __bang_active_relu, one NRAM2GDRAM);
  2. a kernel that synchronizes: every task updates its slice and calls __sync_all once
     per iteration (16 fibers over 4 cluster threads meet in every round).
Both kernels are checked against the expected values, so a broken build cannot report a
speed.

    python bench/bang_emulator_speed.py [--elements N] [--rounds R] [--opt -O2]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = ROOT / "xpiler" / "verify" / "runtime" / "bang_emu.h"

SOURCE = r"""
#include <chrono>
#define CHUNK 8192

// 1. Element-wise: out = relu(a + b), 16 tasks, each streaming its slice through NRAM.
__mlu_global__ void add_relu(float* a, float* b, float* out, int n) {
  __nram__ float x[CHUNK], y[CHUNK];
  int per = n / taskDim;
  for (int off = taskId * per; off < (taskId + 1) * per; off += CHUNK) {
    int len = std::min(CHUNK, (taskId + 1) * per - off);
    __memcpy(x, a + off, len * 4, GDRAM2NRAM);
    __memcpy(y, b + off, len * 4, GDRAM2NRAM);
    __bang_add(x, x, y, len);
    __bang_active_relu(x, x, len);
    __memcpy(out + off, x, len * 4, NRAM2GDRAM);
  }
}

// 2. Synchronizing: each round every task adds its neighbour's slot to a small slice, then
// all tasks meet; the slots are republished after the barrier.
__mlu_global__ void sync_rounds(float* slots, float* out, int rounds, int width) {
  __nram__ float v[256];
  __bang_write_zero(v, width);
  for (int r = 0; r < rounds; ++r) {
    slots[taskId] = float(r);
    __sync_all();
    __bang_add_const(v, v, slots[(taskId + 1) % taskDim], width);
    __sync_all();
  }
  __memcpy(out + taskId * width, v, width * 4, NRAM2GDRAM);
}

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int main(int argc, char** argv) {
  const int n = std::atoi(argv[1]), rounds = std::atoi(argv[2]), width = 64;
  std::vector<float> a(n), b(n), out(n);
  for (int i = 0; i < n; ++i) { a[i] = float(i % 97) - 48; b[i] = float(i % 13); }
  float *da, *db, *dout;
  cnrtMalloc((void**)&da, n * 4); cnrtMalloc((void**)&db, n * 4); cnrtMalloc((void**)&dout, n * 4);
  cnrtMemcpy(da, a.data(), n * 4, CNRT_MEM_TRANS_DIR_HOST2DEV);
  cnrtMemcpy(db, b.data(), n * 4, CNRT_MEM_TRANS_DIR_HOST2DEV);
  auto launch = [&] { xpiler_launch(add_relu, cnrtDim3_t{16, 1, 1}, CNRT_FUNC_TYPE_UNION1)(da, db, dout, n); };
  launch();  // warm-up: stacks, pages
  const int reps = 5;
  double t0 = now();
  for (int r = 0; r < reps; ++r) launch();
  double t_ew = (now() - t0) / reps;
  cnrtMemcpy(out.data(), dout, n * 4, CNRT_MEM_TRANS_DIR_DEV2HOST);
  for (int i = 0; i < n; ++i)
    if (out[i] != std::max(a[i] + b[i], 0.0f)) { std::fprintf(stderr, "wrong element %d\n", i); return 1; }

  float *dslots, *dv;
  cnrtMalloc((void**)&dslots, 16 * 4); cnrtMalloc((void**)&dv, 16 * width * 4);
  t0 = now();
  xpiler_launch(sync_rounds, cnrtDim3_t{16, 1, 1}, CNRT_FUNC_TYPE_UNION1)(dslots, dv, rounds, width);
  double t_sync = now() - t0;
  std::vector<float> v(16 * width);
  cnrtMemcpy(v.data(), dv, v.size() * 4, CNRT_MEM_TRANS_DIR_DEV2HOST);
  const float want = float(rounds) * float(rounds - 1) / 2;
  for (float x : v)
    if (x != want) { std::fprintf(stderr, "sync kernel: got %f, want %f\n", x, want); return 1; }
  std::printf("%.6f %.6f\n", t_ew, t_sync);
  return 0;
}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--elements", type=int, default=1 << 24, help="elements of the element-wise kernel")
    ap.add_argument("--rounds", type=int, default=2000, help="__sync_all rounds (x2 barriers)")
    ap.add_argument("--opt", default="-O2", help="g++ optimization flag")
    ap.add_argument("--define", action="append", default=[], help="extra -D for the header")
    args = ap.parse_args()
    cxx = shutil.which("g++")
    if not cxx:
        print("g++ not found", file=sys.stderr)
        return 2
    n = args.elements // 16 * 16
    with tempfile.TemporaryDirectory() as d:
        src, exe = Path(d) / "speed.cpp", Path(d) / "speed"
        src.write_text(SOURCE)
        cmd = [cxx, "-std=c++17", args.opt, "-w", "-include", str(HEADER),
               *[f"-D{x}" for x in args.define], str(src), "-o", str(exe)]
        subprocess.run(cmd, check=True)
        res = subprocess.run([str(exe), str(n), str(args.rounds)], capture_output=True, text=True)
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            return 1
        t_ew, t_sync = map(float, res.stdout.split())
    barriers = 2 * args.rounds
    print(f"bang emulator, g++ {args.opt}, 16 tasks (4 clusters x 4 cores, UNION1)")
    print(f"element-wise add+relu: {n} elements in {t_ew * 1e3:.1f} ms = {n / t_ew:.3e} elements/s")
    print(f"__sync_all loop: {barriers} barriers x 16 tasks in {t_sync * 1e3:.1f} ms = "
          f"{barriers / t_sync:.3e} barriers/s, {args.rounds * 16 * 64 / t_sync:.3e} elements/s "
          f"({t_sync / barriers * 1e6:.1f} us per barrier)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
