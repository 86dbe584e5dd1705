"""Running kernels: extents, inputs, engines, comparison."""
import numpy as np
import pytest

from xpiler.cli import main
from xpiler.lang import parse_source
from xpiler.verify.compare import compare_arrays
from xpiler.verify.extents import ExtentError, infer_extents
from xpiler.verify.inputs import POISON_BYTE, make_inputs
from xpiler.verify.kernel import prepare

MLU = """extern "C" __mlu_global__ void add(float *a, float *b, float *c) {
  __nram__ float buf[256];
  for (int i = 0; i < 2; ++i) {
    if (i * 16 + clusterId * 4 + coreId < 18) {
      __memcpy(buf, a + (i * 16 + clusterId * 4 + coreId) * 128, 512, GDRAM2NRAM);
      __memcpy(buf + 128, b + (i * 16 + clusterId * 4 + coreId) * 128, 512, GDRAM2NRAM);
      __bang_add(buf, buf, buf + 128, 128);
      __memcpy(c + (i * 16 + clusterId * 4 + coreId) * 128, buf, 512, NRAM2GDRAM);
    }
  }
}"""

SPECIALS = {"clusterId": (0, 3), "coreId": (0, 3), "taskId": (0, 15)}


def test_extents_use_guards_for_exact_bounds():
    p = parse_source(MLU, "mlu", "add.mlu")
    ext = infer_extents(p, p.kernels[0], {}, SPECIALS)
    assert ext == {"a": 18 * 128 * 4, "b": 18 * 128 * 4, "c": 18 * 128 * 4}


def test_extents_strided_dma_and_local_definitions():
    src = """extern "C" void f(float *x, float *y) {
  for (int r = 0; r < 4; r++) {
    for (int c = 0; c < 8; c++) {
      int idx = r * 8 + c;
      y[idx] = x[idx * 2 + 1];
    }
  }
}"""
    p = parse_source(src, "cpu", "f.cpp")
    assert infer_extents(p, p.kernels[0], {}, {}) == {"x": (31 * 2 + 2) * 4, "y": 32 * 4}
    src2 = """extern "C" __mlu_global__ void g(float *in) {
  __nram__ float t[64];
  __memcpy(t, in + coreId * 10, 16, GDRAM2NRAM, 16, 40, 3);
}"""
    p2 = parse_source(src2, "mlu", "g.mlu")
    # 4 segments of 16 bytes, 40 bytes apart, from element 30 at most
    assert infer_extents(p2, p2.kernels[0], {}, SPECIALS) == {"in": 30 * 4 + 3 * 40 + 16}


def test_extents_data_dependent_index_is_reported():
    src = """extern "C" void gather(float *p, int *idx, float *out) {
  for (int i = 0; i < 8; i++) out[i] = p[idx[i]];
}"""
    prog = parse_source(src, "cpu", "g.cpp")
    with pytest.raises(ExtentError, match=r"p at g.cpp:2:\d+"):
        infer_extents(prog, prog.kernels[0], {}, {})
    assert infer_extents(prog, prog.kernels[0], {}, {}, {"p": 400})["p"] == 400


def test_inputs_poison_outputs_and_are_seeded():
    class B:
        def __init__(self, name, role):
            self.name, self.role = name, role
    bufs = [B("x", "in"), B("y", "out")]
    a = make_inputs(bufs, {"x": 64, "y": 64}, {"n": 3}, 1, {"x": np.float32, "y": np.float32})
    b = make_inputs(bufs, {"x": 64, "y": 64}, {"n": 3}, 1, {"x": np.float32, "y": np.float32})
    c = make_inputs(bufs, {"x": 64, "y": 64}, {"n": 3}, 2, {"x": np.float32, "y": np.float32})
    assert np.array_equal(a["x"], b["x"]) and not np.array_equal(a["x"], c["x"])
    assert (a["x"] < 0).any(), "signed values by default"
    assert set(a["y"].view(np.uint8)) == {POISON_BYTE} and a["n"] == 3


def test_compare_tolerances_and_flags():
    x = np.linspace(-1, 1, 100).astype(np.float32)
    assert compare_arrays("o", x, x + 5e-4).ok
    bad = x.copy()
    bad[7] += 0.1
    c = compare_arrays("o", x, bad)
    assert not c.ok and c.first_mismatch == 7 and c.mismatches == 1
    assert "all-zero output" in compare_arrays("o", np.zeros(4, np.float32), np.zeros(4, np.float32)).flags
    assert not compare_arrays("i", np.arange(4), np.arange(4) + 1).ok  # integers are exact


CPU_SCALE = """extern "C" void scale(float *x, float *y) {
  for (int i = 0; i < 100; i++) y[i] = 2.0f * x[i];
}"""


def test_native_run_and_asan(tmp_path):
    f = tmp_path / "scale.cpp"
    f.write_text(CPU_SCALE)
    k = prepare(str(f))
    assert k.sizes == {"x": 400, "y": 400}
    ins = k.inputs(0)
    out = k.run(ins, "native").outputs
    assert np.allclose(out["y"], 2 * ins["x"])
    # An off-by-one read past the end is found by AddressSanitizer, with the source line.
    g = tmp_path / "oob.cpp"
    g.write_text(CPU_SCALE.replace("2.0f * x[i]", "2.0f * x[i + 1]"))
    k2 = prepare(str(g), extents={"x": 100})
    from xpiler.verify.engines import EngineError
    with pytest.raises(EngineError) as e:
        k2.run(k2.inputs(0), "native", asan=True)
    assert e.value.stage == "asan" and "heap-buffer-overflow" in str(e.value)


def test_compare_cli_catches_a_wrong_kernel(tmp_path, capsys):
    a = tmp_path / "a.cpp"
    a.write_text(CPU_SCALE)
    b = tmp_path / "b.cpp"
    b.write_text(CPU_SCALE.replace("y[i] = 2.0f * x[i]", "y[i] = 2.0f * x[i] + (i == 57 ? 1.0f : 0.0f)"))
    assert main(["compare", str(a), str(a), "--seeds", "1"]) == 0
    assert main(["compare", str(a), str(b), "--seeds", "1"]) == 1
    assert "first at index 57" in capsys.readouterr().out


# ---------------------------------------------------------------- undefined by the source
RACE = """__global__ void last_kernel(const float *a, float *out) {
  out[threadIdx.x] = a[blockIdx.x * 32 + threadIdx.x];  // every block writes the same 32
}
extern "C" void last(const float *a, float *out) {
  float *d_a, *d_out;
  cudaMalloc(&d_a, 64 * sizeof(float));
  cudaMalloc(&d_out, 32 * sizeof(float));
  cudaMemcpy(d_a, a, 64 * sizeof(float), cudaMemcpyHostToDevice);
  last_kernel<<<2, 32>>>(d_a, d_out);
  cudaMemcpy(out, d_out, 32 * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(d_a);
  cudaFree(d_out);
}
"""


def _verify(src_text, src_dialect, out_text, out_dialect, tmp_path, name="k.cu"):
    from types import SimpleNamespace

    from xpiler.verify.differential import verify_translation

    path = tmp_path / name
    path.write_text(src_text)
    opts = SimpleNamespace(scalars={}, extents={}, seeds=(0,), engine=None, timeout=120)
    return verify_translation(str(path), src_text, src_dialect, out_text, out_dialect, opts)


@pytest.mark.parametrize("block,ok", [(0, True), (1, True), (None, False)])
def test_a_racing_source_accepts_either_orders_result_and_nothing_else(tmp_path, block, ok):
    value = "0.0f" if block is None else f"a[{block} * 32 + i]"
    out = ('extern "C" void last(const float *a, float *out) {\n'
           f"  for (int i = 0; i < 32; i++) out[i] = {value};\n}}\n")
    r = _verify(RACE, "cuda", out, "cpu", tmp_path)
    assert (r["status"] == "verified") == ok, r
    if ok and block == 0:  # the reverse order's result (forward order ends with block 1)
        assert r["order_dependent_elements"] == {"seed 0": {"out": 32}}
    if not ok:
        assert "the source races on 32 elements of out" in r["reason"], r["reason"]


def test_a_difference_in_a_source_asan_convicts_is_the_sources(tmp_path):
    src = ('extern "C" void tail(const float *a, float *out) {\n'
           "  for (int i = 0; i < 16; i++) out[i] = a[i] + a[i + 1];  // reads a[16]\n}\n")
    out = ('extern "C" void tail(const float *a, float *out) {\n'
           "  for (int i = 0; i < 16; i++) out[i] = a[i] + (i < 15 ? a[i + 1] : 12345.0f);\n}\n")
    from types import SimpleNamespace

    from xpiler.verify.differential import verify_translation

    path = tmp_path / "tail.cpp"
    path.write_text(src)
    opts = SimpleNamespace(scalars={}, extents={"a": 16, "out": 16}, seeds=(0,), engine=None, timeout=120)
    r = verify_translation(str(path), src, "cpu", out, "cpu", opts)
    assert r["status"] == "failed" and r["side"] == "source", r
    assert "the source itself fails under AddressSanitizer" in r["reason"] and "tail.cpp:2" in r["reason"], r
