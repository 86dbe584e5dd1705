"""MLU pooling windows: window reductions become bands of input rows in NRAM and one
__bang_*pool call per band, verified on the BANG emulator; padding windows stay scalar
with a reason."""

from xpiler.translate import TranslateOptions, translate_file

from .conftest import run_strict_bang

# NHWC max pool, 3x3 window, stride 2, odd sizes (C = 3 forces padded NRAM layouts);
# the accumulator starts at the window's first tap, the update is an if.
MAXPOOL_C = """
extern "C" void maxpool(float *x, float *y) {
  int N = 2, H = 11, W = 13, C = 3, K = 3, S = 2;
  int OH = (H - K) / S + 1, OW = (W - K) / S + 1;
  for (int n = 0; n < N; n++)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++)
        for (int c = 0; c < C; c++) {
          float m = x[((n * H + oh * S) * W + ow * S) * C + c];
          for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++) {
              int ih = oh * S + i, iw = ow * S + j;
              if (ih < H && iw < W) {
                float v = x[((n * H + ih) * W + iw) * C + c];
                if (v > m) m = v;
              }
            }
          y[((n * OH + oh) * OW + ow) * C + c] = m;
        }
}
"""

# NCHW average pool: a 3x2 window, strides 2 (rows) and 3 (columns), odd sizes.
AVGPOOL_NCHW_C = """
extern "C" void avgpool(float *x, float *y) {
  for (int n = 0; n < 2; n++)
    for (int c = 0; c < 3; c++)
      for (int oh = 0; oh < 4; oh++)
        for (int ow = 0; ow < 3; ow++) {
          float s = 0.0f;
          for (int i = 0; i < 3; i++)
            for (int j = 0; j < 2; j++)
              s += x[((n * 3 + c) * 9 + oh * 2 + i) * 10 + ow * 3 + j];
          y[((n * 3 + c) * 4 + oh) * 3 + ow] = s / 6;
        }
}
"""

# NHWC sum pool in CUDA: one thread per output, a one-element local accumulator (as
# TVM emits it), a guard on the flat index and a launch size from a host argument.
SUMPOOL_CU = """
__global__ void sumpool(const float *x, float *y, int total) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < total) {
    int c = i % 5, ow = i / 5 % 6, oh = i / 30 % 4, n = i / 120;
    float acc[1];
    acc[0] = 0.0f;
    for (int kh = 0; kh < 3; ++kh)
      for (int kw = 0; kw < 3; ++kw)
        acc[0] = acc[0] + x[((n * 10 + oh * 2 + kh) * 13 + ow * 2 + kw) * 5 + c];
    y[i] = acc[0] * 0.5f;
  }
}

extern "C" void sumpool_host(float *x, float *y, int n) {
  float *dx, *dy;
  cudaMalloc(&dx, n * 650 * sizeof(float));
  cudaMalloc(&dy, n * 120 * sizeof(float));
  cudaMemcpy(dx, x, n * 650 * sizeof(float), cudaMemcpyHostToDevice);
  sumpool<<<(n * 120 + 127) / 128, 128>>>(dx, dy, n * 120);
  cudaMemcpy(y, dy, n * 120 * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(dx);
  cudaFree(dy);
}
"""

# A padded window: taps outside the image are skipped, which no pool does.
PADDED_C = """
extern "C" void padpool(float *x, float *y) {
  for (int oh = 0; oh < 8; oh++)
    for (int ow = 0; ow < 8; ow++) {
      float s = 0.0f;
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
          int ih = oh + i - 1, iw = ow + j - 1;
          if (ih >= 0 && ih < 8 && iw >= 0 && iw < 8) s += x[ih * 8 + iw];
        }
      y[oh * 8 + ow] = s;
    }
}
"""


def _translate(tmp_path, name: str, text: str, **kw):
    path = tmp_path / name
    path.write_text(text)
    return translate_file(str(path), TranslateOptions(target="mlu", seeds=(0, 1), **kw))


def _pool_notes(report):
    return [n for n in report["notes"] if "pool" in n]


def test_nhwc_maxpool_uses_bang_maxpool_and_verifies(tmp_path):
    tr = _translate(tmp_path, "maxpool.cpp", MAXPOOL_C)
    assert tr.verified, tr.report["verification"]
    assert "__bang_maxpool" in tr.report["intrinsics"]
    assert "__bang_maxpool(" in tr.text and "GDRAM2NRAM" in tr.text and "NRAM2GDRAM" in tr.text
    assert not [n for n in tr.report["notes"] if "scalar fallback" in n]
    # channel 3, window 3x3, stride_x 2 then stride_y 2
    assert ", 3, 3, 2, 2);" in tr.text


def test_maxpool_output_passes_strict_emulator_rules(tmp_path):
    """Vector lengths in 128-byte units, NRAM operands and GDRAM ranges checked by the
    emulator's strict mode; the result is compared with a plain C++ max pool."""
    from xpiler.verify.emu_adapt import adapt_for_emulator

    tr = _translate(tmp_path, "maxpool.cpp", MAXPOOL_C)
    assert tr.verified and "__bang_maxpool" in tr.report["intrinsics"]
    (tmp_path / "k.mlu").write_text(adapt_for_emulator(tr.text, "mlu"))
    (tmp_path / "main.cpp").write_text(r"""
#include <algorithm>
extern "C" void maxpool(float *x, float *y);
int main() {
  const int N = 2, H = 11, W = 13, C = 3, OH = 5, OW = 6;
  static float x[N * H * W * C], y[N * OH * OW * C];
  for (int i = 0; i < N * H * W * C; ++i) x[i] = float((i * 37) % 101) - 50.0f;
  maxpool(x, y);
  for (int n = 0; n < N; ++n) for (int oh = 0; oh < OH; ++oh) for (int ow = 0; ow < OW; ++ow)
    for (int c = 0; c < C; ++c) {
      float m = -1e30f;
      for (int i = 0; i < 3; ++i) for (int j = 0; j < 3; ++j)
        m = std::max(m, x[((n * H + oh * 2 + i) * W + ow * 2 + j) * C + c]);
      if (m != y[((n * OH + oh) * OW + ow) * C + c]) return 3;
    }
  return 0;
}
""")
    r = run_strict_bang(tmp_path)
    assert r.returncode == 0, r.stderr


def test_nchw_average_pool_uses_bang_avgpool_and_verifies(tmp_path):
    tr = _translate(tmp_path, "avgpool.cpp", AVGPOOL_NCHW_C)
    assert tr.verified, tr.report["verification"]
    assert "__bang_avgpool" in tr.report["intrinsics"]
    assert "__bang_sumpool" not in tr.report["intrinsics"]
    # NCHW: each (image, channel) plane is a pool input with one channel; kw 2, sx 3, sy 2
    assert ", 1, " in tr.text and ", 3, 2, 3, 2);" in tr.text


def test_cuda_sumpool_with_local_accumulator_verifies(tmp_path):
    tr = _translate(tmp_path, "sumpool.cu", SUMPOOL_CU, scalars={"n": 3})
    assert tr.verified, tr.report["verification"]
    used = tr.report["intrinsics"]
    assert "__bang_sumpool" in used and any(u.startswith("__bang_mul") for u in used)  # * 0.5f
    assert _pool_notes(tr.report) and "3x3 stride 2x2" in _pool_notes(tr.report)[0]


def test_padded_window_declines_with_reason(tmp_path):
    tr = _translate(tmp_path, "padpool.cpp", PADDED_C)
    assert tr.verified, tr.report["verification"]
    assert not any("pool" in u for u in tr.report["intrinsics"])
    notes = [n for n in tr.report["notes"] if "no __bang_*pool" in n]
    assert notes and "padding windows are not supported" in notes[0]


def test_quasi_affine_zero_check_over_one_period():
    """A grid's flat index regrouped TVM-style equals the plane index for every F >= 0
    (checked over one period of the expression), which z3 cannot decide in time."""
    from xpiler.ir import nodes as N
    from xpiler.ir import types as T
    from xpiler.passes.lower.quasi_affine import period, zero_on

    F, c = N.Var("F", T.I64), lambda v: N.Const(v, T.I64)
    bx, tx = N.Binary("/", F, c(1024)), N.Binary("%", F, c(1024))
    tvm = N.Binary("/", N.Binary("+", N.Binary("*", bx, c(2)), N.Binary(">>", tx, c(9))), c(169))
    plane = N.Binary("/", F, c(86528))
    assert period(N.Binary("-", tvm, plane), "F", 0)[0] == 173056
    assert zero_on(N.Binary("-", tvm, plane), "F", 0, None, {}) is True
    # wrong from F = 173056 on: found within the (longer) period, and in a short range
    off = N.Binary("+", plane, N.Binary("%", N.Binary("/", F, c(173056)), c(2)))
    assert zero_on(N.Binary("-", tvm, off), "F", 0, None, {}) is False
    assert zero_on(N.Binary("-", tvm, N.Binary("/", F, c(86527))), "F", 0, 100000, {}) is False
    assert zero_on(N.Binary("*", F, F), "F", 0, None, {}) is None  # not quasi-affine
