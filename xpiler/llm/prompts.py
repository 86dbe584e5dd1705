"""Meta-prompts: one Jinja template per LLM-assisted pass (templates/prompts/<pass>.j2).

A prompt states the pass's purpose and rules, shows the documentation of the intrinsics
that matter (rendered from the platform registry, retrieved by what the code uses or
computes), the current code printed from the IR, and short examples. The answer must be
one fenced code block in the answer dialect, which the normal front-end parses.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..ir import nodes as N
from ..ir.visitor import walk


@dataclass(frozen=True)
class PassSpec:
    name: str
    title: str
    stage: str  # lift | loops | lower
    answer: str  # "target" (answer in the target dialect) or "cpu" (plain C)
    docs_from: str  # "source" (intrinsics the code uses) | "target" (intrinsics it could use)


PASSES = {
    "loop_recovery": PassSpec("loop_recovery", "loop recovery", "lift", "cpu", "source"),
    "detensorize": PassSpec("detensorize", "detensorization", "lift", "cpu", "source"),
    "memory_conversion": PassSpec("memory_conversion", "memory conversion", "lower", "target", "target"),
    "thread_binding": PassSpec("thread_binding", "thread binding", "lower", "target", "target"),
    "tensorize": PassSpec("tensorize", "tensorization", "lower", "target", "target"),
    "loop_transform": PassSpec("loop_transform", "loop split / reorder / fuse", "loops", "cpu", "target"),
    "pipelining": PassSpec("pipelining", "software pipelining", "lower", "target", "target"),
}

LANG = {"cuda": "CUDA C++", "hip": "HIP C++", "mlu": "Cambricon BANG C", "cpu": "C++ (plain C loops, optionally AVX-512 VNNI intrinsics)"}
FENCE = {"cuda": "cuda", "hip": "cpp", "mlu": "c", "cpu": "cpp"}

# operations in the code -> words that name intrinsics computing them
_OP_WORDS = {"+": ("add", "sum"), "-": ("sub",), "*": ("mul", "mult"), "/": ("div",),
             "max": ("max", "maxpool"), "min": ("min",)}
_FUNC_WORDS = {"exp": ("exp", "active_exp"), "tanh": ("tanh",), "sqrt": ("sqrt",), "log": ("log",),
               "erf": ("gelu",), "fmax": ("max", "relu"), "fmin": ("min",), "rsqrt": ("rsqrt",),
               "sin": ("sin",), "cos": ("cos",), "fabs": ("abs",)}

def code_words(program: N.Program) -> dict:
    """Weighted words describing what the code computes (for retrieval)."""
    words: dict = {}

    def bump(w, k=1.0):
        words[w] = words.get(w, 0.0) + k

    # Retrieval follows what the code computes, never what a kernel or operator is called.
    has_mac = False
    for n in walk(program):
        if isinstance(n, N.Binary) and n.op in _OP_WORDS:
            for w in _OP_WORDS[n.op]:
                bump(w, 0.5)
        elif isinstance(n, N.Call):
            base = n.func.rstrip("f") if n.func not in ("erf",) else n.func
            for w in _FUNC_WORDS.get(base, _FUNC_WORDS.get(n.func, ())):
                bump(w, 2)
        elif isinstance(n, N.Assign) and n.op == "+=" and isinstance(n.value, N.Binary) and n.value.op == "*":
            has_mac = True
    if has_mac:
        for w in ("mma", "matmul", "dpbusd", "mfma"):
            bump(w, 2)
    return words


def used_intrinsics(program: N.Program, platform: str) -> list:
    from ..platforms.registry import lookup

    seen, out = set(), []
    for n in walk(program):
        if isinstance(n, N.Call) and n.func not in seen:
            seen.add(n.func)
            i = lookup(platform, n.func)
            if i is not None:
                out.append(i)
    return out


def relevant_intrinsics(program: N.Program, platform: str, *, used_only: bool = False, limit: int = 6) -> list:
    """Registry entries of ``platform`` that matter for this code: the ones it calls, then
    the best matches of what it computes (by the words of each intrinsic's name and doc)."""
    from ..platforms.registry import REGISTRY

    out = used_intrinsics(program, platform)
    if used_only:
        return out
    words = code_words(program)
    scored = []
    for i in REGISTRY.all(platform):
        if i in out:
            continue
        name = i.name.lower()
        doc = i.doc.lower()
        s = sum(w * (2.0 if re.search(rf"(^|[_:]){re.escape(k)}($|[_\d])", name) else 0.3 if k in doc else 0.0)
                for k, w in words.items())
        if s > 0:
            scored.append((-s, len(i.name), i.name, i))
    scored.sort(key=lambda t: t[:3])
    return (out + [t[3] for t in scored])[:max(limit, len(out))]


class _Context(dict):
    """The pass's context for templates: a missing key reads as None."""

    def __getattr__(self, name):
        return self.get(name)


def _env():
    import jinja2

    from .. import paths

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(paths.templates_dir() / "prompts")),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True)


def answer_dialect(pass_name: str, target: str) -> str:
    return target if PASSES[pass_name].answer == "target" else "cpu"


def render(pass_name: str, program: N.Program, target: str, context: dict | None = None) -> list[dict]:
    """The chat messages (system + user) of ``pass_name`` for ``program`` -> ``target``."""
    from ..lang import print_program
    from ..platforms.docs import facts_markdown, intrinsic_markdown

    if pass_name not in PASSES:
        raise KeyError(f"unknown LLM pass {pass_name!r}; known: {', '.join(PASSES)}")
    spec = PASSES[pass_name]
    context = _Context(context or {})
    source = program.dialect
    out_dialect = answer_dialect(pass_name, target)
    if spec.docs_from == "source":
        intrinsics = relevant_intrinsics(program, source, used_only=True)
        doc_platform = source
    else:
        intrinsics = relevant_intrinsics(program, target, limit=int(context.get("max_intrinsics", 6)))
        doc_platform = target
    try:
        facts = facts_markdown(doc_platform)
    except Exception:  # noqa: BLE001 - facts are optional context
        facts = ""
    code = print_program(program, source, format=False)
    t = _env().get_template(f"{pass_name}.j2")
    user = t.render(
        pass_title=spec.title, source=source, target=target, answer_dialect=out_dialect,
        source_lang=LANG[source], target_lang=LANG[target], answer_lang=LANG[out_dialect],
        fence=FENCE[source], answer_fence=FENCE[out_dialect], code=code.strip(),
        intrinsics=[intrinsic_markdown(i, with_meaning=True).strip() for i in intrinsics],
        intrinsic_names=[i.name for i in intrinsics], facts=facts.strip(), context=context,
        kernel_names=[f.name for f in program.kernels],
    )
    system = _env().get_template("_system.j2").render(answer_lang=LANG[out_dialect], answer_fence=FENCE[out_dialect])
    return [{"role": "system", "content": system.strip()}, {"role": "user", "content": user.strip()}]


def parse_error_feedback(error: str, answer_dialect_: str) -> dict:
    """The follow-up user message when an answer did not parse (sent once)."""
    t = _env().get_template("_parse_error.j2")
    return {"role": "user", "content": t.render(error=error, answer_lang=LANG[answer_dialect_],
                                                answer_fence=FENCE[answer_dialect_]).strip()}
