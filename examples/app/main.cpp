// The repository's program: a tiny image classifier head built from the four kernels.
// It pools a feature map, applies a linear layer with a bias, and prints class
// probabilities. It only knows the kernels' C API, never which platform they run on.
#include <cstdio>
#include <vector>

#include "avgpool2d.h"
#include "row_softmax.h"
#include "tiled_gemm.h"
#include "vector_add.h"

int main() {
  const int batch = 1, channels = 8, h = 9, k = 3, s = 3, oh = (h - k) / s + 1;  // 3x3 pooled
  const int features = oh * oh * channels, classes = 4;

  std::vector<float> image(batch * h * h * channels);
  for (size_t i = 0; i < image.size(); ++i) image[i] = float((i * 37) % 11) / 11.0f;
  std::vector<float> pooled(batch * features);
  avgpool2d_kernel(image.data(), pooled.data(), batch, channels, h, k, s);

  std::vector<float> weights(features * classes), bias(classes), logits(classes), z(classes);
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = float(int(i % 7) - 3) / 10.0f;
  for (int c = 0; c < classes; ++c) bias[c] = 0.1f * c;
  tiled_gemm_kernel(pooled.data(), weights.data(), logits.data(), batch, features, classes);
  vector_add_kernel(logits.data(), bias.data(), z.data(), classes);

  std::vector<float> probs(classes);
  row_softmax_kernel(z.data(), probs.data(), batch, classes);
  for (int c = 0; c < classes; ++c) std::printf("class %d: %.4f\n", c, probs[c]);
  return 0;
}
