// Softmax over each row of a [rows][cols] matrix: one thread per row, with the row
// maximum subtracted before exponentiation so that large inputs do not overflow.
__global__ void __launch_bounds__(128)
    row_softmax(const float *__restrict__ A, float *__restrict__ T_softmax,
                int rows, int cols) {
  int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row < rows) {
    const float *in = A + row * cols;
    float *out = T_softmax + row * cols;

    float maxVal = in[0];
    for (int i = 1; i < cols; ++i) {
      maxVal = fmaxf(maxVal, in[i]);
    }

    float denom = 0.0f;
    for (int i = 0; i < cols; ++i) {
      out[i] = expf(in[i] - maxVal);
      denom += out[i];
    }

    for (int i = 0; i < cols; ++i) {
      out[i] = out[i] / denom;
    }
  }
}

extern "C" void row_softmax_kernel(float *A, float *C, int rows, int cols) {
  float *d_A;
  float *d_C;

  cudaMalloc(&d_A, rows * cols * sizeof(float));
  cudaMalloc(&d_C, rows * cols * sizeof(float));

  cudaMemcpy(d_A, A, rows * cols * sizeof(float), cudaMemcpyHostToDevice);

  dim3 blockSize(128);
  dim3 numBlocks((rows + 128 - 1) / 128);

  row_softmax<<<numBlocks, blockSize>>>(d_A, d_C, rows, cols);

  cudaMemcpy(C, d_C, rows * cols * sizeof(float), cudaMemcpyDeviceToHost);

  cudaFree(d_A);
  cudaFree(d_C);
}
