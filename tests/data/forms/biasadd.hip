#include <hip/hip_runtime.h>
__global__ void bias_leaky(const float *x, const float *b, float *y, int n, int c) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n * c; i += gridDim.x * blockDim.x) {
    float v = x[i] + b[i % c];
    y[i] = v > 0.0f ? v : 0.01f * v;
  }
}
extern "C" void bias_leaky_kernel(float *x, float *b, float *y, int n, int c) {
  float *dx, *db, *dy;
  hipMalloc(&dx, n * c * sizeof(float));
  hipMalloc(&db, c * sizeof(float));
  hipMalloc(&dy, n * c * sizeof(float));
  hipMemcpy(dx, x, n * c * sizeof(float), hipMemcpyHostToDevice);
  hipMemcpy(db, b, c * sizeof(float), hipMemcpyHostToDevice);
  hipLaunchKernelGGL(bias_leaky, dim3(40), dim3(128), 0, 0, dx, db, dy, n, c);
  hipMemcpy(y, dy, n * c * sizeof(float), hipMemcpyDeviceToHost);
  hipFree(dx); hipFree(db); hipFree(dy);
}
