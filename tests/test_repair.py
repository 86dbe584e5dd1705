"""SMT repair: sites, linear forms, sketches and the z3 chooser (no execution), and a
swapped-coefficient fault repaired by the store trace (one execution build)."""
from __future__ import annotations

import json

import pytest

from xpiler import cli
from xpiler.ir import nodes as N
from xpiler.lang import parse_source
from xpiler.smt.oracle import ExecutionOracle
from xpiler.smt.repair import Z3Chooser, collect_sites, linear_form, make_sketch, repair, _consts_env

SRC = """extern "C" void k(float *a, float *b, float *c) {
  int rows = 16;
  int cols = 16;
  for (int i = 0; i < rows; i++) {
    for (int j = 0; j < cols; j++) {
      float t = a[i * cols + j];
      c[i * cols + j] = t * 2.0f + b[j];
    }
  }
}
"""


def prog(text=SRC):
    return parse_source(text, "cpu", "k.cpp")


def test_sites_are_ranked_by_the_differing_buffer():
    sites = collect_sites(prog(), "c")
    kinds = [(s.kind, s.rank) for s in sites]
    assert kinds[0] == ("store-index", 0)  # the store into c comes first
    assert ("bound", 0) in kinds  # loops around it
    assert ("load-index", 1) in kinds  # a[...] feeds t, which feeds c
    assert all(s.where.startswith("k.cpp:") for s in sites)
    store = sites[0]
    assert [n for n, _ in store.vars] == ["i", "j"] and store.where == "k.cpp:7:9"


def test_linear_form_is_proved_by_z3():
    p = prog()
    store = collect_sites(p, "c")[0]
    env = _consts_env(p, store.func)
    assert env["rows"] == 16 and env["cols"] == 16
    assert linear_form(store.expr, ["i", "j"], env) == ({"i": 16, "j": 1}, 0)
    assert linear_form(N.Binary("*", N.Var("i"), N.Var("j")), ["i", "j"], env) is None  # not linear


def test_sketch_holds_off_by_one_swap_and_pool_candidates():
    p = prog()
    store = collect_sites(p, "c")[0]
    sk = make_sketch(p, store)
    descs = {v: d for v, (c, d) in sk.vectors.items()}
    assert descs[(1, 0, 0)] == "+ 1" and descs[(-1, 0, 0)] == "- 1"
    assert descs[(0, -15, 15)] == "coefficients of i and j exchanged"
    ch = Z3Chooser(sk)
    first = ch.next()
    assert sk.vectors[first][0] == 1  # cheapest level first
    ch.exclude(first)
    assert ch.next() != first
    # trace points force the swap: e'(i, j) = e + theta0 + theta_i*i + theta_j*j
    ch.require_point((1, 0), -15)
    ch.require_point((0, 1), 15)
    assert ch.next() == (0, -15, 15)
    ch.clear_points()


def test_swapped_coefficients_in_a_store_are_repaired_by_the_trace():
    oracle = ExecutionOracle(SRC, "cpu", "k.cpp", seeds=(0,))
    bad = prog(SRC.replace("c[i * cols + j]", "c[j * cols + i]"))
    r = repair(bad, oracle, budget_seconds=90)
    assert r.ok, r.reason
    assert r.method == "store-trace" and r.executions <= 10  # runs, not builds
    (ch,) = r.changes
    assert ch.kind == "store-index" and ch.where == "k.cpp:7:9"
    assert ch.before == "j * cols + i"
    assert oracle.check(r.program, seeds=(5,)).ok  # and it really is right on a new seed


def test_nothing_to_repair_and_unbuildable_are_declined():
    oracle = ExecutionOracle(SRC, "cpu", "k.cpp", seeds=(0,))
    r = repair(prog(), oracle)
    assert not r.ok and r.reason.startswith("nothing to repair")


def test_cli_llm_plan_lists_passes_and_tokens(tmp_path, capsys, monkeypatch):
    for v in ("XPILER_LLM_BASE_URL", "OPENAI_BASE_URL", "XPILER_LLM"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("XPILER_CACHE_DIR", str(tmp_path))
    src = tmp_path / "k.mlu"
    src.write_text("""extern "C" __mlu_global__ void k(float *a, float *c) {
  __nram__ float x[64];
  __memcpy(x, a + taskId * 64, 256, GDRAM2NRAM);
  __bang_active_relu(x, x, 64);
  __memcpy(c + taskId * 64, x, 256, NRAM2GDRAM);
}
""")
    assert cli.main(["llm", "plan", str(src), "--to", "cuda"]) == 0
    out = capsys.readouterr().out
    assert "loop_recovery" in out and "detensorize" in out and "thread_binding" in out
    assert "__bang_active_relu" in out and "only symbolic passes run" in out
    assert cli.main(["llm", "plan", str(src), "--to", "cuda", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert all(p["prompt_tokens"] > 100 and p["answer_tokens"] > 0 and not p["recorded"] for p in data["passes"])
    with pytest.raises(SystemExit):
        cli.main(["llm", "plan", str(src), "--to", "nowhere"])
