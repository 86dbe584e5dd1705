// C[m][n] = A[m][k] * B[k][n], row-major float: the CPU version of tiled_gemm.cu, with
// the same C API (note the argument order m, k, n of the host entry).
extern "C" void tiled_gemm_kernel(float *A, float *B, float *C, int m, int k, int n) {
  for (int i = 0; i < m; i++) {
    for (int j = 0; j < n; j++) {
      float acc = 0.0f;
      for (int p = 0; p < k; p++) {
        acc += A[i * k + p] * B[p * n + j];
      }
      C[i * n + j] = acc;
    }
  }
}
