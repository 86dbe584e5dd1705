// gpu_common.h — the part of the CUDA and HIP CPU emulators that the two dialects share:
// qualifiers, index and vector types, half/bfloat16, device math, the launch machinery
// (blocks one after another, the threads of a block as fibers, warps/waves as rendezvous
// groups), barriers, warp/wave collectives, atomics and device memory.
//
// Include cuda_emu.h or hip_emu.h, not this file: they set XPILER_WARP_SIZE (32 / 64) and
// add the dialect's names (cudaMalloc / hipMalloc, __shfl_sync / __shfl, WMMA / MFMA).
//
// Execution model (why it is correct for CUDA/HIP programs):
//   * Blocks run sequentially. The threads of one block are fibers (xpiler_fiber.h): each
//     runs until it reaches a barrier or collective, so a kernel without them runs as a
//     plain loop over threads. __syncthreads is a real rendezvous of the whole block.
//   * A warp (CUDA, 32 lanes) or wave (HIP, 64 lanes) is the set of consecutive linear
//     thread indices [32w, 32w+32). Shuffles, votes, WMMA and MFMA are rendezvous of that
//     group: each lane deposits its operand and a pointer to its result; the last lane to
//     arrive computes every lane's result, then all continue.
//   * Everything runs in one OS thread, so atomics are plain read-modify-write.
//   * `__shared__` is `static`: a function-local static is shared by all fibers of the
//     running block, and since blocks run one after another, one copy serves every block.
//     Consequence: shared memory is NOT reset between blocks (on hardware its initial
//     contents are undefined anyway; a kernel that reads shared memory it did not write
//     sees the previous block's values here). Do not launch kernels from several OS
//     threads at once.
//   * Dynamic `extern __shared__ T s[];` is rewritten by emu_adapt.py into a pointer to a
//     per-launch buffer of the size given as 3rd launch argument (poisoned with 0xFF).
//   * Device memory is host memory (cudaMalloc = aligned malloc, poisoned with 0xFF bytes
//     so that reading unwritten device memory gives NaN / -1, not a lucky zero).
#pragma once

#ifndef XPILER_WARP_SIZE
#error "include cuda_emu.h or hip_emu.h instead of gpu_common.h"
#endif

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <chrono>
#include <math.h>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "xpiler_fiber.h"

// ------------------------------------------------------------------------------------
// 1. Qualifiers
// ------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __shared__ static
// Appended by emu_adapt.py after each static __shared__ declaration: the block's first
// thread to start (it runs before any other thread of the block starts; thread 0, or the
// last one in reverse order) fills it with the poison byte, so reads of shared memory
// nobody wrote are visible.
#define XPILER_POISON_SHARED(v)                                                          \
  do {                                                                                   \
    if (XPILER_EMU_POISON && ::xpiler::gpu::first_thread_of_block())                     \
      std::memset((void *)&(v), ::xpiler::gpu::poison_byte(), sizeof(v));              \
  } while (0)
#define __constant__
#define __managed__
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))
// __restrict__ and __inline__ are native GCC keywords.
// emu_adapt.py rewrites `x = {...};` into `x = XPILER_BRACE_T(x){...};` (g++ rejects brace
// assignment to GCC vector types, which clang accepts).
#define XPILER_BRACE_T(x) std::remove_reference_t<decltype(x)>

#ifndef XPILER_EMU_POISON
#define XPILER_EMU_POISON 1  // fill new device memory and dynamic shared memory with 0xFF
#endif

namespace xpiler {
namespace gpu {

// The byte new device memory is filled with: 0xFF, or XPILER_EMU_POISON_BYTE from the
// environment. Verification runs a source twice with different bytes: outputs that change
// were never written (they read uninitialized memory) and are excluded from comparison.
inline int poison_byte() {
  static const int b = [] {
    const char *e = std::getenv("XPILER_EMU_POISON_BYTE");
    return e ? int(std::strtol(e, nullptr, 0) & 0xFF) : 0xFF;
  }();
  return b;
}

constexpr int kWarpSize = XPILER_WARP_SIZE;
constexpr int kMaxThreadsPerBlock = 1024;
constexpr int kMaxWarps = kMaxThreadsPerBlock / kWarpSize;

[[noreturn]] inline void fatal(const char *fmt, ...) {
  std::fflush(stdout);
  std::fprintf(stderr, "xpiler emulator: ");
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
  std::exit(86);
}

}  // namespace gpu
}  // namespace xpiler

// ------------------------------------------------------------------------------------
// 2. Index and vector types (global namespace, as in the CUDA/HIP headers)
// ------------------------------------------------------------------------------------
struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
      : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

// CUDA's vector types with CUDA's alignment (1-, 2- and 4-element types are aligned to their
// size up to 16 bytes; 3-element types only to their element), so reinterpret_casts such as
// *(float4*)&a[i] see the same layout as on the GPU.
#define XPILER_VEC1(T, N) \
  struct __attribute__((aligned(sizeof(T)))) N##1 { T x; };                                  \
  inline N##1 make_##N##1(T x) { return N##1{x}; }
#define XPILER_VEC2(T, N) \
  struct __attribute__((aligned(2 * sizeof(T) > 16 ? 16 : 2 * sizeof(T)))) N##2 { T x, y; }; \
  inline N##2 make_##N##2(T x, T y) { return N##2{x, y}; }
#define XPILER_VEC3(T, N) \
  struct N##3 { T x, y, z; };                                                                \
  inline N##3 make_##N##3(T x, T y, T z) { return N##3{x, y, z}; }
#define XPILER_VEC4(T, N) \
  struct __attribute__((aligned(4 * sizeof(T) > 16 ? 16 : 4 * sizeof(T)))) N##4 { T x, y, z, w; }; \
  inline N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }
#define XPILER_VECS(T, N) XPILER_VEC1(T, N) XPILER_VEC2(T, N) XPILER_VEC3(T, N) XPILER_VEC4(T, N)
XPILER_VECS(signed char, char)
XPILER_VECS(unsigned char, uchar)
XPILER_VECS(short, short)
XPILER_VECS(unsigned short, ushort)
XPILER_VECS(int, int)
XPILER_VEC1(unsigned int, uint)
XPILER_VEC2(unsigned int, uint)
XPILER_VEC4(unsigned int, uint)
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }
XPILER_VECS(long, long)
XPILER_VECS(unsigned long, ulong)
XPILER_VECS(long long, longlong)
XPILER_VECS(unsigned long long, ulonglong)
XPILER_VECS(float, float)
XPILER_VECS(double, double)
#undef XPILER_VECS
#undef XPILER_VEC1
#undef XPILER_VEC2
#undef XPILER_VEC3
#undef XPILER_VEC4

// ------------------------------------------------------------------------------------
// 3. half (IEEE binary16) and bfloat16, stored as bits, arithmetic through float.
//    Conversions round to nearest even (as __float2half / __float2bfloat16 do).
//    Mixed half-with-arithmetic expressions compute in float (or double), which is more
//    permissive than nvcc (where some are ambiguous) but gives the same values.
// ------------------------------------------------------------------------------------
namespace xpiler {
namespace gpu {

inline uint16_t float_to_half_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0u));
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to infinity
  if (a < 0x38800000u) {                                      // half subnormal or zero
    if (a < 0x33000000u) return (uint16_t)sign;
    uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e, hm = m >> shift, rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (hm & 1))) ++hm;
    return (uint16_t)(sign | hm);
  }
  uint32_t h = (a - 0x38000000u) >> 13, rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;
  return (uint16_t)(sign | h);
}
inline float half_bits_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, bits;
  if (e == 0) {
    float f = (float)m * 5.9604644775390625e-08f;  // m * 2^-24, exact
    return sign ? -f : f;
  }
  bits = e == 31 ? (sign | 0x7f800000u | (m << 13)) : (sign | ((e + 112) << 23) | (m << 13));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint16_t float_to_bf16_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}
inline float bf16_bits_to_float(uint16_t b) {
  uint32_t x = (uint32_t)b << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

struct HalfTag {
  static uint16_t enc(float f) { return float_to_half_bits(f); }
  static float dec(uint16_t b) { return half_bits_to_float(b); }
};
struct BF16Tag {
  static uint16_t enc(float f) { return float_to_bf16_bits(f); }
  static float dec(uint16_t b) { return bf16_bits_to_float(b); }
};

template <class Tag>
struct SmallFloat {
  uint16_t __x;
  SmallFloat() = default;
  template <class T, std::enable_if_t<std::is_arithmetic<T>::value, int> = 0>
  SmallFloat(T v) : __x(Tag::enc((float)v)) {}
  static SmallFloat from_bits(uint16_t b) {
    SmallFloat s;
    s.__x = b;
    return s;
  }
  operator float() const { return Tag::dec(__x); }
  template <class T> SmallFloat &operator+=(T v) { return *this = SmallFloat((float)*this + (float)v); }
  template <class T> SmallFloat &operator-=(T v) { return *this = SmallFloat((float)*this - (float)v); }
  template <class T> SmallFloat &operator*=(T v) { return *this = SmallFloat((float)*this * (float)v); }
  template <class T> SmallFloat &operator/=(T v) { return *this = SmallFloat((float)*this / (float)v); }
  SmallFloat &operator++() { return *this += 1.0f; }
  SmallFloat &operator--() { return *this -= 1.0f; }
  SmallFloat operator++(int) { SmallFloat o = *this; *this += 1.0f; return o; }
  SmallFloat operator--(int) { SmallFloat o = *this; *this -= 1.0f; return o; }
};

template <class T> struct is_small_float : std::false_type {};
template <class Tag> struct is_small_float<SmallFloat<Tag>> : std::true_type {};

#define XPILER_SF_BINOP(op)                                                                    \
  template <class Tag>                                                                         \
  inline SmallFloat<Tag> operator op(SmallFloat<Tag> a, SmallFloat<Tag> b) {                   \
    return SmallFloat<Tag>((float)a op(float) b);                                              \
  }                                                                                            \
  template <class Tag, class T, std::enable_if_t<std::is_arithmetic<T>::value, int> = 0>      \
  inline auto operator op(SmallFloat<Tag> a, T b) { return (float)a op b; }                    \
  template <class Tag, class T, std::enable_if_t<std::is_arithmetic<T>::value, int> = 0>      \
  inline auto operator op(T a, SmallFloat<Tag> b) { return a op(float) b; }
XPILER_SF_BINOP(+)
XPILER_SF_BINOP(-)
XPILER_SF_BINOP(*)
XPILER_SF_BINOP(/)
#undef XPILER_SF_BINOP
#define XPILER_SF_CMP(op)                                                                      \
  template <class Tag>                                                                         \
  inline bool operator op(SmallFloat<Tag> a, SmallFloat<Tag> b) { return (float)a op(float) b; } \
  template <class Tag, class T, std::enable_if_t<std::is_arithmetic<T>::value, int> = 0>      \
  inline bool operator op(SmallFloat<Tag> a, T b) { return (float)a op b; }                    \
  template <class Tag, class T, std::enable_if_t<std::is_arithmetic<T>::value, int> = 0>      \
  inline bool operator op(T a, SmallFloat<Tag> b) { return a op(float) b; }
XPILER_SF_CMP(==)
XPILER_SF_CMP(!=)
XPILER_SF_CMP(<)
XPILER_SF_CMP(<=)
XPILER_SF_CMP(>)
XPILER_SF_CMP(>=)
#undef XPILER_SF_CMP
template <class Tag>
inline SmallFloat<Tag> operator-(SmallFloat<Tag> a) { return SmallFloat<Tag>::from_bits(a.__x ^ 0x8000u); }
template <class Tag>
inline SmallFloat<Tag> operator+(SmallFloat<Tag> a) { return a; }

}  // namespace gpu
}  // namespace xpiler

using __half = xpiler::gpu::SmallFloat<xpiler::gpu::HalfTag>;
using half = __half;
using __nv_bfloat16 = xpiler::gpu::SmallFloat<xpiler::gpu::BF16Tag>;
using __hip_bfloat16 = __nv_bfloat16;
using nv_bfloat16 = __nv_bfloat16;
struct __half2 {
  __half x, y;
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
using half2 = __half2;

inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline __half __double2half(double d) { return __half((float)d); }
inline float __half2float(__half h) { return (float)h; }
inline __half __int2half_rn(int i) { return __half((float)i); }
inline int __half2int_rn(__half h) { return (int)std::nearbyint((float)h); }
inline int __half2int_rz(__half h) { return (int)(float)h; }
inline __half __ushort_as_half(unsigned short b) { return __half::from_bits(b); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __short_as_half(short b) { return __half::from_bits((uint16_t)b); }
inline short __half_as_short(__half h) { return (short)h.__x; }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__half(a), __half(b)}; }
inline __half2 __float2half2_rn(float a) { return __half2{__half(a), __half(a)}; }
inline __half2 __halves2half2(__half a, __half b) { return __half2{a, b}; }
inline float __low2float(__half2 h) { return (float)h.x; }
inline float __high2float(__half2 h) { return (float)h.y; }
inline __half __low2half(__half2 h) { return h.x; }
inline __half __high2half(__half2 h) { return h.y; }
inline __half2 __hadd2(__half2 a, __half2 b) { return __half2{a.x + b.x, a.y + b.y}; }
inline __half2 __hmul2(__half2 a, __half2 b) { return __half2{a.x * b.x, a.y * b.y}; }
inline __half2 __hsub2(__half2 a, __half2 b) { return __half2{a.x - b.x, a.y - b.y}; }
inline __half2 __hfma2(__half2 a, __half2 b, __half2 c) {
  return __half2{__half(std::fma((float)a.x, (float)b.x, (float)c.x)),
                 __half(std::fma((float)a.y, (float)b.y, (float)c.y))};
}
inline __half __hadd(__half a, __half b) { return a + b; }
inline __half __hsub(__half a, __half b) { return a - b; }
inline __half __hmul(__half a, __half b) { return a * b; }
inline __half __hdiv(__half a, __half b) { return a / b; }
inline __half __hneg(__half a) { return -a; }
inline __half __hfma(__half a, __half b, __half c) { return __half(std::fma((float)a, (float)b, (float)c)); }
inline __half __hmax(__half a, __half b) { return (float)a < (float)b ? b : a; }
inline __half __hmin(__half a, __half b) { return (float)b < (float)a ? b : a; }
inline bool __heq(__half a, __half b) { return a == b; }
inline bool __hne(__half a, __half b) { return a != b; }
inline bool __hlt(__half a, __half b) { return a < b; }
inline bool __hle(__half a, __half b) { return a <= b; }
inline bool __hgt(__half a, __half b) { return a > b; }
inline bool __hge(__half a, __half b) { return a >= b; }
inline bool __hisnan(__half a) { return std::isnan((float)a); }
inline bool __hisinf(__half a) { return std::isinf((float)a); }
inline __half __habs(__half a) { return __half::from_bits(a.__x & 0x7fffu); }
inline __half hexp(__half a) { return __half(std::exp((float)a)); }
inline __half hlog(__half a) { return __half(std::log((float)a)); }
inline __half hsqrt(__half a) { return __half(std::sqrt((float)a)); }
inline __half hrsqrt(__half a) { return __half(1.0f / std::sqrt((float)a)); }
inline __half hrcp(__half a) { return __half(1.0f / (float)a); }
inline __half hsin(__half a) { return __half(std::sin((float)a)); }
inline __half hcos(__half a) { return __half(std::cos((float)a)); }
inline __half htanh(__half a) { return __half(std::tanh((float)a)); }
inline __half hfloor(__half a) { return __half(std::floor((float)a)); }
inline __half hceil(__half a) { return __half(std::ceil((float)a)); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 b) { return (float)b; }
inline __nv_bfloat16 __hadd(__nv_bfloat16 a, __nv_bfloat16 b) { return a + b; }
inline __nv_bfloat16 __hmul(__nv_bfloat16 a, __nv_bfloat16 b) { return a * b; }
inline __nv_bfloat16 __hsub(__nv_bfloat16 a, __nv_bfloat16 b) { return a - b; }
inline __nv_bfloat16 __hmax(__nv_bfloat16 a, __nv_bfloat16 b) { return (float)a < (float)b ? b : a; }
inline __nv_bfloat16 __hmin(__nv_bfloat16 a, __nv_bfloat16 b) { return (float)b < (float)a ? b : a; }
#define CUDART_INF_F HUGE_VALF
#define CUDART_NAN_F NAN
#define CUDART_PI_F 3.141592654f

// ------------------------------------------------------------------------------------
// 4. Device math and bit intrinsics. Host libm provides expf, sqrtf, tanh, pow, ...
//    (the fast __expf etc. are the precise functions: bit-exactness with the GPU's
//    approximations is not a goal; differential tests use tolerances).
// ------------------------------------------------------------------------------------
// max/min: exact-type overloads as in CUDA's math headers, plus a mixed-type fallback.
#define XPILER_MINMAX(T)                          \
  inline T max(T a, T b) { return a < b ? b : a; } \
  inline T min(T a, T b) { return b < a ? b : a; }
XPILER_MINMAX(int)
XPILER_MINMAX(unsigned int)
XPILER_MINMAX(long)
XPILER_MINMAX(unsigned long)
XPILER_MINMAX(long long)
XPILER_MINMAX(unsigned long long)
XPILER_MINMAX(float)
XPILER_MINMAX(double)
#undef XPILER_MINMAX
template <class A, class B>
inline auto max(A a, B b) -> decltype(a + b) {
  using R = decltype(a + b);
  return (R)a < (R)b ? (R)b : (R)a;
}
template <class A, class B>
inline auto min(A a, B b) -> decltype(a + b) {
  using R = decltype(a + b);
  return (R)b < (R)a ? (R)b : (R)a;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float rcbrtf(float x) { return 1.0f / std::cbrt(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return std::exp(x); }
inline float __exp10f(float x) { return std::pow(10.0f, x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __log10f(float x) { return std::log10(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline void __sincosf(float x, float *s, float *c) { *s = std::sin(x); *c = std::cos(x); }
inline float __powf(float a, float b) { return std::pow(a, b); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __frsqrt_rn(float x) { return 1.0f / std::sqrt(x); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline int __float2int_rn(float x) { return (int)std::nearbyint(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline int __float2int_rd(float x) { return (int)std::floor(x); }
inline int __float2int_ru(float x) { return (int)std::ceil(x); }
inline unsigned __float2uint_rn(float x) { return (unsigned)std::nearbyint(x); }
inline float __int2float_rn(int x) { return (float)x; }
inline float __uint2float_rn(unsigned x) { return (float)x; }
inline int __double2int_rn(double x) { return (int)std::nearbyint(x); }
inline float __double2float_rn(double x) { return (float)x; }
inline long long __float2ll_rn(float x) { return (long long)std::nearbyint(x); }
inline int __float_as_int(float x) { int i; std::memcpy(&i, &x, 4); return i; }
inline unsigned __float_as_uint(float x) { unsigned i; std::memcpy(&i, &x, 4); return i; }
inline float __int_as_float(int i) { float x; std::memcpy(&x, &i, 4); return x; }
inline float __uint_as_float(unsigned i) { float x; std::memcpy(&x, &i, 4); return x; }
inline long long __double_as_longlong(double x) { long long i; std::memcpy(&i, &x, 8); return i; }
inline double __longlong_as_double(long long i) { double x; std::memcpy(&x, &i, 8); return x; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}
inline int __mul24(int a, int b) { return (int)((long long)a * b); }
inline unsigned __umul24(unsigned a, unsigned b) { return a * b; }
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline long long __mul64hi(long long a, long long b) { return (long long)(((__int128)a * b) >> 64); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline int __sad(int a, int b, unsigned c) { return (int)(c + (unsigned)std::abs(a - b)); }
// Cache-hint loads and stores: plain memory accesses on the CPU.
template <class T> inline T __ldg(const T *p) { return *p; }
template <class T> inline T __ldcg(const T *p) { return *p; }
template <class T> inline T __ldca(const T *p) { return *p; }
template <class T> inline T __ldcs(const T *p) { return *p; }
template <class T> inline T __ldlu(const T *p) { return *p; }
template <class T> inline T __ldcv(const T *p) { return *p; }
template <class T> inline void __stcg(T *p, T v) { *p = v; }
template <class T> inline void __stcs(T *p, T v) { *p = v; }
template <class T> inline void __stwb(T *p, T v) { *p = v; }
// Memory fences: one OS thread, no reordering visible to other fibers.
inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}
inline void __nanosleep(unsigned) {}
[[noreturn]] inline void __trap() { xpiler::gpu::fatal("__trap() called in a kernel"); }
inline long long clock64() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}
inline long long __clock64() { return clock64(); }

// ------------------------------------------------------------------------------------
// 5. Thread index variables. Plain globals: the scheduler sets threadIdx whenever a fiber
//    starts or resumes, and blockIdx/blockDim/gridDim per block / launch.
// ------------------------------------------------------------------------------------
inline uint3 threadIdx{0, 0, 0};
inline uint3 blockIdx{0, 0, 0};
inline dim3 blockDim{1, 1, 1};
inline dim3 gridDim{1, 1, 1};

namespace xpiler {
namespace gpu {

// ------------------------------------------------------------------------------------
// 6. Per-block state: the block barrier and one rendezvous group per warp/wave.
//    Collective operands live in per-lane slots; results are written by the completing
//    lane straight into each participant's result variable (through `out`), so a fast lane
//    that moves on to the next collective cannot overwrite a result not yet read.
// ------------------------------------------------------------------------------------
struct LaneSlot {
  uint64_t val;       // shuffle/vote operand (bit pattern)
  int arg;            // source lane / delta / lane mask
  int width;          // shuffle segment width
  void *out;          // where this lane's result goes
  const void *ptr;    // WMMA pointer argument (checked for warp-uniformity)
  unsigned ldm;       // WMMA leading dimension
  const void *aux[3]; // WMMA mma_sync: the a, b, c fragments
  float a[4], b[4];   // MFMA operands
  float c[16];        // MFMA accumulator input
};

struct WarpState {
  fiber::Group g;          // first member: the completion callback casts Group* back
  int index = 0;           // warp number within the block
  int first = 0;           // linear thread index of lane 0
  int nlanes = 0;          // lanes that exist (the last warp of a block may be partial)
  int op = 0;              // collective kind of the current round
  uint64_t arrived = 0;    // lanes that arrived in the current round
  uint64_t mask = 0;       // member mask named by the first arriver (CUDA *_sync)
  int layout = 0;          // WMMA layout argument of the first arriver
  int first_lane = 0;      // the lane that arrived first in the current round
  LaneSlot lane[kWarpSize];
};

struct BlockState {
  fiber::Group barrier;
  int nthreads = 0;
  int reduce_acc = 0, reduce_result = 0, reduce_op = 0;  // __syncthreads_count/and/or
  WarpState warps[kMaxWarps];
  unsigned char *dyn_shared = nullptr;
  size_t dyn_shared_size = 0;
  char label[160] = "";  // filled by block_label() when a message needs it
};

inline BlockState &block() {
  static BlockState b;
  return b;
}
// The running block, for error messages (formatted on demand: see run_grid).
inline const char *block_label() {
  BlockState &b = block();
  std::snprintf(b.label, sizeof b.label,
                "block (%u,%u,%u) of grid (%u,%u,%u), blockDim (%u,%u,%u); fiber i = thread "
                "(i %% %u, i / %u %% %u, i / %u)",
                blockIdx.x, blockIdx.y, blockIdx.z, gridDim.x, gridDim.y, gridDim.z, blockDim.x,
                blockDim.y, blockDim.z, blockDim.x, blockDim.x, blockDim.y, blockDim.x * blockDim.y);
  return b.label;
}
inline fiber::Scheduler &gpu_scheduler() {
  static fiber::Scheduler s;
  return s;
}

inline bool first_thread_of_block() {
  fiber::Scheduler &s = gpu_scheduler();
  return s.current() == s.first();
}

// XPILER_EMU_BLOCK_ORDER=reverse: blocks run last to first and the threads of each block
// start last to first. Both orders are legal schedules; a kernel whose outputs differ
// between them depends on the order of its threads (a race, e.g. duplicate scatter targets).
inline bool reverse_order() {
  static const bool r = [] {
    const char *e = std::getenv("XPILER_EMU_BLOCK_ORDER");
    if (!e || !*e || !std::strcmp(e, "forward")) return false;
    if (!std::strcmp(e, "reverse")) return true;
    fatal("XPILER_EMU_BLOCK_ORDER=%s: expected forward or reverse", e);
  }();
  return r;
}

inline void *dynamic_shared() { return block().dyn_shared; }
inline size_t dynamic_shared_size() { return block().dyn_shared_size; }

// Linear thread index of the running fiber and its warp/lane.
inline int linear_tid() { return fiber::current(); }
inline int lane_id() { return fiber::current() % kWarpSize; }
inline WarpState &my_warp() { return block().warps[fiber::current() / kWarpSize]; }

inline uint64_t lanes_mask(int n) { return n >= 64 ? ~0ull : ((1ull << n) - 1); }

// ------------------------------------------------------------------------------------
// 7. Barriers
// ------------------------------------------------------------------------------------
// All threads of the block must arrive; a thread that exited (returned early) makes the
// others wait forever, which the scheduler reports as a deadlock (undefined behaviour in
// CUDA/HIP: "__syncthreads() is allowed in conditional code only if the condition
// evaluates identically across the entire thread block").
inline void syncthreads() {
  BlockState &b = block();
  fiber::arrive_and_wait(b.barrier, b.nthreads);
}
inline void block_reduce_complete(fiber::Group *) {
  BlockState &b = block();
  b.reduce_result = b.reduce_acc;
  b.reduce_acc = b.reduce_op == 1 ? 1 : 0;
}
// op 0: count, 1: and, 2: or
inline int syncthreads_reduce(int pred, int op) {
  BlockState &b = block();
  if (b.barrier.arrived == 0) {
    b.reduce_op = op;
    b.reduce_acc = op == 1 ? 1 : 0;
  }
  if (op == 0) b.reduce_acc += pred != 0;
  else if (op == 1) b.reduce_acc &= pred != 0;
  else b.reduce_acc |= pred != 0;
  b.barrier.on_complete = &block_reduce_complete;
  fiber::arrive_and_wait(b.barrier, b.nthreads);
  b.barrier.on_complete = nullptr;
  return b.reduce_result;
}

// ------------------------------------------------------------------------------------
// 8. Warp/wave collectives
// ------------------------------------------------------------------------------------
enum CollectiveOp {
  kOpSync = 1, kOpShflIdx, kOpShflUp, kOpShflDown, kOpShflXor, kOpBallot, kOpAny, kOpAll,
  kOpReduceAdd, kOpReduceMin, kOpReduceMax, kOpMatchAny,
  kOpWmmaLoad, kOpWmmaStore, kOpWmmaMma, kOpMfma
};
inline const char *op_name(int op) {
  static const char *names[] = {"?", "__syncwarp", "shuffle (idx)", "shuffle (up)", "shuffle (down)",
                                "shuffle (xor)", "ballot", "any", "all", "__reduce_add_sync",
                                "__reduce_min_sync", "__reduce_max_sync", "__match_any_sync",
                                "wmma::load_matrix_sync", "wmma::store_matrix_sync",
                                "wmma::mma_sync", "MFMA"};
  return op > 0 && op <= kOpMfma ? names[op] : "?";
}

// Lanes of the current warp that have not exited (not-yet-started lanes count as live).
inline uint64_t live_lanes(const WarpState &w) {
  fiber::Scheduler &s = gpu_scheduler();
  uint64_t m = 0;
  for (int l = 0; l < w.nlanes; ++l)
    if (!s.exited(w.first + l)) m |= 1ull << l;
  return m;
}

// Arrive at the warp's rendezvous with operation `op`. mask != 0: the lanes named in mask
// (and existing) must all arrive (CUDA *_sync semantics; an exited lane named in the mask
// is a deadlock). mask == 0: all live lanes are expected, and lanes that never come (they
// are waiting elsewhere or will exit) are treated as inactive once nothing else can run
// (HIP wave semantics, where the hardware executes the collective for the active lanes).
inline void warp_arrive(WarpState &w, int lane, int op, void (*complete)(fiber::Group *),
                        uint64_t mask) {
  if (w.g.arrived == 0) {
    w.op = op;
    w.g.on_complete = complete;
    w.g.name = op_name(op);
    w.arrived = 0;
    w.mask = mask;
    w.first_lane = lane;
    w.g.partial_on_stall = (mask == 0);
  } else if (w.op != op) {
    fatal("divergent warp collectives in %s: lane %d of warp %d calls %s while other lanes wait in %s",
          block_label(), lane, w.index, op_name(op), op_name(w.op));
  }
  w.arrived |= 1ull << lane;
  // Only the first arriver's count matters (fiber::Scheduler::arrive_and_wait).
  int expected = 0;
  if (w.g.arrived == 0)
    expected = mask ? __builtin_popcountll(mask & lanes_mask(w.nlanes)) : __builtin_popcountll(live_lanes(w));
  if (expected == 0) expected = 1;
  fiber::arrive_and_wait(w.g, expected);
}

inline uint64_t poison_bits() { return ~0ull; }

inline void shuffle_complete(fiber::Group *g) {
  WarpState &w = *reinterpret_cast<WarpState *>(g);
  for (int l = 0; l < kWarpSize; ++l) {
    if (!(w.arrived >> l & 1)) continue;
    LaneSlot &s = w.lane[l];
    int width = s.width, base = l & ~(width - 1), src = l;
    switch (w.op) {
      case kOpShflIdx: src = base + (s.arg & (width - 1)); break;
      case kOpShflUp: src = l - s.arg; if (src < base) src = l; break;
      case kOpShflDown: src = l + s.arg; if (src >= base + width) src = l; break;
      case kOpShflXor: src = l ^ s.arg; if (src >= base + width) src = l; break;
    }
    // Reading a lane that does not take part is undefined on hardware: return a poison
    // pattern (NaN for float) so that such reads are visible in differential tests.
    uint64_t v = (src >= 0 && src < kWarpSize && (w.arrived >> src & 1)) ? w.lane[src].val : poison_bits();
    *(uint64_t *)s.out = v;
  }
}

template <class T>
inline T shuffle(int op, uint64_t mask, T var, int arg, int width) {
  static_assert(sizeof(T) <= 8, "shuffles of types larger than 8 bytes are not supported");
  if (width <= 0 || width > kWarpSize || (width & (width - 1)))
    fatal("shuffle width %d is not a power of two <= %d", width, kWarpSize);
  int t = fiber::current(), lane = t % kWarpSize;
  WarpState &w = block().warps[t / kWarpSize];
  uint64_t in = 0, out = 0;
  std::memcpy(&in, &var, sizeof(T));
  LaneSlot &s = w.lane[lane];
  s.val = in;
  s.arg = arg;
  s.width = width;
  s.out = &out;
  warp_arrive(w, lane, op, &shuffle_complete, mask);
  T r;
  std::memcpy(&r, &out, sizeof(T));
  return r;
}

inline void vote_complete(fiber::Group *g) {
  WarpState &w = *reinterpret_cast<WarpState *>(g);
  uint64_t ballot = 0, active = w.arrived;
  for (int l = 0; l < kWarpSize; ++l)
    if ((active >> l & 1) && w.lane[l].val) ballot |= 1ull << l;
  if (w.mask) ballot &= w.mask;
  uint64_t r = ballot;
  if (w.op == kOpAny) r = ballot != 0;
  if (w.op == kOpAll) r = ballot == (w.mask ? (active & w.mask) : active);
  for (int l = 0; l < kWarpSize; ++l)
    if (active >> l & 1) *(uint64_t *)w.lane[l].out = r;
}
inline uint64_t vote(int op, uint64_t mask, int pred) {
  int t = fiber::current(), lane = t % kWarpSize;
  WarpState &w = block().warps[t / kWarpSize];
  uint64_t out = 0;
  w.lane[lane].val = pred != 0;
  w.lane[lane].out = &out;
  warp_arrive(w, lane, op, &vote_complete, mask);
  return out;
}

inline void reduce_complete(fiber::Group *g) {
  WarpState &w = *reinterpret_cast<WarpState *>(g);
  int64_t acc = w.op == kOpReduceMin ? INT64_MAX : (w.op == kOpReduceMax ? INT64_MIN : 0);
  bool is_signed = w.lane[__builtin_ctzll(w.arrived)].arg;
  for (int l = 0; l < kWarpSize; ++l) {
    if (!(w.arrived >> l & 1)) continue;
    int64_t v = is_signed ? (int64_t)(int32_t)w.lane[l].val : (int64_t)(uint32_t)w.lane[l].val;
    if (w.op == kOpReduceAdd) acc += v;
    else if (w.op == kOpReduceMin) acc = v < acc ? v : acc;
    else acc = v > acc ? v : acc;
  }
  for (int l = 0; l < kWarpSize; ++l)
    if (w.arrived >> l & 1) *(uint64_t *)w.lane[l].out = (uint64_t)acc;
}
template <class T>
inline T warp_reduce(int op, uint64_t mask, T v) {
  int t = fiber::current(), lane = t % kWarpSize;
  WarpState &w = block().warps[t / kWarpSize];
  uint64_t out = 0;
  w.lane[lane].val = (uint64_t)(uint32_t)v;
  w.lane[lane].arg = std::is_signed<T>::value;
  w.lane[lane].out = &out;
  warp_arrive(w, lane, op, &reduce_complete, mask);
  return (T)out;
}

inline void match_any_complete(fiber::Group *g) {
  WarpState &w = *reinterpret_cast<WarpState *>(g);
  for (int l = 0; l < kWarpSize; ++l) {
    if (!(w.arrived >> l & 1)) continue;
    uint64_t m = 0;
    for (int k = 0; k < kWarpSize; ++k)
      if ((w.arrived >> k & 1) && w.lane[k].val == w.lane[l].val) m |= 1ull << k;
    *(uint64_t *)w.lane[l].out = m;
  }
}
template <class T>
inline uint64_t match_any(uint64_t mask, T v) {
  int t = fiber::current(), lane = t % kWarpSize;
  WarpState &w = block().warps[t / kWarpSize];
  uint64_t in = 0, out = 0;
  std::memcpy(&in, &v, sizeof(T) < 8 ? sizeof(T) : 8);
  w.lane[lane].val = in;
  w.lane[lane].out = &out;
  warp_arrive(w, lane, kOpMatchAny, &match_any_complete, mask);
  return out;
}

inline void syncwarp(uint64_t mask) {
  int t = fiber::current(), lane = t % kWarpSize;
  WarpState &w = block().warps[t / kWarpSize];
  warp_arrive(w, lane, kOpSync, nullptr, mask);
}

// Approximation: the emulator has no lock-step execution mask; it reports the lanes of the
// warp that exist and have not exited.
inline uint64_t activemask() { return live_lanes(my_warp()); }

// ------------------------------------------------------------------------------------
// 9. Launch: xpiler_launch(kernel, grid, block, shmem, stream)(args...)
// ------------------------------------------------------------------------------------
inline int &last_error() {
  static int e = 0;
  return e;
}
inline int &sticky_error() {
  static int e = 0;
  return e;
}

inline void thread_resume_hook(void *, int i) {
  unsigned bx = blockDim.x, by = blockDim.y;
  if (by == 1 && blockDim.z == 1) {
    threadIdx.x = (unsigned)i;
    threadIdx.y = 0;
    threadIdx.z = 0;
  } else {
    threadIdx.x = (unsigned)i % bx;
    threadIdx.y = ((unsigned)i / bx) % by;
    threadIdx.z = (unsigned)i / (bx * by);
  }
}

// Runs every block of the grid; fn(ctx, linear_tid) runs one thread.
inline void run_grid(dim3 grid, dim3 blk, size_t shmem, fiber::Fn fn, void *ctx) {
  unsigned long long nthreads = (unsigned long long)blk.x * blk.y * blk.z;
  // Error codes as the CUDA 12 runtime returns them (measured on an H200): a block of more
  // than 1024 threads gives cudaErrorInvalidValue (1); zero or too large grid dimensions
  // give cudaErrorInvalidConfiguration (9).
  int err = 0;
  if (nthreads == 0 || nthreads > (unsigned long long)kMaxThreadsPerBlock || blk.z > 64) err = 1;
  else if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) err = 9;
  if (err) {
    std::fprintf(stderr,
                 "xpiler emulator: invalid launch configuration grid (%u,%u,%u) block (%u,%u,%u); "
                 "kernel not run (error %d)\n",
                 grid.x, grid.y, grid.z, blk.x, blk.y, blk.z, err);
    last_error() = err;
    return;
  }
  BlockState &b = block();
  b.nthreads = (int)nthreads;
  b.barrier.reset();
  b.barrier.name = "__syncthreads";
  b.barrier.on_complete = nullptr;
  int nwarps = (b.nthreads + kWarpSize - 1) / kWarpSize;
  for (int w = 0; w < nwarps; ++w) {
    WarpState &ws = b.warps[w];
    ws.g.reset();
    ws.index = w;
    ws.first = w * kWarpSize;
    ws.nlanes = std::min(kWarpSize, b.nthreads - w * kWarpSize);
  }
  // Dynamic shared memory: one buffer per launch, reused by every block.
  static std::vector<unsigned char> dyn;
  if (dyn.size() < shmem + 256) dyn.resize(shmem + 256);
  b.dyn_shared = (unsigned char *)(((uintptr_t)dyn.data() + 127) & ~(uintptr_t)127);
  b.dyn_shared_size = shmem;
  if (XPILER_EMU_POISON && shmem) std::memset(b.dyn_shared, poison_byte(), shmem);

  gridDim = grid;
  blockDim = blk;
  fiber::Scheduler &s = gpu_scheduler();
  s.set_label_fn(&block_label);
  const bool rev = reverse_order();
  s.set_reverse(rev);
  for (unsigned zi = 0; zi < grid.z; ++zi)
    for (unsigned yi = 0; yi < grid.y; ++yi)
      for (unsigned xi = 0; xi < grid.x; ++xi) {
        unsigned x = rev ? grid.x - 1 - xi : xi, y = rev ? grid.y - 1 - yi : yi, z = rev ? grid.z - 1 - zi : zi;
        blockIdx = uint3{x, y, z};
        try {
          s.run(b.nthreads, fn, ctx, &thread_resume_hook);
        } catch (const std::exception &e) {
          fatal("%s", e.what());
        }
      }
}

template <class... P>
struct Launcher {
  void (*kernel)(P...);
  dim3 grid, block;
  size_t shmem;

  template <class... A>
  void operator()(A &&...a) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    using Args = std::tuple<std::decay_t<P>...>;
    struct Ctx {
      void (*k)(P...);
      Args args;
    } ctx{kernel, Args(std::forward<A>(a)...)};
    run_grid(grid, block, shmem, [](void *c, int) {
      Ctx *x = static_cast<Ctx *>(c);
      std::apply(x->k, x->args);  // each thread gets its own copies of the parameters
    }, &ctx);
  }
};

// Launching a callable: used by emu_adapt.py for kernel templates launched without explicit
// template arguments (`k<<<g, b>>>(x)` with `template <class T> __global__ void k(T*)`),
// which CUDA deduces from the arguments: the adapter passes `[](auto&&... a) { k(a...); }`.
template <class F>
struct CallableLauncher {
  F f;
  dim3 grid, block;
  size_t shmem;

  template <class... A>
  void operator()(A &&...a) const {
    using Args = std::tuple<std::decay_t<A>...>;
    struct Ctx {
      F f;
      Args args;
    } ctx{f, Args(std::forward<A>(a)...)};
    run_grid(grid, block, shmem, [](void *c, int) {
      Ctx *x = static_cast<Ctx *>(c);
      std::apply(x->f, x->args);
    }, &ctx);
  }
};

// ------------------------------------------------------------------------------------
// 10. Atomics: one OS thread and no preemption inside an expression, so a plain
//     read-modify-write is atomic with respect to the other fibers.
// ------------------------------------------------------------------------------------
}  // namespace gpu
}  // namespace xpiler

#define XPILER_ATOMIC_RMW(T)                                                                  \
  inline T atomicAdd(T *p, T v) { T o = *p; *p = (T)(o + v); return o; }                      \
  inline T atomicSub(T *p, T v) { T o = *p; *p = (T)(o - v); return o; }                      \
  inline T atomicExch(T *p, T v) { T o = *p; *p = v; return o; }                              \
  inline T atomicMax(T *p, T v) { T o = *p; if (o < v) *p = v; return o; }                    \
  inline T atomicMin(T *p, T v) { T o = *p; if (v < o) *p = v; return o; }                    \
  inline T atomicAdd_block(T *p, T v) { return atomicAdd(p, v); }                             \
  inline T atomicAdd_system(T *p, T v) { return atomicAdd(p, v); }
#define XPILER_ATOMIC_INT(T)                                                                  \
  XPILER_ATOMIC_RMW(T)                                                                        \
  inline T atomicCAS(T *p, T cmp, T v) { T o = *p; if (o == cmp) *p = v; return o; }          \
  inline T atomicAnd(T *p, T v) { T o = *p; *p = o & v; return o; }                           \
  inline T atomicOr(T *p, T v) { T o = *p; *p = o | v; return o; }                            \
  inline T atomicXor(T *p, T v) { T o = *p; *p = o ^ v; return o; }
XPILER_ATOMIC_INT(int)
XPILER_ATOMIC_INT(unsigned int)
XPILER_ATOMIC_INT(unsigned long long)
XPILER_ATOMIC_INT(long long)
XPILER_ATOMIC_INT(unsigned short)
XPILER_ATOMIC_RMW(float)   // atomicMax/Min on float are an extension (CUDA has none)
XPILER_ATOMIC_RMW(double)
XPILER_ATOMIC_RMW(__half)
XPILER_ATOMIC_RMW(__nv_bfloat16)
#undef XPILER_ATOMIC_INT
#undef XPILER_ATOMIC_RMW
// float CAS compares bit patterns, as the usual atomicCAS-on-__float_as_int idiom expects.
inline unsigned atomicInc(unsigned *p, unsigned lim) { unsigned o = *p; *p = o >= lim ? 0 : o + 1; return o; }
inline unsigned atomicDec(unsigned *p, unsigned lim) { unsigned o = *p; *p = (o == 0 || o > lim) ? lim : o - 1; return o; }

// ------------------------------------------------------------------------------------
// 11. Device memory (dialect-neutral; cuda_emu.h / hip_emu.h wrap it in their API names)
// ------------------------------------------------------------------------------------
namespace xpiler {
namespace gpu {

inline std::unordered_map<void *, size_t> &allocations() {
  static std::unordered_map<void *, size_t> m;
  return m;
}
inline int device_malloc(void **p, size_t n) {
  if (!p) return 1;
  void *q = nullptr;
  if (posix_memalign(&q, 256, n ? n : 1) != 0) { *p = nullptr; return 2; }
  if (XPILER_EMU_POISON) std::memset(q, poison_byte(), n);
  allocations()[q] = n;
  *p = q;
  return 0;
}
inline int device_free(void *p) {
  if (!p) return 0;
  auto it = allocations().find(p);
  if (it == allocations().end()) return 1;  // not from device_malloc (or freed twice)
  allocations().erase(it);
  std::free(p);
  return 0;
}
inline int device_memcpy(void *dst, const void *src, size_t n) {
  if (n && (!dst || !src)) return 1;
  if (n) std::memmove(dst, src, n);
  return 0;
}
inline int device_memset(void *dst, int v, size_t n) {
  if (n && !dst) return 1;
  if (n) std::memset(dst, v, n);
  return 0;
}
inline int take_last_error() {
  int e = last_error();
  last_error() = 0;
  return e;
}

}  // namespace gpu
}  // namespace xpiler

// Launch entry used by code rewritten by emu_adapt.py (`k<<<g, b, s, q>>>(args)` becomes
// `xpiler_launch(k, g, b, s, q)(args)`). The BANG emulator overloads the same name.
template <class... P>
inline xpiler::gpu::Launcher<P...> xpiler_launch(void (*kernel)(P...), dim3 grid, dim3 block,
                                                 size_t shmem = 0, const void * /*stream*/ = nullptr) {
  return xpiler::gpu::Launcher<P...>{kernel, grid, block, shmem};
}

template <class F>
inline xpiler::gpu::CallableLauncher<F> xpiler_launch(F kernel, dim3 grid, dim3 block, size_t shmem = 0,
                                                      const void * /*stream*/ = nullptr) {
  return xpiler::gpu::CallableLauncher<F>{kernel, grid, block, shmem};
}

// Block-level barrier and reductions (same names in CUDA and HIP).
inline void __syncthreads() { xpiler::gpu::syncthreads(); }
inline int __syncthreads_count(int p) { return xpiler::gpu::syncthreads_reduce(p, 0); }
inline int __syncthreads_and(int p) { return xpiler::gpu::syncthreads_reduce(p, 1); }
inline int __syncthreads_or(int p) { return xpiler::gpu::syncthreads_reduce(p, 2); }
