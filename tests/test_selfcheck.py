"""`xpiler selfcheck`: benchmark kernels against the numpy references of bench/operators.py."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from xpiler import paths
from xpiler.cli import main
from xpiler.verify.selfcheck import classify_build_error, load_plugin

REFS = str(paths.repo_root() / "bench" / "operators.py")


@pytest.fixture(scope="module")
def plugin():
    return load_plugin(REFS)


def _link(tmp_path, bench_dir, *rel):
    for r in rel:
        (tmp_path / (bench_dir / r).name).symlink_to(bench_dir / r)


def test_cli_selfcheck_matches(tmp_path, bench_dir, capsys):
    d = tmp_path / "k"
    d.mkdir()
    _link(d, bench_dir, "CPP/add_18_128.cpp", "CPP/softmax_12_3_128.cpp", "MLU/add_18_128.mlu")
    out = tmp_path / "r.json"
    assert main(["selfcheck", str(d), "--json", str(out), "--jobs", "2"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"3 files: 3 match", text), text
    data = json.loads(out.read_text())
    assert isinstance(data, list) and sum(r["status"] == "match" for r in data) == 3
    assert all({"file", "platform", "status", "reason", "max_abs_err"} <= set(r) for r in data)
    by = {r["file"].rsplit("/", 1)[-1]: r for r in data}
    assert {r["platform"] for r in by.values()} == {"cpu", "mlu"}
    for r in by.values():
        assert r["status"] == "match", r
        assert r["max_abs_err"] is not None and r["max_abs_err"] < 1e-5, r


def test_off_by_one_kernel_is_not_a_match(tmp_path, bench_dir):
    src = (bench_dir / "CPP" / "add_18_128.cpp").read_text()
    broken = src.replace("input2[index]", "input2[index + 1]")
    assert broken != src
    d = tmp_path / "k"
    d.mkdir()
    (d / "add_18_128.cpp").write_text(broken)
    out = tmp_path / "r.json"
    assert main(["selfcheck", str(d), "--json", str(out)]) == 0
    (r,) = json.loads(out.read_text())
    assert r["status"] in ("mismatch", "source-defect"), r
    assert r["status"] != "match"


def test_mlu_placeholder_is_a_source_defect_with_compiler_message(tmp_path, bench_dir):
    d = tmp_path / "k"
    d.mkdir()
    _link(d, bench_dir, "MLU/max_16_32.mlu")
    out = tmp_path / "r.json"
    assert main(["selfcheck", str(d), "--json", str(out)]) == 0
    (r,) = json.loads(out.read_text())
    assert r["status"] == "source-defect", r
    assert "does not compile" in r["reason"] and "error" in r["evidence"]


def test_references_know_axes_and_reproduce_known_defects(plugin, bench_dir):
    # the reduction axis is not in the benchmark's arguments: every axis is a variant
    case = plugin.case_for(str(bench_dir / "CPP" / "max_16_32_32.cpp"), "cpu")
    assert case is not None and len(case.variants) == 2
    ins = case.make_inputs(1)
    x = ins[case.buffers[0]].reshape(16, 32, 32)
    out = case.buffers[1]
    assert np.allclose(case.variants[0][1](ins)[out], x.max(axis=0).reshape(-1))
    assert np.allclose(case.expected(ins)[out], x.max(axis=2).reshape(-1))
    # gemm: a col_major load of row-major B is recognized, the plain product is not a defect
    case = plugin.case_for(str(bench_dir / "CUDA" / "gemm_32_32_128.cu"), "cuda")
    ins = case.make_inputs(0)
    a_name, b_name, c_name = case.buffers
    a = ins[a_name].astype(np.float64).reshape(32, 32)
    b = ins[b_name].astype(np.float64).reshape(32, 128)
    bt = b.reshape(2, 16, 8, 16).swapaxes(1, 3).reshape(32, 128)
    assert "blockwise-transposed" in case.explain(ins, {c_name: (a @ bt).reshape(-1).astype(np.float32)})
    assert case.explain(ins, {c_name: (a @ b).reshape(-1).astype(np.float32) + 1}) is None
    # a kernel whose file name is not an operator gets no case, with a reason
    assert plugin.case_for("/nowhere/frobnicate_3_4.cu", "cuda") is None
    assert "frobnicate" in plugin.LAST_REASON


def test_build_errors_in_runtime_headers_are_engine_gaps():
    rt = str(paths.runtime_dir() / "bang_emu.h")
    st, why = classify_build_error(f"{rt}:12:3: error: 'foo' was not declared in this scope\n", "emu")
    assert st == "engine-gap" and "bang_emu.h" in why
    st, why = classify_build_error("kernel.cpp:7:5: error: '__bang_frob' was not declared in this scope\n", "emu")
    assert st == "engine-gap" and "__bang_frob" in why
    st, why = classify_build_error("kernel.cpp:9:1: error: redeclaration of 'int i'\n", "emu")
    assert st == "source-defect" and "redeclaration" in why


def _strict_run(plugin, path):
    """Build ``path`` with the verification harness in BANG strict mode and run it."""
    from xpiler.verify.kernel import prepare
    from xpiler.verify.selfcheck import STRICT_FLAGS, run_with_flags

    case = plugin.case_for(str(path), "mlu")
    k = prepare(str(path), case.scalars, dict(case.extents or {}), dialect="mlu")
    ins = case.make_inputs(0)
    run_in = {b.name: np.resize(ins.get(b.name, np.zeros(1, k.dtypes[b.name])).astype(k.dtypes[b.name]),
                                k.sizes[b.name] // k.dtypes[b.name].itemsize) for b in k.entry.buffers}
    run_in.update(k.scalars)
    return case, ins, run_with_flags(k, run_in, "emu", STRICT_FLAGS["mlu"], 120)


def test_bang_strict_mode_through_the_harness(plugin, bench_dir):
    """The harness registers the buffers it hands a BANG kernel as GDRAM: a correct kernel
    passes strict mode; one that runs vector ops on GDRAM (layernorm) is named."""
    from xpiler.verify.engines import EngineError

    case, ins, out = _strict_run(plugin, bench_dir / "MLU" / "add_18_128.mlu")
    (name, exp), = case.expected(ins).items()
    np.testing.assert_allclose(out[name][:exp.size], exp, atol=1e-5)
    with pytest.raises(EngineError) as e:
        _strict_run(plugin, bench_dir / "MLU" / "layernorm_1_4_32.mlu")
    assert "xpiler bang emulator error: __bang_" in e.value.log
    assert "is a GDRAM pointer, but this operand must be on-chip (NRAM/WRAM)" in e.value.log


@pytest.mark.parametrize("name,axis_elements", [("gather_1000_2048_8.cu", 1000 * 2048 * 4),
                                                ("gather_50_128_4.hip", 50 * 2 * 4),
                                                ("gather_100_32_16.cu", 8 * 32 * 16)])
def test_gather_output_size_follows_the_kernels_axis(plugin, bench_dir, name, axis_elements):
    """CUDA/HIP gather kernels hard-code the axis (0, 1 or 2); the case's output size and
    reference are those of the axis whose output the host code copies back."""
    dialect = "cuda" if name.endswith(".cu") else "hip"
    path = bench_dir / ("CUDA" if dialect == "cuda" else "HIP") / name
    case = plugin.case_for(str(path), dialect)
    out = case.buffers[2]
    assert case.sizes[out] == axis_elements
    ins = case.make_inputs(0)
    assert case.expected(ins)[out].size == axis_elements


def test_run_time_limit_is_cpu_time(tmp_path):
    """A run stops after its limit in CPU seconds (wall time grows with the machine's load)
    and is classified as the emulator being too slow."""
    from xpiler.verify.engines import EngineError
    from xpiler.verify.kernel import prepare
    from xpiler.verify.selfcheck import classify_run_error

    src = tmp_path / "spin.cu"
    src.write_text("__global__ void spin(float *x) { float v = x[0];\n"
                   "  for (int i = 0; i < 2000000000; i++) for (int j = 0; j < 2000000000; j++) v = v * 1.0000001f + 1;\n"
                   "  x[0] = v; }\n"
                   "extern \"C\" void spin_kernel(float *h) { float *d; cudaMalloc(&d, 4);\n"
                   "  spin<<<1, 1>>>(d); cudaMemcpy(h, d, 4, cudaMemcpyDeviceToHost); }\n")
    k = prepare(str(src), {}, {})
    with pytest.raises(EngineError) as e:
        k.run(k.inputs(0), "emu", timeout=1)
    assert "timed out after 1s of CPU time" in str(e.value)
    st, why = classify_run_error(e.value)
    assert st == "engine-gap" and "too slow" in why


def test_cpp_mha_explain_reproduces_truncated_attention_weights(plugin):
    """The 16-head CPP mha kernels cast d2 * softmax weight to int8 (truncation) before the
    V product: that output is explained, the intended one is not."""
    d0, d1, d2, d3 = 1, 8, 16, 64
    spec = plugin._b_mha([d0, d1, d2, d3], "cpu")
    ins = spec["inputs"](np.random.default_rng(0))
    q, k, v = (ins[x].astype(np.float64).reshape(d0 * d1, d2, d3) for x in ("q", "k", "v"))
    s = q @ np.swapaxes(k, 1, 2) / np.sqrt(d3)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    quantized = (np.trunc(d2 * p) @ v / d2).reshape(-1).astype(np.float32)
    why = spec["explain"](ins, {"out": quantized})
    assert why and "trunc(16 * p)" in why, why
    exact = spec["expected"](ins)["out"].astype(np.float32)
    assert not np.allclose(exact, quantized, atol=1e-3)  # the inputs exercise the defect
    assert spec["explain"](ins, {"out": exact}) is None
    assert plugin._b_mha([d0, d1, d2, d3], "hip")["explain"] is None  # only CPP quantizes


def test_deformable_explain_knows_batchless_value_indexing(plugin):
    """Multi-batch MLU deformable kernels index value without the batch (every batch samples
    batch 0) on top of the stale 4th corner: reproduced and named; the intended output and
    a kernel that only has the stale corner are told apart."""
    n, m, d, lq, nl, npnt = 2, 2, 4, 9, 2, 2  # 18 rows: no task boundary is excluded
    spec = plugin._b_deformable([n, m, d, lq, nl, npnt], "mlu")
    ins = spec["inputs"](np.random.default_rng(0))
    loc = ins["loc"].reshape(n, lq, m, nl, npnt, 2)
    loc[:, 1::2, :, :, 0, :] = 0.999  # out-of-range 4th corners (y1, x1) on every other row
    shapes = plugin.DEFORM_SHAPES[:nl]
    v = ins["value"].reshape(n, -1, m, d)
    attn = ins["attn"].reshape(n, lq, m, nl, npnt)
    batchless = plugin._deformable_stale_corner(np.broadcast_to(v[:1], v.shape), shapes, loc, attn)
    why = spec["explain"](ins, {"out": batchless.reshape(-1).astype(np.float32)})
    assert why and "batch 0" in why, why
    stale = plugin._deformable_stale_corner(v, shapes, loc, attn)
    why = spec["explain"](ins, {"out": stale.reshape(-1).astype(np.float32)})
    assert why and "4th bilinear corner" in why and "batch 0" not in why, why
    exact = plugin._deformable(v, shapes, loc, attn).reshape(-1).astype(np.float32)
    assert spec["explain"](ins, {"out": exact}) is None
