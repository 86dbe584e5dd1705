// Plain C++ reference implementations of the four kernels, used by the tests.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

namespace ref {

inline void vector_add(const float *a, const float *b, float *c, int n) {
  for (int i = 0; i < n; ++i) c[i] = a[i] + b[i];
}

inline void row_softmax(const float *a, float *c, int rows, int cols) {
  for (int r = 0; r < rows; ++r) {
    const float *x = a + r * cols;
    double m = *std::max_element(x, x + cols), s = 0;
    for (int i = 0; i < cols; ++i) s += std::exp(double(x[i]) - m);
    for (int i = 0; i < cols; ++i) c[r * cols + i] = float(std::exp(double(x[i]) - m) / s);
  }
}

inline void gemm(const float *a, const float *b, float *c, int m, int k, int n) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double acc = 0;
      for (int p = 0; p < k; ++p) acc += double(a[i * k + p]) * b[p * n + j];
      c[i * n + j] = float(acc);
    }
}

inline void avgpool2d(const float *in, float *out, int batch, int channels, int h, int k, int s) {
  int oh = (h - k) / s + 1;
  for (int n = 0; n < batch; ++n)
    for (int y = 0; y < oh; ++y)
      for (int x = 0; x < oh; ++x)
        for (int c = 0; c < channels; ++c) {
          double acc = 0;
          for (int i = 0; i < k; ++i)
            for (int j = 0; j < k; ++j)
              acc += in[((n * h + y * s + i) * h + x * s + j) * channels + c];
          out[((n * oh + y) * oh + x) * channels + c] = float(acc / (k * k));
        }
}

}  // namespace ref
