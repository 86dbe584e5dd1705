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
    assert data["counts"]["match"] == 3
    by = {r["file"].rsplit("/", 1)[-1]: r for r in data["results"]}
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
    (r,) = json.loads(out.read_text())["results"]
    assert r["status"] in ("mismatch", "source-defect"), r
    assert r["status"] != "match"


def test_mlu_placeholder_is_a_source_defect_with_compiler_message(tmp_path, bench_dir):
    d = tmp_path / "k"
    d.mkdir()
    _link(d, bench_dir, "MLU/max_16_32.mlu")
    out = tmp_path / "r.json"
    assert main(["selfcheck", str(d), "--json", str(out)]) == 0
    (r,) = json.loads(out.read_text())["results"]
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
