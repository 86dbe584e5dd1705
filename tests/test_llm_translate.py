"""The LLM path of translation, end to end: a kernel whose symbolic pass declines goes to
a real local OpenAI-protocol server (scripted answers); the answer is verified against
the source kernel, repaired or rejected, recorded, and replayed without the server —
through `translate_file` and through an SCons build that is then rebuilt offline."""
from __future__ import annotations

import os
import shutil

import pytest

from xpiler.llm.config import LLMConfig
from xpiler.translate import TranslateOptions, TranslationError, translate_file

from .llm_server import ScriptedLLMServer
from .test_scons import SCONS, copy_examples, scons

# A warp vote whose per-lane values the symbolic loop recovery does not lift.
BALLOT = """__global__ void ballot_kernel(const float *a, int *out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  unsigned m = __ballot_sync(0xffffffff, i < n && a[i] > 0.0f);
  if (i < n) out[i] = __popc(m);
}
extern "C" void ballot(const float *a, int *out, int n) {
  float *d_a;
  int *d_out;
  cudaMalloc(&d_a, n * sizeof(float));
  cudaMalloc(&d_out, n * sizeof(int));
  cudaMemcpy(d_a, a, n * sizeof(float), cudaMemcpyHostToDevice);
  ballot_kernel<<<(n + 255) / 256, 256>>>(d_a, d_out, n);
  cudaMemcpy(out, d_out, n * sizeof(int), cudaMemcpyDeviceToHost);
  cudaFree(d_a);
  cudaFree(d_out);
}
"""
PLAIN = """extern "C" void ballot(const float *a, int *out, int n) {
  for (int w = 0; w < n; w += 32) {
    int c = 0;
    for (int l = 0; l < 32; l++) {
      int i = w + l;
      if (i < n && a[i] > 0.0f) c++;
    }
    for (int l = 0; l < 32; l++) {
      int i = w + l;
      if (i < n) out[i] = c;
    }
  }
}
"""
GOOD = f"The warp vote as loops over each warp's lanes:\n\n```cpp\n{PLAIN}```\n"
WRONG_BOUND = GOOD.replace("l < 32; l++) {\n      int i = w + l;\n      if (i < n && a",
                           "l < 31; l++) {\n      int i = w + l;\n      if (i < n && a")
WRONG_OP = GOOD.replace("a[i] > 0.0f", "a[i] < 0.0f")
assert WRONG_BOUND != GOOD and WRONG_OP != GOOD


@pytest.fixture()
def kernel(tmp_path):
    p = tmp_path / "ballot.cu"
    p.write_text(BALLOT)
    return str(p)


def options(target, cfg, **kw):
    return TranslateOptions(target=target, scalars={"n": 1000}, seeds=(0, 1), llm=cfg.mode, llm_config=cfg,
                            repair_budget=60, **kw)


def config(server, tmp_path, **kw):
    return LLMConfig(base_url=server.base_url, model="scripted-model", api_key="test", timeout=10, retries=0,
                     cache_dir=str(tmp_path / "cache"), **kw)


def test_without_the_llm_the_symbolic_decline_is_the_error(kernel):
    with pytest.raises(TranslationError, match=r"ballot\.cu:\d+:\d+: loop-recovery declined"):
        translate_file(kernel, TranslateOptions(target="cpu", scalars={"n": 1000}))


def test_declined_kernel_goes_through_the_llm_verified_recorded_and_replayed(kernel, tmp_path):
    with ScriptedLLMServer([{"content": GOOD}]) as server:
        cfg = config(server, tmp_path)
        tr = translate_file(kernel, options("mlu", cfg))
        assert len(server.requests) == 1
        prompt = server.requests[0]["messages"][1]["content"]
        assert "__ballot_sync" in prompt and "loop-recovery declined: " in prompt
    assert tr.verified and tr.report["verification"]["status"] == "verified"
    (call,) = tr.report["llm"]
    assert (call["pass"], call["status"]) == ("loop_recovery", "verified")
    assert [p["name"] for p in tr.report["passes"]] == ["llm:loop_recovery", "lift", "lower-mlu"]
    assert "__mlu_global__" in tr.text and "__ballot_sync" not in tr.text
    # the server is gone: replay answers from the record, with the same result
    replayed = translate_file(kernel, options("mlu", cfg.with_(mode="replay", base_url=None)))
    assert replayed.text == tr.text and replayed.verified
    assert [s["source"] for s in replayed.report["llm"][0]["steps"] if s["step"] == "answer"] == ["record"]


def test_a_repairably_wrong_answer_is_repaired_and_says_what_changed(kernel, tmp_path):
    with ScriptedLLMServer([{"content": WRONG_BOUND}]) as server:
        tr = translate_file(kernel, options("cpu", config(server, tmp_path)))
    (call,) = tr.report["llm"]
    assert call["status"] == "repaired" and "31  ->  32" in call["reason"], call["reason"]
    assert tr.verified and tr.report["route"] == "llm"
    assert "l < 32" in tr.text and "l < 31" not in tr.text


def test_a_wrong_answer_is_rejected_and_never_verified(kernel, tmp_path):
    with ScriptedLLMServer([{"content": WRONG_OP}]) as server:
        cfg = config(server, tmp_path)
        with pytest.raises(TranslationError, match="LLM pass loop_recovery rejected") as e:
            translate_file(kernel, TranslateOptions(target="cpu", scalars={"n": 1000}, seeds=(0,), llm="on",
                                                    llm_config=cfg, repair_budget=10))
    assert e.value.report["status"] == "failed" and e.value.report["verified"] is False
    assert e.value.report["llm"][0]["status"] == "rejected"
    # a replay of a kernel the record has not seen is an error naming the kernel and pass
    other = tmp_path / "other" / "ballot.cu"
    other.parent.mkdir()
    other.write_text(BALLOT.replace("256", "128"))
    with pytest.raises(TranslationError, match=r"ballot_kernel: pass loop_recovery.*llm=replay"):
        translate_file(str(other), TranslateOptions(target="cpu", scalars={"n": 1000}, llm="replay",
                                                    llm_config=cfg.with_(mode="replay", base_url=None)))


@pytest.mark.skipif(not SCONS.exists(), reason="scons is not installed in this environment")
def test_scons_build_through_the_llm_then_offline_and_replay_without_a_server(tmp_path):
    shared = tmp_path / "builds"
    out = "build/cpu/kernels/ballot.cpp"

    def project(name):
        w = copy_examples(tmp_path / name / "examples")
        (w / "kernels/ballot.cu").write_text(BALLOT)
        with open(w / "SConstruct", "a") as f:
            f.write('\nenv.XpilerKernel("kernels/ballot.cu", target="cpu", args={"n": 1000})\n')
        return w

    a, b, c = project("a"), project("b"), project("c")
    saved = {k: os.environ.pop(k, None) for k in ("XPILER_LLM_BASE_URL", "OPENAI_BASE_URL", "XPILER_LLM")}
    try:
        with ScriptedLLMServer([{"content": GOOD}]) as server:
            os.environ.update(XPILER_LLM_BASE_URL=server.base_url, XPILER_LLM_RETRIES="0")
            r = scons(a, "target=cpu", "llm=on", "lock=1", f"cache={tmp_path / 'ca'}", out, shared_cache=shared)
            assert len(server.requests) == 1
        del os.environ["XPILER_LLM_BASE_URL"]
        assert "kernels/ballot.cu -> cpu: verified" in r.stdout
        # a clean clone with the committed lockfile, offline, no server, empty cache
        shutil.copy(a / "xpiler.lock", b / "xpiler.lock")
        r = scons(b, "target=cpu", "offline=1", f"cache={tmp_path / 'cb'}", out, shared_cache=shared)
        assert "(from xpiler.lock)" in r.stdout
        assert (b / out).read_bytes() == (a / out).read_bytes()
        # the kernel changed (a comment: the lock entry is stale) and llm=replay with no
        # server and no record: the answer comes from the lockfile's report
        shutil.copy(a / "xpiler.lock", c / "xpiler.lock")
        (c / "kernels/ballot.cu").write_text("// edited\n" + BALLOT)
        r = scons(c, "target=cpu", "llm=replay", f"cache={tmp_path / 'cc'}", out, shared_cache=shared)
        assert "stale" in r.stdout and "kernels/ballot.cu -> cpu: verified" in r.stdout
        assert (c / out).read_text().split("\n", 1)[1] == (a / out).read_text().split("\n", 1)[1]
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v
        os.environ.pop("XPILER_LLM_RETRIES", None)
