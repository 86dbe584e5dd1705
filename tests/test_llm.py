"""LLM passes against a real local HTTP server speaking the OpenAI protocol, with scripted
answers: good answers are used, repairable ones repaired, others rejected with a clear
reason, and nothing unverified is ever reported as verified."""
from __future__ import annotations

import os

import pytest

from xpiler.lang import parse_source
from xpiler.llm import config as llm_config
from xpiler.llm.client import LLMClient, LLMError, set_lock_lookup
from xpiler.llm.config import LLMConfig, load_config
from xpiler.llm.pass_ import LLMPassRejected, attempt_llm_pass, llm_pass
from xpiler.llm.prompts import PASSES, relevant_intrinsics, render
from xpiler.smt.oracle import ExecutionOracle
from xpiler.smt.repair import repair

from .llm_server import ScriptedLLMServer

# The pass input (reference): plain C. The "LLM pass" asked for is a loop split.
REF = """extern "C" void vadd(float *a, float *b, float *c) {
  for (int i = 0; i < 16; i++) {
    for (int j = 0; j < 32; j++) {
      c[i * 32 + j] = a[i * 32 + j] * 2.0f + b[i * 32 + j];
    }
  }
}
"""


def answer(body: str, note: str = "Here is the transformed code:") -> str:
    return f"{note}\n\n```cpp\n{body}```\n"


GOOD = answer("""extern "C" void vadd(float *a, float *b, float *c) {
  for (int io = 0; io < 4; io++) {
    for (int ii = 0; ii < 4; ii++) {
      for (int j = 0; j < 32; j++) {
        int i = io * 4 + ii;
        c[i * 32 + j] = a[i * 32 + j] * 2.0f + b[i * 32 + j];
      }
    }
  }
}
""")
OFF_BY_ONE = GOOD.replace("+ b[i * 32 + j]", "+ b[i * 32 + j + 1]")
WRONG_BOUND = GOOD.replace("ii < 4", "ii < 3")
WRONG_OP = GOOD.replace("* 2.0f + b", "* 2.0f - b")
UNPARSEABLE = answer("""extern "C" void vadd(float *a, float *b, float *c) {
  for (int io = 0; io < 4; io++ {
    c[io] = ;
}
""")


@pytest.fixture(scope="module")
def oracle():
    return ExecutionOracle(REF, "cpu", "vadd.cpp", seeds=(0, 1))


@pytest.fixture()
def server():
    with ScriptedLLMServer() as s:
        yield s


@pytest.fixture()
def cfg(server, tmp_path):
    return LLMConfig(base_url=server.base_url, model="scripted-model", api_key="test", timeout=5, retries=1,
                     backoff=0.05, cache_dir=str(tmp_path / "cache"))


def program():
    return parse_source(REF, "cpu", "vadd.cpp")


def run_pass(cfg, oracle, budget=60, **kw):
    return attempt_llm_pass("loop_transform", program(), "cpu", {"request": "split loop i by 4"},
                            client=LLMClient(cfg), verifier=oracle.verify,
                            repairer=lambda p, v: repair(p, oracle, verdict=v, budget_seconds=budget, final_check=False), **kw)


# ----------------------------------------------------------------------------- config
def test_config_precedence_and_symbolic_only_notice(capsys):
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "XPILER_LLM_BASE_URL": "http://127.0.0.1:8/v1",
           "XPILER_LLM_MODEL": "m", "XPILER_LLM_TIMEOUT": "7", "XPILER_LLM_TOKEN_BUDGET": "1000"}
    c = load_config(project={"base_url": "http://127.0.0.1:7/v1", "model": "p", "retries": 5}, env=env)
    assert (c.base_url, c.model, c.timeout, c.token_budget, c.retries, c.temperature) == \
        ("http://127.0.0.1:8/v1", "m", 7.0, 1000, 5, 0.0)
    assert c.source == "XPILER_LLM_BASE_URL" and c.enabled
    none = load_config(project={}, env={})
    assert not none.enabled and none.base_url is None
    llm_config._reset_notice()
    r1 = attempt_llm_pass("loop_recovery", program(), "cpu", config=none)
    r2 = attempt_llm_pass("loop_recovery", program(), "cpu", config=none)
    err = capsys.readouterr().err
    assert err.count("no LLM endpoint configured") == 1  # said once, clearly
    assert r1.status == r2.status == "unavailable" and not r1.verified
    with pytest.raises(Exception, match="mode must be one of"):
        load_config(project={}, env={"XPILER_LLM": "sometimes"})


def test_prompts_render_each_pass_with_registry_docs_and_code():
    mlu = parse_source("""extern "C" __mlu_global__ void k(float *a, float *c) {
  __nram__ float x[64];
  __memcpy(x, a + taskId * 64, 256, GDRAM2NRAM);
  __bang_active_exp(x, x, 64);
  __memcpy(c + taskId * 64, x, 256, NRAM2GDRAM);
}
""", "mlu", "k.mlu")
    for name in PASSES:
        msgs = render(name, mlu, "cuda")
        assert [m["role"] for m in msgs] == ["system", "user"]
        assert "__memcpy(x, a + taskId * 64, 256, GDRAM2NRAM)" in msgs[1]["content"]  # the code, from the IR
    d = render("detensorize", mlu, "cpu")[1]["content"]
    assert "### `__bang_active_exp`" in d and "### `__bang_add`" not in d  # only what the code uses
    t = render("tensorize", program(), "mlu")[1]["content"]
    names = [i.name for i in relevant_intrinsics(program(), "mlu")]
    assert "__bang_add" in names and ("__bang_mul" in names or "__bang_mul_scalar" in names)
    assert "### `__bang_add`" in t and "dst[i] = src0[i] + src1[i]" in t  # doc + meaning as C


# ----------------------------------------------------------------------------- protocol
def test_record_then_replay_without_server(cfg, server, oracle, tmp_path):
    server.set_script([{"content": GOOD}])
    r = run_pass(cfg, oracle)
    assert r.status == "verified" and r.verified, r.reason
    assert len(server.requests) == 1
    req = server.requests[0]
    assert req["model"] == "scripted-model" and req["temperature"] == 0
    assert "split loop i by 4" in req["messages"][1]["content"]
    server.stop()  # replay needs no server
    replay = cfg.with_(mode="replay", base_url=None)
    r2 = run_pass(replay, oracle)
    assert r2.status == "verified"
    assert [s["source"] for s in r2.steps if s["step"] == "answer"] == ["record"]
    # a miss in replay mode is an error naming the kernel and the pass
    r3 = attempt_llm_pass("tensorize", program(), "cpu", client=LLMClient(replay), verifier=oracle.verify)
    assert r3.status == "unavailable" and "vadd: pass tensorize" in r3.reason and "llm=replay" in r3.reason
    # the lockfile hook is consulted on a record miss
    key = LLMClient(replay).key(render("tensorize", program(), "cpu"))
    set_lock_lookup(lambda k: {"answer": GOOD} if k == key else None)
    try:
        r4 = attempt_llm_pass("tensorize", program(), "cpu", client=LLMClient(replay), verifier=oracle.verify)
    finally:
        set_lock_lookup(None)
    assert r4.status == "verified" and r4.steps[1]["source"] == "lockfile"


def test_http_500_is_retried_then_rejected(cfg, server, oracle):
    server.set_script([{"status": 500, "message": "model crashed"}])
    r = run_pass(cfg, oracle)
    assert r.status == "rejected" and not r.verified and r.program is None
    assert "HTTP 500" in r.reason and "model crashed" in r.reason
    assert len(server.requests) == cfg.retries + 1
    # a 500 then a good answer: the retry succeeds
    server.set_script([{"status": 500}, {"content": GOOD}])
    assert run_pass(cfg, oracle).status == "verified"


def test_slow_server_times_out(cfg, server, oracle):
    server.set_script([{"sleep": 2.0, "content": GOOD}])
    r = run_pass(cfg.with_(timeout=0.4, retries=0), oracle)
    assert r.status == "rejected" and "did not answer within 0.4s" in r.reason
    assert not r.verified


def test_malformed_response_is_rejected(cfg, server, oracle):
    server.set_script([{"raw": "this is not json"}])
    r = run_pass(cfg.with_(retries=0), oracle)
    assert r.status == "rejected" and not r.verified and r.reason


def test_token_budget(cfg, server, oracle):
    server.set_script([{"content": GOOD}])
    r = run_pass(cfg.with_(token_budget=100), oracle)
    assert r.status == "unavailable" and "token budget" in r.reason
    assert server.requests == []  # nothing was spent


# ----------------------------------------------------------------------------- answers
def test_unparseable_answer_is_fed_back_once_then_rejected(cfg, server, oracle):
    server.set_script([{"content": UNPARSEABLE}, {"content": "Sorry, I cannot do that."}])
    r = run_pass(cfg, oracle)
    assert r.status == "rejected" and not r.verified
    assert "does not parse" in r.reason
    assert len(server.requests) == 2
    feedback = server.requests[1]["messages"][-1]["content"]
    assert "could not be parsed" in feedback and "<llm loop_transform answer>:" in feedback  # file:line:col
    assert server.requests[1]["messages"][-2] == {"role": "assistant", "content": UNPARSEABLE}


def test_parse_error_then_good_answer_is_used(cfg, server, oracle):
    server.set_script([{"content": UNPARSEABLE}, {"content": GOOD}])
    r = run_pass(cfg, oracle)
    assert r.status == "verified" and len(server.requests) == 2


def test_good_answer_is_used(cfg, server, oracle):
    server.set_script([{"content": GOOD}])
    out = llm_pass("loop_transform", program(), "cpu", client=LLMClient(cfg), verifier=oracle.verify)
    assert len([f for f in out.functions if f.name == "vadd"]) == 1
    assert "io" in {n.var for n in __import__("xpiler.ir.visitor", fromlist=["walk"]).walk(out)
                    if type(n).__name__ == "For"}


def test_off_by_one_index_is_repaired(cfg, server, oracle):
    server.set_script([{"content": OFF_BY_ONE}])
    r = run_pass(cfg, oracle)
    assert r.status == "repaired", r.reason
    rep = next(s for s in r.steps if s["step"] == "repair")
    ch = rep["changes"][0]
    assert ch["kind"] == "load-index" and ch["before"].endswith("j + 1") and ch["after"].endswith("32 + j")
    assert ch["where"].startswith("<llm loop_transform answer>:")
    assert next(s for s in r.steps if s["step"] == "verify-repaired")["ok"] is True


def test_wrong_bound_is_repaired(cfg, server, oracle):
    server.set_script([{"content": WRONG_BOUND}])
    r = run_pass(cfg, oracle)
    assert r.status == "repaired", r.reason
    ch = next(s for s in r.steps if s["step"] == "repair")["changes"][0]
    assert ch["kind"] == "bound" and (ch["before"], ch["after"]) == ("3", "4")


def test_wrong_computation_is_rejected_not_verified(cfg, server, oracle):
    server.set_script([{"content": WRONG_OP}])
    r = run_pass(cfg, oracle, budget=12)
    assert r.status == "rejected" and not r.verified and r.program is None
    assert "computes different outputs" in r.reason and "repair found no fix" in r.reason
    with pytest.raises(LLMPassRejected, match="LLM pass loop_transform rejected"):
        llm_pass("loop_transform", program(), "cpu", client=LLMClient(cfg), verifier=oracle.verify)


def test_without_a_verifier_nothing_is_verified(cfg, server):
    server.set_script([{"content": GOOD}])
    r = attempt_llm_pass("loop_transform", program(), "cpu", client=LLMClient(cfg))
    assert r.status == "unverified" and not r.verified and "NOT verified" in r.reason
    with pytest.raises(LLMPassRejected):
        llm_pass("loop_transform", program(), "cpu", client=LLMClient(cfg))
    assert llm_pass("loop_transform", program(), "cpu", client=LLMClient(cfg), allow_unverified=True) is not None


# ----------------------------------------------------------------------------- MLU intrinsic length
MLU_GOOD = """extern "C" __mlu_global__ void vadd(float *a, float *b, float *c) {
  __nram__ float xa[32];
  __nram__ float xb[32];
  __memcpy(xa, a + taskId * 32, 128, GDRAM2NRAM);
  __memcpy(xb, b + taskId * 32, 128, GDRAM2NRAM);
  __bang_add(xa, xa, xb, 32);
  __memcpy(c + taskId * 32, xa, 128, NRAM2GDRAM);
}
"""
MLU_REF = """extern "C" void vadd(float *a, float *b, float *c) {
  for (int i = 0; i < 512; i++) {
    c[i] = a[i] + b[i];
  }
}
"""


def test_wrong_intrinsic_length_is_repaired_on_the_mlu_emulator(cfg, server):
    oracle = ExecutionOracle(MLU_REF, "cpu", "vadd_ref.cpp", seeds=(0,))
    server.set_script([{"content": "```c\n" + MLU_GOOD.replace("xb, 32);", "xb, 30);") + "```"}])
    r = attempt_llm_pass("tensorize", parse_source(MLU_REF, "cpu", "vadd_ref.cpp"), "mlu",
                         client=LLMClient(cfg), verifier=oracle.verify,
                         repairer=lambda p, v: repair(p, oracle, verdict=v, budget_seconds=90,
                                                      confirm_seeds=(0, 3), final_check=False))
    assert r.status == "repaired", r.reason
    ch = next(s for s in r.steps if s["step"] == "repair")["changes"][0]
    assert ch["kind"] == "size" and (ch["before"], ch["after"]) == ("30", "32")


# ----------------------------------------------------------------------------- opt-in endpoint
@pytest.mark.skipif(not os.environ.get("XPILER_LLM_BASE_URL"), reason="set XPILER_LLM_BASE_URL to run against a real endpoint")
def test_opt_in_real_endpoint(oracle, tmp_path):
    c = load_config(project={}).with_(cache_dir=str(tmp_path), mode="refresh")
    r = run_pass(c, oracle)
    assert r.status in ("verified", "repaired", "rejected")
    assert r.verified == (r.status in ("verified", "repaired"))
    if r.verified:
        assert next(s for s in r.steps if s["step"].startswith("verify") and s.get("ok"))


def test_client_error_kinds(cfg):
    c = LLMClient(cfg.with_(base_url="http://127.0.0.1:9/v1", retries=0, timeout=2))  # nothing listens on port 9
    with pytest.raises(LLMError) as e:
        c.complete([{"role": "user", "content": "hi"}], kernel="k", pass_name="p")
    assert e.value.kind == "connection" and "k: pass p" in str(e.value)
