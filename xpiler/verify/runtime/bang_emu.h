// bang_emu.h — CPU emulator for Cambricon BANG C (MLU) kernels.
//
//   g++ -std=c++17 -include bang_emu.h -x c++ kernel.mlu host_main.cpp
//
// A `.mlu` file compiles as ordinary host C++: the BANG qualifiers become plain C++, the
// task indices are per-task variables, `__memcpy`/`__bang_*` are C++ functions with the
// semantics documented in docs/platforms.md ("BANG C (MLU) emulator decisions"), and
// `xpiler_launch(kernel, dim, type)(args...)` runs every task of a launch.
//
// Execution model (see docs/platforms.md for the reasons):
//   * every task (core) runs on its own cooperative fiber with a large stack; `__nram__`
//     and `__wram__` arrays are ordinary automatic arrays on that stack, so arrays inside
//     loops and VLAs work exactly as in BANG C;
//   * the cores of one cluster share one OS thread, so `__mlu_shared__` (SRAM) is
//     `static thread_local`: one copy per cluster, fresh for every launch;
//   * clusters take turns (one runs at a time) unless XPILER_BANG_PARALLEL_CLUSTERS=1, so
//     runs are deterministic; fibers switch only inside __sync_* calls.
//
// This header must never be combined with the CUDA/HIP emulator headers: both define
// `xpiler_launch` and `half`.
#ifndef XPILER_BANG_EMU_H
#define XPILER_BANG_EMU_H
#define XPILER_BANG_EMU 1

#if defined(XPILER_WARP_SIZE) || defined(XPILER_CUDA_EMU) || defined(XPILER_HIP_EMU)  // GPU headers
#error "bang_emu.h cannot be combined with the CUDA/HIP emulator headers (xpiler_launch and half clash)"
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cfloat>
#include <climits>
#include <cmath>
#include <complex>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "xpiler_fiber.h"  // the cooperative scheduler shared with the CUDA/HIP emulator

// ==========================================================================================
// 1. Options. Every [UNCERTAIN] semantic of platforms.md §3 is a named macro; the default
//    is the one documented in docs/platforms.md. Pass -DNAME=VALUE to change it.
// ==========================================================================================
#ifndef XPILER_NRAM_BYTES              // per core; platform_configs/mlu.toml [limits]
#define XPILER_NRAM_BYTES (512 * 1024)
#endif
#ifndef XPILER_WRAM_BYTES              // per core
#define XPILER_WRAM_BYTES (512 * 1024)
#endif
#ifndef XPILER_SRAM_BYTES              // per cluster (__mlu_shared__); not checked, see docs
#define XPILER_SRAM_BYTES (2 * 1024 * 1024)
#endif
#ifndef XPILER_BANG_CORES_PER_CLUSTER  // cores of one cluster in UNIONn launches
#define XPILER_BANG_CORES_PER_CLUSTER 4
#endif
#ifndef XPILER_BANG_FRAME_SLACK        // stack bytes allowed beyond NRAM+WRAM for scalars,
#define XPILER_BANG_FRAME_SLACK (64 * 1024)  // helper frames and the emulator's own frames
#endif
#ifndef XPILER_BANG_STACK_EXTRA        // stack beyond the checked capacity: room to report
#define XPILER_BANG_STACK_EXTRA (4 * 1024 * 1024)  // an over-capacity kernel before a fault
#endif
#ifndef XPILER_BANG_STRICT             // 1: every diagnosable hardware rule aborts
#define XPILER_BANG_STRICT 0
#endif
#ifndef XPILER_BANG_CHECK_GDRAM_BOUNDS // GDRAM accesses of DMA/vector ops stay inside one
#define XPILER_BANG_CHECK_GDRAM_BOUNDS 1  // registered allocation (cnrtMalloc)
#endif
#ifndef XPILER_BANG_CHECK_CAPACITY     // on-chip use (stack depth) <= NRAM+WRAM+slack
#define XPILER_BANG_CHECK_CAPACITY 1
#endif
#ifndef XPILER_BANG_VECTOR_ON_GDRAM    // 1: __bang_* operands may be GDRAM (some real
#define XPILER_BANG_VECTOR_ON_GDRAM (!XPILER_BANG_STRICT)  // kernels do); 0: abort
#endif
#ifndef XPILER_BANG_POISON_ONCHIP      // fill each task's on-chip memory with 0xFF bytes
#define XPILER_BANG_POISON_ONCHIP 1    // (float NaN) so uninitialized reads show up
#endif
#ifndef XPILER_BANG_SIGN_ZERO          // value of __bang_active_sign(0): 0 (torch.sign)
#define XPILER_BANG_SIGN_ZERO 0        // or 1 (treat 0 as positive)
#endif
#ifndef XPILER_BANG_GELUP_TANH         // 0: gelup = exact erf GELU; 1: tanh approximation
#define XPILER_BANG_GELUP_TANH 0
#endif
#ifndef XPILER_BANG_DIV_SCRATCH        // 5-arg __bang_div scratch after the call:
#define XPILER_BANG_DIV_SCRATCH 1      // 0 untouched, 1 poisoned (NaN), 2 = 1/src1
#endif
#ifndef XPILER_BANG_MATMUL_RHS_LAYOUT  // 0: rhs in WRAM is row-major [K][N] (benchmark);
#define XPILER_BANG_MATMUL_RHS_LAYOUT 0  // 1: column-major [N][K] (hardware tutorials)
#endif
#ifndef XPILER_BANG_MLP_CONVENTION     // 0: dst[w] = sum_h src[h]*filter[h][w] (benchmark)
#define XPILER_BANG_MLP_CONVENTION 0   // 1: dst[h] = sum_w filter[h][w]*src[w] (2018 header)
#endif
#ifndef XPILER_BANG_CONV_FILTER_LAYOUT // 0: WRAM filter [Co][kh][kw][Ci] (OHWI, benchmark)
#define XPILER_BANG_CONV_FILTER_LAYOUT 0  // 1: [kh][kw][Ci][Co] (HWIO)
#endif
#ifndef XPILER_BANG_SELECT_DATA_OFFSET // __bang_select: count as uint32 at dst[0], the
#define XPILER_BANG_SELECT_DATA_OFFSET 128  // selected elements from this byte offset
#endif
#ifndef XPILER_BANG_REDUCE_SEGMENT_BYTES  // __bang_reduce_sum sums 128-byte segments
#define XPILER_BANG_REDUCE_SEGMENT_BYTES 128
#endif
#ifndef XPILER_BANG_ALIGN_BYTES        // strict mode: vector lengths in these units
#define XPILER_BANG_ALIGN_BYTES 0      // (0 = not checked; hardware wants 128)
#endif
#ifndef XPILER_BANG_PARALLEL_CLUSTERS  // 1: cluster threads run truly in parallel (faster,
#define XPILER_BANG_PARALLEL_CLUSTERS 0  // nondeterministic for racy kernels)
#endif
#ifndef XPILER_BANG_CANARY_REPORT      // with -fstack-protector*, report a smashed kernel
#define XPILER_BANG_CANARY_REPORT 1    // frame as an on-chip array overflow
#endif

// ==========================================================================================
// 2. Qualifiers. On-chip arrays are automatic (per-task fiber stack); SRAM is per cluster
//    thread. Function qualifiers vanish.
// ==========================================================================================
#define __mlu_global__
#define __mlu_entry__
#define __mlu_func__ inline
#define __mlu_device__
#define __mlu_host__
#define __nram__
#define __wram__
#define __ldram__
#define __mlu_shared__ static thread_local
#define __mlu_const__ static const
#define __BANG__ 1
#ifndef __BANG_ARCH__
#define __BANG_ARCH__ 290
#endif

// ==========================================================================================
// 3. Types.
// ==========================================================================================
// g++ >= 12 and clang implement _Float16 in C++ with IEEE binary16 rounding, which is
// what BANG's `half` is; scalar half arithmetic then behaves like the hardware's.
typedef _Float16 half;
typedef int8_t int8;
typedef int16_t int16;
typedef int32_t int32;
typedef int64_t int64;
typedef uint8_t uint8;
typedef uint16_t uint16;
typedef uint32_t uint32;
typedef uint64_t uint64;

// bfloat16: not used by the benchmark; round-to-nearest-even conversion from float.
struct bfloat16_t {
  uint16_t bits = 0;
  bfloat16_t() = default;
  bfloat16_t(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) { bits = 0x7fc0; return; }  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    bits = uint16_t(u >> 16);
  }
  operator float() const {
    uint32_t u = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

enum mluMemcpyDirection_t {
  GDRAM2NRAM, NRAM2GDRAM, GDRAM2WRAM, WRAM2GDRAM, NRAM2WRAM, WRAM2NRAM, NRAM2NRAM,
  GDRAM2SRAM, SRAM2GDRAM, SRAM2NRAM, NRAM2SRAM, SRAM2WRAM, WRAM2SRAM, SRAM2SRAM,
  GDRAM2GDRAM, GDRAM2LDRAM, LDRAM2GDRAM, LDRAM2NRAM, NRAM2LDRAM, LDRAM2LDRAM,
  WRAM2WRAM, LDRAM2SRAM, SRAM2LDRAM, LDRAM2WRAM, WRAM2LDRAM,
};

namespace xpiler_bang {

// The byte on-chip memory (and new GDRAM) is filled with: 0xFF, or XPILER_EMU_POISON_BYTE
// from the environment (verification varies it to find outputs that were never written).
inline int poison_byte() {
  static const int b = [] {
    const char* e = std::getenv("XPILER_EMU_POISON_BYTE");
    return e ? int(std::strtol(e, nullptr, 0) & 0xFF) : 0xFF;
  }();
  return b;
}


// ==========================================================================================
// 4. Diagnostics. One place formats every error, naming the builtin, the task and the
//    offending pointer/range, then aborts (exit status 3) so tests can match the text.
// ==========================================================================================
struct task_state;
inline thread_local task_state* g_task = nullptr;

[[noreturn]] inline void fail(const char* builtin, const char* fmt, ...);

// ==========================================================================================
// 5. Memory spaces. GDRAM = host memory registered by cnrtMalloc; on-chip = the current
//    task's stack (NRAM and WRAM are indistinguishable there); anything else (SRAM in
//    thread-local storage, raw host pointers) is "other" and only checked in strict mode.
// ==========================================================================================
enum class space { gdram, onchip, other };
inline const char* space_name(space s) {
  return s == space::gdram ? "GDRAM" : s == space::onchip ? "on-chip (NRAM/WRAM)" : "unregistered";
}

struct gdram_registry {
  std::mutex mu;
  std::map<uintptr_t, size_t> blocks;  // begin -> bytes; changed only by host code
  static gdram_registry& get() { static gdram_registry r; return r; }
  // Returns the block containing p, or {0,0}. Reads happen during launches, when the host
  // cannot allocate, so no lock is taken here (std::map reads are thread-safe).
  std::pair<uintptr_t, size_t> find(const void* p) const {
    uintptr_t a = uintptr_t(p);
    auto it = blocks.upper_bound(a);
    if (it == blocks.begin()) return {0, 0};
    --it;
    if (a < it->first + std::max<size_t>(it->second, 1)) return *it;
    return {0, 0};
  }
};

// Per-task state. The globals below mirror the current task's ids; they are restored
// whenever a fiber resumes (fibers switch only inside the scheduler).
struct task_state {
  int task_id = 0, cluster_id = 0, core_id = 0;
  int task_x = 0, task_y = 0, task_z = 0;
  uintptr_t stack_lo = 0, stack_hi = 0;  // on-chip memory of this task
  uintptr_t fence = 0;                   // where the kernel's return address lives: on-chip
                                         // data is [stack_lo, fence), the rest is emulator
  const char* kernel = "";
};

}  // namespace xpiler_bang

// BANG's built-in task variables: per task (thread_local + restored at fiber switches).
inline thread_local int taskId = 0, taskIdX = 0, taskIdY = 0, taskIdZ = 0;
inline thread_local int taskDim = 1, taskDimX = 1, taskDimY = 1, taskDimZ = 1;
inline thread_local int clusterId = 0, clusterDim = 1, coreId = 0, coreDim = 1;

namespace xpiler_bang {

inline void set_task_globals(const task_state* t) {
  g_task = const_cast<task_state*>(t);
  taskId = t->task_id; clusterId = t->cluster_id; coreId = t->core_id;
  taskIdX = t->task_x; taskIdY = t->task_y; taskIdZ = t->task_z;
}

inline space classify(const void* p) {
  uintptr_t a = uintptr_t(p);
  if (g_task && a >= g_task->stack_lo && a < g_task->stack_hi) return space::onchip;
  if (gdram_registry::get().find(p).second) return space::gdram;
  return space::other;
}

// On-chip capacity: everything between the kernel's entry and the current stack pointer
// is on-chip data (arrays, scalars, helper frames). Called by every builtin.
__attribute__((noinline)) inline void check_capacity(const char* builtin) {
#if XPILER_BANG_CHECK_CAPACITY
  if (!g_task) return;
  uintptr_t sp = uintptr_t(__builtin_frame_address(0));
  if (!g_task->fence || sp >= g_task->fence) return;
  size_t used = g_task->fence - sp;
  const size_t cap = size_t(XPILER_NRAM_BYTES) + size_t(XPILER_WRAM_BYTES) + XPILER_BANG_FRAME_SLACK;
  if (used > cap)
    fail(builtin,
         "on-chip memory capacity exceeded: the kernel's frame holds %zu bytes of "
         "__nram__/__wram__ arrays and locals, more than NRAM %d + WRAM %d bytes "
         "(+%d bytes slack for scalars); set XPILER_NRAM_BYTES/XPILER_WRAM_BYTES",
         used, int(XPILER_NRAM_BYTES), int(XPILER_WRAM_BYTES), int(XPILER_BANG_FRAME_SLACK));
#else
  (void)builtin;
#endif
}

// A range [p, p+bytes) that a builtin reads or writes in memory space `want`.
inline void check_range(const char* builtin, const char* role_base, const void* p, size_t bytes,
                        space want, long long segment = -1) {
  space got = classify(p);
  // The role text names the DMA segment; it is only formatted when an error is reported.
  char role_buf[96];
  auto role = [&]() -> const char* {
    if (segment < 0) return role_base;
    std::snprintf(role_buf, sizeof role_buf, "%s (segment %lld)", role_base, segment);
    return role_buf;
  };
  if (want == space::onchip) {
    if (got == space::gdram) {
#if XPILER_BANG_VECTOR_ON_GDRAM
      if (std::strncmp(builtin, "__memcpy", 8) == 0)  // DMA directions are never lenient
#endif
        fail(builtin, "%s %p is a GDRAM pointer, but this operand must be on-chip (NRAM/WRAM)%s",
             role(), p, std::strncmp(builtin, "__memcpy", 8) == 0 ? ": wrong copy direction" :
             " (hardware vector units read only NRAM/WRAM; -DXPILER_BANG_VECTOR_ON_GDRAM=1 tolerates it)");
    } else if (got != space::gdram && g_task && g_task->fence &&
               uintptr_t(p) + bytes > g_task->fence && uintptr_t(p) < g_task->stack_hi + (1u << 20)) {
      // The kernel's frame ends at its return address, just below the emulator's frames and
      // the top of the task stack. A range reaching it has run past the end of the kernel's
      // top-most __nram__/__wram__ array; on hardware it would spill into other on-chip
      // data, here it would smash the stack, so it is always an error.
      fail(builtin,
           "%s [%p, +%zu bytes) runs %zu bytes past the end of the kernel's on-chip "
           "(__nram__/__wram__) arrays: an on-chip array overflow",
           role(), p, bytes, size_t(uintptr_t(p) + bytes - g_task->fence));
    } else if (got == space::other && XPILER_BANG_STRICT) {
      fail(builtin, "%s %p is not in this task's on-chip memory [%p, %p)", role(), p,
           (void*)(g_task ? g_task->stack_lo : 0), (void*)(g_task ? g_task->stack_hi : 0));
    }
  } else if (want == space::gdram) {
    if (got == space::onchip)
      fail(builtin, "%s %p is on-chip (NRAM/WRAM) memory, but the direction says GDRAM", role(), p);
    if (got == space::other && XPILER_BANG_STRICT)
      fail(builtin, "%s %p is not inside any cnrtMalloc allocation", role(), p);
  } else {  // SRAM / LDRAM: only "not GDRAM, not this task's NRAM/WRAM" can be checked
    if (got != space::other && XPILER_BANG_STRICT)
      fail(builtin, "%s %p is %s memory, but the direction says SRAM/LDRAM", role(), p,
           space_name(got));
  }
#if XPILER_BANG_CHECK_GDRAM_BOUNDS
  if (got == space::gdram && bytes) {
    auto blk = gdram_registry::get().find(p);
    if (uintptr_t(p) + bytes > blk.first + blk.second)
      fail(builtin,
           "%s [%p, +%zu bytes) overruns the GDRAM buffer [%p, +%zu bytes) by %zu bytes",
           role(), p, bytes, (void*)blk.first, blk.second,
           size_t(uintptr_t(p) + bytes - (blk.first + blk.second)));
  }
#endif
}

// Operands of a __bang_* vector builtin are on-chip.
template <class T>
inline void vec_operand(const char* builtin, const char* role, const T* p, long long n) {
  if (n < 0) fail(builtin, "negative element count %lld", n);
#if XPILER_BANG_ALIGN_BYTES
  if (XPILER_BANG_STRICT && (n * sizeof(T)) % XPILER_BANG_ALIGN_BYTES)
    fail(builtin, "%s length %lld elements is not a multiple of %d bytes", role, n,
         XPILER_BANG_ALIGN_BYTES);
#endif
  check_range(builtin, role, p, size_t(n) * sizeof(T), space::onchip);
}

// Aliasing-safe operands: a source that overlaps the destination without being exactly
// the same elements is copied to a per-thread scratch buffer first, so `dst == src`
// (elementwise, in place) costs nothing and any other overlap still reads old values.
template <class T>
struct scratch {
  static std::vector<T>& buf(int slot) {
    static thread_local std::vector<T> b[4];
    return b[slot];
  }
};
template <class T, class U>
inline const U* unalias(int slot, const T* dst, size_t dst_n, const U* src, size_t src_n,
                        bool same_index_ok = true) {
  uintptr_t d0 = uintptr_t(dst), d1 = d0 + dst_n * sizeof(T);
  uintptr_t s0 = uintptr_t(src), s1 = s0 + src_n * sizeof(U);
  if (s1 <= d0 || d1 <= s0) return src;
  if (same_index_ok && s0 == d0 && sizeof(T) == sizeof(U)) return src;
  auto& b = scratch<U>::buf(slot);
  b.assign(src, src + src_n);
  return b.data();
}

template <class T> inline float to_f(T v) { return float(v); }
template <class T> inline T from_f(float v) {
  if constexpr (std::is_integral_v<T>) {  // saturate like the hardware's fixed-point ops
    if (std::isnan(v)) return T(0);
    v = std::nearbyint(v);
    if (v <= float(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
    if (v >= float(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return T(v);
  } else {
    return T(v);
  }
}

}  // namespace xpiler_bang

// ==========================================================================================
// 6. Task scheduling. The cores of one cluster are fibers of the shared scheduler
//    (xpiler_fiber.h) on the cluster's OS thread: they run one after another on pooled
//    stacks until a core reaches a rendezvous, so kernels without __sync_* cost no switches.
// ==========================================================================================
namespace xpiler_bang {

struct cluster_run {
  xpiler::fiber::Scheduler sched;
  xpiler::fiber::Group group;        // __sync_cluster / the cluster half of __sync_all
  std::vector<task_state> tasks;     // one per core
  const std::function<void()>* kernel = nullptr;

  // Called on a fiber: waits until every core of this cluster arrives. A core that
  // already returned never will; the scheduler then reports a deadlock (hardware hangs).
  void rendezvous(const char* what) {
    group.name = what;
    sched.arrive_and_wait(group, int(tasks.size()));
  }
};
inline thread_local cluster_run* g_cluster = nullptr;

// Clusters are OS threads (one SRAM each). A turn token makes them run one at a time
// (deterministic); __sync_all is a barrier over all clusters built on the same token.
struct launch_state {
  std::mutex mu;
  std::condition_variable cv;
  int nclusters = 0;
  int turn = 0;             // cluster allowed to run (serial mode)
  int finished = 0;         // clusters done
  int at_barrier = 0;       // clusters waiting in __sync_all
  unsigned long barrier_gen = 0;
  bool parallel = XPILER_BANG_PARALLEL_CLUSTERS;
  std::vector<char> done;

  // Serial mode: hand the turn to the next cluster that can make progress.
  void pass_turn_locked(int from) {
    for (int k = 1; k <= nclusters; ++k) {
      int c = (from + k) % nclusters;
      if (!done[c]) { turn = c; break; }
    }
    cv.notify_all();
  }
  void wait_turn(int c) {
    if (parallel) return;
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return turn == c; });
  }
  void cluster_finished(int c) {
    std::lock_guard<std::mutex> lk(mu);
    done[c] = 1;
    ++finished;
    if (at_barrier && at_barrier + finished == nclusters)
      fail("__sync_all", "deadlock: %d cluster(s) wait in __sync_all but %d finished without it",
           at_barrier, finished);
    pass_turn_locked(c);
  }
  void global_barrier(int c) {
    std::unique_lock<std::mutex> lk(mu);
    if (finished)
      fail("__sync_all", "deadlock: cluster %d waits in __sync_all but %d cluster(s) already finished",
           c, finished);
    unsigned long my = barrier_gen;
    if (++at_barrier == nclusters) {
      at_barrier = 0;
      ++barrier_gen;
      turn = c;  // the last arrival keeps running; the others follow in turn
      cv.notify_all();
      return;
    }
    pass_turn_locked(c);
    cv.wait(lk, [&] { return barrier_gen != my && (parallel || turn == c); });
  }
};
inline launch_state* g_launch = nullptr;

}  // namespace xpiler_bang

// ==========================================================================================
// 7. Synchronization builtins. DMA is synchronous in the emulator, so __sync_io/compute
//    and __sync (their union) only need to exist; __sync_cluster / __sync_all are real
//    rendezvous of the cluster's cores / all cores of the launch.
// ==========================================================================================
inline void __sync_io() {}
inline void __sync_compute() {}
inline void __sync() {}
inline void __sync_io_move_compute() {}
inline void __sync_cluster() {
  if (xpiler_bang::g_cluster) xpiler_bang::g_cluster->rendezvous("__sync_cluster");
}
inline void __sync_all() {
  using namespace xpiler_bang;
  if (!g_cluster) return;
  g_cluster->rendezvous("__sync_all");
  // Every core of this cluster has arrived; one of them represents the cluster in the
  // barrier over clusters while the others wait for it in a second rendezvous.
  if (g_task->core_id == 0) g_launch->global_barrier(g_task->cluster_id);
  g_cluster->rendezvous("__sync_all");
}
inline void __sync_all_ipu() { __sync_all(); }
inline void __sync_all_mpu() {}
#define __bang_printf printf

// ==========================================================================================
// 8. DMA: __memcpy (4-arg, 7-arg strided, 12-arg 3-D), __memcpy_async, __memset_nram.
//    Sizes and strides are in bytes; `segnum` is the number of *extra* segments.
// ==========================================================================================
namespace xpiler_bang {

inline void dir_spaces(mluMemcpyDirection_t d, space& dst, space& src, const char*& name) {
  static const struct { space s, d; const char* n; } tab[] = {
      {space::gdram, space::onchip, "GDRAM2NRAM"},  {space::onchip, space::gdram, "NRAM2GDRAM"},
      {space::gdram, space::onchip, "GDRAM2WRAM"},  {space::onchip, space::gdram, "WRAM2GDRAM"},
      {space::onchip, space::onchip, "NRAM2WRAM"},  {space::onchip, space::onchip, "WRAM2NRAM"},
      {space::onchip, space::onchip, "NRAM2NRAM"},  {space::gdram, space::other, "GDRAM2SRAM"},
      {space::other, space::gdram, "SRAM2GDRAM"},   {space::other, space::onchip, "SRAM2NRAM"},
      {space::onchip, space::other, "NRAM2SRAM"},   {space::other, space::onchip, "SRAM2WRAM"},
      {space::onchip, space::other, "WRAM2SRAM"},   {space::other, space::other, "SRAM2SRAM"},
      {space::gdram, space::gdram, "GDRAM2GDRAM"},  {space::gdram, space::other, "GDRAM2LDRAM"},
      {space::other, space::gdram, "LDRAM2GDRAM"},  {space::other, space::onchip, "LDRAM2NRAM"},
      {space::onchip, space::other, "NRAM2LDRAM"},  {space::other, space::other, "LDRAM2LDRAM"},
      {space::onchip, space::onchip, "WRAM2WRAM"},  {space::other, space::other, "LDRAM2SRAM"},
      {space::other, space::other, "SRAM2LDRAM"},   {space::other, space::onchip, "LDRAM2WRAM"},
      {space::onchip, space::other, "WRAM2LDRAM"},
  };
  if (unsigned(d) >= sizeof(tab) / sizeof(tab[0])) fail("__memcpy", "unknown direction %d", int(d));
  src = tab[d].s;
  dst = tab[d].d;
  name = tab[d].n;
}

// Copies `nseg` segments of `size` bytes (3-D: nested counts/strides). Each segment's
// ranges are checked; bytes move with memmove so overlapping NRAM2NRAM copies are safe.
inline void dma(const char* builtin, void* dst, const void* src, long long size,
                mluMemcpyDirection_t dir, const long long dst_stride[2], const long long src_stride[2],
                const long long count[2]) {
  check_capacity(builtin);
  space ds, ss;
  const char* dname;
  dir_spaces(dir, ds, ss, dname);
  if (size < 0) fail(builtin, "%s: negative size %lld", dname, size);
  char dst_role[48], src_role[48];
  std::snprintf(dst_role, sizeof dst_role, "%s destination", dname);
  std::snprintf(src_role, sizeof src_role, "%s source", dname);
  for (long long j = 0; j < count[1]; ++j)
    for (long long i = 0; i < count[0]; ++i) {
      char* d = static_cast<char*>(dst) + i * dst_stride[0] + j * dst_stride[1];
      const char* s = static_cast<const char*>(src) + i * src_stride[0] + j * src_stride[1];
      const long long seg = (count[0] * count[1] > 1) ? i + j * count[0] : -1;
      check_range(builtin, dst_role, d, size_t(size), ds, seg);
      check_range(builtin, src_role, s, size_t(size), ss, seg);
      std::memmove(d, s, size_t(size));
    }
}

}  // namespace xpiler_bang

inline void __memcpy(void* dst, const void* src, int size, mluMemcpyDirection_t dir) {
  const long long z[2] = {0, 0}, one[2] = {1, 1};
  xpiler_bang::dma("__memcpy", dst, src, size, dir, z, z, one);
}
// Strided: segnum + 1 segments; dst advances dst_stride bytes, src src_stride bytes.
inline void __memcpy(void* dst, const void* src, int size, mluMemcpyDirection_t dir,
                     int dst_stride, int src_stride, int segnum) {
  const long long ds[2] = {dst_stride, 0}, ss[2] = {src_stride, 0}, n[2] = {segnum + 1LL, 1};
  if (segnum < 0) xpiler_bang::fail("__memcpy", "negative segnum %d", segnum);
  xpiler_bang::dma("__memcpy", dst, src, size, dir, ds, ss, n);
}
// 3-D (bang_device_functions.h): per side, stride0/segnum1 then stride1/segnum2. The
// emulator requires both sides to describe the same segment count (checked).
inline void __memcpy(void* dst, const void* src, int size, mluMemcpyDirection_t dir,
                     int dst_stride0, int dst_segnum1, int dst_stride1, int dst_segnum2,
                     int src_stride0, int src_segnum1, int src_stride1, int src_segnum2) {
  if (dst_segnum1 != src_segnum1 || dst_segnum2 != src_segnum2)
    xpiler_bang::fail("__memcpy", "3-D copy with different dst/src segment counts (%d,%d) vs (%d,%d)",
                      dst_segnum1, dst_segnum2, src_segnum1, src_segnum2);
  const long long ds[2] = {dst_stride0, dst_stride1}, ss[2] = {src_stride0, src_stride1};
  const long long n[2] = {dst_segnum1 + 1LL, dst_segnum2 + 1LL};
  xpiler_bang::dma("__memcpy", dst, src, size, dir, ds, ss, n);
}
template <class... A>
inline void __memcpy_async(void* dst, const void* src, int size, mluMemcpyDirection_t dir, A... rest) {
  __memcpy(dst, src, size, dir, rest...);  // completes immediately; __sync_io is a no-op
}

// __memset_nram(dst, elem_count, value): the element type is the type of `value`.
template <class T>
inline void __memset_nram(void* dst, int elem_count, T value) {
  xpiler_bang::check_capacity("__memset_nram");
  xpiler_bang::vec_operand("__memset_nram", "dst", static_cast<T*>(dst), elem_count);
  std::fill_n(static_cast<T*>(dst), elem_count, value);
}
template <class T>
inline void __gdramset(void* dst, int elem_count, T value) {
  xpiler_bang::check_range("__gdramset", "dst", dst, size_t(elem_count) * sizeof(T), xpiler_bang::space::gdram);
  std::fill_n(static_cast<T*>(dst), elem_count, value);
}
inline void __memset_nram(void* dst, int elem_count, double value) {  // a double literal
  __memset_nram(dst, elem_count, float(value));                         // means float
}
template <class T> inline void __nramset(T* dst, int n, T v) { __memset_nram(dst, n, v); }
inline void __nramset_float(float* dst, int n, float v) { __memset_nram(dst, n, v); }
inline void __nramset_half(half* dst, int n, half v) { __memset_nram(dst, n, v); }

// ==========================================================================================
// 9. Elementwise vector builtins. One macro per arity defines a family member; the math
//    is done in float for half (and in float then saturated for integer types).
// ==========================================================================================
namespace xpiler_bang {

template <class T, class F>
inline void unary_map(const char* name, T* dst, const T* src, int n, F f) {
  check_capacity(name);
  vec_operand(name, "dst", dst, n);
  vec_operand(name, "src", src, n);
  src = unalias(0, dst, n, src, n);
  for (int i = 0; i < n; ++i) dst[i] = from_f<T>(f(to_f(src[i])));
}
template <class T, class F>
inline void binary_map(const char* name, T* dst, const T* a, const T* b, int n, F f) {
  check_capacity(name);
  vec_operand(name, "dst", dst, n);
  vec_operand(name, "src0", a, n);
  vec_operand(name, "src1", b, n);
  a = unalias(0, dst, n, a, n);
  b = unalias(1, dst, n, b, n);
  for (int i = 0; i < n; ++i) dst[i] = from_f<T>(f(to_f(a[i]), to_f(b[i])));
}
inline float gelu_erf(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }
inline float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}
inline float sign_of(float x) {
  return x > 0 ? 1.0f : x < 0 ? -1.0f : float(XPILER_BANG_SIGN_ZERO);
}

}  // namespace xpiler_bang

#define XPILER_BANG_UNARY(NAME, EXPR)                                                  \
  template <class T>                                                                   \
  inline void NAME(T* dst, const T* src, int n) {                                      \
    xpiler_bang::unary_map(#NAME, dst, src, n, [](float x) -> float { return EXPR; }); \
  }
#define XPILER_BANG_BINARY(NAME, EXPR)                                                      \
  template <class T>                                                                        \
  inline void NAME(T* dst, const T* src0, const T* src1, int n) {                           \
    xpiler_bang::binary_map(#NAME, dst, src0, src1, n, [](float x, float y) -> float { return EXPR; }); \
  }
// Vector-scalar forms: the scalar converts to the element type first, as on hardware.
#define XPILER_BANG_SCALAR(NAME, EXPR)                                                       \
  template <class T, class S, class = std::enable_if_t<std::is_arithmetic_v<S> || std::is_same_v<S, half>>> \
  inline void NAME(T* dst, const T* src, S scalar, int n) {                                  \
    const float y = xpiler_bang::to_f(T(scalar));                                            \
    xpiler_bang::unary_map(#NAME, dst, src, n, [y](float x) -> float { return EXPR; });      \
  }

// Arithmetic
XPILER_BANG_BINARY(__bang_add, x + y)
XPILER_BANG_BINARY(__bang_sub, x - y)
XPILER_BANG_BINARY(__bang_mul, x * y)
XPILER_BANG_BINARY(__bang_maxequal, std::max(x, y))
XPILER_BANG_BINARY(__bang_minequal, std::min(x, y))
XPILER_BANG_BINARY(__bang_maximum, std::max(x, y))
XPILER_BANG_BINARY(__bang_minimum, std::min(x, y))
XPILER_BANG_SCALAR(__bang_add_const, x + y)
XPILER_BANG_SCALAR(__bang_add_scalar, x + y)
XPILER_BANG_SCALAR(__bang_sub_scalar, x - y)
XPILER_BANG_SCALAR(__bang_mul_const, x * y)
XPILER_BANG_SCALAR(__bang_mul_scalar, x * y)
XPILER_BANG_SCALAR(__bang_div_scalar, x / y)
XPILER_BANG_SCALAR(__bang_maxeq_scalar, std::max(x, y))
XPILER_BANG_SCALAR(__bang_mineq_scalar, std::min(x, y))
// Comparisons: 1.0 where true, 0.0 where false (in the element type).
XPILER_BANG_BINARY(__bang_gt, float(x > y))
XPILER_BANG_BINARY(__bang_ge, float(x >= y))
XPILER_BANG_BINARY(__bang_lt, float(x < y))
XPILER_BANG_BINARY(__bang_le, float(x <= y))
XPILER_BANG_BINARY(__bang_eq, float(x == y))
XPILER_BANG_BINARY(__bang_ne, float(x != y))
XPILER_BANG_BINARY(__bang_and, float(x != 0 && y != 0))
XPILER_BANG_BINARY(__bang_or, float(x != 0 || y != 0))
XPILER_BANG_BINARY(__bang_xor, float((x != 0) != (y != 0)))
XPILER_BANG_SCALAR(__bang_gt_scalar, float(x > y))
XPILER_BANG_SCALAR(__bang_ge_scalar, float(x >= y))
XPILER_BANG_SCALAR(__bang_lt_scalar, float(x < y))
XPILER_BANG_SCALAR(__bang_le_scalar, float(x <= y))
XPILER_BANG_SCALAR(__bang_eq_scalar, float(x == y))
XPILER_BANG_SCALAR(__bang_ne_scalar, float(x != y))
XPILER_BANG_UNARY(__bang_not, float(x == 0))
// Activations: the old "active" names and the newer plain names share one definition.
XPILER_BANG_UNARY(__bang_active_exp, std::exp(x))
XPILER_BANG_UNARY(__bang_active_exphp, std::exp(x))
XPILER_BANG_UNARY(__bang_exp, std::exp(x))
XPILER_BANG_UNARY(__bang_active_relu, std::max(x, 0.0f))
XPILER_BANG_UNARY(__bang_relu, std::max(x, 0.0f))
XPILER_BANG_UNARY(__bang_active_sigmoid, 1.0f / (1.0f + std::exp(-x)))
XPILER_BANG_UNARY(__bang_sigmoid, 1.0f / (1.0f + std::exp(-x)))
XPILER_BANG_UNARY(__bang_active_gelu, xpiler_bang::gelu_tanh(x))
XPILER_BANG_UNARY(__bang_active_gelup,
                  XPILER_BANG_GELUP_TANH ? xpiler_bang::gelu_tanh(x) : xpiler_bang::gelu_erf(x))
XPILER_BANG_UNARY(__bang_gelu, xpiler_bang::gelu_erf(x))
XPILER_BANG_UNARY(__bang_active_sign, xpiler_bang::sign_of(x))
XPILER_BANG_UNARY(__bang_sign, xpiler_bang::sign_of(x))
XPILER_BANG_UNARY(__bang_active_recip, 1.0f / x)
XPILER_BANG_UNARY(__bang_active_reciphp, 1.0f / x)
XPILER_BANG_UNARY(__bang_recip, 1.0f / x)
XPILER_BANG_UNARY(__bang_active_sqrt, std::sqrt(x))
XPILER_BANG_UNARY(__bang_active_sqrthp, std::sqrt(x))
XPILER_BANG_UNARY(__bang_sqrt, std::sqrt(x))
XPILER_BANG_UNARY(__bang_active_rsqrt, 1.0f / std::sqrt(x))
XPILER_BANG_UNARY(__bang_rsqrt, 1.0f / std::sqrt(x))
XPILER_BANG_UNARY(__bang_active_tanh, std::tanh(x))
XPILER_BANG_UNARY(__bang_tanh, std::tanh(x))
XPILER_BANG_UNARY(__bang_active_log, std::log(x))
XPILER_BANG_UNARY(__bang_log, std::log(x))
XPILER_BANG_UNARY(__bang_active_abs, std::fabs(x))
XPILER_BANG_UNARY(__bang_abs, std::fabs(x))
XPILER_BANG_UNARY(__bang_active_sin, std::sin(x))
XPILER_BANG_UNARY(__bang_sin, std::sin(x))
XPILER_BANG_UNARY(__bang_active_cos, std::cos(x))
XPILER_BANG_UNARY(__bang_cos, std::cos(x))
XPILER_BANG_UNARY(__bang_square, x * x)
XPILER_BANG_UNARY(__bang_active_square, x * x)
XPILER_BANG_UNARY(__bang_floor, std::floor(x))

// Division: by a vector (4 args), by a scalar (the benchmark's rmsnorm/mha form), and the
// old 5-argument form whose 4th operand is scratch (XPILER_BANG_DIV_SCRATCH).
template <class T>
inline void __bang_div(T* dst, const T* src0, const T* src1, int n) {
  xpiler_bang::binary_map("__bang_div", dst, src0, src1, n, [](float x, float y) { return x / y; });
}
XPILER_BANG_SCALAR(__bang_div, x / y)
template <class T>
inline void __bang_div(T* dst, const T* src0, const T* src1, T* scratch, int n) {
  xpiler_bang::vec_operand("__bang_div", "scratch", scratch, n);
  __bang_div(dst, src0, src1, n);
  // The scratch range may alias an input; it is only touched after the result exists.
  if (XPILER_BANG_DIV_SCRATCH == 1) std::memset((void*)scratch, 0xff, size_t(n) * sizeof(T));
  if (XPILER_BANG_DIV_SCRATCH == 2 && scratch != dst)
    for (int i = 0; i < n; ++i) scratch[i] = T(1.0f / xpiler_bang::to_f(src1[i]));
}

// Cycle ops: src has `n` elements, seg has `seg_n`; seg repeats along src (n % seg_n == 0).
#define XPILER_BANG_CYCLE(NAME, EXPR)                                                        \
  template <class T>                                                                         \
  inline void NAME(T* dst, const T* src, const T* seg, int n, int seg_n) {                   \
    using namespace xpiler_bang;                                                             \
    check_capacity(#NAME);                                                                   \
    vec_operand(#NAME, "dst", dst, n);                                                       \
    vec_operand(#NAME, "src", src, n);                                                       \
    vec_operand(#NAME, "seg", seg, seg_n);                                                   \
    if (seg_n <= 0 || n % seg_n) fail(#NAME, "src count %d is not a multiple of seg count %d", n, seg_n); \
    src = unalias(0, dst, n, src, n);                                                        \
    seg = unalias(1, dst, n, seg, seg_n, false);                                             \
    for (int i = 0; i < n; ++i) {                                                            \
      float x = to_f(src[i]), y = to_f(seg[i % seg_n]);                                      \
      dst[i] = from_f<T>(EXPR);                                                              \
    }                                                                                        \
  }
XPILER_BANG_CYCLE(__bang_cycle_add, x + y)
XPILER_BANG_CYCLE(__bang_cycle_sub, x - y)
XPILER_BANG_CYCLE(__bang_cycle_mul, x * y)
XPILER_BANG_CYCLE(__bang_cycle_div, x / y)
XPILER_BANG_CYCLE(__bang_cycle_maxequal, std::max(x, y))
XPILER_BANG_CYCLE(__bang_cycle_minequal, std::min(x, y))
XPILER_BANG_CYCLE(__bang_cycle_gt, float(x > y))
XPILER_BANG_CYCLE(__bang_cycle_ge, float(x >= y))
XPILER_BANG_CYCLE(__bang_cycle_lt, float(x < y))
XPILER_BANG_CYCLE(__bang_cycle_le, float(x <= y))
XPILER_BANG_CYCLE(__bang_cycle_eq, float(x == y))
XPILER_BANG_CYCLE(__bang_cycle_ne, float(x != y))

// Fills.
template <class T>
inline void __bang_write_zero(T* dst, int n) {
  xpiler_bang::check_capacity("__bang_write_zero");
  xpiler_bang::vec_operand("__bang_write_zero", "dst", dst, n);
  std::fill_n(dst, n, T(0));
}
template <class T, class S>
inline void __bang_write_value(T* dst, int n, S value) {
  xpiler_bang::check_capacity("__bang_write_value");
  xpiler_bang::vec_operand("__bang_write_value", "dst", dst, n);
  std::fill_n(dst, n, T(value));
}
inline void __bang_write_value(void* dst, int n, float v) { __bang_write_value((float*)dst, n, v); }

// Conversions: dst and src have different element types; rounding of float->int is
// named by the suffix (_tz toward zero, _rd down, _ru up, _rn/_dn/none to nearest even).
namespace xpiler_bang {
template <class D, class S, class F>
inline void convert(const char* name, D* dst, const S* src, int n, F round) {
  check_capacity(name);
  vec_operand(name, "dst", dst, n);
  vec_operand(name, "src", src, n);
  src = unalias(0, dst, n, src, n, false);
  for (int i = 0; i < n; ++i) {
    float v = round(to_f(src[i]));
    dst[i] = from_f<D>(v);
  }
}
}  // namespace xpiler_bang
inline void __bang_half2float(float* dst, const half* src, int n) {
  xpiler_bang::convert("__bang_half2float", dst, src, n, [](float v) { return v; });
}
inline void __bang_float2half(half* dst, const float* src, int n) {
  xpiler_bang::convert("__bang_float2half", dst, src, n, [](float v) { return v; });
}
inline void __bang_float2half_rn(half* dst, const float* src, int n) { __bang_float2half(dst, src, n); }
#define XPILER_BANG_F2I(NAME, D, S, ROUND) \
  inline void NAME(D* dst, const S* src, int n) { xpiler_bang::convert(#NAME, dst, src, n, ROUND); }
#define XPILER_BANG_ROUND_FAMILY(BASE, D, S)                                                 \
  XPILER_BANG_F2I(BASE, D, S, [](float v) { return std::nearbyint(v); })                     \
  XPILER_BANG_F2I(BASE##_rn, D, S, [](float v) { return std::nearbyint(v); })                \
  XPILER_BANG_F2I(BASE##_tz, D, S, [](float v) { return std::trunc(v); })                    \
  XPILER_BANG_F2I(BASE##_rd, D, S, [](float v) { return std::floor(v); })                    \
  XPILER_BANG_F2I(BASE##_ru, D, S, [](float v) { return std::ceil(v); })                     \
  XPILER_BANG_F2I(BASE##_dn, D, S, [](float v) { return std::nearbyint(v); })
XPILER_BANG_ROUND_FAMILY(__bang_float2int32, int32_t, float)
XPILER_BANG_ROUND_FAMILY(__bang_float2int16, int16_t, float)
XPILER_BANG_ROUND_FAMILY(__bang_float2int8, int8_t, float)
XPILER_BANG_ROUND_FAMILY(__bang_half2int16, int16_t, half)
XPILER_BANG_ROUND_FAMILY(__bang_half2int8, int8_t, half)
XPILER_BANG_F2I(__bang_int82float, float, int8_t, [](float v) { return v; })
XPILER_BANG_F2I(__bang_int162float, float, int16_t, [](float v) { return v; })
XPILER_BANG_F2I(__bang_int322float, float, int32_t, [](float v) { return v; })
XPILER_BANG_F2I(__bang_int82half, half, int8_t, [](float v) { return v; })
XPILER_BANG_F2I(__bang_int162half, half, int16_t, [](float v) { return v; })

// ==========================================================================================
// 10. Reductions, selection and pooling.
// ==========================================================================================
// __bang_max/min/argmax/argmin(dst, src, n): dst[0] = the extreme value, and the 32-bit
// word after it, ((uint32_t*)dst)[1], = index of its first occurrence (mlu-ops reads the
// index that way after __bang_argmax). Old and new names behave the same here.
namespace xpiler_bang {
template <class T, class Better>
inline void extreme(const char* name, T* dst, const T* src, int n, Better better) {
  check_capacity(name);
  vec_operand(name, "src", src, n);
  vec_operand(name, "dst", dst, (8 + sizeof(T) - 1) / sizeof(T));
  if (n <= 0) fail(name, "element count %d must be positive", n);
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (better(to_f(src[i]), to_f(src[best]))) best = i;
  T v = src[best];
  uint32_t idx = uint32_t(best);
  dst[0] = v;
  std::memcpy(reinterpret_cast<char*>(dst) + sizeof(uint32_t) * ((sizeof(T) + 3) / 4), &idx, 4);
}
}  // namespace xpiler_bang
#define XPILER_BANG_EXTREME(NAME, CMP)                                                   \
  template <class T>                                                                     \
  inline void NAME(T* dst, const T* src, int n) {                                        \
    xpiler_bang::extreme(#NAME, dst, src, n, [](float a, float b) { return a CMP b; });  \
  }
XPILER_BANG_EXTREME(__bang_max, >)
XPILER_BANG_EXTREME(__bang_argmax, >)
XPILER_BANG_EXTREME(__bang_min, <)
XPILER_BANG_EXTREME(__bang_argmin, <)

// __bang_reduce_sum(dst, src, n): for each 128-byte segment k of src,
// dst[k * seg] = sum of that segment (seg = 128 / sizeof(T)); other dst elements are
// left unchanged. Evidence: callers read the sums at dst[0], dst[32], ... for float.
template <class T>
inline void __bang_reduce_sum(T* dst, const T* src, int n) {
  using namespace xpiler_bang;
  check_capacity("__bang_reduce_sum");
  vec_operand("__bang_reduce_sum", "src", src, n);
  const int seg = std::max<int>(1, XPILER_BANG_REDUCE_SEGMENT_BYTES / int(sizeof(T)));
  vec_operand("__bang_reduce_sum", "dst", dst, (n + seg - 1) / seg * seg - seg + 1);
  src = unalias(0, dst, n, src, n, false);
  for (int k = 0; k * seg < n; ++k) {
    float s = 0;
    for (int i = k * seg; i < std::min(n, (k + 1) * seg); ++i) s += to_f(src[i]);
    dst[k * seg] = from_f<T>(s);
  }
}
template <class T>
inline int __bang_count(const T* src, int n) {
  xpiler_bang::vec_operand("__bang_count", "src", src, n);
  int c = 0;
  for (int i = 0; i < n; ++i) c += xpiler_bang::to_f(src[i]) != 0;
  return c;
}

// __bang_collect(dst, src, mask, n): the elements of src whose mask is non-zero, packed
// to the front of dst. __bang_select(dst, src, mask, n): the same, but the count goes to
// the first 32-bit word of dst and the elements start XPILER_BANG_SELECT_DATA_OFFSET
// bytes into dst (mlu-ops reads `((uint32_t*)dst)[0]` after __bang_select).
namespace xpiler_bang {
template <class T>
inline uint32_t pack(const char* name, T* out, const T* src, const T* mask, int n) {
  check_capacity(name);
  vec_operand(name, "src", src, n);
  vec_operand(name, "mask", mask, n);
  std::vector<T> kept;
  for (int i = 0; i < n; ++i)
    if (to_f(mask[i]) != 0) kept.push_back(src[i]);
  vec_operand(name, "dst", out, int(kept.size()));
  std::copy(kept.begin(), kept.end(), out);
  return uint32_t(kept.size());
}
}  // namespace xpiler_bang
template <class T>
inline void __bang_collect(T* dst, const T* src, const T* mask, int n) {
  xpiler_bang::pack("__bang_collect", dst, src, mask, n);
}
template <class T>
inline void __bang_select(T* dst, const T* src, const T* mask, int n) {
  T* data = reinterpret_cast<T*>(reinterpret_cast<char*>(dst) + XPILER_BANG_SELECT_DATA_OFFSET);
  uint32_t c = xpiler_bang::pack("__bang_select", data, src, mask, n);
  std::memcpy(dst, &c, 4);
}

// Pooling over src laid out [H][W][C] (C innermost) into dst [Ho][Wo][C] with
// Ho = (H - kh) / stride_y + 1, Wo = (W - kw) / stride_x + 1. Note the argument order:
// stride_x (along W) comes before stride_y (along H). The 7-argument forms use
// stride = kernel size. Reductions accumulate in float.
namespace xpiler_bang {
enum class pool_kind { sum, avg, max, min };
template <class T>
inline void pool(const char* name, pool_kind kind, T* dst, const T* src, int C, int H, int W,
                 int kh, int kw, int sx, int sy) {
  check_capacity(name);
  if (C <= 0 || H <= 0 || W <= 0 || kh <= 0 || kw <= 0 || sx <= 0 || sy <= 0 || kh > H || kw > W)
    fail(name, "invalid shape C=%d H=%d W=%d kernel %dx%d stride_x=%d stride_y=%d", C, H, W, kh, kw, sx, sy);
  const int Ho = (H - kh) / sy + 1, Wo = (W - kw) / sx + 1;
  vec_operand(name, "src", src, (long long)C * H * W);
  vec_operand(name, "dst", dst, (long long)C * Ho * Wo);
  src = unalias(0, dst, size_t(C) * Ho * Wo, src, size_t(C) * H * W, false);
  for (int oh = 0; oh < Ho; ++oh)
    for (int ow = 0; ow < Wo; ++ow)
      for (int c = 0; c < C; ++c) {
        float acc = kind == pool_kind::max ? -INFINITY : kind == pool_kind::min ? INFINITY : 0.0f;
        for (int i = 0; i < kh; ++i)
          for (int j = 0; j < kw; ++j) {
            float v = to_f(src[((size_t)(oh * sy + i) * W + (ow * sx + j)) * C + c]);
            if (kind == pool_kind::max) acc = std::max(acc, v);
            else if (kind == pool_kind::min) acc = std::min(acc, v);
            else acc += v;
          }
        if (kind == pool_kind::avg) acc /= float(kh * kw);
        dst[((size_t)oh * Wo + ow) * C + c] = from_f<T>(acc);
      }
}
}  // namespace xpiler_bang
#define XPILER_BANG_POOL(NAME, KIND)                                                           \
  template <class T>                                                                           \
  inline void NAME(T* dst, const T* src, int channel, int height, int width, int kernel_height, \
                   int kernel_width, int stride_x, int stride_y) {                             \
    xpiler_bang::pool(#NAME, xpiler_bang::pool_kind::KIND, dst, src, channel, height, width,   \
                      kernel_height, kernel_width, stride_x, stride_y);                        \
  }                                                                                            \
  template <class T>                                                                           \
  inline void NAME(T* dst, const T* src, int channel, int height, int width, int kernel_height, \
                   int kernel_width) {                                                         \
    NAME(dst, src, channel, height, width, kernel_height, kernel_width, kernel_width,          \
         kernel_height);                                                                       \
  }
XPILER_BANG_POOL(__bang_sumpool, sum)
XPILER_BANG_POOL(__bang_avgpool, avg)
XPILER_BANG_POOL(__bang_maxpool, max)
XPILER_BANG_POOL(__bang_minpool, min)

// __bang_pad(dst, src, C, H, W, pad_top, pad_bottom, pad_left, pad_right): [H][W][C] into
// a zero-filled [H+top+bottom][W+left+right][C].
template <class T>
inline void __bang_pad(T* dst, const T* src, int C, int H, int W, int pt, int pb, int pl, int pr) {
  using namespace xpiler_bang;
  check_capacity("__bang_pad");
  const int Ho = H + pt + pb, Wo = W + pl + pr;
  vec_operand("__bang_pad", "src", src, (long long)C * H * W);
  vec_operand("__bang_pad", "dst", dst, (long long)C * Ho * Wo);
  src = unalias(0, dst, size_t(C) * Ho * Wo, src, size_t(C) * H * W, false);
  std::fill_n(dst, size_t(C) * Ho * Wo, T(0));
  for (int h = 0; h < H; ++h)
    std::copy_n(src + size_t(h) * W * C, size_t(W) * C, dst + (size_t(h + pt) * Wo + pl) * C);
}

// ==========================================================================================
// 11. Matrix builtins: transpose, matmul, mlp, conv. Products accumulate in double for
//     integer inputs (exact) and in float otherwise; `pos` scales the result by 2^pos.
// ==========================================================================================
template <class T>
inline void __bang_transpose(T* dst, const T* src, int height, int width) {
  using namespace xpiler_bang;
  check_capacity("__bang_transpose");
  vec_operand("__bang_transpose", "src", src, (long long)height * width);
  vec_operand("__bang_transpose", "dst", dst, (long long)height * width);
  src = unalias(0, dst, size_t(height) * width, src, size_t(height) * width, false);
  for (int i = 0; i < height; ++i)
    for (int j = 0; j < width; ++j) dst[size_t(j) * height + i] = src[size_t(i) * width + j];
}

namespace xpiler_bang {
template <class Acc> struct acc_of { using type = float; };
template <> struct acc_of<int8_t> { using type = double; };
template <> struct acc_of<int16_t> { using type = double; };

// dst[M][N] = lhs[M][K] * rhs, rhs element (k, n) at rhs[k*N + n] (row-major) or
// rhs[n*K + k] (column-major), scaled by 2^pos.
template <class D, class L, class R>
inline void matmul(const char* name, D* dst, const L* lhs, const R* rhs, int M, int K, int N, int pos,
                   bool rhs_col_major) {
  check_capacity(name);
  if (M <= 0 || K <= 0 || N <= 0) fail(name, "invalid shape M=%d K=%d N=%d", M, K, N);
  vec_operand(name, "dst", dst, (long long)M * N);
  vec_operand(name, "lhs", lhs, (long long)M * K);
  vec_operand(name, "rhs", rhs, (long long)K * N);
  using A = typename acc_of<L>::type;
  std::vector<A> out(size_t(M) * N, A(0));
  for (int m = 0; m < M; ++m)
    for (int k = 0; k < K; ++k) {
      A a = A(to_f(lhs[size_t(m) * K + k]));
      for (int n = 0; n < N; ++n)
        out[size_t(m) * N + n] +=
            a * A(to_f(rhs_col_major ? rhs[size_t(n) * K + k] : rhs[size_t(k) * N + n]));
    }
  const double scale = std::ldexp(1.0, pos);
  for (size_t i = 0; i < out.size(); ++i) dst[i] = D(float(double(out[i]) * scale));
}
}  // namespace xpiler_bang

template <class D, class L, class R>
inline void __bang_matmul(D* dst, const L* lhs, const R* rhs, int M, int K, int N, int pos = 0) {
  xpiler_bang::matmul("__bang_matmul", dst, lhs, rhs, M, K, N, pos, XPILER_BANG_MATMUL_RHS_LAYOUT == 1);
}

// __bang_mlp(dst, src, filter, height, width[, pos]): a vector times the WRAM filter.
// Convention 0 (default, what the benchmark assumes): filter is [height][width],
// dst[w] = sum_h src[h] * filter[h][w] (width outputs). Convention 1 (2018 header):
// dst[h] = sum_w filter[h][w] * src[w] (height outputs).
template <class D, class S, class F>
inline void __bang_mlp(D* dst, const S* src, const F* filter, int height, int width, int pos = 0) {
  if (XPILER_BANG_MLP_CONVENTION == 0)
    xpiler_bang::matmul("__bang_mlp", dst, src, filter, 1, height, width, pos, false);
  else  // dst[1][height] = src[1][width] x filter^T, i.e. filter read column-major
    xpiler_bang::matmul("__bang_mlp", dst, src, filter, 1, width, height, pos, true);
}

// __bang_conv(dst, src, filter, Ci, H, W, kh, kw, stride_x, stride_y, Co[, pos]):
// src [H][W][Ci], dst [Ho][Wo][Co], Ho = (H-kh)/stride_y + 1, Wo = (W-kw)/stride_x + 1,
// no padding; filter layout per XPILER_BANG_CONV_FILTER_LAYOUT (default OHWI).
template <class D, class S, class F>
inline void __bang_conv(D* dst, const S* src, const F* filter, int ci, int H, int W, int kh, int kw,
                        int sx, int sy, int co, int pos = 0) {
  using namespace xpiler_bang;
  check_capacity("__bang_conv");
  if (ci <= 0 || co <= 0 || kh <= 0 || kw <= 0 || sx <= 0 || sy <= 0 || kh > H || kw > W)
    fail("__bang_conv", "invalid shape Ci=%d H=%d W=%d kernel %dx%d stride %d,%d Co=%d", ci, H, W, kh,
         kw, sx, sy, co);
  const int Ho = (H - kh) / sy + 1, Wo = (W - kw) / sx + 1;
  vec_operand("__bang_conv", "src", src, (long long)H * W * ci);
  vec_operand("__bang_conv", "filter", filter, (long long)co * kh * kw * ci);
  vec_operand("__bang_conv", "dst", dst, (long long)Ho * Wo * co);
  using A = typename acc_of<S>::type;
  std::vector<A> out(size_t(Ho) * Wo * co, A(0));
  for (int oh = 0; oh < Ho; ++oh)
    for (int ow = 0; ow < Wo; ++ow)
      for (int o = 0; o < co; ++o) {
        A acc = 0;
        for (int i = 0; i < kh; ++i)
          for (int j = 0; j < kw; ++j)
            for (int c = 0; c < ci; ++c) {
              size_t fi = XPILER_BANG_CONV_FILTER_LAYOUT == 0
                              ? ((size_t(o) * kh + i) * kw + j) * ci + c
                              : ((size_t(i) * kw + j) * ci + c) * co + o;
              acc += A(to_f(src[(size_t(oh * sy + i) * W + (ow * sx + j)) * ci + c])) * A(to_f(filter[fi]));
            }
        out[(size_t(oh) * Wo + ow) * co + o] = acc;
      }
  const double scale = std::ldexp(1.0, pos);
  for (size_t i = 0; i < out.size(); ++i) dst[i] = D(float(double(out[i]) * scale));
}

// ==========================================================================================
// 12. Host side: the CNRT subset, the launcher, and error reporting.
// ==========================================================================================
typedef enum { CNRT_RET_SUCCESS = 0, CNRT_RET_ERR_INVALID = 632007, CNRT_RET_ERR_NOMEM = 632008 } cnrtRet_t;
typedef cnrtRet_t cnrtRet;
typedef enum {
  CNRT_MEM_TRANS_DIR_HOST2DEV = 0,
  CNRT_MEM_TRANS_DIR_DEV2DEV = 1,
  CNRT_MEM_TRANS_DIR_DEV2HOST = 2,
  CNRT_MEM_TRANS_DIR_HOST2HOST = 3,
  cnrtMemcpyHostToDev = CNRT_MEM_TRANS_DIR_HOST2DEV,
  cnrtMemcpyDevToDev = CNRT_MEM_TRANS_DIR_DEV2DEV,
  cnrtMemcpyDevToHost = CNRT_MEM_TRANS_DIR_DEV2HOST,
  cnrtMemcpyHostToHost = CNRT_MEM_TRANS_DIR_HOST2HOST,
} cnrtMemTransDir_t;
typedef enum {
  CNRT_FUNC_TYPE_BLOCK = 1,
  CNRT_FUNC_TYPE_BLOCK0 = 1,
  CNRT_FUNC_TYPE_UNION1 = 4,
  CNRT_FUNC_TYPE_UNION2 = 8,
  CNRT_FUNC_TYPE_UNION4 = 16,
  CNRT_FUNC_TYPE_UNION8 = 32,
  CNRT_FUNC_TYPE_UNION16 = 64,
  cnrtFuncTypeBlock = CNRT_FUNC_TYPE_BLOCK,
  cnrtFuncTypeUnion1 = CNRT_FUNC_TYPE_UNION1,
  cnrtFuncTypeUnion2 = CNRT_FUNC_TYPE_UNION2,
  cnrtFuncTypeUnion4 = CNRT_FUNC_TYPE_UNION4,
  cnrtFuncTypeUnion8 = CNRT_FUNC_TYPE_UNION8,
} cnrtFunctionType_t;
typedef struct { unsigned int x, y, z; } cnrtDim3_t;
struct xpiler_bang_queue { int id; };
typedef xpiler_bang_queue* cnrtQueue_t;
typedef cnrtQueue_t cnrtQueue;

inline cnrtRet_t cnrtInit(unsigned int = 0) { return CNRT_RET_SUCCESS; }
inline void cnrtDestroy() {}
inline cnrtRet_t cnrtSetDevice(int) { return CNRT_RET_SUCCESS; }
inline cnrtRet_t cnrtGetDeviceCount(unsigned int* n) { *n = 1; return CNRT_RET_SUCCESS; }
inline cnrtRet_t cnrtMalloc(void** p, size_t bytes) {
  auto& r = xpiler_bang::gdram_registry::get();
  // 64-byte aligned, and zero bytes still get a distinct address.
  void* q = std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64);
  if (!q) return CNRT_RET_ERR_NOMEM;
  std::memset(q, xpiler_bang::poison_byte(), bytes);  // uninitialized device memory
  std::lock_guard<std::mutex> lk(r.mu);
  r.blocks[uintptr_t(q)] = bytes;
  *p = q;
  return CNRT_RET_SUCCESS;
}
template <class T> inline cnrtRet_t cnrtMalloc(T** p, size_t bytes) { return cnrtMalloc((void**)p, bytes); }
inline cnrtRet_t cnrtFree(void* p) {
  if (!p) return CNRT_RET_SUCCESS;
  auto& r = xpiler_bang::gdram_registry::get();
  std::lock_guard<std::mutex> lk(r.mu);
  auto it = r.blocks.find(uintptr_t(p));
  if (it == r.blocks.end()) xpiler_bang::fail("cnrtFree", "%p was not returned by cnrtMalloc", p);
  r.blocks.erase(it);
  std::free(p);
  return CNRT_RET_SUCCESS;
}
inline cnrtRet_t cnrtMemcpy(void* dst, const void* src, size_t bytes, cnrtMemTransDir_t dir) {
  using namespace xpiler_bang;
  const bool dev_dst = dir == CNRT_MEM_TRANS_DIR_HOST2DEV || dir == CNRT_MEM_TRANS_DIR_DEV2DEV;
  const bool dev_src = dir == CNRT_MEM_TRANS_DIR_DEV2HOST || dir == CNRT_MEM_TRANS_DIR_DEV2DEV;
  auto check = [&](const void* p, bool dev, const char* role) {
    auto blk = gdram_registry::get().find(p);
    if (dev && !blk.second) fail("cnrtMemcpy", "%s %p is not device memory from cnrtMalloc", role, p);
    if (!dev && blk.second) fail("cnrtMemcpy", "%s %p is device memory, but the direction says host", role, p);
    if (dev && uintptr_t(p) + bytes > blk.first + blk.second)
      fail("cnrtMemcpy", "%s [%p, +%zu) overruns its cnrtMalloc buffer of %zu bytes", role, p, bytes, blk.second);
  };
  check(dst, dev_dst, "destination");
  check(src, dev_src, "source");
  std::memmove(dst, src, bytes);
  return CNRT_RET_SUCCESS;
}
inline cnrtRet_t cnrtMemset(void* p, int v, size_t bytes) { std::memset(p, v, bytes); return CNRT_RET_SUCCESS; }
inline cnrtRet_t cnrtQueueCreate(cnrtQueue_t* q) { *q = new xpiler_bang_queue{0}; return CNRT_RET_SUCCESS; }
inline cnrtRet_t cnrtQueueDestroy(cnrtQueue_t q) { delete q; return CNRT_RET_SUCCESS; }
inline cnrtRet_t cnrtQueueSync(cnrtQueue_t) { return CNRT_RET_SUCCESS; }  // launches are synchronous
inline cnrtRet_t cnrtSyncQueue(cnrtQueue_t) { return CNRT_RET_SUCCESS; }
inline cnrtRet_t cnrtCreateQueue(cnrtQueue_t* q) { return cnrtQueueCreate(q); }
inline cnrtRet_t cnrtDestroyQueue(cnrtQueue_t q) { return cnrtQueueDestroy(q); }
inline cnrtRet_t cnrtSyncDevice() { return CNRT_RET_SUCCESS; }
inline const char* cnrtGetErrorStr(cnrtRet_t r) { return r == CNRT_RET_SUCCESS ? "CNRT_RET_SUCCESS" : "CNRT error"; }

namespace xpiler_bang {

// Registers host memory as GDRAM for kernels called with host pointers (tests).
inline void register_gdram(const void* p, size_t bytes) {
  auto& r = gdram_registry::get();
  std::lock_guard<std::mutex> lk(r.mu);
  r.blocks[uintptr_t(p)] = bytes;
}
inline void unregister_gdram(const void* p) {
  auto& r = gdram_registry::get();
  std::lock_guard<std::mutex> lk(r.mu);
  r.blocks.erase(uintptr_t(p));
}

// Launch geometry. UNIONn: clusters of XPILER_BANG_CORES_PER_CLUSTER cores, taskDim a
// multiple of n clusters' cores. BLOCK: every task is a lone core (coreDim 1, its own
// cluster and SRAM).
struct geometry {
  int task_dim, cores, clusters;
};
inline geometry geometry_of(cnrtDim3_t dim, cnrtFunctionType_t type) {
  long long td = (long long)dim.x * dim.y * dim.z;
  if (td <= 0) fail("xpiler_launch", "empty task dimension {%u,%u,%u}", dim.x, dim.y, dim.z);
  if (type == CNRT_FUNC_TYPE_BLOCK) return {int(td), 1, int(td)};
  int unions;
  switch (type) {
    case CNRT_FUNC_TYPE_UNION1: unions = 1; break;
    case CNRT_FUNC_TYPE_UNION2: unions = 2; break;
    case CNRT_FUNC_TYPE_UNION4: unions = 4; break;
    case CNRT_FUNC_TYPE_UNION8: unions = 8; break;
    case CNRT_FUNC_TYPE_UNION16: unions = 16; break;
    default: fail("xpiler_launch", "unknown cnrtFunctionType_t %d", int(type));
  }
  const int cpc = XPILER_BANG_CORES_PER_CLUSTER;
  if (td % (cpc * unions))
    fail("xpiler_launch", "UNION%d needs taskDim to be a multiple of %d (clusters x %d cores), got %lld",
         unions, cpc * unions, cpc, td);
  return {int(td), cpc, int(td / cpc)};
}

struct cluster_thread_arg {
  launch_state* launch;
  int cluster;
  geometry geo;
  cnrtDim3_t dim;
  const std::function<void()>* kernel;
  const char* name;
};

inline uintptr_t stack_pointer() {
#if defined(__x86_64__)
  uintptr_t sp;
  asm volatile("mov %%rsp, %0" : "=r"(sp));
  return sp;
#else
  return uintptr_t(__builtin_frame_address(0)) - 256;
#endif
}

constexpr size_t task_stack_bytes() {
  return size_t(XPILER_NRAM_BYTES) + size_t(XPILER_WRAM_BYTES) + XPILER_BANG_FRAME_SLACK +
         XPILER_BANG_STACK_EXTRA;
}

// One task (a fiber body): its on-chip memory is the fiber stack below this frame. The
// scheduler's frames above are a few hundred bytes, so [sp - size + 16K, sp + 16K) lies
// inside the stack mapping and covers everything the kernel can own.
__attribute__((noinline)) inline void run_task(task_state& t, const std::function<void()>& kernel) {
  const uintptr_t sp = stack_pointer();
  t.stack_hi = sp + 16 * 1024;
  t.stack_lo = sp - task_stack_bytes() + 16 * 1024;
  set_task_globals(&t);
  kernel();
}

inline void task_entry(void* ctx, int i) {
  auto* c = static_cast<cluster_run*>(ctx);
  run_task(c->tasks[size_t(i)], *c->kernel);
}
inline void task_resume(void* ctx, int i) {  // the scheduler (re)starts core i
  set_task_globals(&static_cast<cluster_run*>(ctx)->tasks[size_t(i)]);
}

// Calls the kernel with the stack pointer recorded just before the call: the kernel's
// return address goes right below it, which bounds the kernel's on-chip arrays. Everything
// below is future on-chip memory and is poisoned here (0xFF bytes read as NaN for float
// and half, -1 for integers), so reads of never-written NRAM show up in results. The
// poison loop is volatile so that it cannot become a memset call whose frame it would hit.
template <class K, class Tup>
__attribute__((noinline)) void invoke_fenced(K k, Tup& args) {
  const uintptr_t sp = stack_pointer();
  g_task->fence = sp - sizeof(void*);
#if XPILER_BANG_POISON_ONCHIP
  const size_t want = size_t(XPILER_NRAM_BYTES) + size_t(XPILER_WRAM_BYTES) + XPILER_BANG_FRAME_SLACK;
  uintptr_t hi = (sp - 16) & ~uintptr_t(7), lo = std::max(g_task->stack_lo, hi - std::min(hi, uintptr_t(want)));
  const uint64_t fill = 0x0101010101010101ull * uint64_t(poison_byte());
  for (volatile uint64_t* p = reinterpret_cast<volatile uint64_t*>(lo); uintptr_t(p) < hi; ++p) *p = fill;
#endif
  std::apply(k, args);
  g_task->fence = 0;
}

inline void* cluster_main(void* p) {
  auto* a = static_cast<cluster_thread_arg*>(p);
  static thread_local char altstack[1 << 16];  // signal stack: the fault handler reports
  stack_t ss{};                                // task-stack overflows of this thread
  ss.ss_sp = altstack;
  ss.ss_size = sizeof altstack;
  sigaltstack(&ss, nullptr);
  clusterDim = a->geo.clusters;
  coreDim = a->geo.cores;
  taskDim = a->geo.task_dim;
  taskDimX = int(a->dim.x); taskDimY = int(a->dim.y); taskDimZ = int(a->dim.z);
  cluster_run run;
  run.tasks.resize(size_t(a->geo.cores));
  for (int c = 0; c < a->geo.cores; ++c) {
    task_state& t = run.tasks[size_t(c)];
    t.cluster_id = a->cluster;
    t.core_id = c;
    t.task_id = a->cluster * a->geo.cores + c;
    t.task_x = t.task_id % int(a->dim.x);
    t.task_y = t.task_id / int(a->dim.x) % int(a->dim.y);
    t.task_z = t.task_id / int(a->dim.x * a->dim.y);
    t.kernel = a->name;
  }
  run.kernel = a->kernel;
  g_cluster = &run;
  a->launch->wait_turn(a->cluster);
  try {
    run.sched.run(a->geo.cores, task_entry, &run, task_resume, "BANG cluster", task_stack_bytes());
  } catch (const xpiler::fiber::Deadlock& e) {
    g_task = nullptr;
    fail(run.group.name, "deadlock in cluster %d: %s", a->cluster, e.what());
  }
  g_cluster = nullptr;
  g_task = nullptr;
  a->launch->cluster_finished(a->cluster);
  return nullptr;
}

inline void install_fault_handler();

inline void launch(const std::function<void()>& kernel, cnrtDim3_t dim, cnrtFunctionType_t type,
                   const char* name) {
  install_fault_handler();
  geometry geo = geometry_of(dim, type);
  launch_state ls;
  ls.nclusters = geo.clusters;
  ls.done.assign(size_t(geo.clusters), 0);
  g_launch = &ls;
  std::vector<cluster_thread_arg> args(size_t(geo.clusters));
  std::vector<pthread_t> threads(size_t(geo.clusters));
  for (int c = 0; c < geo.clusters; ++c) {
    args[c] = {&ls, c, geo, dim, &kernel, name};
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 8u << 20);  // holds the SRAM (thread-local) copies too
    if (pthread_create(&threads[c], &attr, cluster_main, &args[c]))
      fail("xpiler_launch", "cannot start the thread of cluster %d", c);
    pthread_attr_destroy(&attr);
  }
  for (auto& t : threads) pthread_join(t, nullptr);
  g_launch = nullptr;
}

// The launcher returned by xpiler_launch: operator()(args...) runs every task.
template <class... P>
struct launcher {
  void (*kernel)(P...);
  cnrtDim3_t dim;
  cnrtFunctionType_t type;
  const char* name;
  template <class... A>
  void operator()(A&&... a) const {
    std::tuple<P...> args(static_cast<P>(std::forward<A>(a))...);
    auto k = kernel;
    std::function<void()> body = [k, &args] {
      std::tuple<P...> copy = args;  // kernels may modify their parameters
      invoke_fenced(k, copy);
    };
    launch(body, dim, type, name);
  }
};

}  // namespace xpiler_bang

template <class... P>
inline xpiler_bang::launcher<P...> xpiler_launch(void (*kernel)(P...), cnrtDim3_t dim,
                                                 cnrtFunctionType_t type, cnrtQueue_t = nullptr) {
  return {kernel, dim, type, "kernel"};
}

// ------------------------------------------------------------------------------------------
// Error reporting and fault handling.
// ------------------------------------------------------------------------------------------
namespace xpiler_bang {

inline void describe_task(char* buf, size_t n) {
  if (g_task)
    std::snprintf(buf, n, "task %d (clusterId %d, coreId %d)", g_task->task_id, g_task->cluster_id,
                  g_task->core_id);
  else
    std::snprintf(buf, n, "host code");
}

[[noreturn]] inline void fail(const char* builtin, const char* fmt, ...) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lk(mu);
  char where[96], msg[1024];
  describe_task(where, sizeof where);
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "xpiler bang emulator error: %s in %s: %s\n", builtin, where, msg);
  std::fflush(stderr);
  std::_Exit(3);
}

// A fault inside a task's stack guard page means the kernel's on-chip arrays outgrew the
// task stack (far beyond capacity); say so instead of a bare "Segmentation fault".
inline void fault_handler(int sig, siginfo_t* si, void*) {
  char where[96], msg[400];
  describe_task(where, sizeof where);
  uintptr_t a = uintptr_t(si->si_addr);
  const char* why = "invalid memory access";
  if (g_task && a < g_task->stack_lo && a + (1u << 16) >= g_task->stack_lo)
    why = "the task's on-chip arrays overflowed its stack (far beyond NRAM+WRAM capacity)";
  else if (g_task && a >= g_task->stack_lo && a < g_task->stack_hi)
    why = "access inside on-chip memory failed";
  int n = std::snprintf(msg, sizeof msg, "xpiler bang emulator error: signal %d in %s at address %p: %s\n",
                        sig, where, si->si_addr, why);
  if (n > 0) { ssize_t w = write(2, msg, size_t(n)); (void)w; }
  _exit(3);
}
inline void install_fault_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    static char altstack[1 << 16];
    stack_t ss{};
    ss.ss_sp = altstack;
    ss.ss_size = sizeof altstack;
    sigaltstack(&ss, nullptr);
    struct sigaction sa{};
    sa.sa_sigaction = fault_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
  });
}

}  // namespace xpiler_bang

#if XPILER_BANG_CANARY_REPORT
// With -fstack-protector*, g++ puts a canary between a kernel's arrays and its return
// address and calls this when it finds it changed: a write ran past the end of the
// kernel's top-most on-chip array (e.g. the benchmark's sub_1_3_224_224).
extern "C" __attribute__((weak, noreturn)) void __stack_chk_fail(void) {
  xpiler_bang::fail("kernel return", "stack canary destroyed: a write ran past the end of an "
                    "on-chip (__nram__/__wram__) array of this kernel");
}
#endif

// ==========================================================================================
// 13. Kernels named like libm functions. `extern "C" __mlu_global__ void sin(float*, float*)`
//     clashes with ::sin from <math.h>; the names below are macros for xpiler_mlu_<name>,
//     which has C++ overloads for scalar math, so both the kernel and scalar calls work.
//     Every standard header this runtime needs was included above, before the macros.
// ==========================================================================================
#ifndef XPILER_BANG_NO_LIBM_SHADOW
#define XPILER_BANG_SHADOW(NAME)                                         \
  inline float xpiler_mlu_##NAME(float x) { return std::NAME(x); }        \
  inline double xpiler_mlu_##NAME(double x) { return std::NAME(x); }      \
  inline double xpiler_mlu_##NAME(int x) { return std::NAME(double(x)); } \
  inline float xpiler_mlu_##NAME(half x) { return std::NAME(float(x)); }
XPILER_BANG_SHADOW(sin)
XPILER_BANG_SHADOW(cos)
XPILER_BANG_SHADOW(tan)
XPILER_BANG_SHADOW(exp)
XPILER_BANG_SHADOW(log)
XPILER_BANG_SHADOW(sqrt)
XPILER_BANG_SHADOW(tanh)
XPILER_BANG_SHADOW(erf)
XPILER_BANG_SHADOW(floor)
XPILER_BANG_SHADOW(ceil)
XPILER_BANG_SHADOW(round)
#undef XPILER_BANG_SHADOW
// `std::sin(x)` written after this point becomes std::xpiler_mlu_sin: make that exist.
namespace std {
using ::xpiler_mlu_sin; using ::xpiler_mlu_cos; using ::xpiler_mlu_tan; using ::xpiler_mlu_exp;
using ::xpiler_mlu_log; using ::xpiler_mlu_sqrt; using ::xpiler_mlu_tanh; using ::xpiler_mlu_erf;
using ::xpiler_mlu_floor; using ::xpiler_mlu_ceil; using ::xpiler_mlu_round;
}  // namespace std
#define sin xpiler_mlu_sin
#define cos xpiler_mlu_cos
#define tan xpiler_mlu_tan
#define exp xpiler_mlu_exp
#define log xpiler_mlu_log
#define sqrt xpiler_mlu_sqrt
#define tanh xpiler_mlu_tanh
#define erf xpiler_mlu_erf
#define floor xpiler_mlu_floor
#define ceil xpiler_mlu_ceil
#define round xpiler_mlu_round
#endif

#endif  // XPILER_BANG_EMU_H
