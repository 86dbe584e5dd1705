// C[i] = A[i] + B[i] for i < size: one thread per element.
__global__ void __launch_bounds__(256)
    vector_add(const float *__restrict__ A, const float *__restrict__ B,
               float *__restrict__ C, int size) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < size) {
    C[i] = A[i] + B[i];
  }
}

extern "C" void vector_add_kernel(float *A, float *B, float *C, int size) {
  float *d_A;
  float *d_B;
  float *d_C;

  cudaMalloc(&d_A, size * sizeof(float));
  cudaMalloc(&d_B, size * sizeof(float));
  cudaMalloc(&d_C, size * sizeof(float));

  cudaMemcpy(d_A, A, size * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(d_B, B, size * sizeof(float), cudaMemcpyHostToDevice);

  dim3 blockSize(256);
  dim3 numBlocks((size + 256 - 1) / 256);

  vector_add<<<numBlocks, blockSize>>>(d_A, d_B, d_C, size);

  cudaMemcpy(C, d_C, size * sizeof(float), cudaMemcpyDeviceToHost);

  cudaFree(d_A);
  cudaFree(d_B);
  cudaFree(d_C);
}
