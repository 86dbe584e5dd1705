// gpu_wmma.h — nvcuda::wmma for the CUDA CPU emulator (included by cuda_emu.h).
//
// Fragments hold what one lane holds on real hardware (sm_80 and later): num_elements and
// the meaning of x[e] follow the lane-ownership table below, so code that touches
// frag.x[i] directly (bias adds, activation on accumulators) behaves as on the GPU.
// load/store/mma are warp-collective rendezvous: each lane deposits a pointer to its
// fragment; the last lane to arrive performs the whole 16x16 (or 32x8, 8x32) operation
// and reads/writes every lane's fragment through those pointers. All 32 lanes of the warp
// must take part (as the hardware requires); a missing lane is reported as a deadlock.
#pragma once

namespace xpiler {
namespace gpu {
namespace wmma_map {

// ---------------------------------------------------------------------------------
// THE lane-ownership table (the one place to correct if hardware disagrees).
//
// Element e of lane `lane` of a fragment is the matrix element (row, col) with
//   row = sum of row_w[b] over the set bits b of (lane | e << 5)
//   col = sum of col_w[b] likewise,
// i.e. weights for bits: lane bit 0, 1 (lane % 4), lane bit 2, 3, 4 (lane / 4), then
// element-index bits 0, 1, 2, 3. Coordinates are logical: A is MxK, B is KxN, the
// accumulator MxN, independent of row_major/col_major (the memory layout only changes
// where load/store read the element).
//
// Source: measured on an NVIDIA H200 (sm_90, CUDA 12) with bench/wmma_layout_probe.cu;
// the raw measurement is tests/data/wmma_layout_sm90.txt and the tests check this table
// against it. The measured layouts are those of PTX mma.m16n8k16 (PTX ISA, "Matrix
// Fragments for mma.m16n8k16 with floating point type": groupID = lane>>2,
// threadID_in_group = lane%4; a_i row = groupID (+8), col = 2*tid + (i&1) (+8); c_i
// likewise) applied once or twice. A and B fragments have 16 elements per lane although
// they hold only 8 (or 4) distinct values: the rest repeat (zero weight on that bit).
// For repeated elements, mma_sync uses the lowest (lane, e) holding the element.
// ---------------------------------------------------------------------------------
enum Use { kA = 0, kB = 1, kC = 2 };
struct Entry {
  int use, m, n, k, num_elements;
  signed char row_w[9], col_w[9];
};
//                                  lane bits: 0  1  2  3  4 | e bits: 0  1  2  3
constexpr Entry kTable[] = {
    {kA, 16, 16, 16, 16, /*row*/ {0, 0, 1, 2, 4, 0, 8, 0, 0}, /*col*/ {2, 4, 0, 0, 0, 1, 0, 8, 0}},
    {kB, 16, 16, 16, 16, /*row*/ {2, 4, 0, 0, 0, 1, 8, 0, 0}, /*col*/ {0, 0, 1, 2, 4, 0, 0, 8, 0}},
    {kC, 16, 16, 16, 8,  /*row*/ {0, 0, 1, 2, 4, 0, 8, 0, 0}, /*col*/ {2, 4, 0, 0, 0, 1, 0, 8, 0}},
    {kA, 32, 8, 16, 16,  /*row*/ {0, 0, 1, 2, 4, 0, 8, 0, 16}, /*col*/ {2, 4, 0, 0, 0, 1, 0, 8, 0}},
    {kB, 32, 8, 16, 16,  /*row*/ {2, 4, 0, 0, 0, 1, 8, 0, 0}, /*col*/ {0, 0, 1, 2, 4, 0, 0, 0, 0}},
    {kC, 32, 8, 16, 8,   /*row*/ {0, 0, 1, 2, 4, 0, 8, 16, 0}, /*col*/ {2, 4, 0, 0, 0, 1, 0, 0, 0}},
    {kA, 8, 32, 16, 16,  /*row*/ {0, 0, 1, 2, 4, 0, 0, 0, 0}, /*col*/ {2, 4, 0, 0, 0, 1, 8, 0, 0}},
    {kB, 8, 32, 16, 16,  /*row*/ {2, 4, 0, 0, 0, 1, 0, 8, 0}, /*col*/ {0, 0, 1, 2, 4, 0, 8, 0, 16}},
    {kC, 8, 32, 16, 8,   /*row*/ {2, 4, 0, 0, 0, 1, 0, 0, 0}, /*col*/ {0, 0, 1, 2, 4, 0, 8, 16, 0}},
};

constexpr int find(int use, int m, int n, int k) {
  for (int i = 0; i < (int)(sizeof(kTable) / sizeof(kTable[0])); ++i)
    if (kTable[i].use == use && kTable[i].m == m && kTable[i].n == n && kTable[i].k == k) return i;
  return -1;
}
inline void coord(const Entry &t, int lane, int e, int &row, int &col) {
  unsigned bits = (unsigned)lane | ((unsigned)e << 5);
  row = col = 0;
  for (int b = 0; b < 9; ++b)
    if (bits >> b & 1) {
      row += t.row_w[b];
      col += t.col_w[b];
    }
}
// rows x cols of the fragment's matrix
constexpr int rows(int use, int m, int /*n*/, int k) { return use == kB ? k : m; }
constexpr int cols(int use, int /*m*/, int n, int k) { return use == kA ? k : n; }

}  // namespace wmma_map
}  // namespace gpu
}  // namespace xpiler

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision

namespace detail {
template <class U> struct use_of;
template <> struct use_of<matrix_a> { static constexpr int value = xpiler::gpu::wmma_map::kA; };
template <> struct use_of<matrix_b> { static constexpr int value = xpiler::gpu::wmma_map::kB; };
template <> struct use_of<accumulator> { static constexpr int value = xpiler::gpu::wmma_map::kC; };
template <class T> struct supported : std::false_type {};
template <> struct supported<__half> : std::true_type {};
template <> struct supported<__nv_bfloat16> : std::true_type {};  // same mma.m16n8k16 layout
template <> struct supported<float> : std::true_type {};
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
  static constexpr int kIndex = xpiler::gpu::wmma_map::find(detail::use_of<Use>::value, M, N, K);
  static_assert(kIndex >= 0, "xpiler emulator: WMMA shape not supported (m16n16k16, m32n8k16, m8n32k16)");
  static_assert(detail::supported<T>::value,
                "xpiler emulator: WMMA element type not supported (half, bfloat16, float accumulators)");
  static_assert(detail::use_of<Use>::value == xpiler::gpu::wmma_map::kC ||
                    std::is_same<T, __half>::value || std::is_same<T, __nv_bfloat16>::value,
                "xpiler emulator: matrix_a/matrix_b fragments must be half or bfloat16");

 public:
  using element_type = T;
  using storage_element_type = T;
  using use = Use;
  using layout = Layout;
  static constexpr int m = M, n = N, k = K;
  static constexpr int num_elements = xpiler::gpu::wmma_map::kTable[kIndex].num_elements;
  static const xpiler::gpu::wmma_map::Entry &map() { return xpiler::gpu::wmma_map::kTable[kIndex]; }
  T x[num_elements];
};

template <class Use, int M, int N, int K, class T, class L, class V>
inline void fill_fragment(fragment<Use, M, N, K, T, L> &f, const V &v) {
  for (int e = 0; e < f.num_elements; ++e) f.x[e] = T(v);  // per lane, no communication
}

namespace detail {
using xpiler::gpu::LaneSlot;
using xpiler::gpu::WarpState;

inline void check_uniform(const WarpState &w, const char *what) {
  const LaneSlot &f = w.lane[w.first_lane];
  for (int l = 0; l < xpiler::gpu::kWarpSize; ++l)
    if ((w.arrived >> l & 1) && (w.lane[l].ptr != f.ptr || w.lane[l].ldm != f.ldm || w.lane[l].arg != f.arg))
      xpiler::gpu::fatal("%s: lanes of warp %d pass different arguments (lane %d: %p ldm %u, lane %d: %p ldm %u); "
                         "they must be warp-uniform",
                         what, w.index, w.first_lane, f.ptr, f.ldm, l, w.lane[l].ptr, w.lane[l].ldm);
}
// element (r, c) of a matrix stored with leading dimension ldm
inline size_t offset(int r, int c, unsigned ldm, bool col_major) {
  return col_major ? (size_t)r + (size_t)c * ldm : (size_t)r * ldm + (size_t)c;
}

template <class Frag, class T>
void load_complete(xpiler::fiber::Group *g) {
  WarpState &w = *reinterpret_cast<WarpState *>(g);
  check_uniform(w, "wmma::load_matrix_sync");
  const T *p = (const T *)w.lane[w.first_lane].ptr;
  unsigned ldm = w.lane[w.first_lane].ldm;
  bool colm = w.lane[w.first_lane].arg == 1;
  const auto &map = Frag::map();
  for (int l = 0; l < 32; ++l) {
    if (!(w.arrived >> l & 1)) continue;
    Frag *f = (Frag *)w.lane[l].out;
    for (int e = 0; e < Frag::num_elements; ++e) {
      int r, c;
      xpiler::gpu::wmma_map::coord(map, l, e, r, c);
      f->x[e] = typename Frag::element_type(p[offset(r, c, ldm, colm)]);
    }
  }
}
template <class Frag, class T>
void store_complete(xpiler::fiber::Group *g) {
  WarpState &w = *reinterpret_cast<WarpState *>(g);
  check_uniform(w, "wmma::store_matrix_sync");
  T *p = (T *)w.lane[w.first_lane].ptr;
  unsigned ldm = w.lane[w.first_lane].ldm;
  bool colm = w.lane[w.first_lane].arg == 1;
  const auto &map = Frag::map();
  for (int l = 0; l < 32; ++l) {
    if (!(w.arrived >> l & 1)) continue;
    const Frag *f = (const Frag *)w.lane[l].out;
    for (int e = 0; e < Frag::num_elements; ++e) {
      int r, c;
      xpiler::gpu::wmma_map::coord(map, l, e, r, c);
      p[offset(r, c, ldm, colm)] = T(f->x[e]);
    }
  }
}
// Assemble the full matrix held by the warp's fragments (first holder of a repeated
// element wins).
template <class Frag>
void gather(const WarpState &w, int which, float *mat) {
  constexpr int R = xpiler::gpu::wmma_map::rows(detail::use_of<typename Frag::use>::value, Frag::m, Frag::n, Frag::k);
  constexpr int C = xpiler::gpu::wmma_map::cols(detail::use_of<typename Frag::use>::value, Frag::m, Frag::n, Frag::k);
  bool seen[R * C] = {};
  for (int i = 0; i < R * C; ++i) mat[i] = 0.0f;
  const auto &map = Frag::map();
  for (int l = 0; l < 32; ++l) {
    if (!(w.arrived >> l & 1)) continue;
    const Frag *f = (const Frag *)w.lane[l].aux[which];
    for (int e = 0; e < Frag::num_elements; ++e) {
      int r, c;
      xpiler::gpu::wmma_map::coord(map, l, e, r, c);
      if (!seen[r * C + c]) {
        seen[r * C + c] = true;
        mat[r * C + c] = (float)f->x[e];
      }
    }
  }
}
template <class FD, class FA, class FB, class FC>
void mma_complete(xpiler::fiber::Group *g) {
  WarpState &w = *reinterpret_cast<WarpState *>(g);
  constexpr int M = FA::m, N = FA::n, K = FA::k;
  float A[M * K], B[K * N], C[M * N];
  gather<FA>(w, 0, A);
  gather<FB>(w, 1, B);
  gather<FC>(w, 2, C);  // gathered before any d is written: d may alias c
  float D[M * N];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float acc = C[i * N + j];
      for (int kk = 0; kk < K; ++kk) acc += A[i * K + kk] * B[kk * N + j];
      D[i * N + j] = acc;
    }
  const auto &map = FD::map();
  for (int l = 0; l < 32; ++l) {
    if (!(w.arrived >> l & 1)) continue;
    FD *d = (FD *)w.lane[l].out;
    for (int e = 0; e < FD::num_elements; ++e) {
      int r, c;
      xpiler::gpu::wmma_map::coord(map, l, e, r, c);
      d->x[e] = typename FD::element_type(D[r * N + c]);
    }
  }
}
// All 32 lanes must arrive (mask = full warp).
inline void arrive(int op, void (*cb)(xpiler::fiber::Group *), void *out, const void *ptr, unsigned ldm,
                   int layout, const void *a = nullptr, const void *b = nullptr, const void *c = nullptr) {
  int t = xpiler::fiber::current(), lane = t % 32;
  WarpState &w = xpiler::gpu::block().warps[t / 32];
  LaneSlot &s = w.lane[lane];
  s.out = out;
  s.ptr = ptr;
  s.ldm = ldm;
  s.arg = layout;
  s.aux[0] = a;
  s.aux[1] = b;
  s.aux[2] = c;
  xpiler::gpu::warp_arrive(w, lane, op, cb, 0xffffffffull);
}
template <class L> constexpr int layout_code() { return std::is_same<L, col_major>::value ? 1 : 0; }
}  // namespace detail

// matrix_a / matrix_b: the layout is part of the fragment type.
template <class Use, int M, int N, int K, class T, class L, class P>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L> &f, const P *p, unsigned ldm) {
  static_assert(!std::is_same<Use, accumulator>::value, "accumulator loads need a layout_t argument");
  detail::arrive(xpiler::gpu::kOpWmmaLoad, &detail::load_complete<fragment<Use, M, N, K, T, L>, P>, &f, p,
                 ldm, detail::layout_code<L>());
}
// accumulator: the memory layout is an argument.
template <int M, int N, int K, class T, class P>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T> &f, const P *p, unsigned ldm, layout_t l) {
  detail::arrive(xpiler::gpu::kOpWmmaLoad, &detail::load_complete<fragment<accumulator, M, N, K, T>, P>, &f,
                 p, ldm, l == mem_col_major ? 1 : 0);
}
template <int M, int N, int K, class T, class P>
inline void store_matrix_sync(P *p, const fragment<accumulator, M, N, K, T> &f, unsigned ldm, layout_t l) {
  detail::arrive(xpiler::gpu::kOpWmmaStore, &detail::store_complete<fragment<accumulator, M, N, K, T>, P>,
                 (void *)&f, p, ldm, l == mem_col_major ? 1 : 0);
}
template <int M, int N, int K, class TD, class TA, class LA, class TB, class LB, class TC>
inline void mma_sync(fragment<accumulator, M, N, K, TD> &d, const fragment<matrix_a, M, N, K, TA, LA> &a,
                     const fragment<matrix_b, M, N, K, TB, LB> &b, const fragment<accumulator, M, N, K, TC> &c,
                     bool /*satf*/ = false) {
  using FD = fragment<accumulator, M, N, K, TD>;
  using FA = fragment<matrix_a, M, N, K, TA, LA>;
  using FB = fragment<matrix_b, M, N, K, TB, LB>;
  using FC = fragment<accumulator, M, N, K, TC>;
  detail::arrive(xpiler::gpu::kOpWmmaMma, &detail::mma_complete<FD, FA, FB, FC>, &d, nullptr, 0, 0, &a, &b, &c);
}

}  // namespace wmma
}  // namespace nvcuda

// Benchmark sources write `wmma::fragment<...>` without `using namespace nvcuda;`.
// (If a source also says `using namespace nvcuda;`, both names denote the same namespace,
// so lookup is not ambiguous.)
namespace wmma = nvcuda::wmma;
