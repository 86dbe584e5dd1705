"""GEMM-like phases that WMMA/MFMA decline become the classic shared-memory tiled GEMM on
cuda and hip (T x T threads, __shared__ A/B tiles, barriers outside every guard), verified
on the emulators; where tiling cannot be proved safe, the phase stays scalar with a reason."""
import pytest

from xpiler.translate import TranslateOptions, translate_file

# M, N, K not multiples of 16: edge tiles in every dimension
FLOAT_MM = """extern "C" void mm(float *A, float *B, float *C) {
  for (int i = 0; i < 40; ++i) {
    for (int j = 0; j < 25; ++j) {
      float acc = 0.0f;
      for (int k = 0; k < 37; ++k) acc += A[i * 37 + k] * B[k * 25 + j];
      C[i * 25 + j] = acc;
    }
  }
}
"""

# int8 dot products (B stored by rows of K): exact int32 sums, then a float epilogue
INT8_DOT = """#include <stdint.h>
extern "C" void dot(uint8_t *A, int8_t *B, float *C) {
  for (int i = 0; i < 24; ++i) {
    for (int j = 0; j < 17; ++j) {
      int acc = 0;
      for (int k = 0; k < 300; ++k) acc += A[i * 300 + k] * B[j * 300 + k];
      C[i * 17 + j] = (float)acc * 0.25f;
    }
  }
}
"""

INT8_INT32 = """#include <stdint.h>
extern "C" void dot32(int8_t *A, int8_t *B, int32_t *C) {
  for (int i = 0; i < 20; ++i) {
    for (int j = 0; j < 33; ++j) {
      int32_t acc = 0;
      for (int k = 0; k < 70; ++k) acc += (int32_t)A[i * 70 + k] * (int32_t)B[j * 70 + k];
      C[i * 33 + j] = acc;
    }
  }
}
"""

# batched, A column-major (rows contiguous), a bias added first and a ReLU epilogue
BATCHED = """#include <math.h>
extern "C" void bmm(float *A, float *B, float *bias, float *C) {
  for (int b = 0; b < 3; ++b) {
    for (int i = 0; i < 20; ++i) {
      for (int j = 0; j < 18; ++j) {
        float acc = bias[j];
        for (int k = 0; k < 24; ++k) acc += A[b * 480 + k * 20 + i] * B[b * 432 + k * 18 + j];
        C[(b * 20 + i) * 18 + j] = fmaxf(acc, 0.0f);
      }
    }
  }
}
"""


def cuda_matmul(m=20, n=30, k=40, guard="row < M_ && col < N_"):
    """A one-thread-per-element CUDA float matmul on 8x8 blocks, grid rounded up."""
    return f"""
#define M_ {m}
#define N_ {n}
#define K_ {k}
__global__ void matmul(const float *A, const float *B, float *C) {{
  int row = blockIdx.y * blockDim.y + threadIdx.y;
  int col = blockIdx.x * blockDim.x + threadIdx.x;
  if ({guard}) {{
    float sum = 0.0f;
    for (int k = 0; k < K_; ++k) sum += A[row * K_ + k] * B[k * N_ + col];
    C[row * N_ + col] = sum;
  }}
}}
extern "C" void matmul_kernel(float *A, float *B, float *C) {{
  float *d_A, *d_B, *d_C;
  cudaMalloc(&d_A, M_ * K_ * sizeof(float));
  cudaMalloc(&d_B, K_ * N_ * sizeof(float));
  cudaMalloc(&d_C, M_ * N_ * sizeof(float));
  cudaMemcpy(d_A, A, M_ * K_ * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(d_B, B, K_ * N_ * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(d_C, C, M_ * N_ * sizeof(float), cudaMemcpyHostToDevice);
  matmul<<<dim3((N_ + 7) / 8, (M_ + 7) / 8), dim3(8, 8)>>>(d_A, d_B, d_C);
  cudaMemcpy(C, d_C, M_ * N_ * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(d_A); cudaFree(d_B); cudaFree(d_C);
}}
"""


def _translate(tmp_path, name, text, target, verify=True, **params):
    path = tmp_path / name
    path.write_text(text)
    return translate_file(str(path), TranslateOptions(target=target, route="canonical", seeds=(0, 1), verify=verify,
                                                      allow_unverified=not verify, lower_params=params))


def _tiled(tr):
    assert tr.verified, tr.report
    assert "__shared__" in tr.text and "__syncthreads()" in tr.text
    assert tr.report["intrinsics"] == []
    note = next((n for n in tr.report["notes"] if "tiled 16x16 with __shared__" in n), None)
    assert note is not None, tr.report["notes"]
    # every barrier is at the K loop's top level: no guard encloses it
    for line in tr.text.splitlines():
        if "__syncthreads()" in line:
            assert line.startswith("    __syncthreads();"), line
    return note


@pytest.mark.parametrize("target", ["cuda", "hip"])
def test_float_gemm_with_edge_tiles(tmp_path, target):
    tr = _translate(tmp_path, "mm.cpp", FLOAT_MM, target)
    note = _tiled(tr)
    assert "rows 40, columns 25, K 37 in 3 tile(s)" in note
    assert tr.report["verification"]["max_abs_err"] == 0.0  # the source's order of summation
    assert "dim3(16, 16, 1)" in tr.text and "dim3(2, 3, 1)" in tr.text  # (column tiles, row tiles, batch)
    assert "? A[" in tr.text and ": 0.0f" in tr.text  # edge elements zero-filled


@pytest.mark.parametrize("target", ["cuda", "hip"])
def test_int8_dot_products_accumulate_exactly(tmp_path, target):
    tr = _translate(tmp_path, "dot.cpp", INT8_DOT, target)
    note = _tiled(tr)
    assert "int32 accumulation" in note and "K 300 in 19 tile(s)" in note
    assert "__shared__ uint8_t" in tr.text and "__shared__ int8_t" in tr.text
    assert tr.report["verification"]["max_abs_err"] == 0.0


def test_int8_to_int32_on_cuda(tmp_path):
    tr = _translate(tmp_path, "dot32.cpp", INT8_INT32, "cuda")
    _tiled(tr)
    assert any("no WMMA: no row extent is a multiple of 16" in n for n in tr.report["notes"]), tr.report["notes"]


@pytest.mark.parametrize("target", ["cuda", "hip"])
def test_batched_gemm_with_bias_and_column_major_a(tmp_path, target):
    tr = _translate(tmp_path, "bmm.cpp", BATCHED, target)
    note = _tiled(tr)
    assert "1 batch counter(s)" in note and "dim3(2, 2, 3)" in tr.text
    assert "blockIdx.z" in tr.text
    assert "? bias[" in tr.text  # the bias starts the sum, read only for stored elements
    assert "fmaxf(xpiler_acc, 0.0f)" in tr.text


def test_cuda_float_matmul_is_tiled_on_cuda(tmp_path):
    tr = _translate(tmp_path, "mm.cu", cuda_matmul(), "cuda")
    note = _tiled(tr)
    # blockIdx.y*8 + threadIdx.y merge into one row counter over the grid's 24 rows; the
    # source's guard (row < 20) guards the copies and the store
    assert "rows 24, columns 32, K 40 in 3 tile(s)" in note
    assert "xpiler_row < 20" in tr.text
    assert any("float32 x float32 would be rounded" in n for n in tr.report["notes"])


def test_tile_parameter_zero_keeps_scalar_code(tmp_path):
    tr = _translate(tmp_path, "mm.cpp", FLOAT_MM, "cuda", verify=False, tile=0)
    assert "__syncthreads" not in tr.text
    assert any("scalar code (" in n and "would be rounded" in n for n in tr.report["notes"]), tr.report["notes"]


def test_a_guard_coupling_rows_and_columns_is_not_tiled(tmp_path):
    tr = _translate(tmp_path, "tri.cu", cuda_matmul(m=24, n=24, guard="row < 24 && col < 24 && col <= row"),
                    "cuda", verify=False)
    assert "__syncthreads" not in tr.text
    assert any("not tiled: the guard couples rows and columns" in n for n in tr.report["notes"]), tr.report["notes"]


def test_grid_beyond_the_limits_is_one_flat_dimension(tmp_path, monkeypatch):
    """Where (column tiles, row tiles, batch) does not provably fit the platform's grid,
    the blocks are enumerated by blockIdx.x alone and decomposed."""
    from xpiler.platforms import config

    real = config.load_platform_config

    def small_grid(name):
        c = real(name)
        return {**c, "limits": {**c["limits"], "max_grid_dim": [2147483647, 65535, 2]}}
    monkeypatch.setattr(config, "load_platform_config", small_grid)
    tr = _translate(tmp_path, "bmm.cpp", BATCHED, "cuda")
    _tiled(tr)
    assert "dim3(12, 1, 1)" in tr.text and "blockIdx.z" not in tr.text and "blockIdx.y" not in tr.text
