// C[M][N] = A[M][K] * B[K][N], row-major float. Each 16x16 thread block computes one
// 16x16 tile of C, staging 16x16 tiles of A and B through shared memory. Loads outside
// the matrices are zero-filled, so any M, N, K work.
#define TILE 16

__global__ void __launch_bounds__(256)
    tiled_gemm(const float *__restrict__ A, const float *__restrict__ B,
               float *__restrict__ C, int M, int N, int K) {
  __shared__ float A_tile[TILE][TILE];
  __shared__ float B_tile[TILE][TILE];

  int row = blockIdx.y * TILE + threadIdx.y;
  int col = blockIdx.x * TILE + threadIdx.x;
  float acc = 0.0f;

  for (int k0 = 0; k0 < K; k0 += TILE) {
    int a_col = k0 + threadIdx.x;
    int b_row = k0 + threadIdx.y;
    A_tile[threadIdx.y][threadIdx.x] =
        (row < M && a_col < K) ? A[row * K + a_col] : 0.0f;
    B_tile[threadIdx.y][threadIdx.x] =
        (b_row < K && col < N) ? B[b_row * N + col] : 0.0f;
    // The whole tile must be loaded before any thread reads it ...
    __syncthreads();

    for (int kk = 0; kk < TILE; ++kk) {
      acc += A_tile[threadIdx.y][kk] * B_tile[kk][threadIdx.x];
    }
    // ... and read by every thread before the next iteration overwrites it.
    __syncthreads();
  }

  if (row < M && col < N) {
    C[row * N + col] = acc;
  }
}

extern "C" void tiled_gemm_kernel(float *A, float *B, float *C, int m, int k,
                                  int n) {
  float *d_A;
  float *d_B;
  float *d_C;

  cudaMalloc(&d_A, m * k * sizeof(float));
  cudaMalloc(&d_B, k * n * sizeof(float));
  cudaMalloc(&d_C, m * n * sizeof(float));

  cudaMemcpy(d_A, A, m * k * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(d_B, B, k * n * sizeof(float), cudaMemcpyHostToDevice);

  dim3 blockSize(TILE, TILE);
  dim3 numBlocks((n + TILE - 1) / TILE, (m + TILE - 1) / TILE);

  tiled_gemm<<<numBlocks, blockSize>>>(d_A, d_B, d_C, m, n, k);

  cudaMemcpy(C, d_C, m * n * sizeof(float), cudaMemcpyDeviceToHost);

  cudaFree(d_A);
  cudaFree(d_B);
  cudaFree(d_C);
}
