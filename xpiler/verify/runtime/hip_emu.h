// hip_emu.h — CPU emulator for HIP kernels (AMD CDNA, wave64).
//
//   g++ -std=c++17 -O2 -I xpiler/verify/runtime -include hip_emu.h -x c++ kernel.hip
//   (after emu_adapt.adapt_for_emulator(text, "hip") for <<<>>> launches)
//
// Same execution model as the CUDA emulator (gpu_common.h) with waves of 64 lanes. Wave
// operations (__shfl*, __ballot, __any, __all, MFMA) carry no member mask in HIP: the
// hardware executes them for the lanes active in the EXEC mask. The emulator has no
// lock-step EXEC mask, so a wave operation completes when every live lane of the wave has
// arrived, or - if some lanes never come (they exited, or wait at another rendezvous) -
// as soon as nothing else in the block can run; the lanes that did not arrive are then
// treated as inactive for that operation.
#pragma once
#define XPILER_EMU_HIP 1
#define XPILER_WARP_SIZE 64
#include "gpu_common.h"

// floatx16 MFMA operands are 64-byte vectors: g++ notes that passing them by value has
// another ABI with AVX-512 enabled. Irrelevant here (all code is compiled together).
#pragma GCC diagnostic ignored "-Wpsabi"

constexpr int warpSize = 64;

#define hipThreadIdx_x (threadIdx.x)
#define hipThreadIdx_y (threadIdx.y)
#define hipThreadIdx_z (threadIdx.z)
#define hipBlockIdx_x (blockIdx.x)
#define hipBlockIdx_y (blockIdx.y)
#define hipBlockIdx_z (blockIdx.z)
#define hipBlockDim_x (blockDim.x)
#define hipBlockDim_y (blockDim.y)
#define hipBlockDim_z (blockDim.z)
#define hipGridDim_x (gridDim.x)
#define hipGridDim_y (gridDim.y)
#define hipGridDim_z (gridDim.z)
#define HIP_KERNEL_NAME(...) __VA_ARGS__
#define HIP_DYNAMIC_SHARED(type, var) type *var = (type *)xpiler::gpu::dynamic_shared();
#define HIP_DYNAMIC_SHARED_ATTRIBUTE
// hipLaunchKernelGGL(kernel, grid, block, shmem, stream, args...)
#define hipLaunchKernelGGL(kernel, grid, block, shmem, stream, ...) \
  xpiler_launch(kernel, grid, block, shmem, stream)(__VA_ARGS__)

// ------------------------------------------------------------------------------------
// Wave intrinsics (width defaults to 64; __ballot returns 64 bits)
// ------------------------------------------------------------------------------------
inline unsigned __lane_id() { return (unsigned)xpiler::gpu::lane_id(); }
template <class T>
inline T __shfl(T var, int srcLane, int width = 64) {
  return xpiler::gpu::shuffle(xpiler::gpu::kOpShflIdx, 0, var, srcLane, width);
}
template <class T>
inline T __shfl_up(T var, unsigned delta, int width = 64) {
  return xpiler::gpu::shuffle(xpiler::gpu::kOpShflUp, 0, var, (int)delta, width);
}
template <class T>
inline T __shfl_down(T var, unsigned delta, int width = 64) {
  return xpiler::gpu::shuffle(xpiler::gpu::kOpShflDown, 0, var, (int)delta, width);
}
template <class T>
inline T __shfl_xor(T var, int laneMask, int width = 64) {
  return xpiler::gpu::shuffle(xpiler::gpu::kOpShflXor, 0, var, laneMask, width);
}
inline unsigned long long __ballot(int pred) { return xpiler::gpu::vote(xpiler::gpu::kOpBallot, 0, pred); }
inline int __any(int pred) { return (int)xpiler::gpu::vote(xpiler::gpu::kOpAny, 0, pred); }
inline int __all(int pred) { return (int)xpiler::gpu::vote(xpiler::gpu::kOpAll, 0, pred); }
inline unsigned long long __activemask() { return xpiler::gpu::activemask(); }
// ROCm 6.2+ *_sync forms with a 64-bit mask (the named lanes must all arrive).
template <class T>
inline T __shfl_sync(unsigned long long mask, T var, int srcLane, int width = 64) {
  return xpiler::gpu::shuffle(xpiler::gpu::kOpShflIdx, mask, var, srcLane, width);
}
template <class T>
inline T __shfl_up_sync(unsigned long long mask, T var, unsigned delta, int width = 64) {
  return xpiler::gpu::shuffle(xpiler::gpu::kOpShflUp, mask, var, (int)delta, width);
}
template <class T>
inline T __shfl_down_sync(unsigned long long mask, T var, unsigned delta, int width = 64) {
  return xpiler::gpu::shuffle(xpiler::gpu::kOpShflDown, mask, var, (int)delta, width);
}
template <class T>
inline T __shfl_xor_sync(unsigned long long mask, T var, int laneMask, int width = 64) {
  return xpiler::gpu::shuffle(xpiler::gpu::kOpShflXor, mask, var, laneMask, width);
}
inline unsigned long long __ballot_sync(unsigned long long mask, int pred) {
  return xpiler::gpu::vote(xpiler::gpu::kOpBallot, mask, pred);
}
inline int __any_sync(unsigned long long mask, int pred) { return (int)xpiler::gpu::vote(xpiler::gpu::kOpAny, mask, pred); }
inline int __all_sync(unsigned long long mask, int pred) { return (int)xpiler::gpu::vote(xpiler::gpu::kOpAll, mask, pred); }
inline void __syncwarp(unsigned long long mask = ~0ull) { xpiler::gpu::syncwarp(mask); }

// ------------------------------------------------------------------------------------
// MFMA (CDNA matrix cores) as wave rendezvous.
//
// The table gives each shape: M, N, K, number of blocks (independent products per
// instruction), A/B values per lane and D registers per lane. With kpl = values per lane:
//   A: lane l, value v holds A_blk[i][k] with i = l % M, g = l / M,
//      k = (g % (K/kpl)) * kpl + v, blk = g / (K/kpl);   B likewise with j = l % N.
//   D: lane l, register r holds D_blk[row][col] with col = l % N, g = l / N,
//      G = (64 / N) / blocks lane groups per block, blk = g / G,
//      row = (r / 4) * 4 * G + 4 * (g % G) + r % 4.
// 16x16x4f32: A[l%16][l/16], B[l/16][l%16], d[r] = D[4(l/16)+r][l%16] (platforms.md 5.2,
// AMD lab notes "AMD matrix cores"). 32x32x2f32 and 16x16x16f16: AMD's "Matrix Core
// Programming on CDNA3/CDNA4" blog (2025) code examples. 32x32x8f16: same rule as 16x16x16
// with 32 rows (AMD matrix instruction calculator convention). 4x4x1f32 (16 blocks of 4x4):
// block = l/4, A[l%4][0], B[0][l%4], d[r] = D_blk[r][l%4] — derived from the calculator's
// general rule; [UNVERIFIED on hardware].
// Inactive lanes (lanes of the wave that do not arrive): their A/B values count as 0 and
// their D is not written (they receive nothing). cbsz/abid/blgp must be 0.
// ------------------------------------------------------------------------------------
typedef float xpiler_floatx4 __attribute__((__vector_size__(4 * sizeof(float))));
typedef float xpiler_floatx16 __attribute__((__vector_size__(16 * sizeof(float))));
typedef _Float16 xpiler_halfx4 __attribute__((__vector_size__(4 * sizeof(_Float16))));

namespace xpiler {
namespace gpu {
namespace mfma {

struct Shape {
  const char *name;
  int M, N, K, blocks, kpl, nregs;
};
enum ShapeId { k16x16x4f32, k32x32x2f32, k4x4x1f32, k16x16x16f16, k32x32x8f16 };
constexpr Shape kShapes[] = {
    {"__builtin_amdgcn_mfma_f32_16x16x4f32", 16, 16, 4, 1, 1, 4},
    {"__builtin_amdgcn_mfma_f32_32x32x2f32", 32, 32, 2, 1, 1, 16},
    {"__builtin_amdgcn_mfma_f32_4x4x1f32", 4, 4, 1, 16, 1, 4},
    {"__builtin_amdgcn_mfma_f32_16x16x16f16", 16, 16, 16, 1, 4, 4},
    {"__builtin_amdgcn_mfma_f32_32x32x8f16", 32, 32, 8, 1, 4, 16},
};

inline void a_coord(const Shape &s, int lane, int v, int &blk, int &i, int &k) {
  int g = lane / s.M, kg = s.K / s.kpl;
  i = lane % s.M;
  k = (g % kg) * s.kpl + v;
  blk = g / kg;
}
inline void d_coord(const Shape &s, int lane, int r, int &blk, int &row, int &col) {
  int g = lane / s.N, G = (64 / s.N) / s.blocks;
  col = lane % s.N;
  blk = g / G;
  row = (r / 4) * 4 * G + 4 * (g % G) + r % 4;
}

template <int Id>
void complete(fiber::Group *grp) {
  WarpState &w = *reinterpret_cast<WarpState *>(grp);
  constexpr Shape s = kShapes[Id];
  static float A[s.blocks][s.M][s.K], B[s.blocks][s.K][s.N];
  std::memset(A, 0, sizeof A);  // lanes that did not arrive contribute zeros
  std::memset(B, 0, sizeof B);
  for (int l = 0; l < 64; ++l) {
    if (!(w.arrived >> l & 1)) continue;
    for (int v = 0; v < s.kpl; ++v) {
      int blk, i, k;
      a_coord(s, l, v, blk, i, k);
      A[blk][i][k] = w.lane[l].a[v];
      B[blk][k][i % s.N] = w.lane[l].b[v];  // B: j = lane % N (M == N for all shapes)
    }
  }
  for (int l = 0; l < 64; ++l) {
    if (!(w.arrived >> l & 1)) continue;
    float *d = (float *)w.lane[l].out;
    for (int r = 0; r < s.nregs; ++r) {
      int blk, row, col;
      d_coord(s, l, r, blk, row, col);
      float acc = w.lane[l].c[r];
      for (int k = 0; k < s.K; ++k) acc += A[blk][row][k] * B[blk][k][col];
      d[r] = acc;
    }
  }
}

template <int Id, class V, class AB>
inline V run(const AB *a, const AB *b, const V &c, int cbsz, int abid, int blgp) {
  constexpr Shape s = kShapes[Id];
  if (cbsz || abid || blgp) fatal("%s: cbsz/abid/blgp broadcast modes are not supported (got %d, %d, %d)", s.name, cbsz, abid, blgp);
  int t = fiber::current(), lane = t % 64;
  WarpState &w = block().warps[t / 64];
  LaneSlot &slot = w.lane[lane];
  for (int v = 0; v < s.kpl; ++v) {
    slot.a[v] = (float)a[v];
    slot.b[v] = (float)b[v];
  }
  for (int r = 0; r < s.nregs; ++r) slot.c[r] = c[r];
  V d = c;  // replaced by the completion (every arriving lane receives its D)
  slot.out = &d;
  warp_arrive(w, lane, kOpMfma, &complete<Id>, 0);
  return d;
}

}  // namespace mfma
}  // namespace gpu
}  // namespace xpiler

inline xpiler_floatx4 __builtin_amdgcn_mfma_f32_16x16x4f32(float a, float b, xpiler_floatx4 c, int cbsz, int abid, int blgp) {
  return xpiler::gpu::mfma::run<xpiler::gpu::mfma::k16x16x4f32>(&a, &b, c, cbsz, abid, blgp);
}
inline xpiler_floatx16 __builtin_amdgcn_mfma_f32_32x32x2f32(float a, float b, xpiler_floatx16 c, int cbsz, int abid, int blgp) {
  return xpiler::gpu::mfma::run<xpiler::gpu::mfma::k32x32x2f32>(&a, &b, c, cbsz, abid, blgp);
}
inline xpiler_floatx4 __builtin_amdgcn_mfma_f32_4x4x1f32(float a, float b, xpiler_floatx4 c, int cbsz, int abid, int blgp) {
  return xpiler::gpu::mfma::run<xpiler::gpu::mfma::k4x4x1f32>(&a, &b, c, cbsz, abid, blgp);
}
inline xpiler_floatx4 __builtin_amdgcn_mfma_f32_16x16x16f16(xpiler_halfx4 a, xpiler_halfx4 b, xpiler_floatx4 c, int cbsz, int abid, int blgp) {
  _Float16 av[4] = {a[0], a[1], a[2], a[3]}, bv[4] = {b[0], b[1], b[2], b[3]};
  return xpiler::gpu::mfma::run<xpiler::gpu::mfma::k16x16x16f16>(av, bv, c, cbsz, abid, blgp);
}
inline xpiler_floatx16 __builtin_amdgcn_mfma_f32_32x32x8f16(xpiler_halfx4 a, xpiler_halfx4 b, xpiler_floatx16 c, int cbsz, int abid, int blgp) {
  _Float16 av[4] = {a[0], a[1], a[2], a[3]}, bv[4] = {b[0], b[1], b[2], b[3]};
  return xpiler::gpu::mfma::run<xpiler::gpu::mfma::k32x32x8f16>(av, bv, c, cbsz, abid, blgp);
}

// ------------------------------------------------------------------------------------
// Runtime API
// ------------------------------------------------------------------------------------
typedef enum hipError_t {
  hipSuccess = 0,
  hipErrorInvalidValue = 1,
  hipErrorOutOfMemory = 2,
  hipErrorMemoryAllocation = 2,
  hipErrorNotInitialized = 3,
  hipErrorInvalidConfiguration = 9,
  hipErrorInvalidDevicePointer = 17,
  hipErrorInvalidMemcpyDirection = 21,
  hipErrorInvalidDevice = 101,
  hipErrorLaunchFailure = 719,
  hipErrorUnknown = 999
} hipError_t;
enum hipMemcpyKind {
  hipMemcpyHostToHost = 0,
  hipMemcpyHostToDevice = 1,
  hipMemcpyDeviceToHost = 2,
  hipMemcpyDeviceToDevice = 3,
  hipMemcpyDefault = 4
};
typedef struct ihipStream_t *hipStream_t;
struct ihipEvent_t {
  long long ns;
};
typedef ihipEvent_t *hipEvent_t;

inline const char *hipGetErrorString(hipError_t e) {
  switch (e) {
    case hipSuccess: return "no error";
    case hipErrorInvalidValue: return "invalid argument";
    case hipErrorOutOfMemory: return "out of memory";
    case hipErrorInvalidConfiguration: return "invalid configuration argument";
    case hipErrorInvalidDevicePointer: return "invalid device pointer";
    case hipErrorInvalidMemcpyDirection: return "invalid memcpy direction";
    case hipErrorInvalidDevice: return "invalid device ordinal";
    default: return "unknown error";
  }
}
inline const char *hipGetErrorName(hipError_t e) { return e == hipSuccess ? "hipSuccess" : "hipError"; }
namespace xpiler {
namespace gpu {
inline hipError_t hip_status(int e) {
  if (e) last_error() = e;
  return (hipError_t)e;
}
}  // namespace gpu
}  // namespace xpiler
template <class T>
inline hipError_t hipMalloc(T **p, size_t n) { return xpiler::gpu::hip_status(xpiler::gpu::device_malloc((void **)p, n)); }
template <class T>
inline hipError_t hipMallocManaged(T **p, size_t n, unsigned = 1) { return hipMalloc(p, n); }
template <class T>
inline hipError_t hipHostMalloc(T **p, size_t n, unsigned = 0) { return hipMalloc(p, n); }
inline hipError_t hipFree(void *p) { return xpiler::gpu::hip_status(xpiler::gpu::device_free(p)); }
inline hipError_t hipHostFree(void *p) { return hipFree(p); }
inline hipError_t hipMemcpy(void *dst, const void *src, size_t n, hipMemcpyKind kind) {
  if ((int)kind < 0 || (int)kind > 4) return xpiler::gpu::hip_status(hipErrorInvalidMemcpyDirection);
  return xpiler::gpu::hip_status(xpiler::gpu::device_memcpy(dst, src, n));
}
inline hipError_t hipMemcpyAsync(void *dst, const void *src, size_t n, hipMemcpyKind kind, hipStream_t = 0) {
  return hipMemcpy(dst, src, n, kind);
}
inline hipError_t hipMemcpyHtoD(void *dst, const void *src, size_t n) { return hipMemcpy(dst, src, n, hipMemcpyHostToDevice); }
inline hipError_t hipMemcpyDtoH(void *dst, const void *src, size_t n) { return hipMemcpy(dst, src, n, hipMemcpyDeviceToHost); }
inline hipError_t hipMemset(void *p, int v, size_t n) { return xpiler::gpu::hip_status(xpiler::gpu::device_memset(p, v, n)); }
inline hipError_t hipMemsetAsync(void *p, int v, size_t n, hipStream_t = 0) { return hipMemset(p, v, n); }
template <class T>
inline hipError_t hipMemcpyToSymbol(T &symbol, const void *src, size_t n, size_t offset = 0,
                                    hipMemcpyKind = hipMemcpyHostToDevice) {
  std::memcpy((char *)&symbol + offset, src, n);
  return hipSuccess;
}
inline hipError_t hipDeviceSynchronize() { return hipSuccess; }
inline hipError_t hipDeviceReset() { return hipSuccess; }
inline hipError_t hipSetDevice(int d) { return d == 0 ? hipSuccess : hipErrorInvalidDevice; }
inline hipError_t hipGetDevice(int *d) { *d = 0; return hipSuccess; }
inline hipError_t hipGetDeviceCount(int *n) { *n = 1; return hipSuccess; }
inline hipError_t hipGetLastError() { return (hipError_t)xpiler::gpu::take_last_error(); }
inline hipError_t hipPeekAtLastError() { return (hipError_t)xpiler::gpu::last_error(); }
inline hipError_t hipStreamCreate(hipStream_t *s) { *s = nullptr; return hipSuccess; }
inline hipError_t hipStreamDestroy(hipStream_t) { return hipSuccess; }
inline hipError_t hipStreamSynchronize(hipStream_t) { return hipSuccess; }
inline hipError_t hipEventCreate(hipEvent_t *e) { *e = new ihipEvent_t{0}; return hipSuccess; }
inline hipError_t hipEventRecord(hipEvent_t e, hipStream_t = 0) { e->ns = clock64(); return hipSuccess; }
inline hipError_t hipEventSynchronize(hipEvent_t) { return hipSuccess; }
inline hipError_t hipEventElapsedTime(float *ms, hipEvent_t a, hipEvent_t b) {
  *ms = (float)((b->ns - a->ns) / 1e6);
  return hipSuccess;
}
inline hipError_t hipEventDestroy(hipEvent_t e) { delete e; return hipSuccess; }
struct hipDeviceProp_t {
  char name[256] = "xpiler HIP CPU emulator";
  char gcnArchName[256] = "gfx90a";
  size_t totalGlobalMem = (size_t)16 << 30;
  size_t sharedMemPerBlock = 64 * 1024;
  int warpSize = 64;
  int maxThreadsPerBlock = 1024;
  int maxThreadsDim[3] = {1024, 1024, 1024};
  int maxGridSize[3] = {2147483647, 65535, 65535};
  int multiProcessorCount = 1;
  int major = 9, minor = 0;
};
inline hipError_t hipGetDeviceProperties(hipDeviceProp_t *p, int) { *p = hipDeviceProp_t(); return hipSuccess; }
