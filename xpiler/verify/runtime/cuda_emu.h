// cuda_emu.h — CPU emulator for CUDA C++ kernels.
//
//   python -c 'from xpiler.verify.emu_adapt import adapt_for_emulator; ...'   # <<<>>> -> xpiler_launch
//   g++ -std=c++17 -O2 -I xpiler/verify/runtime -include cuda_emu.h -x c++ kernel.cu
//
// See gpu_common.h for the execution model (blocks sequential, threads as fibers, warps of
// 32 lanes as rendezvous groups) and gpu_wmma.h for WMMA. This file adds the CUDA
// spellings: warp intrinsics with masks, the runtime API and its error codes.
#pragma once
#define XPILER_EMU_CUDA 1
#define XPILER_WARP_SIZE 32
#include "gpu_common.h"
#include "gpu_wmma.h"

constexpr int warpSize = 32;

// ------------------------------------------------------------------------------------
// Warp intrinsics (CUDA 9+ *_sync forms). Every lane named in `mask` must call the same
// intrinsic; a named lane that has exited is reported as a deadlock.
// ------------------------------------------------------------------------------------
inline void __syncwarp(unsigned mask = 0xffffffffu) { xpiler::gpu::syncwarp(mask); }
template <class T>
inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = 32) {
  return xpiler::gpu::shuffle(xpiler::gpu::kOpShflIdx, mask, var, srcLane, width);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return xpiler::gpu::shuffle(xpiler::gpu::kOpShflUp, mask, var, (int)delta, width);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return xpiler::gpu::shuffle(xpiler::gpu::kOpShflDown, mask, var, (int)delta, width);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = 32) {
  return xpiler::gpu::shuffle(xpiler::gpu::kOpShflXor, mask, var, laneMask, width);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  return (unsigned)xpiler::gpu::vote(xpiler::gpu::kOpBallot, mask, pred);
}
inline int __any_sync(unsigned mask, int pred) { return (int)xpiler::gpu::vote(xpiler::gpu::kOpAny, mask, pred); }
inline int __all_sync(unsigned mask, int pred) { return (int)xpiler::gpu::vote(xpiler::gpu::kOpAll, mask, pred); }
inline unsigned __activemask() { return (unsigned)xpiler::gpu::activemask(); }
template <class T>
inline unsigned __match_any_sync(unsigned mask, T v) { return (unsigned)xpiler::gpu::match_any(mask, v); }
inline unsigned __reduce_add_sync(unsigned mask, unsigned v) { return xpiler::gpu::warp_reduce(xpiler::gpu::kOpReduceAdd, mask, v); }
inline int __reduce_add_sync(unsigned mask, int v) { return xpiler::gpu::warp_reduce(xpiler::gpu::kOpReduceAdd, mask, v); }
inline unsigned __reduce_min_sync(unsigned mask, unsigned v) { return xpiler::gpu::warp_reduce(xpiler::gpu::kOpReduceMin, mask, v); }
inline int __reduce_min_sync(unsigned mask, int v) { return xpiler::gpu::warp_reduce(xpiler::gpu::kOpReduceMin, mask, v); }
inline unsigned __reduce_max_sync(unsigned mask, unsigned v) { return xpiler::gpu::warp_reduce(xpiler::gpu::kOpReduceMax, mask, v); }
inline int __reduce_max_sync(unsigned mask, int v) { return xpiler::gpu::warp_reduce(xpiler::gpu::kOpReduceMax, mask, v); }

// ------------------------------------------------------------------------------------
// Runtime API
// ------------------------------------------------------------------------------------
typedef enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInvalidDevice = 101,
  cudaErrorLaunchFailure = 719,
  cudaErrorUnknown = 999
} cudaError_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8, cudaFuncAttributePreferredSharedMemoryCarveout = 9 };
typedef struct CUstream_st *cudaStream_t;
struct CUevent_st {
  long long ns;
};
typedef CUevent_st *cudaEvent_t;
#define cudaStreamDefault 0
#define cudaStreamNonBlocking 1
#define cudaHostAllocDefault 0
#define cudaMemAttachGlobal 1

inline const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return "unknown error";
  }
}
inline const char *cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    default: return "cudaErrorUnknown";
  }
}
namespace xpiler {
namespace gpu {
inline cudaError_t cuda_status(int e) {
  if (e) last_error() = e;
  return (cudaError_t)e;
}
}  // namespace gpu
}  // namespace xpiler

template <class T>
inline cudaError_t cudaMalloc(T **p, size_t n) {
  return xpiler::gpu::cuda_status(xpiler::gpu::device_malloc((void **)p, n));
}
template <class T>
inline cudaError_t cudaMallocManaged(T **p, size_t n, unsigned = 1) { return cudaMalloc(p, n); }
template <class T>
inline cudaError_t cudaMallocHost(T **p, size_t n) { return cudaMalloc(p, n); }
template <class T>
inline cudaError_t cudaHostAlloc(T **p, size_t n, unsigned) { return cudaMalloc(p, n); }
inline cudaError_t cudaFree(void *p) { return xpiler::gpu::cuda_status(xpiler::gpu::device_free(p)); }
inline cudaError_t cudaFreeHost(void *p) { return cudaFree(p); }
inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
  if ((int)kind < 0 || (int)kind > 4) return xpiler::gpu::cuda_status(cudaErrorInvalidMemcpyDirection);
  return xpiler::gpu::cuda_status(xpiler::gpu::device_memcpy(dst, src, n));
}
inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t = 0) {
  return cudaMemcpy(dst, src, n, kind);
}
inline cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                                size_t height, cudaMemcpyKind kind) {
  for (size_t r = 0; r < height; ++r) {
    cudaError_t e = cudaMemcpy((char *)dst + r * dpitch, (const char *)src + r * spitch, width, kind);
    if (e) return e;
  }
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void *p, int v, size_t n) {
  return xpiler::gpu::cuda_status(xpiler::gpu::device_memset(p, v, n));
}
inline cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t = 0) { return cudaMemset(p, v, n); }
template <class T>
inline cudaError_t cudaMemcpyToSymbol(T &symbol, const void *src, size_t n, size_t offset = 0,
                                      cudaMemcpyKind = cudaMemcpyHostToDevice) {
  std::memcpy((char *)&symbol + offset, src, n);
  return cudaSuccess;
}
template <class T>
inline cudaError_t cudaMemcpyFromSymbol(void *dst, const T &symbol, size_t n, size_t offset = 0,
                                        cudaMemcpyKind = cudaMemcpyDeviceToHost) {
  std::memcpy(dst, (const char *)&symbol + offset, n);
  return cudaSuccess;
}
// Kernels run synchronously at the launch, so synchronization has nothing to wait for.
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaThreadSynchronize() { return cudaSuccess; }
inline cudaError_t cudaDeviceReset() { return cudaSuccess; }
inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
inline cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
inline cudaError_t cudaGetLastError() { return (cudaError_t)xpiler::gpu::take_last_error(); }
inline cudaError_t cudaPeekAtLastError() { return (cudaError_t)xpiler::gpu::last_error(); }
inline cudaError_t cudaStreamCreate(cudaStream_t *s) { *s = nullptr; return cudaSuccess; }
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { *s = nullptr; return cudaSuccess; }
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = new CUevent_st{0}; return cudaSuccess; }
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { return cudaEventCreate(e); }
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t = 0) { e->ns = clock64(); return cudaSuccess; }
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = (float)((b->ns - a->ns) / 1e6);
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
template <class F>
inline cudaError_t cudaFuncSetAttribute(F, cudaFuncAttribute, int) { return cudaSuccess; }
struct cudaDeviceProp {
  char name[256] = "xpiler CUDA CPU emulator";
  size_t totalGlobalMem = (size_t)16 << 30;
  size_t sharedMemPerBlock = 48 * 1024;
  int regsPerBlock = 65536;
  int warpSize = 32;
  int maxThreadsPerBlock = 1024;
  int maxThreadsDim[3] = {1024, 1024, 64};
  int maxGridSize[3] = {2147483647, 65535, 65535};
  int multiProcessorCount = 1;
  int major = 8, minor = 0;
  size_t sharedMemPerBlockOptin = 227 * 1024;
  int maxThreadsPerMultiProcessor = 2048;
};
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) { *p = cudaDeviceProp(); return cudaSuccess; }
