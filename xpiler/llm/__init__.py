"""The neural half of translation: LLM-assisted passes, recorded and replayable, whose
answers are parsed by the normal front-end, verified by execution and repaired by z3
(xpiler/smt/repair.py) — never trusted blindly. See docs/llm.md.

- ``config``: endpoint, model, key, mode, timeouts, retries, token budget
- ``client``: the OpenAI-compatible client with record/replay (``lookup_locked`` hook)
- ``prompts``: the meta-prompts (templates/prompts/<pass>.j2) and intrinsic retrieval
- ``parse``: the answer's code block through the front-end
- ``pass_``: ``llm_pass`` / ``attempt_llm_pass``, the plug-in for a declined pass
- ``plan``: ``xpiler llm plan``
"""
from .client import LLMClient, LLMError, lookup_locked, set_lock_lookup  # noqa: F401
from .config import LLMConfig, load_config  # noqa: F401
from .pass_ import LLMPassRejected, LLMPassResult, attempt_llm_pass, llm_pass  # noqa: F401
