"""The LLM pass: the neural half that runs where a symbolic pass declines.

    program = llm_pass("detensorize", program, target, context,
                       verifier=oracle.verify, repairer=lambda p, v: repair(p, oracle, verdict=v))

Steps, each recorded in the result:

1. render the meta-prompt (templates/prompts/<pass>.j2) for the pass's input;
2. ask the model (record/replay through ``LLMClient``);
3. parse the answer with the normal front-end; a parse error is fed back once;
4. verify the parsed program against the pass's input with the caller's ``verifier``
   (``program -> Verdict``: ``ok``, ``reason``, ``runnable``; execution on the engines);
5. an answer that runs but disagrees goes to ``repairer`` (SMT repair), whose result
   is verified again by the same ``verifier``.

Nothing is trusted blindly: the status is ``verified`` or ``repaired`` only when the
verifier said ok for the very program returned; without a verifier the answer is
``unverified`` and ``llm_pass`` refuses it unless ``allow_unverified`` is given.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ..errors import XpilerError
from ..ir import nodes as N
from .client import LLMClient, LLMError
from .config import LLMConfig, load_config, notice
from .parse import AnswerError, parse_answer
from .prompts import PASSES, answer_dialect, parse_error_feedback, render

STATUSES = ("verified", "repaired", "unverified", "rejected", "unavailable")


class LLMPassRejected(XpilerError):
    """The LLM pass produced nothing usable; ``result`` holds the record and the reason."""

    def __init__(self, result: "LLMPassResult"):
        super().__init__(f"{result.kernel or '<kernel>'}: LLM pass {result.pass_name} {result.status}: {result.reason}")
        self.result = result


@dataclass
class LLMPassResult:
    pass_name: str
    target: str
    kernel: str
    status: str = "rejected"
    program: N.Program | None = None  # set only for verified / repaired / unverified
    reason: str = ""
    steps: list = field(default_factory=list)  # every request, answer, parse, verdict, repair
    seconds: float = 0.0

    @property
    def verified(self) -> bool:
        return self.status in ("verified", "repaired")

    def as_dict(self) -> dict:
        return {"pass": self.pass_name, "target": self.target, "kernel": self.kernel, "status": self.status,
                "verified": self.verified, "reason": self.reason, "steps": self.steps,
                "seconds": round(self.seconds, 3)}


def _verdict_dict(v) -> dict:
    if hasattr(v, "as_dict"):
        return v.as_dict()
    return {"ok": bool(getattr(v, "ok", False)), "reason": str(getattr(v, "reason", ""))}


def attempt_llm_pass(pass_name: str, program: N.Program, target: str, context: dict | None = None, *,
                     client: LLMClient | None = None, config: LLMConfig | None = None,
                     verifier: Callable | None = None, repairer: Callable | None = None,
                     kernel: str = "") -> LLMPassResult:
    """Run one LLM pass and return its full record (never raises for model trouble)."""
    t0 = time.perf_counter()
    kernel = kernel or next((f.name for f in program.kernels or program.functions[-1:]), "<kernel>")
    res = LLMPassResult(pass_name, target, kernel)

    def finish(status, reason="", prog=None):
        res.status, res.reason, res.program = status, reason, prog
        res.seconds = time.perf_counter() - t0
        return res

    if pass_name not in PASSES:
        return finish("rejected", f"unknown LLM pass {pass_name!r}")
    if client is None:
        config = config or load_config()
        if not config.enabled:
            notice(config)
            return finish("unavailable", config.describe())
        client = LLMClient(config)
    dialect = answer_dialect(pass_name, target)
    messages = render(pass_name, program, target, context)
    res.steps.append({"step": "prompt", "key": client.key(messages),
                      "chars": sum(len(m["content"]) for m in messages)})
    parsed = None
    for round_ in range(2):  # the answer, and once more after a parse error
        try:
            answer = client.complete(messages, kernel=kernel, pass_name=pass_name)
        except LLMError as e:
            res.steps.append({"step": "request", "error": str(e), "kind": e.kind, "attempts": e.attempts})
            status = "unavailable" if e.kind in ("disabled", "replay-miss", "budget") else "rejected"
            return finish(status, f"LLM request failed: {e}")
        res.steps.append({"step": "answer", **answer.as_dict()})
        try:
            parsed = parse_answer(answer.text, dialect, f"<llm {pass_name} answer>")
            res.steps.append({"step": "parse", "ok": True})
            break
        except AnswerError as e:
            res.steps.append({"step": "parse", "ok": False, "error": str(e), "where": e.where})
            if round_ == 1:
                return finish("rejected", f"the answer does not parse (after one retry with the error): {e}")
            messages = messages + [{"role": "assistant", "content": answer.text},
                                   parse_error_feedback(str(e), dialect)]
    if verifier is None:
        res.steps.append({"step": "verify", "skipped": "no verifier supplied"})
        return finish("unverified", "no verifier was supplied: the answer is NOT verified", parsed)
    try:
        verdict = verifier(parsed)
    except Exception as e:  # noqa: BLE001 - a verifier crash is a failed verification
        res.steps.append({"step": "verify", "ok": False, "error": f"{type(e).__name__}: {e}"})
        return finish("rejected", f"verification failed with an error: {e}")
    res.steps.append({"step": "verify", **_verdict_dict(verdict)})
    if getattr(verdict, "ok", False):
        return finish("verified", "", parsed)
    if not getattr(verdict, "runnable", True):
        return finish("rejected", f"the answer does not build or run: {verdict.reason}")
    if repairer is None:
        return finish("rejected", f"the answer computes different outputs: {verdict.reason}")
    try:
        rep = repairer(parsed, verdict)
    except Exception as e:  # noqa: BLE001
        res.steps.append({"step": "repair", "ok": False, "error": f"{type(e).__name__}: {e}"})
        return finish("rejected", f"the answer computes different outputs ({verdict.reason}); repair failed: {e}")
    rep_d = rep.as_dict() if hasattr(rep, "as_dict") else {"ok": bool(getattr(rep, "ok", False))}
    res.steps.append({"step": "repair", **rep_d})
    if not getattr(rep, "ok", False) or getattr(rep, "program", None) is None:
        return finish("rejected", f"the answer computes different outputs ({verdict.reason}); "
                                  f"repair found no fix: {getattr(rep, 'reason', '')}")
    final = verifier(rep.program)  # never trust the repairer's own word either
    res.steps.append({"step": "verify-repaired", **_verdict_dict(final)})
    if not getattr(final, "ok", False):
        return finish("rejected", f"the repaired answer does not verify: {final.reason}")
    return finish("repaired", "; ".join(str(c) for c in getattr(rep, "changes", [])), rep.program)


def llm_pass(pass_name: str, program: N.Program, target: str, context: dict | None = None, *,
             allow_unverified: bool = False, on_result: Callable | None = None, **kw) -> N.Program:
    """The plug-in for a declined symbolic pass: the pass's output program, or
    ``LLMPassRejected`` (with the full record) when nothing verified came back.
    ``on_result`` receives the ``LLMPassResult`` either way (for reports)."""
    res = attempt_llm_pass(pass_name, program, target, context, **kw)
    if on_result is not None:
        on_result(res)
    if res.verified or (res.status == "unverified" and allow_unverified):
        return res.program
    raise LLMPassRejected(res)
