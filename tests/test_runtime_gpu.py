"""Tests of the CUDA and HIP CPU emulators (xpiler/verify/runtime/{cuda,hip}_emu.h,
xpiler_fiber.h) and of the source adapter (xpiler/verify/emu_adapt.py).

Programs are compiled with g++ -O2 into a temporary directory. A generated main() reads each
input buffer from a file, calls an `extern "C"` host entry and writes the outputs back, so
that numpy computes the expected values. Benchmark kernels are read from
../shared/xpilerbench (relative to the repository root) and skipped when it is absent.
"""

from __future__ import annotations

import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from xpiler.verify.emu_adapt import adapt_for_emulator

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "xpiler" / "verify" / "runtime"
BENCH = ROOT.parent / "shared" / "xpilerbench"
LAYOUT_DATA = Path(__file__).parent / "data" / "wmma_layout_sm90.txt"

CTYPE = {np.float32: "float", np.float16: "half", np.int32: "int", np.int64: "int64_t", np.uint32: "unsigned", np.uint64: "unsigned long long"}


class In:
    def __init__(self, array):
        self.array = np.ascontiguousarray(array)


class Out:
    def __init__(self, dtype, shape):
        self.dtype, self.shape = np.dtype(dtype), shape if isinstance(shape, tuple) else (shape,)


def _ctype(dtype) -> str:
    return CTYPE[np.dtype(dtype).type]


def _main_source(cases: dict[str, tuple[str, list]]) -> str:
    """main(argc, argv): run case argv[1] reading/writing <dir>/<case>_<i>.bin."""
    lines = [
        "\n#include <string>",
        "static void* xp_read(const std::string& p, size_t n) { void* b = malloc(n ? n : 1);"
        " FILE* f = fopen(p.c_str(), \"rb\"); if (!f || fread(b, 1, n, f) != n) { perror(p.c_str()); exit(2);} fclose(f); return b; }",
        "static void xp_write(const std::string& p, const void* b, size_t n) {"
        " FILE* f = fopen(p.c_str(), \"wb\"); fwrite(b, 1, n, f); fclose(f); }",
        "int main(int argc, char** argv) {",
        "  std::string c = argv[1], d = argv[2];",
    ]
    for name, (entry, args) in cases.items():
        lines.append(f'  if (c == "{name}") {{')
        call = []
        for i, a in enumerate(args):
            path = f'd + "/{name}_{i}.bin"'
            if isinstance(a, In):
                lines.append(f"    void* b{i} = xp_read({path}, {a.array.nbytes});")
                call.append(f"({_ctype(a.array.dtype)}*)b{i}")
            elif isinstance(a, Out):
                nbytes = int(np.prod(a.shape)) * a.dtype.itemsize
                lines.append(f"    void* b{i} = malloc({nbytes}); memset(b{i}, 0xEE, {nbytes});")
                call.append(f"({_ctype(a.dtype)}*)b{i}")
            else:
                call.append(repr(a))
        lines.append(f"    {entry}({', '.join(call)});")
        for i, a in enumerate(args):
            if isinstance(a, Out):
                nbytes = int(np.prod(a.shape)) * a.dtype.itemsize
                lines.append(f'    xp_write(d + "/{name}_{i}.out", b{i}, {nbytes});')
        lines.append("    return 0;\n  }")
    lines.append('  fprintf(stderr, "unknown case\\n"); return 3;\n}')
    return "\n".join(lines) + "\n"


class Program:
    def __init__(self, workdir: Path, source: str, dialect: str, cases: dict, defines=()):
        self.dir, self.cases = workdir, cases
        self.dir.mkdir(parents=True, exist_ok=True)
        header = "cuda_emu.h" if dialect == "cuda" else "hip_emu.h"
        src = self.dir / "prog.cpp"
        src.write_text(adapt_for_emulator(source, dialect) + _main_source(cases))
        self.exe = self.dir / "prog"
        cmd = ["g++", "-std=c++17", "-O2", "-I", str(RUNTIME), "-include", header, *defines,
               "-x", "c++", str(src), "-o", str(self.exe)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        self.compile_error = None if r.returncode == 0 else r.stderr[-4000:]

    def run(self, case: str, timeout=60, env=None):
        assert self.compile_error is None, self.compile_error
        _, args = self.cases[case]
        for i, a in enumerate(args):
            if isinstance(a, In):
                a.array.tofile(self.dir / f"{case}_{i}.bin")
        r = subprocess.run([str(self.exe), case, str(self.dir)], capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, **(env or {})))
        outs = []
        if r.returncode == 0:
            for i, a in enumerate(args):
                if isinstance(a, Out):
                    outs.append(np.fromfile(self.dir / f"{case}_{i}.out", dtype=a.dtype).reshape(a.shape))
        return r, outs

    def outputs(self, case: str, timeout=60, env=None):
        r, outs = self.run(case, timeout, env)
        assert r.returncode == 0, f"{case}: exit {r.returncode}\n{r.stderr[-3000:]}"
        return outs


def build_many(tmp_root: Path, specs: dict[str, tuple]) -> dict[str, Program]:
    """Compile several programs on 2 workers."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futs = {k: pool.submit(Program, tmp_root / k, *v) for k, v in specs.items()}
        return {k: f.result() for k, f in futs.items()}


def rng(seed=0):
    return np.random.default_rng(seed)


# =====================================================================================
# Hand-written CUDA kernels
# =====================================================================================
CUDA_SRC = r"""
// ---- block tree reduction in shared memory: wrong without a real barrier ----
template <bool kBarrier>
__global__ void tree_reduce(const float* in, float* out, int n) {
  __shared__ float s[256];
  int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  s[t] = i < n ? in[i] : 0.0f;
  if (kBarrier) __syncthreads();
  for (int st = blockDim.x / 2; st > 0; st >>= 1) {
    if (t < st) s[t] += s[t + st];
    if (kBarrier) __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}
extern "C" void reduce_entry(const float* in, float* out, int n, int barrier) {
  float *d_in, *d_out; int nb = (n + 255) / 256;
  cudaMalloc(&d_in, n * 4); cudaMalloc(&d_out, nb * 4);
  cudaMemcpy(d_in, in, n * 4, cudaMemcpyHostToDevice);
  if (barrier) tree_reduce<true><<<nb, 256>>>(d_in, d_out, n);
  else tree_reduce<false><<<nb, 256>>>(d_in, d_out, n);
  cudaMemcpy(out, d_out, nb * 4, cudaMemcpyDeviceToHost);
  cudaFree(d_in); cudaFree(d_out);
}

// ---- shuffles ----
__global__ void shuffles(const float* in, float* out) {
  int t = threadIdx.x; float v = in[t];
  out[t * 5 + 0] = __shfl_sync(0xffffffff, v, 3);
  out[t * 5 + 1] = __shfl_up_sync(0xffffffff, v, 2);
  out[t * 5 + 2] = __shfl_down_sync(0xffffffff, v, 5, 16);
  out[t * 5 + 3] = __shfl_xor_sync(0xffffffff, v, 7);
  float s = v;
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
  out[t * 5 + 4] = s;
}
extern "C" void shuffle_entry(const float* in, float* out) {
  float *a, *b; cudaMalloc(&a, 64 * 4); cudaMalloc(&b, 64 * 5 * 4);
  cudaMemcpy(a, in, 64 * 4, cudaMemcpyHostToDevice);
  shuffles<<<1, 64>>>(a, b);
  cudaMemcpy(out, b, 64 * 5 * 4, cudaMemcpyDeviceToHost);
}

// ---- votes ----
__global__ void votes(const int* in, unsigned* out) {
  int t = threadIdx.x, p = in[t] > 0;
  out[t * 3 + 0] = __ballot_sync(0xffffffff, p);
  out[t * 3 + 1] = __any_sync(0xffffffff, p);
  out[t * 3 + 2] = __all_sync(0xffffffff, p);
}
extern "C" void vote_entry(const int* in, unsigned* out) {
  int* a; unsigned* b; cudaMalloc(&a, 96 * 4); cudaMalloc(&b, 96 * 3 * 4);
  cudaMemcpy(a, in, 96 * 4, cudaMemcpyHostToDevice);
  votes<<<1, 96>>>(a, b);
  cudaMemcpy(out, b, 96 * 3 * 4, cudaMemcpyDeviceToHost);
}

// ---- atomics ----
__global__ void atomics(const int* in, int* hist, int* mx, float* fsum, float* fmin_, int* cas_count, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  atomicAdd(&hist[in[i] & 15], 1);
  atomicMax(mx, in[i]);
  atomicAdd(fsum, 0.5f);
  atomicMin(fmin_, (float)in[i]);
  int old = *cas_count, assumed;
  do { assumed = old; old = atomicCAS(cas_count, assumed, assumed + 2); } while (old != assumed);
}
extern "C" void atomic_entry(const int* in, int* out_i, float* out_f, int n) {
  int *a, *h; float* f;
  cudaMalloc(&a, n * 4); cudaMalloc(&h, 18 * 4); cudaMalloc(&f, 2 * 4);
  cudaMemcpy(a, in, n * 4, cudaMemcpyHostToDevice);
  cudaMemset(h, 0, 18 * 4);
  float init[2] = {0.0f, 1e30f}; cudaMemcpy(f, init, 8, cudaMemcpyHostToDevice);
  atomics<<<(n + 127) / 128, 128>>>(a, h, h + 16, f, f + 1, h + 17, n);
  cudaMemcpy(out_i, h, 18 * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(out_f, f, 8, cudaMemcpyDeviceToHost);
}

// ---- dynamic shared memory: reverse each block ----
__global__ void reverse_dyn(const float* in, float* out) {
  extern __shared__ float buf[];
  int t = threadIdx.x, base = blockIdx.x * blockDim.x;
  buf[t] = in[base + t];
  __syncthreads();
  out[base + t] = buf[blockDim.x - 1 - t];
}
extern "C" void dyn_entry(const float* in, float* out, int blocks, int threads) {
  float *a, *b; int n = blocks * threads;
  cudaMalloc(&a, n * 4); cudaMalloc(&b, n * 4);
  cudaMemcpy(a, in, n * 4, cudaMemcpyHostToDevice);
  reverse_dyn<<<blocks, threads, threads * sizeof(float)>>>(a, b);
  cudaMemcpy(out, b, n * 4, cudaMemcpyDeviceToHost);
}

// ---- 3-D grid and block ----
__global__ void grid3d(int* out) {
  int bl = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  int th = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  int g = bl * (blockDim.x * blockDim.y * blockDim.z) + th;
  out[g * 6 + 0] = blockIdx.x; out[g * 6 + 1] = blockIdx.y; out[g * 6 + 2] = blockIdx.z;
  out[g * 6 + 3] = threadIdx.x; out[g * 6 + 4] = threadIdx.y; out[g * 6 + 5] = threadIdx.z;
}
extern "C" void grid3d_entry(int* out) {
  int* d; size_t n = 3 * 2 * 2 * 4 * 3 * 2 * 6;
  cudaMalloc(&d, n * 4);
  grid3d<<<dim3(3, 2, 2), dim3(4, 3, 2)>>>(d);
  cudaMemcpy(out, d, n * 4, cudaMemcpyDeviceToHost);
}

// ---- WMMA: D = A*B + C with every layout combination, ldm larger than the tile ----
template <int M, int N, int K, class LA, class LB, class TC>
__global__ void wmma_generic(const half* A, const half* B, const TC* C, TC* D, int lda, int ldb, int ldc,
                             int c_col, int d_col) {
  wmma::fragment<wmma::matrix_a, M, N, K, half, LA> a;
  wmma::fragment<wmma::matrix_b, M, N, K, half, LB> b;
  wmma::fragment<wmma::accumulator, M, N, K, TC> c;
  wmma::load_matrix_sync(a, A, lda);
  wmma::load_matrix_sync(b, B, ldb);
  wmma::load_matrix_sync(c, C, ldc, c_col ? wmma::mem_col_major : wmma::mem_row_major);
  wmma::mma_sync(c, a, b, c);
  wmma::store_matrix_sync(D, c, ldc, d_col ? wmma::mem_col_major : wmma::mem_row_major);
}
template <int M, int N, int K, class LA, class LB, class TC>
void wmma_host(const half* A, const half* B, const TC* C, TC* D, int lda, int ldb, int ldc, int c_col, int d_col) {
  half *a, *b; TC *c, *d;
  cudaMalloc(&a, 64 * 64 * 2); cudaMalloc(&b, 64 * 64 * 2); cudaMalloc(&c, 64 * 64 * sizeof(TC)); cudaMalloc(&d, 64 * 64 * sizeof(TC));
  cudaMemcpy(a, A, 64 * 64 * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(b, B, 64 * 64 * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(c, C, 64 * 64 * sizeof(TC), cudaMemcpyHostToDevice);
  cudaMemcpy(d, C, 64 * 64 * sizeof(TC), cudaMemcpyHostToDevice);
  wmma_generic<M, N, K, LA, LB, TC><<<1, 32>>>(a, b, c, d, lda, ldb, ldc, c_col, d_col);
  cudaMemcpy(D, d, 64 * 64 * sizeof(TC), cudaMemcpyDeviceToHost);
}
using wmma::row_major; using wmma::col_major;
#define WMMA_ENTRY(name, M, N, K, LA, LB, TC) \
  extern "C" void name(const half* A, const half* B, const TC* C, TC* D, int lda, int ldb, int ldc, int cc, int dc) \
  { wmma_host<M, N, K, LA, LB, TC>(A, B, C, D, lda, ldb, ldc, cc, dc); }
WMMA_ENTRY(wmma_rr_f, 16, 16, 16, row_major, row_major, float)
WMMA_ENTRY(wmma_rc_f, 16, 16, 16, row_major, col_major, float)
WMMA_ENTRY(wmma_cr_f, 16, 16, 16, col_major, row_major, float)
WMMA_ENTRY(wmma_cc_h, 16, 16, 16, col_major, col_major, half)
WMMA_ENTRY(wmma_32x8_f, 32, 8, 16, row_major, col_major, float)
WMMA_ENTRY(wmma_8x32_f, 8, 32, 16, col_major, row_major, float)

// ---- WMMA x[] lane ownership: dump x[e] of every lane after loading encoded matrices ----
template <class Frag, class T>
__global__ void dump_frag(const T* src, unsigned ld, float* out) {
  Frag f;
  wmma::load_matrix_sync(f, src, ld);
  for (int e = 0; e < f.num_elements; ++e) out[threadIdx.x * 16 + e] = (float)f.x[e];
  if (threadIdx.x == 0) out[32 * 16] = f.num_elements;
}
template <class Frag>
__global__ void dump_acc(const float* src, unsigned ld, float* out) {
  Frag f;
  wmma::load_matrix_sync(f, src, ld, wmma::mem_row_major);
  for (int e = 0; e < f.num_elements; ++e) out[threadIdx.x * 16 + e] = f.x[e];
  if (threadIdx.x == 0) out[32 * 16] = f.num_elements;
}
template <int M, int N, int K>
void dump_shape(float* out) {  // out: 3 x (32*16+1): matrix_a, matrix_b, accumulator
  static half ha[64 * 64], hb[64 * 64]; static float hc[64 * 64];
  for (int i = 0; i < M * K; ++i) ha[i] = (float)i;   // A[r][c] = r*K + c, row-major
  for (int i = 0; i < K * N; ++i) hb[i] = (float)i;   // B[r][c] = r*N + c, row-major
  for (int i = 0; i < M * N; ++i) hc[i] = (float)i;
  half *a, *b; float *c, *o;
  cudaMalloc(&a, sizeof ha); cudaMalloc(&b, sizeof hb); cudaMalloc(&c, sizeof hc); cudaMalloc(&o, 3 * 513 * 4);
  cudaMemcpy(a, ha, sizeof ha, cudaMemcpyHostToDevice); cudaMemcpy(b, hb, sizeof hb, cudaMemcpyHostToDevice);
  cudaMemcpy(c, hc, sizeof hc, cudaMemcpyHostToDevice);
  dump_frag<wmma::fragment<wmma::matrix_a, M, N, K, half, wmma::row_major>, half><<<1, 32>>>(a, K, o);
  dump_frag<wmma::fragment<wmma::matrix_b, M, N, K, half, wmma::row_major>, half><<<1, 32>>>(b, N, o + 513);
  dump_acc<wmma::fragment<wmma::accumulator, M, N, K, float>><<<1, 32>>>(c, N, o + 2 * 513);
  cudaMemcpy(out, o, 3 * 513 * 4, cudaMemcpyDeviceToHost);
}
extern "C" void dump_16x16(float* out) { dump_shape<16, 16, 16>(out); }
extern "C" void dump_32x8(float* out) { dump_shape<32, 8, 16>(out); }
extern "C" void dump_8x32(float* out) { dump_shape<8, 32, 16>(out); }

// ---- x[] arithmetic on an accumulator (as dense kernels do with a bias) ----
__global__ void acc_bias(const half* A, const half* B, const float* bias, float* D) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> a;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::row_major> b;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
  wmma::fill_fragment(c, 0.0f);
  wmma::load_matrix_sync(a, A, 16);
  wmma::load_matrix_sync(b, B, 16);
  wmma::mma_sync(c, a, b, c);
  for (int i = 0; i < c.num_elements; ++i) c.x[i] += bias[i];   // bias by element index
  wmma::store_matrix_sync(D, c, 16, wmma::mem_row_major);
}
extern "C" void acc_bias_entry(const half* A, const half* B, const float* bias, float* D) {
  half *a, *b; float *bi, *d;
  cudaMalloc(&a, 512); cudaMalloc(&b, 512); cudaMalloc(&bi, 64); cudaMalloc(&d, 1024);
  cudaMemcpy(a, A, 512, cudaMemcpyHostToDevice); cudaMemcpy(b, B, 512, cudaMemcpyHostToDevice);
  cudaMemcpy(bi, bias, 64, cudaMemcpyHostToDevice);
  acc_bias<<<1, 32>>>(a, b, bi, d);
  cudaMemcpy(D, d, 1024, cudaMemcpyDeviceToHost);
}

// ---- half arithmetic ----
__global__ void half_ops(const half* a, const half* b, float* out) {
  int t = threadIdx.x;
  half s = a[t] + b[t], p = __hmul(a[t], b[t]);
  half m = -1e9f; m = fmaxf(m, a[t]);
  out[t * 4 + 0] = __half2float(s);
  out[t * 4 + 1] = p;
  out[t * 4 + 2] = (a[t] > b[t]) ? 1.0f : 0.0f;
  out[t * 4 + 3] = __half2float(__float2half(expf(m - b[t])));
}
extern "C" void half_entry(const half* a, const half* b, float* out) {
  half *da, *db; float* o; cudaMalloc(&da, 64); cudaMalloc(&db, 64); cudaMalloc(&o, 32 * 4 * 4);
  cudaMemcpy(da, a, 64, cudaMemcpyHostToDevice); cudaMemcpy(db, b, 64, cudaMemcpyHostToDevice);
  half_ops<<<1, 32>>>(da, db, o);
  cudaMemcpy(out, o, 32 * 16, cudaMemcpyDeviceToHost);
}

// ---- a kernel template launched with deduced template arguments ----
template <typename T>
__global__ void scale_t(T* x, T s, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] = x[i] * s;
}
extern "C" void deduce_entry(int* out) {
  int* d; cudaMalloc(&d, 100 * 4);
  for (int i = 0; i < 100; ++i) out[i] = i;
  cudaMemcpy(d, out, 400, cudaMemcpyHostToDevice);
  scale_t<<<4, 32>>>(d, 3, 100);
  scale_t<int><<<4, 32>>>(d, 2, 100);
  cudaMemcpy(out, d, 400, cudaMemcpyDeviceToHost);
}

// ---- deadlocks: must stop with an error, not hang ----
__global__ void early_return_barrier(float* x) {
  if (threadIdx.x == 5) return;
  __syncthreads();
  x[threadIdx.x] = 1.0f;
}
__global__ void exited_lane_shuffle(float* x) {
  if (threadIdx.x == 7) return;
  x[threadIdx.x] = __shfl_down_sync(0xffffffff, 1.0f, 1);
}
extern "C" void deadlock_entry(float* out, int which) {
  float* d; cudaMalloc(&d, 64 * 4);
  if (which == 0) early_return_barrier<<<2, 64>>>(d);
  else exited_lane_shuffle<<<1, 32>>>(d);
  cudaMemcpy(out, d, 4, cudaMemcpyDeviceToHost);
}
__global__ void big_locals(float* out) {   // 400 KB of locals > the 256 KiB fiber stack
  volatile float buf[100000];
  for (int i = 0; i < 100000; ++i) buf[i] = i;
  out[threadIdx.x] = buf[99999];
}
extern "C" void overflow_entry(float* out) {
  float* d; cudaMalloc(&d, 32 * 4);
  big_locals<<<1, 32>>>(d);
  cudaMemcpy(out, d, 4, cudaMemcpyDeviceToHost);
}
extern "C" void bad_config_entry(int* out) {
  float* d; cudaMalloc(&d, 4);
  early_return_barrier<<<1, 2048>>>(d);
  out[0] = (int)cudaGetLastError();
  out[1] = (int)cudaGetLastError();
}

// ---- schedule probe: records the order in which threads run (XPILER_EMU_BLOCK_ORDER) ----
__global__ void order_probe(int* order, int* counter) {
  order[atomicAdd(counter, 1)] = blockIdx.x * blockDim.x + threadIdx.x;
}
extern "C" void order_entry(int* out) {
  int* d; cudaMalloc(&d, 97 * 4); cudaMemset(d, 0, 97 * 4);
  order_probe<<<3, 32>>>(d + 1, d);
  cudaMemcpy(out, d, 97 * 4, cudaMemcpyDeviceToHost);
}
"""


def _enc_f16(m):
    return m.astype(np.float16)


R = rng(1)
REDUCE_IN = R.integers(-8, 8, 1000).astype(np.float32)
SHFL_IN = R.integers(-100, 100, 64).astype(np.float32)
VOTE_IN = np.where(R.random(96) < 0.5, 1, -1).astype(np.int32)
VOTE_IN[32:64] = 1  # warp 1: all true
ATOM_IN = R.integers(0, 1000, 3000).astype(np.int32)
DYN_IN = R.random(5 * 96).astype(np.float32)
WA = _enc_f16(R.integers(-4, 5, (64, 64)) / 4.0)
WB = _enc_f16(R.integers(-4, 5, (64, 64)) / 4.0)
WC = (R.integers(-4, 5, (64, 64)) / 2.0).astype(np.float32)
HALF_A = _enc_f16(R.integers(-40, 40, 32) / 8.0)
HALF_B = _enc_f16(R.integers(-40, 40, 32) / 8.0)

CUDA_CASES = {
    "reduce": ("reduce_entry", [In(REDUCE_IN), Out(np.float32, 4), 1000, 1]),
    "reduce_nobarrier": ("reduce_entry", [In(REDUCE_IN), Out(np.float32, 4), 1000, 0]),
    "shuffle": ("shuffle_entry", [In(SHFL_IN), Out(np.float32, (64, 5))]),
    "vote": ("vote_entry", [In(VOTE_IN), Out(np.uint32, (96, 3))]),
    "atomic": ("atomic_entry", [In(ATOM_IN), Out(np.int32, 18), Out(np.float32, 2), 3000]),
    "dyn": ("dyn_entry", [In(DYN_IN), Out(np.float32, 5 * 96), 5, 96]),
    "grid3d": ("grid3d_entry", [Out(np.int32, (3 * 2 * 2 * 4 * 3 * 2, 6))]),
    "dump_16x16": ("dump_16x16", [Out(np.float32, (3, 513))]),
    "dump_32x8": ("dump_32x8", [Out(np.float32, (3, 513))]),
    "dump_8x32": ("dump_8x32", [Out(np.float32, (3, 513))]),
    "acc_bias": ("acc_bias_entry", [In(WA[:16, :16]), In(WB[:16, :16]), In(np.arange(8, dtype=np.float32) * 100),
                                    Out(np.float32, (16, 16))]),
    "half": ("half_entry", [In(HALF_A), In(HALF_B), Out(np.float32, (32, 4))]),
    "deadlock_barrier": ("deadlock_entry", [Out(np.float32, 1), 0]),
    "deadlock_shuffle": ("deadlock_entry", [Out(np.float32, 1), 1]),
    "bad_config": ("bad_config_entry", [Out(np.int32, 2)]),
    "deduce": ("deduce_entry", [Out(np.int32, 100)]),
    "overflow": ("overflow_entry", [Out(np.float32, 1)]),
    "order": ("order_entry", [Out(np.int32, 97)]),
}
# name: (entry, M, N, K, a col-major?, b col-major?, accumulator dtype, lda, ldb, ldc, C col-major?, D col-major?)
WMMA_CASES = {
    "wmma_rr_f": ("wmma_rr_f", 16, 16, 16, False, False, np.float32, 24, 40, 20, 0, 0),
    "wmma_rc_f": ("wmma_rc_f", 16, 16, 16, False, True, np.float32, 16, 16, 16, 1, 0),
    "wmma_cr_f": ("wmma_cr_f", 16, 16, 16, True, False, np.float32, 32, 24, 18, 0, 1),
    "wmma_cc_h": ("wmma_cc_h", 16, 16, 16, True, True, np.float16, 16, 48, 16, 1, 1),
    "wmma_32x8_f": ("wmma_32x8_f", 32, 8, 16, False, True, np.float32, 16, 24, 40, 0, 0),
    "wmma_8x32_f": ("wmma_8x32_f", 8, 32, 16, True, False, np.float32, 8, 40, 32, 1, 0),
}
for _name, (_entry, *_rest) in WMMA_CASES.items():
    _tc = _rest[5]
    CUDA_CASES[_name] = (_entry, [In(WA), In(WB), In(WC.astype(_tc)), Out(_tc, (64, 64)), *_rest[6:]])


def _mat(buf, rows, cols, ld, colmajor):
    flat = buf.reshape(-1)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return flat[(r + c * ld) if colmajor else (r * ld + c)]


HIP_SRC = r"""
__global__ void wave_ops(const float* in, float* out, unsigned long long* bal) {
  int t = threadIdx.x; float v = in[t];
  out[t * 4 + 0] = __shfl(v, 63 - (t & 63));
  out[t * 4 + 1] = __shfl_down(v, 1);
  out[t * 4 + 2] = __shfl_xor(v, 32);
  float s = v;
  for (int o = 32; o > 0; o >>= 1) s += __shfl_xor(s, o);
  out[t * 4 + 3] = s;
  bal[t] = __ballot(v > 0);
}
extern "C" void wave_entry(const float* in, float* out, unsigned long long* bal) {
  float *a, *b; unsigned long long* c;
  hipMalloc(&a, 128 * 4); hipMalloc(&b, 128 * 16); hipMalloc(&c, 128 * 8);
  hipMemcpy(a, in, 128 * 4, hipMemcpyHostToDevice);
  hipLaunchKernelGGL(wave_ops, dim3(1), dim3(128), 0, 0, a, b, c);
  hipMemcpy(out, b, 128 * 16, hipMemcpyDeviceToHost);
  hipMemcpy(bal, c, 128 * 8, hipMemcpyDeviceToHost);
}

// Each lane passes its lane-indexed operands; the test computes the expected D from the
// documented layouts. in_a/in_b: [64][4] per-lane values, in_c: [64][16].
typedef float f4 __attribute__((__vector_size__(16)));
typedef float f16v __attribute__((__vector_size__(64)));
typedef _Float16 h4 __attribute__((__vector_size__(8)));
__global__ void mfma_all(const float* A, const float* B, const float* C, float* D, int shape, int active) {
  int l = threadIdx.x;
  if (l >= active) return;   // lanes >= active do not take part (inactive lanes)
  f4 c4; f16v c16; h4 ha, hb;
  for (int r = 0; r < 4; ++r) c4[r] = C[l * 16 + r];
  for (int r = 0; r < 16; ++r) c16[r] = C[l * 16 + r];
  for (int v = 0; v < 4; ++v) { ha[v] = (_Float16)A[l * 4 + v]; hb[v] = (_Float16)B[l * 4 + v]; }
  if (shape == 0) { f4 d = __builtin_amdgcn_mfma_f32_16x16x4f32(A[l * 4], B[l * 4], c4, 0, 0, 0); for (int r = 0; r < 4; ++r) D[l * 16 + r] = d[r]; }
  if (shape == 1) { f16v d = __builtin_amdgcn_mfma_f32_32x32x2f32(A[l * 4], B[l * 4], c16, 0, 0, 0); for (int r = 0; r < 16; ++r) D[l * 16 + r] = d[r]; }
  if (shape == 2) { f4 d = __builtin_amdgcn_mfma_f32_4x4x1f32(A[l * 4], B[l * 4], c4, 0, 0, 0); for (int r = 0; r < 4; ++r) D[l * 16 + r] = d[r]; }
  if (shape == 3) { f4 d = __builtin_amdgcn_mfma_f32_16x16x16f16(ha, hb, c4, 0, 0, 0); for (int r = 0; r < 4; ++r) D[l * 16 + r] = d[r]; }
  if (shape == 4) { f16v d = __builtin_amdgcn_mfma_f32_32x32x8f16(ha, hb, c16, 0, 0, 0); for (int r = 0; r < 16; ++r) D[l * 16 + r] = d[r]; }
}
extern "C" void mfma_entry(const float* A, const float* B, const float* C, float* D, int shape, int active) {
  float *a, *b, *c, *d;
  hipMalloc(&a, 64 * 16); hipMalloc(&b, 64 * 16); hipMalloc(&c, 64 * 64); hipMalloc(&d, 64 * 64);
  hipMemcpy(a, A, 64 * 16, hipMemcpyHostToDevice); hipMemcpy(b, B, 64 * 16, hipMemcpyHostToDevice);
  hipMemcpy(c, C, 64 * 64, hipMemcpyHostToDevice); hipMemset(d, 0, 64 * 64);
  mfma_all<<<1, 64>>>(a, b, c, d, shape, active);
  hipMemcpy(D, d, 64 * 64, hipMemcpyDeviceToHost);
}
__global__ void hip_barrier_deadlock(float* x) {
  if (threadIdx.x == 70) return;
  __syncthreads();
  x[threadIdx.x] = 1.0f;
}
extern "C" void hip_deadlock_entry(float* out) {
  float* d; hipMalloc(&d, 128 * 4);
  hip_barrier_deadlock<<<1, 128>>>(d);
  hipMemcpy(out, d, 4, hipMemcpyDeviceToHost);
}
"""

# MFMA shapes: (M, N, K, blocks, values per lane, D registers)
MFMA_SHAPES = {0: (16, 16, 4, 1, 1, 4), 1: (32, 32, 2, 1, 1, 16), 2: (4, 4, 1, 16, 1, 4),
               3: (16, 16, 16, 1, 4, 4), 4: (32, 32, 8, 1, 4, 16)}
MA = (R.integers(-4, 5, (64, 4)) / 4.0).astype(np.float32)
MB = (R.integers(-4, 5, (64, 4)) / 4.0).astype(np.float32)
MC = (R.integers(-4, 5, (64, 16)) / 2.0).astype(np.float32)
HIP_CASES = {
    "wave": ("wave_entry", [In(SHFL_IN.repeat(2)[:128] * np.where(np.arange(128) % 3 == 0, -1, 1).astype(np.float32)),
                            Out(np.float32, (128, 4)), Out(np.uint64, 128)]),
    "hip_deadlock": ("hip_deadlock_entry", [Out(np.float32, 1)]),
}
for _s in MFMA_SHAPES:
    for _active in (64, 40):
        HIP_CASES[f"mfma{_s}_{_active}"] = ("mfma_entry", [In(MA), In(MB), In(MC), Out(np.float32, (64, 16)), _s, _active])


def mfma_expected(shape, active):
    """Expected per-lane D, from the AMD-documented layouts (written independently of the header)."""
    M, N, K, blocks, kpl, nregs = MFMA_SHAPES[shape]
    a = MA.astype(np.float16).astype(np.float32) if kpl == 4 else MA
    b = MB.astype(np.float16).astype(np.float32) if kpl == 4 else MB
    A = np.zeros((blocks, M, K), np.float64)
    B = np.zeros((blocks, K, N), np.float64)
    for l in range(active):  # inactive lanes contribute zeros
        for v in range(kpl):
            if shape == 2:  # 4x4x1, 16 blocks: block = l/4
                A[l // 4, l % 4, 0] = a[l, 0]
                B[l // 4, 0, l % 4] = b[l, 0]
            else:
                A[0, l % M, (l // M) * kpl + v] = a[l, v]
                B[0, (l // N) * kpl + v, l % N] = b[l, v]
    D = np.full((64, 16), 0.0)
    for l in range(64):
        for r in range(nregs):
            if l >= active:
                continue  # never written: stays at the hipMemset value 0
            if shape == 2:
                blk, row, col = l // 4, r, l % 4
            elif M == 16:
                blk, row, col = 0, 4 * (l // 16) + r, l % 16
            else:
                blk, row, col = 0, 8 * (r // 4) + 4 * (l // 32) + r % 4, l % 32
            D[l, r] = MC[l, r] + A[blk, row, :] @ B[blk, :, col]
    return D


# =====================================================================================
# Benchmark kernels
# =====================================================================================
def _bench(dialect, name):
    path = BENCH / ("CUDA" if dialect == "cuda" else "HIP") / (name + (".cu" if dialect == "cuda" else ".hip"))
    return path.read_text() if path.exists() else None


BR = rng(7)
B_ADD = (BR.random((2, 18 * 128)).astype(np.float32))
B_SOFT = (BR.standard_normal((45, 25)) * 10).astype(np.float32)
B_GEMM_A = BR.standard_normal((32, 32)).astype(np.float16)
B_GEMM_B = BR.standard_normal((32, 128)).astype(np.float16)
B_BMM_A = BR.standard_normal((128, 128)).astype(np.float16)
B_BMM_B = BR.standard_normal((128, 128)).astype(np.float16)
B_CONV_X = BR.random((16, 8, 8, 64)).astype(np.float32)
B_CONV_W = BR.random((64, 2, 2, 64)).astype(np.float32)
B_GQA = [BR.random((1, 2, 16, 16)).astype(np.float16), BR.random((1, 2, 16, 512)).astype(np.float16),
         BR.random((1, 2, 512, 16)).astype(np.float16)]
B_LN = BR.random((1, 4, 128)).astype(np.float32), BR.random(128).astype(np.float32), BR.random(128).astype(np.float32)
BH_GEMM_A = BR.standard_normal((32, 32)).astype(np.float32)
BH_GEMM_B = BR.standard_normal((32, 128)).astype(np.float32)
BH_BMM_A = BR.standard_normal((128, 128)).astype(np.float32)
BH_BMM_B = BR.standard_normal((128, 128)).astype(np.float32)

BENCH_CASES = {
    # key: (dialect, file, entry, args)
    "cuda_add": ("cuda", "add_18_128", "add_kernel", [In(B_ADD[0]), In(B_ADD[1]), Out(np.float32, 2304), 2304]),
    "cuda_softmax": ("cuda", "softmax_45_25", "softmax_kernel", [In(B_SOFT), Out(np.float32, (45, 25)), 45, 25]),
    "cuda_gemm": ("cuda", "gemm_32_32_128", "gemm_kernel", [In(B_GEMM_A), In(B_GEMM_B), Out(np.float32, (32, 128)), 32, 32, 128]),
    "cuda_bmm": ("cuda", "bmm_1_128_128_128", "bmm_kernel", [In(B_BMM_A), In(B_BMM_B), Out(np.float32, (128, 128)), 1, 128, 128, 128]),
    "cuda_conv2d": ("cuda", "conv2d_16_8_8_64_64_2_2_64_2_0", "conv2d_kernel",
                    [In(B_CONV_X), In(B_CONV_W), Out(np.float32, (16, 4, 4, 64)), 16, 8, 64, 64, 2, 2]),
    "cuda_gqa": ("cuda", "gqa_1_2_16_16_512", "gqa_kernel", [*map(In, B_GQA), Out(np.float16, (1, 2, 16, 16)), 1, 2, 16, 16, 512]),
    "cuda_layernorm": ("cuda", "layernorm_1_4_128", "layernorm_kernel", [*map(In, B_LN), Out(np.float32, (1, 4, 128)), 1, 4, 128]),
    "hip_add": ("hip", "add_18_128", "add_kernel", [In(B_ADD[0]), In(B_ADD[1]), Out(np.float32, 2304), 2304]),
    "hip_softmax": ("hip", "softmax_45_25", "softmax_kernel", [In(B_SOFT), Out(np.float32, (45, 25)), 45, 25]),
    "hip_gemm": ("hip", "gemm_32_32_128", "gemm_kernel", [In(BH_GEMM_A), In(BH_GEMM_B), Out(np.float32, (32, 128)), 32, 32, 128]),
    "hip_bmm": ("hip", "bmm_1_128_128_128", "bmm_kernel", [In(BH_BMM_A), In(BH_BMM_B), Out(np.float32, (128, 128)), 1, 128, 128, 128]),
    "hip_gqa": ("hip", "gqa_1_2_16_16_512", "gqa_kernel", [In(B_GQA[0].astype(np.float32)), In(B_GQA[1].astype(np.float32)),
                                                            In(B_GQA[2].astype(np.float32)), Out(np.float32, (1, 2, 16, 16)),
                                                            1, 2, 16, 512, 16]),
}


# =====================================================================================
# Fixtures: compile everything once, two compilations at a time
# =====================================================================================
@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    root = tmp_path_factory.mktemp("emu")
    specs = {"cuda": (CUDA_SRC, "cuda", CUDA_CASES), "hip": (HIP_SRC, "hip", HIP_CASES)}
    if BENCH.exists():
        for key, (dialect, fname, entry, args) in BENCH_CASES.items():
            src = _bench(dialect, fname)
            if src is not None:
                flags = ("-fsanitize=address", "-g") if key == "hip_gqa" else ()
                specs[key] = (src, dialect, {key: (entry, args)}, flags)
    return build_many(root, specs)


def _bench_out(programs, key):
    if key not in programs:
        pytest.skip("benchmark data (../shared/xpilerbench) not available")
    return programs[key].outputs(key)


# ---------------------------------- CUDA ---------------------------------------------
def test_block_tree_reduction_needs_barrier(programs):
    p = programs["cuda"]
    (got,) = p.outputs("reduce")
    exp = np.pad(REDUCE_IN, (0, 24)).reshape(4, 256).sum(axis=1)
    np.testing.assert_array_equal(got, exp)
    # The same kernel without __syncthreads gives a different (wrong) answer: the test
    # would detect an emulator whose barrier is not a real rendezvous.
    (wrong,) = p.outputs("reduce_nobarrier")
    assert not np.array_equal(wrong, exp)


def test_shuffles(programs):
    (got,) = programs["cuda"].outputs("shuffle")
    v = SHFL_IN
    lane = np.arange(64) % 32
    base = np.arange(64) - lane
    exp_idx = v[base + 3]
    exp_up = np.where(lane >= 2, v[np.arange(64) - 2], v)
    seg = lane % 16
    exp_down = np.where(seg + 5 < 16, v[np.minimum(np.arange(64) + 5, 63)], v)
    exp_xor = v[base + (lane ^ 7)]
    exp_sum = np.repeat(v.reshape(2, 32).sum(axis=1), 32)
    np.testing.assert_array_equal(got[:, 0], exp_idx)
    np.testing.assert_array_equal(got[:, 1], exp_up)
    np.testing.assert_array_equal(got[:, 2], exp_down)
    np.testing.assert_array_equal(got[:, 3], exp_xor)
    np.testing.assert_array_equal(got[:, 4], exp_sum)


def test_votes(programs):
    (got,) = programs["cuda"].outputs("vote")
    p = (VOTE_IN > 0).reshape(3, 32)
    ballots = [int(sum(1 << i for i in range(32) if w[i])) for w in p]
    np.testing.assert_array_equal(got[:, 0], np.repeat(ballots, 32))
    np.testing.assert_array_equal(got[:, 1], np.repeat(p.any(axis=1), 32))
    np.testing.assert_array_equal(got[:, 2], np.repeat(p.all(axis=1), 32))
    assert got[32:64, 2].all() and not got[:32, 2].any()


def test_atomics(programs):
    gi, gf = programs["cuda"].outputs("atomic")
    np.testing.assert_array_equal(gi[:16], np.bincount(ATOM_IN & 15, minlength=16))
    assert gi[16] == ATOM_IN.max()
    assert gi[17] == 2 * len(ATOM_IN)  # atomicCAS loop
    assert gf[0] == 0.5 * len(ATOM_IN) and gf[1] == ATOM_IN.min()


def test_dynamic_shared_memory(programs):
    (got,) = programs["cuda"].outputs("dyn")
    np.testing.assert_array_equal(got, DYN_IN.reshape(5, 96)[:, ::-1].reshape(-1))


def test_3d_grid_and_block(programs):
    (got,) = programs["cuda"].outputs("grid3d")
    exp = [(bx, by, bz, tx, ty, tz) for bz in range(2) for by in range(2) for bx in range(3)
           for tz in range(2) for ty in range(3) for tx in range(4)]
    np.testing.assert_array_equal(got, np.array(exp))


@pytest.mark.parametrize("case", list(WMMA_CASES))
def test_wmma_mma_layouts(programs, case):
    entry, M, N, K, acol, bcol, tc, lda, ldb, ldc, ccol, dcol = WMMA_CASES[case]
    (got,) = programs["cuda"].outputs(case)
    A = _mat(WA, M, K, lda, acol).astype(np.float64)
    B = _mat(WB, K, N, ldb, bcol).astype(np.float64)
    C = _mat(WC.astype(tc), M, N, ldc, ccol).astype(np.float64)
    D = _mat(got, M, N, ldc, dcol).astype(np.float64)
    np.testing.assert_allclose(D, A @ B + C, rtol=1e-3 if tc == np.float16 else 1e-6, atol=1e-2 if tc == np.float16 else 1e-5)
    # elements outside the stored tile are untouched (still C's initial contents)
    untouched = np.ones(64 * 64, bool)
    r, c = np.meshgrid(np.arange(M), np.arange(N), indexing="ij")
    untouched[(r + c * ldc) if dcol else (r * ldc + c)] = False
    np.testing.assert_array_equal(got.reshape(-1)[untouched], WC.astype(tc).reshape(-1)[untouched])


def _measured_layout():
    lay = {}
    for line in LAYOUT_DATA.read_text().splitlines():
        if line.startswith("#"):
            continue
        f, M, N, K, lane, *pairs = line.split()
        lay[(f, int(M), int(N), int(K), int(lane))] = [tuple(map(int, p.split(","))) for p in pairs]
    return lay


@pytest.mark.parametrize("shape", [(16, 16, 16), (32, 8, 16), (8, 32, 16)])
def test_wmma_lane_ownership_matches_h200(programs, shape):
    """x[e] of every lane holds the element that the real GPU (H200, sm_90) put there."""
    M, N, K = shape
    (got,) = programs["cuda"].outputs(f"dump_{M}x{N}")
    lay = _measured_layout()
    for k, (frag, cols) in enumerate([("matrix_a", K), ("matrix_b", N), ("accumulator", N)]):
        ne = int(got[k, 512])
        assert ne == len(lay[(frag, M, N, K, 0)]), (frag, ne)
        for lane in range(32):
            vals = got[k, lane * 16: lane * 16 + ne].astype(int)
            assert [(v // cols, v % cols) for v in vals] == lay[(frag, M, N, K, lane)], (frag, lane)


def test_wmma_accumulator_x_index_is_per_lane(programs):
    """Adding bias[i] to c.x[i] affects the elements each lane owns (8 per lane on sm_80+)."""
    (got,) = programs["cuda"].outputs("acc_bias")
    bias = np.arange(8) * 100.0
    exp = WA[:16, :16].astype(np.float64) @ WB[:16, :16].astype(np.float64)
    lay = _measured_layout()
    for lane in range(32):
        for e, (r, c) in enumerate(lay[("accumulator", 16, 16, 16, lane)]):
            exp[r, c] += bias[e]
    np.testing.assert_allclose(got, exp, atol=1e-4)


def test_half_arithmetic(programs):
    (got,) = programs["cuda"].outputs("half")
    a, b = HALF_A.astype(np.float32), HALF_B.astype(np.float32)
    np.testing.assert_array_equal(got[:, 0], (HALF_A + HALF_B).astype(np.float32))
    np.testing.assert_array_equal(got[:, 1], (HALF_A * HALF_B).astype(np.float32))
    np.testing.assert_array_equal(got[:, 2], (a > b).astype(np.float32))
    np.testing.assert_allclose(got[:, 3], np.exp(a - b).astype(np.float16).astype(np.float32), rtol=1e-3)


@pytest.mark.parametrize("case", ["deadlock_barrier", "deadlock_shuffle"])
def test_deadlock_is_an_error_not_a_hang(programs, case):
    r, _ = programs["cuda"].run(case, timeout=30)
    assert r.returncode != 0
    assert "deadlock" in r.stderr
    assert "exited without arriving" in r.stderr


def test_fiber_stack_overflow_is_reported(programs):
    r, _ = programs["cuda"].run("overflow", timeout=30)
    assert r.returncode == 86 and "fiber stack overflow" in r.stderr and "XPILER_FIBER_STACK_SIZE" in r.stderr


def test_invalid_launch_configuration(programs):
    (got,) = programs["cuda"].outputs("bad_config")
    assert got[0] == 1 and got[1] == 0  # cudaErrorInvalidValue (as CUDA 12 on an H200), then cleared


REVERSE = {"XPILER_EMU_BLOCK_ORDER": "reverse"}


def test_reverse_block_order(programs):
    """XPILER_EMU_BLOCK_ORDER=reverse runs blocks and their threads last to first."""
    p = programs["cuda"]
    (fwd,) = p.outputs("order")
    (rev,) = p.outputs("order", env=REVERSE)
    assert fwd[0] == rev[0] == 96
    assert fwd[1:].tolist() == list(range(96))
    assert rev[1:].tolist() == list(range(95, -1, -1))
    r, _ = p.run("order", env={"XPILER_EMU_BLOCK_ORDER": "sideways"})
    assert r.returncode == 86 and "expected forward or reverse" in r.stderr


def test_reverse_order_keeps_barriers_and_shared_memory_right(programs):
    """Barriers hold in reverse order, and the thread that poisons __shared__ memory is the
    first to start (thread 255 here), not thread 0, which would clobber the others' writes."""
    p = programs["cuda"]
    exp = np.pad(REDUCE_IN, (0, 24)).reshape(4, 256).sum(axis=1)
    (got,) = p.outputs("reduce", env=REVERSE)
    np.testing.assert_array_equal(got, exp)
    r, _ = p.run("deadlock_barrier", timeout=30, env=REVERSE)
    assert r.returncode != 0 and "exited without arriving" in r.stderr


def test_kernel_template_argument_deduction(programs):
    (got,) = programs["cuda"].outputs("deduce")
    np.testing.assert_array_equal(got, np.arange(100) * 6)


# ---------------------------------- HIP ----------------------------------------------
def test_hip_wave64_shuffles_and_ballot(programs):
    v = HIP_CASES["wave"][1][0].array
    got, bal = programs["hip"].outputs("wave")
    lane = np.arange(128) % 64
    base = np.arange(128) - lane
    np.testing.assert_array_equal(got[:, 0], v[base + 63 - lane])
    np.testing.assert_array_equal(got[:, 1], np.where(lane < 63, v[np.minimum(np.arange(128) + 1, 127)], v))
    np.testing.assert_array_equal(got[:, 2], v[base + (lane ^ 32)])
    np.testing.assert_array_equal(got[:, 3], np.repeat(v.reshape(2, 64).sum(axis=1), 64))
    exp_bal = [sum(1 << i for i in range(64) if w[i] > 0) for w in v.reshape(2, 64)]
    np.testing.assert_array_equal(bal, np.repeat(np.array(exp_bal, dtype=np.uint64), 64))
    assert bal[0] >= 2**32 or bal[0] != (bal[0] & 0xFFFFFFFF) or v[32:64].max() <= 0


@pytest.mark.parametrize("shape", list(MFMA_SHAPES))
@pytest.mark.parametrize("active", [64, 40])
def test_hip_mfma(programs, shape, active):
    (got,) = programs["hip"].outputs(f"mfma{shape}_{active}")
    np.testing.assert_allclose(got, mfma_expected(shape, active), rtol=1e-5, atol=1e-5)


def test_hip_barrier_deadlock(programs):
    r, _ = programs["hip"].run("hip_deadlock", timeout=30)
    assert r.returncode != 0 and "deadlock" in r.stderr


# ------------------------------- benchmark kernels -----------------------------------
@pytest.mark.parametrize("key", ["cuda_add", "hip_add"])
def test_bench_add(programs, key):
    (got,) = _bench_out(programs, key)
    np.testing.assert_allclose(got, B_ADD[0] + B_ADD[1], rtol=1e-6)


@pytest.mark.parametrize("key", ["cuda_softmax", "hip_softmax"])
def test_bench_softmax(programs, key):
    (got,) = _bench_out(programs, key)
    e = np.exp(B_SOFT - B_SOFT.max(axis=1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)


def _tile_transposed(B):
    """B with each 16x16 tile transposed (what loading row-major B into col_major does)."""
    k, n = B.shape
    return B.reshape(k // 16, 16, n // 16, 16).transpose(0, 3, 2, 1).reshape(k, n)


def test_bench_cuda_gemm_reproduces_tile_transpose_defect(programs):
    (got,) = _bench_out(programs, "cuda_gemm")
    A, B = B_GEMM_A.astype(np.float64), B_GEMM_B.astype(np.float64)
    np.testing.assert_allclose(got, A @ _tile_transposed(B), rtol=1e-3, atol=1e-3)
    assert not np.allclose(got, A @ B, rtol=1e-2, atol=1e-2)  # the intended result differs


def test_bench_cuda_bmm(programs):
    (got,) = _bench_out(programs, "cuda_bmm")  # same col_major load of row-major B as gemm
    A, B = B_BMM_A.astype(np.float64), B_BMM_B.astype(np.float64)
    np.testing.assert_allclose(got, A @ _tile_transposed(B), rtol=1e-3, atol=1e-3)


def test_bench_cuda_conv2d(programs):
    (got,) = _bench_out(programs, "cuda_conv2d")
    x, w = B_CONV_X.astype(np.float64), B_CONV_W.astype(np.float64)
    exp = np.zeros((16, 4, 4, 64))
    for kh in range(2):
        for kw in range(2):
            patch = x[:, kh:kh + 7:2, kw:kw + 7:2, :]  # [n, 4, 4, ci]
            exp += np.einsum("nhwc,oc->nhwo", patch, w[:, kh, kw, :])
    np.testing.assert_allclose(got, exp, rtol=1e-4)


def test_bench_cuda_layernorm(programs):
    (got,) = _bench_out(programs, "cuda_layernorm")
    x, g, b = B_LN
    mean = x.mean(-1, keepdims=True)
    std = x.std(-1, keepdims=True)
    exp_a = (x - mean) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * g + b
    exp_b = (x - mean) / (std + 1e-5) * g + b
    assert np.allclose(got, exp_a, atol=1e-3) or np.allclose(got, exp_b, atol=1e-3)


def test_bench_cuda_gqa_runs(programs):
    """gqa reads shared memory it never wrote (known defect). It runs to completion (half
    WMMA, shared memory and half scalar arithmetic under the warp rendezvous), and since
    static shared memory is poisoned when a block starts, the defect shows: outputs
    computed from never-written shared memory are NaN."""
    (got,) = _bench_out(programs, "cuda_gqa")
    assert not np.isfinite(got.astype(np.float32)).all()


def test_bench_hip_gqa_out_of_bounds_found_by_asan(programs):
    """HIP gqa stores O with row stride 512 into a [.., 16, 16] buffer and reads past its
    `sum_array` (defects of the benchmark file): it cannot give a meaningful result (without
    ASan the stray stores corrupt the heap). Built with -fsanitize=address, the emulator
    (fibers included) reports the first bad access instead of crashing somewhere else."""
    if "hip_gqa" not in programs:
        pytest.skip("benchmark data (../shared/xpilerbench) not available")
    r, _ = programs["hip_gqa"].run("hip_gqa", timeout=120)
    assert r.returncode != 0
    assert "AddressSanitizer: global-buffer-overflow" in r.stderr and "in gqa(" in r.stderr


@pytest.mark.parametrize("key,A,B", [("hip_gemm", BH_GEMM_A, BH_GEMM_B), ("hip_bmm", BH_BMM_A, BH_BMM_B)])
def test_bench_hip_mfma_matmul(programs, key, A, B):
    (got,) = _bench_out(programs, key)
    np.testing.assert_allclose(got, A.astype(np.float64) @ B.astype(np.float64), rtol=1e-4, atol=1e-4)


# ------------------------------ fiber scheduler API ----------------------------------
FIBER_SRC = r"""
#include "xpiler_fiber.h"
#include <cstring>
using namespace xpiler::fiber;
struct Ctx { Group block, sub[4]; int order[64]; int n_order = 0; long sum = 0; };
static void groups(void* c, int i) {           // 16 fibers: a barrier of all, and of 4 groups of 4
  Ctx* x = (Ctx*)c;
  x->order[x->n_order++] = i;
  arrive_and_wait(x->sub[i / 4], 4);
  x->order[x->n_order++] = 100 + i;
  bool last = arrive_and_wait(x->block, 16);
  if (last) x->order[x->n_order++] = 1000 + i;
}
static void yielder(void* c, int i) {           // yield() interleaves fibers
  Ctx* x = (Ctx*)c;
  for (int k = 0; k < 3; ++k) { x->order[x->n_order++] = i * 10 + k; yield(); }
}
static void thrower(void* c, int i) {
  if (i == 2) throw std::runtime_error("boom from fiber 2");
  arrive_and_wait(((Ctx*)c)->block, 4);
}
static void big_stack(void* c, int i) {          // a 1.5 MiB local array needs a larger stack
  volatile char buf[1536 * 1024];
  std::memset((char*)buf, i, sizeof buf);
  arrive_and_wait(((Ctx*)c)->block, 3);
  ((Ctx*)c)->sum += buf[sizeof buf - 1];
}
static void partial(void* c, int i) {           // a lenient group completes at a stall
  Ctx* x = (Ctx*)c;
  if (i % 2) return;
  arrive_and_wait(x->sub[0], 8);
  x->sum += 1;
}
int main() {
  setvbuf(stdout, nullptr, _IONBF, 0);  // the last run ends the process
  Scheduler s;
  { Ctx c; s.run(16, groups, &c);
    for (int k = 0; k < c.n_order; ++k) printf("%d ", c.order[k]); printf("\n"); }
  { Ctx c; s.run(3, yielder, &c);
    for (int k = 0; k < c.n_order; ++k) printf("%d ", c.order[k]); printf("\n"); }
  { Ctx c; try { s.run(4, thrower, &c); printf("no exception\n"); }
    catch (std::runtime_error& e) { printf("caught %s\n", e.what()); } }
  { Ctx c; s.run(3, big_stack, &c, nullptr, "big", 2 << 20); printf("sum %ld\n", c.sum); }
  { Ctx c; c.sub[0].partial_on_stall = true; s.run(8, partial, &c); printf("partial %ld\n", c.sum); }
  { Ctx c; s.run(2, groups, &c); }   // 2 fibers wait for 4: deadlock
  return 0;
}
"""


def test_fiber_scheduler_api(tmp_path):
    src = tmp_path / "f.cpp"
    src.write_text(FIBER_SRC)
    exe = tmp_path / "f"
    subprocess.run(["g++", "-std=c++17", "-O2", "-I", str(RUNTIME), str(src), "-o", str(exe)], check=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    order = list(map(int, lines[0].split()))
    # every fiber reaches its group barrier before any of its group passes it; all 16 pass the
    # sub-barriers before anyone passes the block barrier, which completes exactly once
    for i in range(16):
        g = i // 4
        assert max(order.index(j) for j in range(4 * g, 4 * g + 4)) < order.index(100 + i)
    assert sum(1 for v in order if v >= 1000) == 1 and order[-1] >= 1000
    yields = list(map(int, lines[1].split()))
    assert sorted(yields) == [0, 1, 2, 10, 11, 12, 20, 21, 22]
    assert yields.index(10) < yields.index(1) < yields.index(11) < yields.index(2)  # interleaved
    for f in range(3):
        mine = [v for v in yields if v // 10 == f]
        assert mine == sorted(mine)
    assert lines[2] == "caught boom from fiber 2"
    assert lines[3] == "sum 3"  # 0 + 1 + 2
    assert lines[4] == "partial 4"
    # the last run deadlocks: uncaught xpiler::fiber::Deadlock with a clear message
    assert r.returncode != 0 and "deadlock" in r.stderr and "2 of 4 expected arrivals" in r.stderr


# ---------------------------------- adapter ------------------------------------------
def test_adapter_keeps_lines_and_rewrites_launches():
    src = (
        '// k<<<1,2>>>(x) stays in a comment\n'
        'extern "C" __global__ void sin(float* a) { extern __shared__ __align__(16) float sm[]; }\n'
        'extern "C" __global__ void relu(float* a) {}\n'
        'void h() {\n'
        '  ns::k<float, 4><<<dim3((n + 255) / 256, f(a, b)), 256, 0,\n'
        '      stream>>>(a, b);\n'
        '  add<<<g, b>>>(x); const char* s = "y<<<1,2>>>(z)";\n'
        '}\n'
    )
    out = adapt_for_emulator(src, "cuda")
    assert out.count("\n") == src.count("\n")
    lines = out.splitlines()
    assert lines[0] == src.splitlines()[0]
    assert 'extern "C"' not in lines[1] and "void sin(" in lines[1]
    assert "float *sm = (float *)xpiler::gpu::dynamic_shared();" in lines[1]
    assert lines[2].startswith('extern "C"')  # relu is not a libc name
    assert "xpiler_launch(ns::k<float, 4>,dim3((n + 255) / 256, f(a, b)), 256, 0," in lines[4]
    assert lines[5].strip() == "stream)(a, b);"
    assert "xpiler_launch(add,g, b)(x)" in lines[6] and '"y<<<1,2>>>(z)"' in lines[6]
    with pytest.raises(ValueError):
        adapt_for_emulator("k<<<1>>>(x);", "cuda")
    with pytest.raises(ValueError):
        adapt_for_emulator("", "opencl")


def test_adapter_bang_sources():
    """BANG C: launches and extern "C" kernels named like libm functions; nothing else."""
    src = ('extern "C" __mlu_global__ void sin(float* a, float* b) { x = {0}; }\n'
           'extern "C" __mlu_global__ void relu(float* a, float* b) {}\n'
           'void h() { sin<<<dim, CNRT_FUNC_TYPE_UNION1, queue>>>(a, b); }\n')
    for dialect in ("mlu", "cuda"):  # BANG is recognised even when called as "cuda"
        out = adapt_for_emulator(src, dialect)
        lines = out.splitlines()
        assert lines[0].lstrip().startswith("__mlu_global__ void sin(") and "x = {0};" in lines[0]
        assert lines[1].startswith('extern "C"')
        assert "xpiler_launch(sin,dim, CNRT_FUNC_TYPE_UNION1, queue)(a, b);" in lines[2]


def test_adapter_brace_assignment_for_vector_types(tmp_path):
    """g++ rejects `v = {0};` for GCC vector types (HIP gqa does it); the adapter rewrites it."""
    src = ("typedef float f4 __attribute__((__vector_size__(16)));\n"
           "extern \"C\" void brace(float* out) { f4 v = {1, 2, 3, 4}; f4& r = v;\n"
           "  r = {5};  // z = {0};\n"
           "  out[0] = v[0]; out[1] = v[3]; }\n")
    out = adapt_for_emulator(src, "hip")
    assert "r = XPILER_BRACE_T(r){5};  // z = {0};" in out and "f4 v = {1, 2, 3, 4};" in out
    (got,) = Program(tmp_path, src, "hip", {"b": ("brace", [Out(np.float32, 2)])}).outputs("b")
    np.testing.assert_array_equal(got, [5, 0])


# ---------------------------------- bench/gpu_vs_emu.py ------------------------------
def _gpu_vs_emu():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_vs_emu", ROOT / "bench" / "gpu_vs_emu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


RACY_ADD = r"""
__global__ void add(float *A, float *B, float *T) {
  int i = blockIdx.x * 32 + threadIdx.x;
  T[i / 2] = A[i] + B[i];  // threads 2j and 2j+1 race for T[j]; T[32..64) is never written
}
extern "C" void add_kernel(float *A, float *B, float *C, int size) {
  float *d_A, *d_B, *d_C;
  cudaMalloc(&d_A, size * sizeof(float)); cudaMalloc(&d_B, size * sizeof(float));
  cudaMalloc(&d_C, size * sizeof(float));
  cudaMemcpy(d_A, A, size * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(d_B, B, size * sizeof(float), cudaMemcpyHostToDevice);
  add<<<size / 32, 32>>>(d_A, d_B, d_C);
  cudaMemcpy(C, d_C, size * sizeof(float), cudaMemcpyDeviceToHost);
}
"""


def test_gpu_vs_emu_classifies_races_and_partial_writes(tmp_path, capsys):
    """--emu-only (no GPU here): the emulator's forward and reverse orders expose the race,
    two poisonings the unwritten half; the GPU harness still compiles with nvcc."""
    import shutil

    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed")
    (tmp_path / "add_64.cu").write_text(RACY_ADD)
    gve = _gpu_vs_emu()
    out = tmp_path / "r.json"
    assert gve.main([str(tmp_path), "--emu-only", "--jobs", "1", "--json", str(out)]) == 0
    import json

    (row,) = json.loads(out.read_text())
    assert row["status"] == "source-race", row
    (name,) = row["order_dependent"]
    assert row["order_dependent"][name] == 32 and row["excluded"][name] == 32
    assert row["unwritten"][name] == {"gpu": 32, "emu": 32}
    text = capsys.readouterr().out
    assert "summary: 0 agree, 0 partial-write-excluded, 1 source-race, 0 differ, 0 source-defect" in text


class _FakeKernel:
    outputs = ["out"]


def _runs(values, undefined=()):
    v = np.asarray(values, np.float32)
    und = np.zeros(v.size, bool)
    und[list(undefined)] = True
    return {"out": v}, {"out": und}, {"out": und.copy()}


@pytest.mark.parametrize("gpu,status", [
    ([1, 2, 3, 4], "agree"),
    ([1, 2, 9, 4], "partial-write-excluded"),   # element 2 is undefined (changes with poison)
    ([5, 2, 3, 4], "source-race"),              # element 0 is order-dependent: GPU took the other order
    ([1, 7, 3, 4], "differ"),                   # element 1 is defined and order-independent
])
def test_gpu_vs_emu_classification(gpu, status):
    gve = _gpu_vs_emu()
    undefined = (2,) if status == "partial-write-excluded" else ()
    emu = _runs([1, 2, 3, 4], undefined)
    rev = {"out": np.asarray([5 if status == "source-race" else 1, 2, 3, 4], np.float32)}
    row = gve.classify(_FakeKernel(), _runs(gpu, undefined), emu, rev)
    assert row["status"] == status, row


@pytest.mark.parametrize("proven_race,status", [(True, "source-race"), (False, "differ")])
def test_gpu_vs_emu_race_with_coincident_writers(proven_race, status):
    """Scatter with duplicate targets: element 1's forward and reverse writers happen to lie
    within tolerance (1.0 vs 1.0000001), the GPU kept a third writer (9). On a buffer with a
    proven race (element 0) that element is order-dependent too; without one, a rounding-only
    forward/reverse difference does not excuse a GPU value far from both."""
    gve = _gpu_vs_emu()
    emu = _runs([1, 1.0, 3, 4])
    rev = {"out": np.asarray([5 if proven_race else 1, 1.0000001, 3, 4], np.float32)}
    gpu = _runs([5 if proven_race else 1, 9, 3, 4])
    row = gve.classify(_FakeKernel(), gpu, emu, rev)
    assert row["status"] == status, row
    if proven_race:
        assert row["order_dependent"] == {"out": 2}


OOB_READ = r"""
__global__ void k(const float *x, const float *m, float *y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  y[i] = x[i] - m[i % 8];  // m has 4 elements: reads past its end
}
extern "C" void k_kernel(const float *x, const float *m, float *y) {
  float *dx, *dm, *dy;
  cudaMalloc(&dx, 64 * sizeof(float)); cudaMalloc(&dm, 4 * sizeof(float));
  cudaMalloc(&dy, 64 * sizeof(float));
  cudaMemcpy(dx, x, 64 * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(dm, m, 4 * sizeof(float), cudaMemcpyHostToDevice);
  k<<<2, 32>>>(dx, dm, dy);
  cudaMemcpy(y, dy, 64 * sizeof(float), cudaMemcpyDeviceToHost);
}
"""


@pytest.mark.parametrize("oob", [True, False])
def test_gpu_vs_emu_asan_convicts_out_of_bounds_reads(tmp_path, oob):
    """Defined elements that differ between the engines: an out-of-bounds read (the GPU reads
    its allocation's unpoisoned slack, the emulator its heap neighbours) is convicted by
    AddressSanitizer on the emulator; a clean kernel is not."""
    from xpiler.verify.kernel import prepare

    gve = _gpu_vs_emu()
    p = tmp_path / "k_64.cu"
    p.write_text(OOB_READ if oob else OOB_READ.replace("m[i % 8]", "m[i % 4]"))
    k = prepare(str(p))
    why = gve.asan_conviction(k, k.inputs(0), 120, "emu")
    if oob:
        assert why and why.startswith("ASan:") and "heap-buffer-overflow" in why and "k_64.cu:4" in why, why
    else:
        assert why is None


def test_gpu_vs_emu_differ_becomes_source_defect_only_with_asan_evidence(tmp_path, monkeypatch):
    """check(): a 'differ' row is rerun under ASan; the out-of-bounds kernel becomes a
    source-defect that keeps the difference in its reason, the clean one stays 'differ'."""
    import shutil
    from types import SimpleNamespace

    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed")
    gve = _gpu_vs_emu()
    # stands in for a GPU that disagrees (emu-only here: the GPU side is the emulator)
    monkeypatch.setattr(gve, "classify", lambda *a: {"status": "differ", "reason": "out: MISMATCH (3/64)"})
    case = SimpleNamespace(scalars={}, extents=None, make_inputs=lambda seed: {})
    cases = SimpleNamespace(case_for=lambda path, dialect: case)
    rows = {}
    for oob in (True, False):
        p = tmp_path / f"k{int(oob)}_64.cu"
        p.write_text(OOB_READ if oob else OOB_READ.replace("m[i % 8]", "m[i % 4]"))
        rows[oob] = gve.check(p, cases, 10**9, 120, emu_only=True)
    assert rows[True]["status"] == "source-defect", rows[True]
    assert "heap-buffer-overflow" in rows[True]["reason"] and "MISMATCH (3/64)" in rows[True]["reason"]
    assert rows[False]["status"] == "differ", rows[False]
