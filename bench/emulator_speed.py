#!/usr/bin/env python3
"""Speed of the CUDA CPU emulator (xpiler/verify/runtime): prints elements/second for a large
elementwise kernel (1024- and 32-thread blocks) and for barrier-heavy / shuffle-heavy
reductions, and raw fiber switches/s, built as verification builds them (4 MiB fiber stacks).

    python bench/emulator_speed.py [--n 16777216]

Everything is compiled with g++ -O2 into a temporary directory; timings are taken inside the
program (kernel launch only, no compilation or host copies) as process CPU time, so that they
stay meaningful on a shared machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "xpiler" / "verify" / "runtime"
sys.path.insert(0, str(ROOT))

from xpiler.verify.emu_adapt import adapt_for_emulator  # noqa: E402
from xpiler.verify.engines import GPU_EMU_STACK_FLAG  # noqa: E402  (as verification builds)

CUDA_BENCH = r"""
#include <time.h>
// CPU time of this process: robust when the machine is shared (wall time is not).
static double now() { timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

__global__ void __launch_bounds__(1024) axpb(const float* __restrict__ x, float* __restrict__ y, float a, float b, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + b;
}
__global__ void block_reduce(const float* x, float* out, int n) {
  __shared__ float s[256];
  int t = threadIdx.x, i = blockIdx.x * 256 + t;
  s[t] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int st = 128; st > 0; st >>= 1) {
    if (t < st) s[t] += s[t + st];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}
__global__ void warp_reduce(const float* x, float* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  float v = i < n ? x[i] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffff, v, o);
  if ((threadIdx.x & 31) == 0) atomicAdd(out, v);
}

int main(int argc, char** argv) {
  int n = atoi(argv[1]), nr = atoi(argv[2]);
  float *x, *y, *r;
  cudaMalloc(&x, (size_t)n * 4); cudaMalloc(&y, (size_t)n * 4); cudaMalloc(&r, (size_t)(nr / 256 + 1) * 4);
  for (int i = 0; i < n; ++i) x[i] = (float)(i % 7);
  double t0 = now();
  axpb<<<(n + 1023) / 1024, 1024>>>(x, y, 2.0f, 1.0f, n);
  double t1 = now();
  if (y[n - 1] != 2.0f * ((n - 1) % 7) + 1.0f) { printf("axpb WRONG\n"); return 1; }
  printf("elementwise  %10d elements   %8.3f s   %10.1f M elements/s\n", n, t1 - t0, n / (t1 - t0) / 1e6);

  // many small blocks: the per-block cost of a launch (scheduler setup, labels)
  t0 = now();
  axpb<<<(n + 31) / 32, 32>>>(x, y, 3.0f, 1.0f, n);
  t1 = now();
  if (y[n - 1] != 3.0f * ((n - 1) % 7) + 1.0f) { printf("axpb/32 WRONG\n"); return 1; }
  printf("32-thr blocks %9d elements   %8.3f s   %10.1f M elements/s\n", n, t1 - t0, n / (t1 - t0) / 1e6);

  t0 = now();
  block_reduce<<<nr / 256, 256>>>(x, r, nr);
  t1 = now();
  double s = 0; for (int b = 0; b < nr / 256; ++b) s += r[b];
  double e = 0; for (int i = 0; i < nr; ++i) e += x[i];
  if (s != e) { printf("block_reduce WRONG %g %g\n", s, e); return 1; }
  long long barriers = (long long)(nr / 256) * 9;
  printf("smem reduce  %10d elements   %8.3f s   %10.1f M elements/s   %8.2f M thread-barrier arrivals/s\n",
         nr, t1 - t0, nr / (t1 - t0) / 1e6, barriers * 256 / (t1 - t0) / 1e6);

  cudaMemset(r, 0, 4);
  t0 = now();
  warp_reduce<<<nr / 256, 256>>>(x, r, nr);
  t1 = now();
  if (r[0] != (float)e) { printf("warp_reduce WRONG %g %g\n", r[0], e); return 1; }
  printf("shfl reduce  %10d elements   %8.3f s   %10.1f M elements/s   %8.2f M shuffles/s (per lane)\n",
         nr, t1 - t0, nr / (t1 - t0) / 1e6, 5.0 * nr / (t1 - t0) / 1e6);
  return 0;
}
"""

FIBER_BENCH = r"""
#include "xpiler_fiber.h"
#include <time.h>
using namespace xpiler::fiber;
static double now() { timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
struct Ctx { Group g; int n, rounds; };
static void body(void* c, int) { Ctx* x = (Ctx*)c; for (int r = 0; r < x->rounds; ++r) arrive_and_wait(x->g, x->n); }
static void nothing(void*, int) {}
int main() {
  Scheduler s; Ctx c; c.n = 256; c.rounds = 4000;
  double t0 = now();
  s.run(c.n, body, &c);
  double dt = now() - t0;
  // every arrival except the last of a round suspends (1 switch out) and is resumed (1 switch in)
  double sw = 2.0 * (c.n - 1) * c.rounds;
  printf("fibers       %d fibers x %d barriers   %8.3f s   %10.1f M switches/s\n", c.n, c.rounds, dt, sw / dt / 1e6);
  t0 = now();
  for (int b = 0; b < 10000; ++b) s.run(1024, nothing, nullptr);
  dt = now() - t0;
  printf("fast path    %d fibers without rendezvous   %8.3f s   %10.1f M fibers/s\n", 10000 * 1024, dt, 1e4 * 1024 / dt / 1e6);
}
"""




def build(tmp: Path, name: str, text: str, header: str | None) -> Path:
    src = tmp / f"{name}.cpp"
    src.write_text(text)
    exe = tmp / name
    cmd = ["g++", "-std=c++17", "-O2", GPU_EMU_STACK_FLAG, "-I", str(RUNTIME)]
    if header:
        cmd += ["-include", header]
    subprocess.run(cmd + ["-x", "c++", str(src), "-o", str(exe)], check=True)
    return exe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16 * 1024 * 1024, help="elements of the elementwise kernel")
    ap.add_argument("--nr", type=int, default=1 << 20, help="elements of the reductions")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cuda = build(tmp, "cuda_bench", adapt_for_emulator(CUDA_BENCH, "cuda"), "cuda_emu.h")
        fib = build(tmp, "fiber_bench", FIBER_BENCH, None)
        subprocess.run([str(cuda), str(args.n), str(args.nr)], check=True)
        subprocess.run([str(fib)], check=True)


if __name__ == "__main__":
    main()
