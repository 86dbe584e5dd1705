"""Kernel forms common in real code but not in the benchmark: tree reductions stepping by
halving (`s >>= 1`) with barriers or warp shuffles inside, warp shuffles, atomics,
dynamic shared memory, templates, float4 loads and stores, HIP's hipLaunchKernelGGL and vendor #includes. Each is translated to every other platform and verified."""
from pathlib import Path

import pytest

from xpiler.ir import nodes as N
from xpiler.ir.visitor import find_all
from xpiler.lang import parse_source
from xpiler.passes.lift.whiles import unroll_constant_whiles
from xpiler.translate import TranslateOptions, translate_file

FORMS = Path(__file__).parent / "data" / "forms"
CASES = {"warpsum.cu": {"rows": 16, "cols": 100}, "blockred.cu": {"n": 1000},
         "biasadd.hip": {"n": 30, "c": 96}, "atomic.cu": {"n": 1000}, "dynshared.cu": {"rows": 8, "cols": 100},
         "templ.cu": {"a": 2, "n": 1000}, "float4.cu": {"n": 1024}}


@pytest.mark.parametrize("name,target", [(n, t) for n in CASES for t in ("cpu", "cuda", "hip", "mlu")
                                         if not n.endswith(".cu") or t != "cuda"])
def test_form_translates_and_verifies(name, target):
    opts = TranslateOptions(target=target, seeds=(0, 1), scalars=CASES[name])
    tr = translate_file(str(FORMS / name), opts)
    assert tr.verified, tr.report.get("verification")
    assert "hip_runtime.h" not in tr.text or target == "hip"
    if name == "atomic.cu" and target in ("cpu", "mlu"):  # every thread adds to out[0]
        assert any(n.startswith("serial: atomic updates: ") for n in tr.report["notes"]), tr.report["notes"]


def test_halving_loop_parses_as_while_and_unrolls_to_its_values():
    prog = parse_source("""__global__ void k(float *a) {
      for (int s = 8; s > 0; s >>= 1) a[s] = a[s] + 1.0f;
      for (int p = 1; p < 100; p *= 3) a[p] = 0.0f;
    }""", "cuda")
    body = prog.functions[0].body
    assert len(find_all(body, N.While)) == 2 and not find_all(body, N.For)
    unrolled = unroll_constant_whiles(body)
    assert not find_all(unrolled, N.While)
    stores = [a.target.index.value for a in find_all(unrolled, N.Assign)]
    assert stores == [8, 4, 2, 1, 1, 3, 9, 27, 81]


def test_loop_with_unknown_trip_count_stays_a_while():
    prog = parse_source("""__global__ void k(float *a, int n) {
      for (int s = n; s > 0; s >>= 1) a[s] = 1.0f;
    }""", "cuda")
    body = unroll_constant_whiles(prog.functions[0].body)
    assert len(find_all(body, N.While)) == 1


def test_continue_in_a_while_shaped_for_is_refused_with_its_position():
    from xpiler.errors import XpilerError

    with pytest.raises(XpilerError) as e:
        parse_source("__global__ void k(float *a) {\n  for (int s = 8; s > 0; s >>= 1) { if (a[s] > 0) continue; a[s] = 1; }\n}",
                     "cuda", "k.cu")
    assert "k.cu:2:3" in str(e.value) and "continue" in str(e.value)


def test_shadowing_loop_variables_are_renamed_apart():
    from xpiler.ir.interp import run
    from xpiler.passes.base import Namer, names_in
    from xpiler.passes.lift.unshadow import unshadow
    import numpy as np

    fn = parse_source("""void f(float *a, float *out) {
      for (int i = 0; i < 4; i++) {
        float s = 0.0f;
        for (int i = 0; i < 3; ++i) { float s = 1.0f; a[i] = a[i] + s; }
        for (int k = 0; k < 3; ++k) s += a[i * 3 + k];
        out[i] = s;
      }
    }""", "cpu").functions[0]
    renamed = unshadow(fn.body, {"a", "out"}, Namer(names_in(fn)))
    outer = renamed.body[0]
    inner = find_all(outer.body, N.For)[0]
    assert outer.var == "i" and inner.var != "i"
    assert [d.name for d in find_all(renamed, N.Decl)].count("s") == 1
    bufs = lambda: {"a": np.arange(12, dtype=np.float32), "out": np.zeros(4, np.float32)}  # noqa: E731
    want, got = bufs(), bufs()
    run(fn.body, want)
    run(renamed, got)
    np.testing.assert_array_equal(got["out"], want["out"])
    np.testing.assert_array_equal(got["a"], want["a"])
