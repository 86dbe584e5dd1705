"""MLU tensorization: elementwise phases become NRAM chunks, __memcpy and __bang_* calls,
verified on the BANG emulator; other phases stay scalar with a reason."""
import re

from xpiler.ir import nodes as N
from xpiler.ir import types as T
from xpiler.passes.lower.cover import pointwise_patterns
from xpiler.smt.reals import prove_equal
from xpiler.translate import TranslateOptions, translate_file

from .conftest import run_strict_bang

# A CUDA kernel with host code; BODY is the guarded statement of thread i.
CUDA = """
__global__ void ew(const float *A, const float *B, float *C, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    BODY
  }
}

extern "C" void ew_host(float *A, float *B, float *C, int n) {
  float *dA, *dB, *dC;
  cudaMalloc(&dA, n * sizeof(float));
  cudaMalloc(&dB, n * sizeof(float));
  cudaMalloc(&dC, n * sizeof(float));
  cudaMemcpy(dA, A, n * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(dB, B, n * sizeof(float), cudaMemcpyHostToDevice);
  ew<<<(n + 255) / 256, 256>>>(dA, dB, dC, n);
  cudaMemcpy(C, dC, n * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(dA);
  cudaFree(dB);
  cudaFree(dC);
}
"""


def _translate(tmp_path, body: str, n: int, name="ew.cu", **params):
    path = tmp_path / name
    path.write_text(CUDA.replace("BODY", body))
    return translate_file(str(path), TranslateOptions(target="mlu", scalars={"n": n}, seeds=(0, 1),
                                                      lower_params=params))


def _fallbacks(report):
    return [n for n in report["notes"] if "scalar fallback" in n]


def test_elementwise_kernel_uses_bang_intrinsics_and_verifies(tmp_path):
    tr = _translate(tmp_path, "C[i] = fmaxf(A[i] * B[i], 0.0f) + 1.5f;", 1000)
    assert tr.verified, tr.report["verification"]
    used = set(tr.report["intrinsics"])
    assert {"__bang_mul", "__bang_active_relu", "__memcpy"} <= used
    assert any(u.startswith("__bang_add") for u in used)  # + 1.5f: a vector-scalar add
    assert "GDRAM2NRAM" in tr.text and "NRAM2GDRAM" in tr.text and "__nram__" in tr.text
    assert not _fallbacks(tr.report)


def test_remainder_of_a_chunk_verifies(tmp_path):
    # 4 tasks of 96 elements, 3 chunks of 32 each; the last task has 300 - 288 = 12,
    # which is padded up to the 32-float (128-byte) vector unit
    tr = _translate(tmp_path, "C[i] = A[i] - B[i];", 300, chunk=32, task_dim=4)
    assert tr.verified, tr.report["verification"]
    assert "__bang_sub" in tr.report["intrinsics"]
    assert re.search(r"xpiler_off \+= 32", tr.text)
    assert re.search(r"xpiler_nv = \(xpiler_n \+ 31\) / 32 \* 32", tr.text)


def test_non_matching_body_falls_back_with_reason(tmp_path):
    tr = _translate(tmp_path, "C[i] = A[i] + B[(i + 1) % n];", 100)
    assert tr.verified, tr.report["verification"]
    assert tr.report["intrinsics"] == []
    notes = _fallbacks(tr.report)
    assert notes and "load of B is not at the store's index" in notes[0]
    assert "__bang_" not in tr.text


def test_serial_cpu_nest_is_tensorized(tmp_path):
    path = tmp_path / "scale.cpp"
    path.write_text("extern \"C\" void scale(float *a, float *b) {\n"
                    "  for (int i = 0; i < 10; i++)\n"
                    "    for (int j = 0; j < 100; j++)\n"
                    "      b[i * 100 + j] = a[i * 100 + j] * 2.0f - 1.0f;\n}\n")
    tr = translate_file(str(path), TranslateOptions(target="mlu", seeds=(0,)))
    assert tr.verified, tr.report["verification"]
    assert any(u.startswith("__bang_mul") for u in tr.report["intrinsics"])
    assert "taskId == 0" not in tr.text  # spread over the tasks, not run by task 0 alone


def test_output_passes_strict_emulator_alignment(tmp_path):
    """Hardware rules the emulator checks only in strict mode: vector lengths in 128-byte
    units, operands in this task's NRAM, GDRAM ranges inside cnrtMalloc allocations."""
    from xpiler.verify.emu_adapt import adapt_for_emulator

    tr = _translate(tmp_path, "C[i] = fmaxf(A[i], 0.0f) * B[i];", 1000)
    assert tr.verified and "__bang_active_relu" in tr.report["intrinsics"]
    (tmp_path / "k.mlu").write_text(adapt_for_emulator(tr.text, "mlu"))
    (tmp_path / "main.cpp").write_text(r"""
#include <cmath>
extern "C" void ew_host(float *A, float *B, float *C, int n);
int main() {
  const int n = 1000;
  static float A[n], B[n], C[n];
  for (int i = 0; i < n; ++i) { A[i] = (i % 17) - 8.0f; B[i] = (i % 5) * 0.5f - 1.0f; C[i] = -99; }
  ew_host(A, B, C, n);
  for (int i = 0; i < n; ++i)
    if (std::fabs(std::fmax(A[i], 0.0f) * B[i] - C[i]) > 1e-6f) return 3;
  return 0;
}
""")
    r = run_strict_bang(tmp_path)
    assert r.returncode == 0, r.stderr


def test_pointwise_patterns_come_from_the_registry_meanings():
    pats = {p.sig.name: p for p in pointwise_patterns("mlu")}
    add = pats["__bang_add"]
    assert add.vec == ("src0", "src1") and add.scal == () and add.length == "n"
    assert add.expr == N.Binary("+", N.Var("$src0", T.F32), N.Var("$src1", T.F32))
    assert pats["__bang_mul_scalar"].scal == ("value",)
    assert "__gdramset" not in pats  # its destination is GDRAM, not an NRAM vector
    assert "__bang_max" not in pats  # a reduction, not pointwise


def test_real_model_proves_spellings_equal_and_rejects_differences():
    x = N.Var("x", T.F32)
    zero = N.Const(0.0, T.F32)
    relu_meaning = N.Select(N.Binary("<", x, zero), zero, x)
    assert prove_equal(N.Call("fmaxf", (x, zero)), relu_meaning)
    assert prove_equal(N.Select(N.Binary(">", x, N.Const(0, T.I32)), x, N.Const(0, T.I32)), relu_meaning)
    assert not prove_equal(N.Binary("*", x, x), x)
    # C integer division: 1 / 2 is 0, so x * (1 / 2) is not x * 0.5
    half_int = N.Binary("/", N.Const(1, T.I32), N.Const(2, T.I32))
    assert not prove_equal(N.Binary("*", x, half_int), N.Binary("*", x, N.Const(0.5, T.F32)))
    assert prove_equal(N.Call("pow", (x, N.Const(3, T.I32))), N.Binary("*", N.Binary("*", x, x), x))


ROWSUM = """
__global__ void rowsum(const float *in, float *out, int rows) {
  int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  float s = 0.0f;
  for (int k = 0; k < 50; k++) {
    s += in[r * 50 + k];
  }
  out[r] = s * 0.5f;
}

extern "C" void rowsum_host(float *in, float *out, int rows) {
  float *d_in, *d_out;
  cudaMalloc(&d_in, rows * 50 * sizeof(float));
  cudaMalloc(&d_out, rows * sizeof(float));
  cudaMemcpy(d_in, in, rows * 50 * sizeof(float), cudaMemcpyHostToDevice);
  rowsum<<<(rows + 63) / 64, 64>>>(d_in, d_out, rows);
  cudaMemcpy(out, d_out, rows * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(d_in);
  cudaFree(d_out);
}
"""


def test_row_reduction_uses_a_pool_and_verifies(tmp_path):
    path = tmp_path / "rowsum.cu"
    path.write_text(ROWSUM)
    tr = translate_file(str(path), TranslateOptions(target="mlu", scalars={"rows": 37}, seeds=(0, 1)))
    assert tr.verified, tr.report["verification"]
    used = set(tr.report["intrinsics"])
    assert "__bang_sumpool" in used and any(u.startswith("__bang_mul") for u in used)
    assert not _fallbacks(tr.report)


def test_column_reduction_into_memory_verifies(tmp_path):
    path = tmp_path / "colmax.cpp"
    path.write_text("extern \"C\" void colmax(float *a, float *out) {\n"
                    "  for (int j = 0; j < 40; j++) {\n"
                    "    out[j] = -1e30f;\n"
                    "    for (int i = 0; i < 24; i++)\n"
                    "      if (a[i * 40 + j] > out[j]) out[j] = a[i * 40 + j];\n"
                    "  }\n}\n")
    tr = translate_file(str(path), TranslateOptions(target="mlu", seeds=(0, 1)))
    assert tr.verified, tr.report["verification"]
    assert "__bang_maxpool" in tr.report["intrinsics"]
    assert re.search(r"GDRAM2NRAM,\s*[^;]*, 160, 23\)", tr.text)  # 24 rows, 40 floats apart


def test_pool_reduction_layouts_follow_the_pool_meanings():
    """mlu.POOL_REDUCTION_ARGS, run through the registry meaning, reduce rows of [n][k]
    and columns of [k][n] (what tensorization relies on)."""
    import numpy as np

    from xpiler.platforms import mlu
    from xpiler.platforms.meaning import execute
    from xpiler.platforms.registry import lookup

    rng = np.random.default_rng(0)
    n, k = 5, 7
    pool = lookup("mlu", "__bang_maxpool")
    order = [p.name for p in pool.params[2:]]
    for form, want in (("rows", lambda t: t.reshape(n, k).max(axis=1)), ("cols", lambda t: t.reshape(k, n).max(axis=0))):
        tile = rng.standard_normal(n * k).astype(np.float32)
        dst = np.zeros(n, np.float32)
        args = mlu.POOL_REDUCTION_ARGS[form](n, k)
        execute(pool, dst, tile, *[args[p] for p in order])
        assert np.array_equal(dst, want(tile)), form


def _tensorize_cpp(tmp_path, text: str) -> list:
    """tensorize_phase on every phase of a C++ kernel (no verification: fast)."""
    from xpiler.ir import nodes as N
    from xpiler.lang import parse_source
    from xpiler.passes.base import names_in
    from xpiler.passes.lift import lift_program
    from xpiler.passes.lower import _device_functions, _kernel_params
    from xpiler.passes.lower.phases import split_phases
    from xpiler.passes.lower.tensorize_mlu import tensorize_phase
    from xpiler.platforms.config import load_platform_config

    canon = lift_program(parse_source(text, "cpu", str(tmp_path / "k.cpp")), load_platform_config("cpu"))
    params = {p.name: p.dtype for p in _kernel_params(canon)}
    devices = {f.name: f for f in _device_functions(canon)}
    limits = load_platform_config("mlu")["limits"]
    return [tensorize_phase(ph, params, devices, limits,
                            names_in(N.Block(tuple(ph.prelude) + ph.body.body)) | set(params))
            for ph in split_phases(canon.function.body)]


def test_index_used_as_data_is_not_tensorized(tmp_path):
    (r,) = _tensorize_cpp(tmp_path, "extern \"C\" void kd(float *a, float *out) {\n"
                                    "  for (int j = 0; j < 40; j++) {\n    float s = 0.0f;\n"
                                    "    for (int i = 0; i < 24; i++) s += a[j * 24 + i] * i;\n"
                                    "    out[j] = s;\n  }\n}\n")
    assert r.stmts is None and "loop index as data" in r.reason
    (r,) = _tensorize_cpp(tmp_path, "extern \"C\" void ix(float *a, float *out) {\n"
                                    "  for (int j = 0; j < 40; j++) out[j] = a[j] + j;\n}\n")
    assert r.stmts is None and "loop index as data" in r.reason


def test_whole_array_reduction_verifies(tmp_path):
    """One output (the serial phase is one iteration; its accumulator is declared before
    the loop, in the replicated prelude)."""
    path = tmp_path / "total.cpp"
    path.write_text("extern \"C\" void total(float *a, float *out) {\n  float s = 1.0f;\n"
                    "  for (int i = 0; i < 100; i++) s += a[i];\n  out[0] = s;\n}\n")
    tr = translate_file(str(path), TranslateOptions(target="mlu", seeds=(0, 1)))
    assert tr.verified, tr.report["verification"]
    used = tr.report["intrinsics"]
    assert "__bang_sumpool" in used and any(u.startswith("__bang_add") for u in used)  # + the initial 1.0f


# --------------------------------------------------------------------------- row programs
SOFTMAX = """
__global__ void smax(const float *A, float *C, int rows) {
  int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r < rows) {
    float m = A[r * 100];
    for (int k = 1; k < 100; ++k) m = fmaxf(m, A[r * 100 + k]);
    float s = 0.0f;
    for (int k = 0; k < 100; ++k) {
      C[r * 100 + k] = expf(A[r * 100 + k] - m);
      s += C[r * 100 + k];
    }
    for (int k = 0; k < 100; ++k) C[r * 100 + k] = C[r * 100 + k] / s;
  }
}

extern "C" void smax_host(float *A, float *C, int rows) {
  float *dA, *dC;
  cudaMalloc(&dA, rows * 100 * sizeof(float));
  cudaMalloc(&dC, rows * 100 * sizeof(float));
  cudaMemcpy(dA, A, rows * 100 * sizeof(float), cudaMemcpyHostToDevice);
  smax<<<(rows + 31) / 32, 32>>>(dA, dC, rows);
  cudaMemcpy(C, dC, rows * 100 * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(dA);
  cudaFree(dC);
}
"""


def test_softmax_rows_use_pools_and_verify(tmp_path):
    """Each thread's row (100 floats, padded to 128): max pool (the loop from element 1
    starts from element 0), exp of the difference, sum pool, division by a scalar."""
    path = tmp_path / "smax.cu"
    path.write_text(SOFTMAX)
    tr = translate_file(str(path), TranslateOptions(target="mlu", scalars={"rows": 37}, seeds=(0, 1)))
    assert tr.verified, tr.report["verification"]
    used = set(tr.report["intrinsics"])
    assert {"__bang_maxpool", "__bang_sumpool", "__bang_sub_scalar", "__bang_div_scalar"} <= used
    assert any("exp" in u for u in used)
    assert not _fallbacks(tr.report)
    assert "1, 1, 100, 1, 100" in tr.text  # the pools read exactly the row, not its padding


def test_layernorm_rows_with_a_local_array_verify(tmp_path):
    path = tmp_path / "lnorm.cpp"
    path.write_text("extern \"C\" void lnorm(float *x, float *g, float *b, float *y) {\n"
                    "  for (int r = 0; r < 12; r++) {\n"
                    "    float mean = 0.0f;\n    float var = 0.0f;\n    float d[80];\n"
                    "    for (int k = 0; k < 80; k++) mean += x[r * 80 + k];\n"
                    "    mean = mean / 80;\n"
                    "    for (int k = 0; k < 80; k++) {\n      d[k] = x[r * 80 + k] - mean;\n"
                    "      var += d[k] * d[k];\n    }\n"
                    "    float inv = 1.0f / sqrtf(var / 80 + 1e-5f);\n"
                    "    for (int k = 0; k < 80; k++) y[r * 80 + k] = d[k] * inv * g[k] + b[k];\n"
                    "  }\n}\n")
    tr = translate_file(str(path), TranslateOptions(target="mlu", seeds=(0, 1)))
    assert tr.verified, tr.report["verification"]
    used = set(tr.report["intrinsics"])
    assert "__bang_sumpool" in used and "__bang_mul" in used and "__bang_add" in used  # g[k], b[k]: rows
    assert not _fallbacks(tr.report)
    assert "taskId == 0" not in tr.text


def test_per_channel_scalar_is_computed_once_per_row(tmp_path):
    """C[i] uses B[(i / 64) % 4]: rows of 64 elements (the group view) share one scalar."""
    tr = _translate(tmp_path, "int c = (i / 64) % 4;\n    C[i] = (A[i] - B[c]) * 2.0f;", 1024)
    assert tr.verified, tr.report["verification"]
    used = set(tr.report["intrinsics"])
    assert "__bang_sub_scalar" in used and any(u.startswith("__bang_mul") for u in used)
    assert any("rows of 64 elements" in n for n in tr.report["notes"])


def test_broadcast_row_operand_verifies(tmp_path):
    """C[i] = A[i] + B[i % 64], and y[i][j] = x[i][j] * 0.5 + b[j] over a nest: the
    broadcast operand is a row operand of every row (rows of 64, of the inner extent)."""
    tr = _translate(tmp_path, "C[i] = A[i] + B[i % 64];", 640)
    assert tr.verified, tr.report["verification"]
    assert "__bang_add" in tr.report["intrinsics"]
    assert not _fallbacks(tr.report)
    path = tmp_path / "bias.cpp"
    path.write_text("extern \"C\" void bias(float *x, float *b, float *y) {\n  for (int i = 0; i < 10; i++)\n"
                    "    for (int j = 0; j < 48; j++)\n      y[i * 48 + j] = x[i * 48 + j] * 0.5f + b[j];\n}\n")
    tr = translate_file(str(path), TranslateOptions(target="mlu", seeds=(0, 1)))
    assert tr.verified, tr.report["verification"]
    assert "__bang_add" in tr.report["intrinsics"] and any("rows of 48" in n for n in tr.report["notes"])


OUTER = """
__global__ void outer(float *A, float *B, float *C) {
  for (int o = 0; o < 4; ++o) {
    C[o * 512 + blockIdx.x * 128 + threadIdx.x] =
        A[o * 512 + blockIdx.x * 128 + threadIdx.x] * B[o * 512 + blockIdx.x * 128 + threadIdx.x];
  }
}

extern "C" void outer_host(float *A, float *B, float *C) {
  float *dA, *dB, *dC;
  cudaMalloc(&dA, 2048 * sizeof(float));
  cudaMalloc(&dB, 2048 * sizeof(float));
  cudaMalloc(&dC, 2048 * sizeof(float));
  cudaMemcpy(dA, A, 2048 * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(dB, B, 2048 * sizeof(float), cudaMemcpyHostToDevice);
  outer<<<4, 128>>>(dA, dB, dC);
  cudaMemcpy(C, dC, 2048 * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(dA);
  cudaFree(dB);
  cudaFree(dC);
}
"""


def test_outer_loop_elementwise_becomes_one_range(tmp_path):
    """TVM's outer loop inside the thread: the loop joins the nest as its outermost loop."""
    path = tmp_path / "outer.cu"
    path.write_text(OUTER)
    tr = translate_file(str(path), TranslateOptions(target="mlu", seeds=(0, 1)))
    assert tr.verified, tr.report["verification"]
    assert "__bang_mul" in tr.report["intrinsics"]
    assert not _fallbacks(tr.report)


def test_row_programs_decline_what_is_not_row_parallel(tmp_path):
    # a prefix sum reads the accumulator after its update in the loop
    (r,) = _tensorize_cpp(tmp_path, "extern \"C\" void pre(float *a, float *out) {\n"
                                    "  for (int r = 0; r < 8; r++) {\n    float s = 0.0f;\n"
                                    "    for (int k = 0; k < 64; k++) {\n      s += a[r * 64 + k];\n"
                                    "      out[r * 64 + k] = s;\n    }\n  }\n}\n")
    assert r.stmts is None and "prefix sum" in r.reason
    # each row is divided by the sum of the next row, which another iteration rewrites
    (r,) = _tensorize_cpp(tmp_path, "extern \"C\" void nxt(float *a) {\n"
                                    "  for (int r = 0; r < 8; r++) {\n    float s = 0.0f;\n"
                                    "    for (int k = 0; k < 64; k++) s += a[((r + 1) % 8) * 64 + k];\n"
                                    "    for (int k = 0; k < 64; k++) a[r * 64 + k] = a[r * 64 + k] / s;\n"
                                    "  }\n}\n")
    assert r.stmts is None and "does not write" in r.reason


def test_reduction_over_a_middle_axis_uses_slabs(tmp_path):
    """out[n][s] = min over c of x[n][c][s]: each slab of 40 outputs reads 6 rows 40 apart,
    the slabs 240 apart; chunks divide the slab, so one strided copy reads a chunk."""
    path = tmp_path / "midmin.cpp"
    path.write_text("extern \"C\" void midmin(float *x, float *out) {\n"
                    "  for (int n = 0; n < 3; n++)\n    for (int s = 0; s < 40; s++) {\n"
                    "      float m = 1e30f;\n"
                    "      for (int c = 0; c < 6; c++) m = fminf(m, x[n * 240 + c * 40 + s]);\n"
                    "      out[n * 40 + s] = m;\n    }\n}\n")
    tr = translate_file(str(path), TranslateOptions(target="mlu", seeds=(0, 1)))
    assert tr.verified, tr.report["verification"]
    assert "__bang_minpool" in tr.report["intrinsics"]
    # 6 rows, 40 floats apart, from the slab's start (off + off / 40 * 200)
    assert re.search(r"off / 40ll \* 200ll[^;]*GDRAM2NRAM,[^;]*160,\s*5\)", tr.text), tr.text


def test_accumulating_rows_over_an_outer_loop_interchanges(tmp_path):
    """for i: for j: out[j] += in[i][j] is a column reduction for each j (the loops swap:
    every (j) touches only out[j])."""
    path = tmp_path / "colsum.cpp"
    path.write_text("extern \"C\" void colsum(float *in, float *out) {\n"
                    "  for (int j = 0; j < 64; j++) out[j] = 0.0f;\n"
                    "  for (int i = 0; i < 20; i++)\n    for (int j = 0; j < 64; j++)\n"
                    "      out[j] += in[i * 64 + j];\n}\n")
    tr = translate_file(str(path), TranslateOptions(target="mlu", seeds=(0, 1)))
    assert tr.verified, tr.report["verification"]
    assert "__bang_sumpool" in tr.report["intrinsics"]
    assert not _fallbacks(tr.report)


def test_sibling_channel_loops_fuse_into_rows(tmp_path):
    """Instance norm written as three loops over the channels (mean, variance, normalize)
    that talk through mean[c], var[c]: fused (loops/fuse.py proves it legal), each channel
    is a row and the arrays become per-row scalars."""
    path = tmp_path / "inorm.cpp"
    path.write_text("extern \"C\" void inorm(float *x, float *y) {\n  int C = 6;\n  int HW = 50;\n"
                    "  float mean[16];\n  float var[16];\n"
                    "  for (int c = 0; c < C; c++) {\n    float s = 0.0f;\n"
                    "    for (int k = 0; k < HW; k++) s += x[c * HW + k];\n    mean[c] = s / HW;\n  }\n"
                    "  for (int c = 0; c < C; c++) {\n    float q = 0.0f;\n"
                    "    for (int k = 0; k < HW; k++) {\n      float d = x[c * HW + k] - mean[c];\n"
                    "      q += d * d;\n    }\n    var[c] = q / HW;\n  }\n"
                    "  for (int c = 0; c < C; c++) {\n    float inv = 1.0f / sqrtf(var[c] + 1e-5f);\n"
                    "    for (int k = 0; k < HW; k++) y[c * HW + k] = (x[c * HW + k] - mean[c]) * inv;\n  }\n}\n")
    tr = translate_file(str(path), TranslateOptions(target="mlu", seeds=(0, 1)))
    assert tr.verified, tr.report["verification"]
    assert "__bang_sumpool" in tr.report["intrinsics"]
    assert not _fallbacks(tr.report)
    assert "taskId == 0" not in tr.text  # the channels are spread over the tasks
