__global__ void blocksum(const float *in, float *out, int n) {
  __shared__ float buf[256];
  int i = blockIdx.x * 256 + threadIdx.x;
  buf[threadIdx.x] = i < n ? in[i] : 0.0f;
  __syncthreads();
  for (int s = 128; s > 0; s >>= 1) {
    if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = buf[0];
}
extern "C" void blocksum_kernel(float *in, float *out, int n) {
  float *d_in, *d_out;
  int blocks = (n + 255) / 256;
  cudaMalloc(&d_in, n * sizeof(float));
  cudaMalloc(&d_out, blocks * sizeof(float));
  cudaMemcpy(d_in, in, n * sizeof(float), cudaMemcpyHostToDevice);
  blocksum<<<blocks, 256>>>(d_in, d_out, n);
  cudaMemcpy(out, d_out, blocks * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(d_in); cudaFree(d_out);
}
