"""Where translation meets the LLM: a symbolic pass declined, so ask the model to do it.

The answer is verified by execution against the *source kernel* (not only against the
pass's input), repaired by z3 when it runs but disagrees, and used only when verified.
A lifting pass (loop recovery, detensorization, memory demotion) is answered in plain
C++, which the canonical route then lifts and lowers like any CPU source; a lowering
pass is answered in the target dialect and is the translation itself.
"""
from __future__ import annotations

from ..ir import nodes as N

# symbolic pass (Declined.pass_name) -> the LLM pass that does its job
_LLM_PASS_FOR = {"detensorize": "detensorize", "memory-demotion": "loop_recovery",
                 "loop-recovery": "loop_recovery", "lift": "loop_recovery", "lower": "thread_binding"}


def llm_pass_for(declined_pass: str) -> str:
    return _LLM_PASS_FOR.get(declined_pass, "loop_recovery")


def ask_llm(declined, program: N.Program, target: str, *, path: str, source_text: str, source_dialect: str,
            options, report: dict) -> N.Program:
    """The verified program the LLM produced for the pass that ``declined`` (a
    ``Declined``), or ``LLMPassRejected`` / ``Declined`` (LLM off) with the reason.
    Every attempt goes into ``report["llm"]``."""
    from ..smt.oracle import ExecutionOracle
    from ..smt.repair import repair
    from .client import LLMClient
    from .config import load_config, notice
    from .pass_ import LLMPassRejected, attempt_llm_pass

    config = options.llm_config or load_config(mode=options.llm)
    if options.llm == "off" or not config.enabled:
        notice(config)
        raise declined
    pass_name = llm_pass_for(declined.pass_name)
    oracle = ExecutionOracle(source_text, source_dialect, path, scalars=dict(options.scalars),
                             extents=dict(options.extents), seeds=tuple(options.seeds[:2]) or (0,))
    # the reason without its file position: an edit elsewhere in the file keeps the request
    # (and so its record and lockfile answer) the same
    context = {"declined": f"{declined.pass_name} declined: {declined.reason}"}
    res = attempt_llm_pass(pass_name, program, target, context, client=LLMClient(config),
                           verifier=oracle.verify,
                           repairer=lambda p, v: repair(p, oracle, verdict=v, budget_seconds=options.repair_budget))
    report.setdefault("llm", []).append(res.as_dict())
    report["passes"].append({"name": f"llm:{pass_name}", "params": {"declined": declined.pass_name},
                             "status": res.status})
    if not res.verified:
        raise LLMPassRejected(res)
    return res.program

