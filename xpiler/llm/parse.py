"""Reading an LLM answer: the code block, parsed by the normal front-end."""
from __future__ import annotations

import re

from ..errors import XpilerError
from ..ir import nodes as N

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+#-]*)[ \t]*\n(.*?)(?:```|\Z)", re.S)


class AnswerError(XpilerError):
    """The answer holds no usable program; ``where`` is file:line:col when known."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(message)
        self.where = where


def extract_code(text: str) -> str:
    """The code of an answer: the longest fenced block, else the whole text when it looks
    like code; raises AnswerError for an empty or prose-only answer."""
    if not text or not text.strip():
        raise AnswerError("the answer is empty")
    blocks = [m.group(2) for m in _FENCE.finditer(text)]
    blocks = [b for b in blocks if b.strip()]
    if blocks:
        return max(blocks, key=len)
    if re.search(r"[{};]", text) and re.search(r"\b(void|int|float|for|return)\b", text):
        return text
    raise AnswerError("the answer holds no code block (expected one ``` fenced block with the whole file)")


def parse_answer(text: str, dialect: str, name: str = "<llm answer>") -> N.Program:
    """The answer's program in ``dialect``; AnswerError with file:line:col otherwise."""
    from ..lang import parse_source

    code = extract_code(text)
    try:
        program = parse_source(code, dialect, name)
    except XpilerError as e:
        span = getattr(e, "span", None)
        raise AnswerError(str(e), str(span) if span else "") from None
    except Exception as e:  # noqa: BLE001 - the front-end must not crash on model output
        raise AnswerError(f"{name}: the front-end failed on the answer: {type(e).__name__}: {e}") from None
    if not any(f.kind in ("kernel", "host") for f in program.functions):
        raise AnswerError(f"{name}: the answer defines no kernel function")
    unknown = unknown_calls(program)
    if unknown:
        # model output is compiled and run for verification: it may only call what a
        # kernel can (math, the platform's intrinsics and host API, its own functions)
        raise AnswerError(f"{name}: the answer calls functions that are neither math, {dialect} intrinsics, "
                          f"host API nor defined in it: {', '.join(unknown)}")
    return program


_ALWAYS = {"dim3", "make_float2", "make_float4", "make_int2", "make_int4", "static_cast", "sizeof",
           "__syncthreads", "__float2half", "__half2float", "__float2int_rn", "__int2float_rn", "memcpy",
           "memset", "malloc", "free", "std::max", "std::min", "max", "min", "abs", "isnan", "isinf", "printf", "fprintf"}


def unknown_calls(program: N.Program) -> list[str]:
    from ..ir.visitor import walk
    from ..platforms.host_api import HOST_APIS
    from ..platforms.registry import facts, lookup

    try:
        f = facts(program.dialect)
        math = set(f.math_functions) | set(f.constants)
    except Exception:  # noqa: BLE001
        math = set()
    api = HOST_APIS.get(program.dialect)
    host = set()
    if api is not None:
        for attr in ("malloc", "memcpy", "free", "sync", "launch", "names"):
            host |= set(getattr(api, attr, ()) or ())
    own = {fn.name for fn in program.functions}
    bad = set()
    for n in walk(program):
        if isinstance(n, N.Call):
            name = n.func
            if name in own or name in math or name in _ALWAYS or name in host or lookup(program.dialect, name):
                continue
            if name.startswith(("__bang_", "__memcpy", "_mm", "wmma::", "__builtin_amdgcn", "__shfl", "__hip",
                                "__nv", "__ldg", "atomic", "__sync", "hip", "cuda", "cnrt", "__float", "__half", "std::numeric_limits",
                                "__int", "__h")):
                continue
            bad.add(name)
    return sorted(bad)
