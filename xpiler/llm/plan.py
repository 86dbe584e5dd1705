"""``xpiler llm plan``: which passes of a translation would call the LLM, and the tokens
they would spend, before anything is spent.

Until the symbolic pipeline (xpiler/passes) is complete, the plan is derived from the
kernel itself: the constructs it uses (parallel index values, intrinsics, on-chip
buffers, multiply-accumulate nests) say which lift/lower passes the direction needs,
and the registry says which of those the symbolic side can do without a model (an
intrinsic with a registered meaning can be inlined symbolically; one without cannot).
Each listed pass is priced by rendering its real prompt for the source program.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import nodes as N
from ..ir.visitor import walk
from .client import estimate_tokens, request_key
from .prompts import PASSES, render


@dataclass
class PlanItem:
    pass_name: str
    reason: str
    symbolic: str  # what the symbolic side can do: "covers" | "may decline" | "cannot"
    prompt_tokens: int
    answer_tokens: int
    key: str = ""
    recorded: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _facts(program: N.Program):
    from ..platforms.registry import lookup

    specials = sorted({n.name for n in walk(program) if isinstance(n, N.Special)})
    calls = sorted({n.func for n in walk(program) if isinstance(n, N.Call)})
    intrinsics = [c for c in calls if lookup(program.dialect, c) is not None]
    without_meaning = [c for c in intrinsics if lookup(program.dialect, c).meaning is None]
    dma = any(isinstance(n, N.Dma) for n in walk(program))
    onchip = sorted({n.scope for n in walk(program) if isinstance(n, N.Decl) and n.scope})
    barriers = any(isinstance(n, N.Barrier) for n in walk(program))
    mac = any(isinstance(n, N.Assign) and n.op == "+=" and isinstance(n.value, N.Binary) and n.value.op == "*"
              for n in walk(program))
    return specials, intrinsics, without_meaning, dma, onchip, barriers, mac


def plan_translation(program: N.Program, target: str, *, config=None, store=None) -> list[PlanItem]:
    source = program.dialect
    specials, intrinsics, no_meaning, dma, onchip, barriers, mac = _facts(program)
    items: list[tuple[str, str, str]] = []
    if source != target:
        if specials:
            items.append(("loop_recovery", f"parallel index values {', '.join(specials)}"
                          + (" with barriers" if barriers else ""),
                          "may decline" if barriers else "covers"))
        if intrinsics or dma:
            what = intrinsics + (["__memcpy (DMA)"] if dma else [])
            items.append(("detensorize", f"intrinsics {', '.join(what)}",
                          "cannot" if no_meaning else "covers"))
        if onchip:
            items.append(("memory_conversion", f"on-chip buffers ({', '.join(onchip)}) to demote", "covers"))
        if target in ("cuda", "hip", "mlu"):
            items.append(("loop_transform", f"split loops to {target}'s parallel width", "covers"))
            items.append(("thread_binding", f"bind loops to {target}'s parallel axes", "covers"))
        if target == "mlu":
            items.append(("memory_conversion", "stage operands through NRAM for __bang_* operations", "may decline"))
            items.append(("tensorize", "vector loops to __bang_* intrinsics", "may decline"))
            items.append(("pipelining", "overlap __memcpy with computation", "may decline"))
        elif target in ("cuda", "hip") and mac:
            items.append(("tensorize", "multiply-accumulate nest to " + ("WMMA" if target == "cuda" else "MFMA"),
                          "may decline"))
        elif target == "cpu" and mac:
            items.append(("tensorize", "int8 multiply-accumulate to AVX-512 VNNI", "may decline"))
    out, seen = [], set()
    for name, reason, symbolic in items:
        if (name, reason) in seen:
            continue
        seen.add((name, reason))
        messages = render(name, program, target)
        prompt = sum(estimate_tokens(m["content"]) for m in messages)
        code = sum(estimate_tokens(m["content"].split("## Code to transform", 1)[-1]) for m in messages[1:])
        item = PlanItem(name, reason, symbolic, prompt, int(code * 1.3) + 64)
        if config is not None:
            item.key = request_key(config.model, messages, config.params())
            if store is not None:
                item.recorded = store.get(item.key) is not None
        out.append(item)
    return out


def format_plan(path: str, program: N.Program, target: str, items: list[PlanItem], config) -> str:
    lines = [f"{path}: {program.dialect} -> {target}"]
    if not items:
        lines.append("  no pass of this direction needs the LLM")
        return "\n".join(lines)
    lines.append(f"  {'pass':18} {'symbolic':12} {'prompt':>7} {'answer':>7}  {'recorded':8}  why")
    allp = alla = tp = ta = 0
    for it in items:
        lines.append(f"  {it.pass_name:18} {it.symbolic:12} {it.prompt_tokens:7d} {it.answer_tokens:7d}  "
                     f"{'yes' if it.recorded else 'no':8}  {it.reason}")
        if not it.recorded:
            allp += it.prompt_tokens
            alla += it.answer_tokens
            if it.symbolic != "covers":
                tp += it.prompt_tokens
                ta += it.answer_tokens
    lines.append(f"  if every listed pass called the model: ~{allp} prompt + ~{alla} answer tokens; "
                 f"only those the symbolic side may not cover: ~{tp} + ~{ta} "
                 f"(budget {config.token_budget if config else '?'} per build; recorded answers cost nothing)")
    lines.append(f"  {config.describe()}" if config else "")
    return "\n".join(lines)
