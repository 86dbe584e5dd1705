// 2-D average pooling over an NHWC tensor [N][H][H][C] with a square window and no
// padding: out[n][oh][ow][c] = mean of in[n][oh*S + i][ow*S + j][c], i, j < K.
// One thread per output element; c is the fastest-varying index, so neighbouring
// threads read neighbouring addresses.
__global__ void __launch_bounds__(256)
    avgpool2d(const float *__restrict__ input, float *__restrict__ output,
              int batch_size, int channels, int input_H, int output_H,
              int kernel_size, int stride) {
  int idx = blockIdx.x * blockDim.x + threadIdx.x;
  int total = batch_size * output_H * output_H * channels;
  if (idx < total) {
    int c = idx % channels;
    int ow = (idx / channels) % output_H;
    int oh = (idx / (channels * output_H)) % output_H;
    int n = idx / (channels * output_H * output_H);

    float sum = 0.0f;
    for (int i = 0; i < kernel_size; ++i) {
      for (int j = 0; j < kernel_size; ++j) {
        int h = oh * stride + i;
        int w = ow * stride + j;
        sum += input[((n * input_H + h) * input_H + w) * channels + c];
      }
    }
    output[idx] = sum / (float)(kernel_size * kernel_size);
  }
}

extern "C" void avgpool2d_kernel(float *input, float *output, int batch_size,
                                 int channels, int input_H, int kernel_size,
                                 int stride) {
  float *d_input;
  float *d_output;
  int output_H = (input_H - kernel_size) / stride + 1;
  int input_size = batch_size * input_H * input_H * channels;
  int output_size = batch_size * output_H * output_H * channels;

  cudaMalloc(&d_input, input_size * sizeof(float));
  cudaMalloc(&d_output, output_size * sizeof(float));

  cudaMemcpy(d_input, input, input_size * sizeof(float),
             cudaMemcpyHostToDevice);

  dim3 blockSize(256);
  dim3 numBlocks((output_size + 256 - 1) / 256);

  avgpool2d<<<numBlocks, blockSize>>>(d_input, d_output, batch_size, channels,
                                      input_H, output_H, kernel_size, stride);

  cudaMemcpy(output, d_output, output_size * sizeof(float),
             cudaMemcpyDeviceToHost);

  cudaFree(d_input);
  cudaFree(d_output);
}
