__global__ void rowsum(const float *x, float *y, int cols) {
  int row = blockIdx.x;
  float s = 0.0f;
  for (int c = threadIdx.x; c < cols; c += 32) s += x[row * cols + c];
  for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffff, s, off);
  if (threadIdx.x == 0) y[row] = s;
}
extern "C" void rowsum_kernel(float *x, float *y, int rows, int cols) {
  float *dx, *dy;
  cudaMalloc(&dx, rows * cols * sizeof(float));
  cudaMalloc(&dy, rows * sizeof(float));
  cudaMemcpy(dx, x, rows * cols * sizeof(float), cudaMemcpyHostToDevice);
  rowsum<<<rows, 32>>>(dx, dy, cols);
  cudaMemcpy(y, dy, rows * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(dx); cudaFree(dy);
}
