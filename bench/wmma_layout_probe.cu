// Prints, for every WMMA fragment kind the CPU emulator supports, which matrix element each
// lane's x[e] holds after load_matrix_sync on the real GPU. Used to validate (or correct)
// the lane-ownership table in xpiler/verify/runtime/gpu_wmma.h:
//   nvcc -arch=sm_80 bench/wmma_layout_probe.cu -o probe && ./probe > layout.txt
// Output lines: "<frag> <M> <N> <K> <layout> <lane> <e> <row> <col>" where (row, col) are
// logical matrix coordinates (A: MxK, B: KxN, C: MxN). Values are encoded as row*cols+col,
// exact in half precision below 2048.
#include <cstdio>
#include <mma.h>
#include <cuda_fp16.h>
using namespace nvcuda;

template <typename Frag, typename T>
__global__ void dump(const T *src, unsigned ld, float *out, int nel_out) {
  Frag f;
  wmma::load_matrix_sync(f, src, ld);
  int lane = threadIdx.x;
  for (int e = 0; e < f.num_elements; ++e) out[lane * 64 + e] = (float)f.x[e];
  if (lane == 0) out[32 * 64] = f.num_elements;
}
template <typename Frag, typename T>
__global__ void dump_acc(const T *src, unsigned ld, float *out, wmma::layout_t l) {
  Frag f;
  wmma::load_matrix_sync(f, src, ld, l);
  int lane = threadIdx.x;
  for (int e = 0; e < f.num_elements; ++e) out[lane * 64 + e] = (float)f.x[e];
  if (lane == 0) out[32 * 64] = f.num_elements;
}

template <typename T>
static T *upload(int rows, int cols, bool colmajor) {
  T h[4096];
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      h[colmajor ? r + c * rows : r * cols + c] = (T)(float)(r * cols + c);
  T *d;
  cudaMalloc(&d, sizeof(T) * rows * cols);
  cudaMemcpy(d, h, sizeof(T) * rows * cols, cudaMemcpyHostToDevice);
  return d;
}
static float *g_out;
static void report(const char *frag, int M, int N, int K, const char *lay, int cols) {
  float h[32 * 64 + 1];
  cudaDeviceSynchronize();
  cudaMemcpy(h, g_out, sizeof h, cudaMemcpyDeviceToHost);
  int ne = (int)h[32 * 64];
  for (int lane = 0; lane < 32; ++lane)
    for (int e = 0; e < ne; ++e) {
      int v = (int)h[lane * 64 + e];
      printf("%s %d %d %d %s %d %d %d %d\n", frag, M, N, K, lay, lane, e, v / cols, v % cols);
    }
}

template <int M, int N, int K>
static void shape() {
  using namespace wmma;
  dump<fragment<matrix_a, M, N, K, half, row_major>, half><<<1, 32>>>(upload<half>(M, K, false), K, g_out, 0);
  report("matrix_a", M, N, K, "row_major", K);
  dump<fragment<matrix_a, M, N, K, half, col_major>, half><<<1, 32>>>(upload<half>(M, K, true), M, g_out, 0);
  report("matrix_a", M, N, K, "col_major", K);
  dump<fragment<matrix_b, M, N, K, half, row_major>, half><<<1, 32>>>(upload<half>(K, N, false), N, g_out, 0);
  report("matrix_b", M, N, K, "row_major", N);
  dump<fragment<matrix_b, M, N, K, half, col_major>, half><<<1, 32>>>(upload<half>(K, N, true), K, g_out, 0);
  report("matrix_b", M, N, K, "col_major", N);
  dump_acc<fragment<accumulator, M, N, K, float>, float><<<1, 32>>>(upload<float>(M, N, false), N, g_out, mem_row_major);
  report("acc_float", M, N, K, "mem_row_major", N);
  dump_acc<fragment<accumulator, M, N, K, float>, float><<<1, 32>>>(upload<float>(M, N, true), M, g_out, mem_col_major);
  report("acc_float", M, N, K, "mem_col_major", N);
  dump_acc<fragment<accumulator, M, N, K, half>, half><<<1, 32>>>(upload<half>(M, N, false), N, g_out, mem_row_major);
  report("acc_half", M, N, K, "mem_row_major", N);
}

int main() {
  cudaMalloc(&g_out, sizeof(float) * (32 * 64 + 1));
  shape<16, 16, 16>();
  shape<32, 8, 16>();
  shape<8, 32, 16>();
  cudaError_t e = cudaGetLastError();
  fprintf(stderr, "status: %s\n", cudaGetErrorString(e));
  return e != cudaSuccess;
}
