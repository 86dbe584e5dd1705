// 2-D average pooling over an NHWC tensor [N][H][H][C], square window, no padding: the
// CPU version of avgpool2d.cu, with the same C API.
extern "C" void avgpool2d_kernel(float *input, float *output, int batch_size,
                                 int channels, int input_H, int kernel_size,
                                 int stride) {
  int output_H = (input_H - kernel_size) / stride + 1;
  for (int n = 0; n < batch_size; n++) {
    for (int oh = 0; oh < output_H; oh++) {
      for (int ow = 0; ow < output_H; ow++) {
        for (int c = 0; c < channels; c++) {
          float sum = 0.0f;
          for (int i = 0; i < kernel_size; i++) {
            for (int j = 0; j < kernel_size; j++) {
              int h = oh * stride + i;
              int w = ow * stride + j;
              sum += input[((n * input_H + h) * input_H + w) * channels + c];
            }
          }
          output[((n * output_H + oh) * output_H + ow) * channels + c] =
              sum / (float)(kernel_size * kernel_size);
        }
      }
    }
  }
}
