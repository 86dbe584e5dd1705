"""MLU GEMM lowering: GEMM-like phases become __bang_matmul with the rhs in WRAM,
verified on the BANG emulator (also in strict mode); GEMMs it cannot take stay scalar
with a reason."""
import re

import numpy as np
import pytest

from xpiler.translate import TranslateOptions, translate_file

STRICT = ["-DXPILER_BANG_STRICT=1", "-DXPILER_BANG_ALIGN_BYTES=128"]


def _translate(tmp_path, name: str, text: str, scalars=None, **params):
    path = tmp_path / name
    path.write_text(text)
    return translate_file(str(path), TranslateOptions(target="mlu", scalars=scalars or {}, seeds=(0, 1),
                                                      lower_params=params))


def _strict_run_matches(tmp_path, tr, scalars=None):
    """The translation built with the emulator's strict hardware rules (128-byte vector
    lengths, operands on chip, GDRAM ranges inside allocations) runs and computes what
    the default build computes."""
    from xpiler.verify.kernel import prepare
    from xpiler.verify.selfcheck import run_with_flags

    path = tmp_path / "translated.mlu"
    path.write_text(tr.text)
    k = prepare(str(path), scalars or {})
    inputs = k.inputs(3)
    want = k.run(inputs).outputs
    got = run_with_flags(k, inputs, "emu", STRICT, 120)
    for name, arr in want.items():
        np.testing.assert_allclose(got[name], arr, rtol=1e-5, atol=1e-5, err_msg=name)


def _matmul_note(tr) -> str:
    return next(n for n in tr.report["notes"] if "__bang_matmul" in n or "GEMM" in n)


def test_matmul_with_remainders_verifies_also_in_strict_mode(tmp_path):
    # 37 rows and 45 columns: full 32-row/column blocks and remainders (padded to 32); K = 50
    tr = _translate(tmp_path, "mm.cpp", "extern \"C\" void mm(float *A, float *B, float *C) {\n"
                    "  for (int i = 0; i < 37; i++)\n    for (int j = 0; j < 45; j++) {\n"
                    "      float s = 0.0f;\n      for (int k = 0; k < 50; k++) s += A[i * 50 + k] * B[k * 45 + j];\n"
                    "      C[i * 45 + j] = s;\n    }\n}\n")
    assert tr.verified, tr.report["verification"]
    assert "__bang_matmul" in tr.report["intrinsics"]
    assert "GDRAM2WRAM" in tr.text and "__wram__" in tr.text
    assert "37x45x50 float32 GEMM" in _matmul_note(tr)
    _strict_run_matches(tmp_path, tr)


CUDA_GUARDED = """
#define M 70
#define N 33
#define K 40
__global__ void mm(const float *A, const float *B, float *C) {
  int row = blockIdx.y * blockDim.y + threadIdx.y;
  int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (row < M && col < N) {
    float s = 0.0f;
    for (int k = 0; k < K; ++k) s += A[row * K + k] * B[k * N + col];
    C[row * N + col] = 2.0f * s + 1.0f;
  }
}
extern "C" void mm_host(float *A, float *B, float *C, int m, int n) {
  float *dA, *dB, *dC;
  cudaMalloc(&dA, M * K * sizeof(float));
  cudaMalloc(&dB, K * N * sizeof(float));
  cudaMalloc(&dC, M * N * sizeof(float));
  cudaMemcpy(dA, A, M * K * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(dB, B, K * N * sizeof(float), cudaMemcpyHostToDevice);
  dim3 block(16, 16);
  dim3 grid((n + 15) / 16, (m + 15) / 16);
  mm<<<grid, block>>>(dA, dB, dC);
  cudaMemcpy(C, dC, M * N * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(dA); cudaFree(dB); cudaFree(dC);
}
"""


def test_guarded_cuda_matmul_with_epilogue_verifies(tmp_path):
    """Run-time grid extents shortened by the guard; the epilogue 2s + 1 on the block."""
    scalars = {"m": 70, "n": 33}
    tr = _translate(tmp_path, "mmg.cu", CUDA_GUARDED, scalars)
    assert tr.verified, tr.report["verification"]
    assert "__bang_matmul" in tr.report["intrinsics"]
    assert "xpiler_M = " in tr.text  # rows: min(16 * grid rows, 70), known at run time
    _strict_run_matches(tmp_path, tr, scalars)


def test_batched_half_matmul_with_transposed_rhs(tmp_path):
    """bmm over 3 batches, half operands, B stored [N][K] (C = A x B^T): B goes to WRAM
    through NRAM and __bang_transpose."""
    tr = _translate(tmp_path, "bmm.cu", """
__global__ void bmm(const half *A, const half *B, float *C) {
  int b = blockIdx.z;
  int i = blockIdx.y * 8 + threadIdx.y;
  int j = blockIdx.x * 8 + threadIdx.x;
  if (i < 20 && j < 24) {
    float s = 0.0f;
    for (int k = 0; k < 40; ++k)
      s += (float)A[(b * 20 + i) * 40 + k] * (float)B[(b * 24 + j) * 40 + k];
    C[(b * 20 + i) * 24 + j] = s;
  }
}
extern "C" void bmm_host(half *A, half *B, float *C) {
  half *dA, *dB; float *dC;
  cudaMalloc(&dA, 3 * 20 * 40 * sizeof(half));
  cudaMalloc(&dB, 3 * 24 * 40 * sizeof(half));
  cudaMalloc(&dC, 3 * 20 * 24 * sizeof(float));
  cudaMemcpy(dA, A, 3 * 20 * 40 * sizeof(half), cudaMemcpyHostToDevice);
  cudaMemcpy(dB, B, 3 * 24 * 40 * sizeof(half), cudaMemcpyHostToDevice);
  bmm<<<dim3(3, 3, 3), dim3(8, 8)>>>(dA, dB, dC);
  cudaMemcpy(C, dC, 3 * 20 * 24 * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(dA); cudaFree(dB); cudaFree(dC);
}
""")
    assert tr.verified, tr.report["verification"]
    assert {"__bang_matmul", "__bang_transpose"} <= set(tr.report["intrinsics"])
    assert "float16 GEMM" in _matmul_note(tr) and "(transpose)" in _matmul_note(tr)
    _strict_run_matches(tmp_path, tr)


def test_int8_matmul_accumulates_exactly(tmp_path):
    tr = _translate(tmp_path, "imm.cpp", "#include <stdint.h>\n"
                    "extern \"C\" void imm(int8_t *A, int8_t *B, int32_t *C) {\n"
                    "  for (int i = 0; i < 19; i++)\n    for (int j = 0; j < 130; j++) {\n"
                    "      int s = 0;\n      for (int k = 0; k < 72; k++) s += A[i * 72 + k] * B[k * 130 + j];\n"
                    "      C[i * 130 + j] = s;\n    }\n}\n")
    assert tr.verified, tr.report["verification"]
    assert "__bang_matmul" in tr.report["intrinsics"]
    assert "int8 GEMM" in _matmul_note(tr)
    assert "__nram__ int8_t" in tr.text or "__nram__ int8" in tr.text  # no conversion to float
    _strict_run_matches(tmp_path, tr)


def test_matrix_vector_product_prefers_the_vector_units(tmp_path):
    """y = A x with A's rows contiguous is a row reduction the vector tensorizer takes
    (__bang_matmul would pad the one column to 32)."""
    tr = _translate(tmp_path, "mv.cpp", "extern \"C\" void mv(float *A, float *x, float *y) {\n"
                    "  for (int i = 0; i < 29; i++) {\n    float s = 0.0f;\n"
                    "    for (int k = 0; k < 53; k++) s += A[i * 53 + k] * x[k];\n    y[i] = s;\n  }\n}\n")
    assert tr.verified, tr.report["verification"]
    assert "__bang_matmul" not in tr.report["intrinsics"] and "__bang_sumpool" in tr.report["intrinsics"]


@pytest.mark.parametrize("product", ["A[i * 64 + k] * x[k]", "x[k] * A[i * 64 + k]"])
def test_int8_matrix_vector_product_uses_matmul(tmp_path, product):
    """The vector tensorizer takes float32 only: an int8 y = A x (rows 64 apart) goes to
    __bang_matmul, its missing dimension of extent 1 (either operand order: y = A x or
    y^T = x^T A^T, whose rhs A^T comes through __bang_transpose)."""
    tr = _translate(tmp_path, "mv.cpp", "#include <stdint.h>\n"
                    "extern \"C\" void mv(int8_t *A, int8_t *x, int32_t *y) {\n"
                    "  for (int i = 0; i < 29; i++) {\n    int s = 0;\n"
                    f"    for (int k = 0; k < 53; k++) s += {product};\n    y[i] = s;\n  }}\n}}\n")
    assert tr.verified, tr.report["verification"]
    assert "__bang_matmul" in tr.report["intrinsics"]
    _strict_run_matches(tmp_path, tr)


def test_long_reduction_is_split_into_wram_pieces(tmp_path):
    """K = 5000 floats: 32 columns of all of K exceed WRAM, so K comes in pieces whose
    partial products are summed with __bang_add."""
    tr = _translate(tmp_path, "lk.cpp", "extern \"C\" void lk(float *A, float *B, float *C) {\n"
                    "  for (int i = 0; i < 3; i++)\n    for (int j = 0; j < 5; j++) {\n"
                    "      float s = 0.0f;\n      for (int k = 0; k < 5000; k++) s += A[i * 5000 + k] * B[k * 5 + j];\n"
                    "      C[i * 5 + j] = s;\n    }\n}\n")
    assert tr.verified, tr.report["verification"]
    assert {"__bang_matmul", "__bang_add"} <= set(tr.report["intrinsics"])
    pieces = re.search(r"K pieces of (\d+)", _matmul_note(tr))
    assert pieces and int(pieces.group(1)) < 5000


def test_double_accumulation_declines_with_reason(tmp_path):
    tr = _translate(tmp_path, "dmm.cpp", "extern \"C\" void dmm(float *A, float *B, float *C) {\n"
                    "  for (int i = 0; i < 8; i++)\n    for (int j = 0; j < 8; j++) {\n"
                    "      double s = 0.0;\n      for (int k = 0; k < 8; k++) s += A[i * 8 + k] * B[k * 8 + j];\n"
                    "      C[i * 8 + j] = (float)s;\n    }\n}\n")
    assert tr.verified, tr.report["verification"]
    assert "__bang_matmul" not in tr.report["intrinsics"]
    assert any("no __bang_matmul" in n and "float64" in n for n in tr.report["notes"]), tr.report["notes"]


def test_rhs_with_interleaved_layout_is_packed_in_nram(tmp_path):
    """B[k1][j][k2]: neither its columns nor its reduction are contiguous, so its WRAM
    piece is packed by scalar code in NRAM (A still comes by one strided __memcpy)."""
    tr = _translate(tmp_path, "pk.cpp", "extern \"C\" void pk(float *A, float *B, float *C) {\n"
                    "  for (int i = 0; i < 9; i++)\n    for (int j = 0; j < 7; j++) {\n      float s = 0.0f;\n"
                    "      for (int k1 = 0; k1 < 5; k1++)\n        for (int k2 = 0; k2 < 4; k2++)\n"
                    "          s += A[i * 20 + k1 * 4 + k2] * B[(k1 * 7 + j) * 4 + k2];\n"
                    "      C[i * 7 + j] = s;\n    }\n}\n")
    assert tr.verified, tr.report["verification"]
    assert "(packed)" in _matmul_note(tr) and "NRAM2WRAM" in tr.text
    _strict_run_matches(tmp_path, tr)


HIP_MFMA = """
#define KD 24
__global__ void mf(const float *A, const float *B, float *D) {
  int m0 = blockIdx.x * 16;
  int n0 = blockIdx.y * 16;
  using float4 = __attribute__((__vector_size__(4 * sizeof(float)))) float;
  float4 acc = {0};
  for (int k = 0; k < KD; k += 4) {
    float a = A[(m0 + threadIdx.x) * KD + k + threadIdx.y];
    float b = B[(k + threadIdx.y) * 48 + n0 + threadIdx.x];
    acc = __builtin_amdgcn_mfma_f32_16x16x4f32(a, b, acc, 0, 0, 0);
  }
  for (int i = 0; i < 4; ++i) {
    int r = m0 + threadIdx.y * 4 + i;
    int c = n0 + threadIdx.x;
    if (r < 40 && c < 48) D[r * 48 + c] = acc[i];
  }
}
extern "C" void mf_host(float *A, float *B, float *D) {
  float *dA, *dB, *dD;
  hipMalloc(&dA, 48 * KD * sizeof(float));
  hipMalloc(&dB, KD * 48 * sizeof(float));
  hipMalloc(&dD, 40 * 48 * sizeof(float));
  hipMemcpy(dA, A, 48 * KD * sizeof(float), hipMemcpyHostToDevice);
  hipMemcpy(dB, B, KD * 48 * sizeof(float), hipMemcpyHostToDevice);
  mf<<<dim3(3, 3), dim3(16, 4)>>>(dA, dB, dD);
  hipMemcpy(D, dD, 40 * 48 * sizeof(float), hipMemcpyDeviceToHost);
  hipFree(dA); hipFree(dB); hipFree(dD);
}
"""


def test_hip_mfma_gemm_is_read_off_its_lanes(tmp_path):
    """The lifted MFMA has lane arithmetic (l / 16, l % 16), a float4 initializer written
    element by element, and a store guarded over the store loop's own counters (the
    rows: 40 of the 48 the grid covers); the matcher reads the GEMM off all three."""
    tr = _translate(tmp_path, "mf.hip", HIP_MFMA)
    assert tr.verified, tr.report["verification"]
    assert "__bang_matmul" in tr.report["intrinsics"]
    assert "40x48x24 float32 GEMM" in _matmul_note(tr)
    _strict_run_matches(tmp_path, tr)
