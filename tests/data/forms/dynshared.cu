__global__ void scale_rows(const float *in, float *out, int cols) {
  extern __shared__ float row[];
  for (int c = threadIdx.x; c < cols; c += blockDim.x) row[c] = in[blockIdx.x * cols + c];
  __syncthreads();
  for (int c = threadIdx.x; c < cols; c += blockDim.x) out[blockIdx.x * cols + c] = row[c] * row[cols - 1 - c];
}
extern "C" void scale_rows_kernel(float *in, float *out, int rows, int cols) {
  float *di, *dout;
  cudaMalloc(&di, rows * cols * sizeof(float)); cudaMalloc(&dout, rows * cols * sizeof(float));
  cudaMemcpy(di, in, rows * cols * sizeof(float), cudaMemcpyHostToDevice);
  scale_rows<<<rows, 64, cols * sizeof(float)>>>(di, dout, cols);
  cudaMemcpy(out, dout, rows * cols * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(di); cudaFree(dout);
}
