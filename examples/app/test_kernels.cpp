// The repository's own test: calls every kernel through its C API, on sizes that are
// not multiples of any tile or block size, and compares with the C++ reference.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "avgpool2d.h"
#include "reference.h"
#include "row_softmax.h"
#include "tiled_gemm.h"
#include "vector_add.h"

static int failures = 0;

static std::vector<float> random_vector(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<float> v(n);
  for (float &x : v) x = dist(gen);
  return v;
}

static void check(const char *name, const std::vector<float> &got, const std::vector<float> &want,
                  float tol) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    double err = std::fabs(double(got[i]) - want[i]) / (1.0 + std::fabs(double(want[i])));
    if (!(err <= worst)) worst = err;  // also catches NaN
  }
  bool ok = worst <= tol;
  std::printf("%-12s %-4s max rel err %.3g (%zu values)\n", name, ok ? "ok" : "FAIL", worst, want.size());
  failures += !ok;
}

int main() {
  {
    const int n = 10007;
    auto a = random_vector(n, 1), b = random_vector(n, 2);
    std::vector<float> c(n, NAN), want(n);
    vector_add_kernel(a.data(), b.data(), c.data(), n);
    ref::vector_add(a.data(), b.data(), want.data(), n);
    check("vector_add", c, want, 1e-6f);
  }
  {
    const int rows = 37, cols = 129;
    auto a = random_vector(rows * cols, 3);
    std::vector<float> c(rows * cols, NAN), want(rows * cols);
    row_softmax_kernel(a.data(), c.data(), rows, cols);
    ref::row_softmax(a.data(), want.data(), rows, cols);
    check("row_softmax", c, want, 1e-5f);
  }
  {
    const int m = 45, k = 33, n = 50;
    auto a = random_vector(m * k, 4), b = random_vector(k * n, 5);
    std::vector<float> c(m * n, NAN), want(m * n);
    tiled_gemm_kernel(a.data(), b.data(), c.data(), m, k, n);
    ref::gemm(a.data(), b.data(), want.data(), m, k, n);
    check("tiled_gemm", c, want, 1e-4f);
  }
  {
    const int batch = 2, channels = 5, h = 17, k = 3, s = 2, oh = (h - k) / s + 1;
    auto in = random_vector(batch * h * h * channels, 6);
    std::vector<float> out(batch * oh * oh * channels, NAN), want(out.size());
    avgpool2d_kernel(in.data(), out.data(), batch, channels, h, k, s);
    ref::avgpool2d(in.data(), want.data(), batch, channels, h, k, s);
    check("avgpool2d", out, want, 1e-5f);
  }
  std::printf("%s\n", failures ? "FAILED" : "all kernels agree with the reference");
  return failures ? 1 : 0;
}
