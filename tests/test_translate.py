"""Translation in every direction, verified by differential testing (a CI sample)."""
import json

import pytest

from xpiler.bench import load_cases
from xpiler.cli import main
from xpiler.translate import TranslateOptions, TranslationError, translate_file

from .conftest import BENCH, DIALECT_DIRS

PLATFORMS = ("cuda", "hip", "mlu", "cpu")
# one small kernel per source platform (test data; the translator knows nothing of them)
SAMPLE = {"cuda": "add_18_128.cu", "hip": "softmax_12_3_128.hip", "mlu": "add_18_128.mlu", "cpu": "sign_5_7_3_32.cpp"}


def _case(path, dialect):
    return load_cases(None).case_for(str(path), dialect)


@pytest.mark.parametrize("src,dst", [(a, b) for a in PLATFORMS for b in PLATFORMS if a != b])
def test_sample_translation_verifies(bench_dir, src, dst):
    path = bench_dir / DIALECT_DIRS[src] / SAMPLE[src]
    case = _case(path, src)
    tr = translate_file(str(path), TranslateOptions(target=dst, scalars=case.scalars, extents=case.extents,
                                                    seeds=(0, 1), inputs=case.make_inputs))
    assert tr.verified, tr.report
    v = tr.report["verification"]
    assert v["status"] == "verified" and v["seeds"] == [0, 1]
    assert v["max_abs_err"] <= 1e-3
    assert tr.text.startswith("// Translated by xpiler")


def test_wrong_translation_is_not_verified(bench_dir, monkeypatch):
    """Break the lowering on purpose: the result must be reported as failing, never verified."""
    import xpiler.passes.lower as lower_mod
    from xpiler.ir import nodes as N

    original = lower_mod.index_decls

    def off_by_one(loops, flat):
        return original(loops, N.Binary("+", flat, N.Const(1, flat.dtype if hasattr(flat, "dtype") else None)))

    monkeypatch.setattr(lower_mod, "index_decls", off_by_one)
    path = bench_dir / "MLU" / "add_18_128.mlu"
    with pytest.raises(TranslationError) as e:
        translate_file(str(path), TranslateOptions(target="cuda", seeds=(0,)))
    assert e.value.report["verified"] is False
    assert e.value.report["verification"]["status"] == "failed"


def test_translate_cli_writes_kernel_and_report(bench_dir, tmp_path, capsys):
    path = bench_dir / "MLU" / "add_18_128.mlu"
    rc = main(["translate", str(path), "--to", "cpu", "-o", str(tmp_path), "--seeds", "1"])
    assert rc == 0
    kernel = tmp_path / "add_18_128.cpp"
    report = json.loads((tmp_path / "add_18_128.cpp.json").read_text())
    assert kernel.read_text().startswith("// Translated by xpiler")
    assert report["verified"] is True and report["from"] == "mlu" and report["to"] == "cpu"
    assert report["verification"]["engines"] == {"source": "emu", "translated": "native"}
    assert {p["name"] for p in report["passes"]} >= {"lift", "lower-cpu"}


HOST = """extern "C" void {name}(const float *a, float *c) {{
  float *d_a, *d_c;
  cudaMalloc(&d_a, 256 * sizeof(float));
  cudaMalloc(&d_c, 256 * sizeof(float));
  cudaMemcpy(d_a, a, 256 * sizeof(float), cudaMemcpyHostToDevice);
  {name}_kernel<<<{grid}, 64>>>(d_a, d_c);
  cudaMemcpy(c, d_c, 256 * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(d_a);
  cudaFree(d_c);
}}
"""


def test_cpu_output_runs_parallel_loops_on_threads_only_where_proved(tmp_path):
    ok = tmp_path / "twice.cu"
    ok.write_text("__global__ void twice_kernel(const float *a, float *c) {\n"
                  "  int i = blockIdx.x * 64 + threadIdx.x;\n  c[i] = a[i] * 2.0f;\n}\n"
                  + HOST.format(name="twice", grid=4))
    tr = translate_file(str(ok), TranslateOptions(target="cpu", seeds=(0,)))
    assert tr.verified and "#pragma omp parallel for" in tr.text
    # every block writes the same 64 elements: threads must not run the blocks at once
    racy = tmp_path / "same.cu"
    racy.write_text("__global__ void same_kernel(const float *a, float *c) {\n"
                    "  c[threadIdx.x] = a[threadIdx.x] * 2.0f;\n}\n" + HOST.format(name="same", grid=4))
    tr = translate_file(str(racy), TranslateOptions(target="cpu", seeds=(0,), extents={"a": 256, "c": 256}))
    assert "#pragma omp parallel for" not in tr.text
    assert any(n.startswith("no OpenMP on loop blockIdx_x: loop blockIdx_x carries a dependence: ")
               for n in tr.report["notes"]), tr.report["notes"]


def test_plain_c_loops_become_parallel_kernels(tmp_path):
    src = tmp_path / "axpy.cpp"
    src.write_text('extern "C" void axpy(float *x, float *y, float *acc) {\n'
                   "  for (int i = 0; i < 1000; i++) {\n    y[i] = 3.0f * x[i] + y[i];\n  }\n"
                   "  for (int i = 1; i < 1000; i++) {\n    acc[i] = acc[i - 1] + y[i];\n  }\n}\n")
    tr = translate_file(str(src), TranslateOptions(target="cuda", seeds=(0,)))
    assert tr.verified
    grids = [line for line in tr.text.splitlines() if "<<<" in line]
    assert len(grids) == 2 and "dim3(4ll), dim3(256)" in grids[0], grids  # 1000 iterations on threads
    assert "<<<dim3(1), dim3(1)>>>" in grids[1]  # the scan stays one sequential thread
    assert any("serial: loop i carries a dependence: " in n for n in tr.report["notes"]), tr.report["notes"]


def test_same_vector_name_in_sibling_scopes_keeps_each_width(tmp_path):
    """`__m512i acc` in one loop and `__m128i acc` in the next: each becomes an array of its
    own width (taking the last declaration's width for both wrote 64 bytes into 16)."""
    from xpiler.ir import nodes as N
    from xpiler.ir.visitor import walk
    from xpiler.lang import parse_source
    from xpiler.passes.lift import lift_program
    from xpiler.platforms.config import load_platform_config

    src = tmp_path / "two.cpp"
    src.write_text(
        'extern "C" void two(float *x, float *y, float *out) {\n'
        "  int8_t a64[64]; int8_t b64[64]; int32_t d16[16]; int8_t a16[16]; int8_t b16[16]; int32_t d4[4];\n"
        "  for (int r = 0; r < 2; r++) {\n"
        "    for (int i = 0; i < 64; i++) { a64[i] = (int8_t)x[r * 64 + i]; b64[i] = (int8_t)y[r * 64 + i]; }\n"
        "    __m512i acc = _mm512_setzero_si512();\n"
        "    __m512i va = _mm512_loadu_si512(a64);\n    __m512i vb = _mm512_loadu_si512(b64);\n"
        "    acc = _mm512_dpbusd_epi32(acc, va, vb);\n"
        "    _mm512_storeu_si512(d16, acc);\n"
        "    int s = 0;\n    for (int k = 0; k < 16; k++) s += d16[k];\n"
        "    out[r] = (float)s;\n  }\n"
        "  for (int r = 0; r < 2; r++) {\n"
        "    for (int i = 0; i < 16; i++) { a16[i] = (int8_t)x[r * 16 + i]; b16[i] = (int8_t)y[r * 16 + i]; }\n"
        "    __m128i acc = _mm_setzero_si128();\n"
        "    __m128i va = _mm_loadu_si128((const __m128i *)a16);\n"
        "    __m128i vb = _mm_loadu_si128((const __m128i *)b16);\n"
        "    acc = _mm_dpbusds_epi32(acc, va, vb);\n"
        "    _mm_storeu_si128((__m128i *)d4, acc);\n"
        "    int s = 0;\n    for (int k = 0; k < 4; k++) s += d4[k];\n"
        "    out[2 + r] = (float)s;\n  }\n}\n")
    canon = lift_program(parse_source(src.read_text(), "cpu", str(src)), load_platform_config("cpu"))
    widths = [d.dtype.shape[0].value for d in walk(canon.function) if isinstance(d, N.Decl) and d.name == "acc"]
    assert widths == [8, 2]
    tr = translate_file(str(src), TranslateOptions(target="cuda", seeds=(0,), extents={"x": 128, "y": 128, "out": 4}))
    assert tr.verified, tr.report["verification"]
