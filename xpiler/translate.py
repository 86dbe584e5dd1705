"""Translate one kernel file to a target platform and verify the result.

``translate_file`` is the single entry point that the CLI (`xpiler translate`), the
benchmark runner and the SCons builders call. Routes, tried in order:

1. direct: same execution model (CUDA <-> HIP, or the same platform): the program is
   re-printed with the target runtime's spelling;
2. canonical: lift to the canonical program (sequential loop nests), lower to the target
   (thread binding / task distribution, BANG tensorization), render the host entry.

The result is verified by differential testing against the source (several seeds, each
kernel on its own platform's engine); only a verified result is returned unless the
caller allows unverified output, which is then marked so in the report.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .errors import XpilerError
from .fileio import atomic_write_text
from .lang import dialect_of, parse_source, print_program

TARGET_EXTENSIONS = {"cuda": ".cu", "hip": ".hip", "mlu": ".mlu", "cpu": ".cpp"}
PLATFORMS = tuple(TARGET_EXTENSIONS)


class TranslationError(XpilerError):
    """Translation failed: a pass declined or the result did not verify."""

    def __init__(self, message: str, report: dict | None = None):
        super().__init__(message)
        self.report = report or {}


@dataclass
class TranslateOptions:
    target: str
    scalars: dict = field(default_factory=dict)  # host entry scalar values used for verification
    extents: dict = field(default_factory=dict)  # declared buffer sizes (elements)
    fallback_extents: dict = field(default_factory=dict)  # sizes used only where inference fails
    seeds: tuple = (0, 1, 2)
    verify: bool = True
    allow_unverified: bool = False
    engine: str | None = None  # engine for the translated kernel (default per platform)
    route: str = "auto"  # auto | direct | canonical
    lower_params: dict = field(default_factory=dict)  # pass parameters (block size, ...)
    inputs: object = None  # optional seed -> {buffer: array}: meaningful inputs for verification
    timeout: float = 300  # seconds per kernel run during verification
    llm: str = "off"  # where a symbolic pass declines: off | on | replay | refresh (xpiler/llm)
    llm_config: object = None  # an LLMConfig to use instead of the project's and environment's
    repair_budget: float = 120.0  # seconds of SMT repair per LLM answer that runs but disagrees


@dataclass
class Translation:
    source: str
    target: str
    text: str  # the translated kernel file (kernels + host entry)
    report: dict
    verified: bool

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write kernel and report atomically; returns the paths written."""
        import json

        out_dir = Path(out_dir)
        stem = Path(self.source).stem
        kernel = out_dir / (stem + TARGET_EXTENSIONS[self.target])
        report = out_dir / (stem + TARGET_EXTENSIONS[self.target] + ".json")
        atomic_write_text(kernel, self.text)
        atomic_write_text(report, json.dumps(self.report, indent=1, sort_keys=True) + "\n")
        return [kernel, report]


def _header(source: str, src_dialect: str, target: str, verified: bool | None) -> str:
    return (f"// Translated by xpiler {__version__} from {Path(source).name} ({src_dialect} -> {target}).\n")


def translate_text(path: str, text: str, options: TranslateOptions, report: dict) -> str:
    """The translated source (unverified). Fills the report's passes and intrinsics."""
    from .passes.base import Declined
    from .passes.direct import direct_translate
    from .platforms.config import load_platform_config

    source_dialect = dialect_of(path)
    target = options.target
    t0 = time.perf_counter()
    program = parse_source(text, source_dialect, path)
    report["seconds"]["parse"] = round(time.perf_counter() - t0, 4)
    declines = []
    if options.route in ("auto", "direct"):
        try:
            t0 = time.perf_counter()
            out = direct_translate(program, target)
            report["passes"].append({"name": "direct", "params": {"from": source_dialect, "to": target}})
            report["route"] = "direct"
            report["intrinsics"] = _special_instructions(out)
            report["seconds"]["lower"] = round(time.perf_counter() - t0, 4)
            return print_program(out, target)
        except Declined as e:
            declines.append(str(e))
            if options.route == "direct":
                raise
    from .llm.fallback import ask_llm
    from .passes.lift import lift_program
    from .passes.lower import lower

    def llm(declined, prog):  # a symbolic pass declined: the LLM may do its job (verified)
        t = time.perf_counter()
        try:
            return ask_llm(declined, prog, target, path=path, source_text=text, source_dialect=source_dialect,
                           options=options, report=report)
        finally:
            report["seconds"]["llm"] = round(report["seconds"].get("llm", 0) + time.perf_counter() - t, 4)

    t0 = time.perf_counter()
    try:
        canon = lift_program(program, load_platform_config(source_dialect))
        report["passes"].append({"name": "lift", "params": {}})
    except Declined as e:
        declines.append(str(e))
        plain = llm(e, program)  # plain C++ that computes what the source does
        if target == "cpu":
            report["route"] = "llm"
            report["notes"] = [f"symbolic: {d}" for d in declines]
            return print_program(plain, "cpu")
        canon = lift_program(plain, load_platform_config("cpu"))
        report["passes"].append({"name": "lift", "params": {"from": "llm answer (cpu)"}})
    report["seconds"]["lift"] = round(time.perf_counter() - t0, 4)
    sizes = {}
    if any(b.nbytes is None for b in canon.entry.buffers) and target != "cpu":
        from .verify.kernel import prepare

        sizes = prepare(path, options.scalars, options.extents, source_dialect, text,
                        fallback_extents=options.fallback_extents).sizes
    t0 = time.perf_counter()
    try:
        lowered = lower(canon, target, sizes, options.lower_params)
    except Declined as e:
        declines.append(str(e))
        out = llm(e, canon.program)  # the target program itself
        report["route"] = "llm"
        report["intrinsics"] = _special_instructions(out)
        report["notes"] = canon.notes + [f"symbolic: {d}" for d in declines]
        return print_program(out, target)
    report["passes"].append({"name": f"lower-{target}", "params": dict(options.lower_params)})
    report["seconds"]["lower"] = round(time.perf_counter() - t0, 4)
    report["route"] = "canonical"
    report["intrinsics"] = lowered.intrinsics
    report["notes"] = canon.notes + lowered.notes + [f"direct route: {d}" for d in declines]
    report["launches"] = [{"kernel": k} for k, *_ in lowered.launches]
    kernels = print_program(lowered.program, target)
    return kernels + ("\n" + lowered.host if lowered.host else "")


def _special_instructions(program) -> list[str]:
    from .describe import intrinsics_used

    names = set()
    for f in program.functions:
        names.update(n for n in intrinsics_used(program, f) if not n.startswith("barrier:"))
    return sorted(names)


def translate_file(path: str, options: TranslateOptions) -> Translation:
    source_dialect = dialect_of(path)
    if options.target not in PLATFORMS:
        raise TranslationError(f"unknown target {options.target!r} (choose from {', '.join(PLATFORMS)})")
    text = Path(path).read_text()
    report = {"xpiler": __version__, "source": Path(path).name, "from": source_dialect,
              "to": options.target, "passes": [], "intrinsics": [], "verified": False,
              "verification": None, "seconds": {}, "notes": []}
    from .llm.pass_ import LLMPassRejected
    from .passes.base import Declined

    t_all = time.perf_counter()
    try:
        body = translate_text(path, text, options, report)
    except (Declined, LLMPassRejected) as e:
        report["status"] = "failed"
        report["reason"] = str(e)
        raise TranslationError(f"{e}", report) from None
    out = _header(path, source_dialect, options.target, None) + body
    verified = False
    if options.verify:
        from .verify.differential import verify_translation

        t0 = time.perf_counter()
        result = verify_translation(path, text, source_dialect, out, options.target, options)
        report["seconds"]["verify"] = round(time.perf_counter() - t0, 3)
        report["verification"] = result
        verified = result["status"] == "verified"
    report["verified"] = verified
    report["status"] = "verified" if verified else "unverified"
    report["seconds"]["total"] = round(time.perf_counter() - t_all, 3)
    if not verified and not options.allow_unverified:
        reason = (report["verification"] or {}).get("reason", "verification was disabled")
        raise TranslationError(f"{path}: the translation to {options.target} is not verified: {reason}", report)
    if not verified:
        out = out.replace("// Translated by", "// UNVERIFIED: translated by", 1)
    return Translation(path, options.target, out, report, verified)
