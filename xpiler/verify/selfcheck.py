"""Self-check: run every kernel of a directory against a reference plugin and classify it.

Operator-agnostic. A *plugin* (a Python file, e.g. the repository's bench/operators.py)
provides ``case_for(path, dialect) -> Case | None``; a Case gives the entry's scalar
values, declared extents, ``make_inputs(seed)``, ``expected(inputs)``, tolerances, and
optionally ``variants`` (other formulas that are equally the intended operator),
``explain(inputs, outputs) -> str | None`` (alternative formulas that reproduce known
defects) and ``skip`` (a reason not to run; the file is still compiled).

Each file gets one status:

- ``match``: outputs agree with the reference (or one of its variants);
- ``source-defect``: the original is wrong, with named evidence: a compiler error in the
  kernel itself, an AddressSanitizer report or emulator diagnostic located in the kernel,
  or a mismatch reproduced by an alternative formula from the plugin;
- ``engine-gap``: the emulator lacks something (a build error inside the runtime
  headers, an undeclared platform builtin, an "unsupported" abort, a time-out);
- ``mismatch``: outputs differ and nothing explains why;
- ``no-case``: the plugin has no case for the file (and the file compiles);
- ``skipped``: the plugin declined to run it (e.g. too large), and it compiles.
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import paths
from ..errors import XpilerError
from ..lang import dialect_of
from .compare import compare_arrays
from .engines import EngineError, build, build_command, default_engine
from .inputs import poisoned

# z3 (extent inference inside prepare) is not thread-safe: one prepare at a time
_PREPARE_LOCK = threading.Lock()


def _prepare(*args, **kw):
    from .kernel import prepare

    with _PREPARE_LOCK:
        return prepare(*args, **kw)


STATUSES = ("match", "source-defect", "engine-gap", "mismatch", "no-case", "skipped")
EXTENSIONS = {".cu": "cuda", ".hip": "hip", ".mlu": "mlu", ".cpp": "cpu", ".c": "cpu"}


@dataclass
class Result:
    file: str
    platform: str
    status: str
    reason: str
    max_abs_err: float | None = None
    op: str = ""
    evidence: str = ""  # compiler / sanitizer / emulator text backing the status
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        d = asdict(self)
        if d["max_abs_err"] is not None and not np.isfinite(d["max_abs_err"]):
            d["max_abs_err"] = str(d["max_abs_err"])
        return d


def load_plugin(path: str):
    spec = importlib.util.spec_from_file_location(f"xpiler_refs_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise XpilerError(f"cannot load the reference plugin {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses in the plugin look their module up
    spec.loader.exec_module(mod)
    if not hasattr(mod, "case_for"):
        raise XpilerError(f"{path} has no case_for(path, dialect)")
    return mod


def kernel_files(directory: str) -> list[Path]:
    d = Path(directory)
    if d.is_file():
        return [d]
    if not d.is_dir():
        raise XpilerError(f"{directory} is not a directory")
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix in EXTENSIONS)


# ----------------------------------------------------------------------------------------
# evidence helpers

_DIAG = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+):(?:(?P<col>\d+):)?\s*(?P<kind>fatal error|error):\s*(?P<msg>.*)$")
# identifiers that belong to a platform's API/builtins (missing ones are emulator gaps)
_PLATFORM_NAME = re.compile(r"['‘](__bang_\w+|__memcpy\w*|__memset\w*|__sync\w*|__nram__|__wram__|__mlu\w*|wmma::\w+|"
                            r"nvcuda\w*|__\w+|_mm\w+|cuda\w+|hip\w+|cnrt\w+|bang\w*|half\w*|__half\w*|"
                            r"__builtin_amdgcn\w*|atomic\w+|warp\w*)['’]")


def compiler_errors(log: str) -> list[dict]:
    out = []
    for line in log.splitlines():
        m = _DIAG.match(line.strip())
        if m:
            out.append({"file": Path(m["file"]).name, "path": m["file"], "line": int(m["line"]), "msg": m["msg"]})
    return out


def _in_runtime(path: str) -> bool:
    rt = str(paths.runtime_dir())
    inc = str(paths.include_dir()) if hasattr(paths, "include_dir") else "\0"
    return path.startswith(rt) or path.startswith(inc) or "/verify/runtime/" in path


def classify_build_error(log: str, engine: str) -> tuple[str, str]:
    """(status, reason) for a failed build of an original kernel."""
    errs = compiler_errors(log)
    if not errs:
        tail = " | ".join(l for l in log.strip().splitlines()[-3:])
        return "engine-gap", f"build failed without a compiler diagnostic: {tail[:300]}"
    in_rt = [e for e in errs if _in_runtime(e["path"])]
    if in_rt and len(in_rt) == len(errs):
        e = in_rt[0]
        if e["msg"].startswith("static assertion failed"):
            # the emulator's deliberate compile-time check of an API rule the kernel breaks
            return "source-defect", (f"rejected by the emulator's compile-time API check "
                                     f"{e['file']}:{e['line']}: {e['msg']}")
        return "engine-gap", f"build error inside the runtime header {e['file']}:{e['line']}: {e['msg']}"
    errs = [e for e in errs if not _in_runtime(e["path"])] + in_rt
    for e in errs:
        if re.search(r"needs isa option|target specific option mismatch|inlining failed in call to", e["msg"]):
            return "engine-gap", (f"the engine's compiler flags lack an ISA extension the kernel's intrinsics need: "
                                  f"{e['file']}:{e['line']}: {e['msg']}")
    if engine == "emu":
        for e in errs:
            m = _PLATFORM_NAME.search(e["msg"])
            if m and re.search(r"not declared|was not declared|no matching function|has no member|"
                               r"is not a member|undeclared|incomplete type|cannot convert|no match for", e["msg"]):
                return "engine-gap", (f"emulator lacks {m.group(1)}: {e['file']}:{e['line']}: {e['msg']}")
    e = errs[0]
    more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
    return "source-defect", f"does not compile: {e['file']}:{e['line']}: {e['msg']}{more}"


def syntax_check(path: Path, dialect: str, engine: str) -> tuple[bool, str]:
    """Compile the original file alone (no harness) with the engine's compiler."""
    from .emu_adapt import adapt_for_emulator

    text = path.read_text()
    if engine == "emu":
        try:
            text = adapt_for_emulator(text, "cuda" if dialect == "mlu" else dialect)
        except Exception:  # noqa: BLE001 -- the raw text is checked instead
            pass
    with tempfile.TemporaryDirectory(prefix="xpiler-selfcheck-") as tmp:
        src = Path(tmp) / ("kernel.cu" if engine == "gpu" else "kernel.cpp")
        src.write_text(text)
        cmd, env = build_command(engine, dialect, src, Path(tmp) / "a.out", False)
        cmd = [c for c in cmd if c not in ("-lpthread",)]
        if "-o" in cmd:
            i = cmd.index("-o")
            del cmd[i:i + 2]
        cmd.insert(1, "-fsyntax-only")
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=600)
        return r.returncode == 0, (r.stderr + r.stdout).replace(tmp + "/", "")


def _is_kernel_frame(f: str, kernel_file: str | None) -> bool:
    """A frame in the kernel source: the build's copy (kernel.cpp) or, where the emulator
    keeps #line directives, the original file."""
    name = Path(f).name
    return name.startswith("kernel.") or (kernel_file is not None and name == Path(kernel_file).name)


def _first_asan(log: str, kernel_file: str | None = None) -> str:
    lines = [l for l in log.splitlines() if l.strip()]
    for i, l in enumerate(lines):
        if "ERROR: AddressSanitizer:" in l:
            frames = [x.strip() for x in lines[i:i + 40] if re.match(r"\s*#\d+ ", x)]
            kernel = next((f for f in frames
                           if _is_kernel_frame(f.split(" ")[-1].rsplit(":", 2)[0], kernel_file)), "")
            first = frames[0] if frames else ""
            what = next((x.strip() for x in lines[i + 1:i + 4] if x.strip().startswith(("READ", "WRITE"))), "")
            return " ".join(p for p in (l.split("ERROR: ")[-1], what, "at " + (kernel or first)) if p)
    return ""


def _asan_location(log: str, kernel_file: str | None = None) -> str:
    """'kernel' when the first frame of the report that is not libasan/libc is in the kernel
    source, 'runtime' when it is in an emulator header, '' when unknown."""
    lines = log.splitlines()
    start = next((i for i, l in enumerate(lines) if "ERROR: AddressSanitizer:" in l), None)
    if start is None:
        return ""
    for l in lines[start:start + 60]:
        m = re.match(r"\s*#\d+ 0x[0-9a-f]+ in .* (\S+):\d+", l)
        if not m:
            continue
        f = m.group(1)
        if _is_kernel_frame(f, kernel_file):
            return "kernel"
        if _in_runtime(f) or f.endswith(("_emu.h", "gpu_common.h", "gpu_wmma.h", "xpiler_fiber.h")):
            return "runtime"
        if "harness." in f:
            return "harness"
    return ""


# Emulator build switches used to collect evidence (emulator knowledge, not operator knowledge):
# strict hardware-rule diagnostics (the harness registers the buffers it passes to a BANG
# kernel as GDRAM, so strict mode tells them from other memory), and on-chip/device memory
# poisoning turned off.
STRICT_FLAGS = {"mlu": ["-DXPILER_BANG_STRICT=1"]}
NO_POISON_FLAGS = {"mlu": ["-DXPILER_BANG_POISON_ONCHIP=0"], "cuda": ["-DXPILER_EMU_POISON=0"],
                   "hip": ["-DXPILER_EMU_POISON=0"]}


def run_with_flags(k, inputs: dict, engine: str, flags: list[str], timeout: float) -> dict:
    """Build ``k`` for ``engine`` with extra compiler flags (uncached) and run it."""
    from .emu_adapt import adapt_for_emulator
    from .engines import render_harness
    from .engines import run as run_exe

    text = k.text
    if engine == "emu":
        text = adapt_for_emulator(text, "cuda" if k.dialect == "mlu" else k.dialect)
    with tempfile.TemporaryDirectory(prefix="xpiler-selfcheck-") as tmp:
        (Path(tmp) / "kernel.cpp").write_text(text)
        harness = Path(tmp) / "harness.cpp"
        harness.write_text(render_harness(k.entry, k.dialect, "kernel.cpp", k.sizes))
        cmd, env = build_command(engine, k.dialect, harness, Path(tmp) / "harness", False)
        cmd[1:1] = list(flags)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=900)
        if r.returncode != 0:
            raise EngineError("build with " + " ".join(flags) + " failed", "build", r.stderr + r.stdout)
        outputs, _, _ = run_exe(Path(tmp) / "harness", k.entry, inputs, k.sizes, timeout=timeout, engine=engine)
        return outputs


def _host_isa_note() -> str:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    if "avx512f" not in flags:
        return " (no AVX-512 on this host: /proc/cpuinfo lists no avx512f/avx512_vnni)"
    if "avx512_vnni" not in flags:
        return " (this host has AVX-512 but no avx512_vnni)"
    return ""


_EMU_DIAG = re.compile(r"(xpiler (?:bang )?emulator(?: error)?:.*|xpiler fiber:.*)")
_GAP_WORDS = re.compile(r"not supported|unsupported|not implemented|unimplemented|cannot map|cannot start|"
                        r"cannot mmap|too many|out of memory", re.I)


def classify_run_error(err: EngineError, kernel_file: str | None = None) -> tuple[str, str]:
    log = err.log or ""
    if "(exit -4)" in str(err) or "Illegal instruction" in log:
        isa = _host_isa_note()
        return "engine-gap", f"illegal instruction (SIGILL): the build uses instructions this host CPU lacks{isa}"
    if "timed out" in str(err):
        return "engine-gap", f"{err} (the emulator is too slow for this size)"
    m = _EMU_DIAG.search(log)
    if m:
        msg = m.group(1).strip()
        if _GAP_WORDS.search(msg):
            return "engine-gap", f"emulator abort: {msg}"
        return "source-defect", f"emulator diagnostic: {msg}"
    if "ERROR: AddressSanitizer:" in log:
        where = _asan_location(log, kernel_file)
        rep = _first_asan(log, kernel_file)
        if where == "runtime":
            return "engine-gap", f"ASan report inside the emulator: {rep}"
        return "source-defect", f"ASan: {rep}"
    if "AddressSanitizer" in log:
        line = next((l.strip() for l in log.splitlines() if "AddressSanitizer" in l), "")
        return "engine-gap", f"the engine does not run under ASan: {line[:200]}"
    tail = " | ".join(l for l in log.strip().splitlines()[-3:]) or str(err)
    return "engine-gap", f"crash without a sanitizer report: {tail[:300]}"


# ----------------------------------------------------------------------------------------
# one file

def _run_inputs(k, ins: dict) -> dict:
    """Arguments for prepared kernel ``k``: the case's tensors sized to what the kernel
    touches (zero-padded), poisoned buffers for the rest, and its scalars."""
    run_in = {}
    for b in k.entry.buffers:
        if b.name in ins:
            run_in[b.name] = _sized(ins[b.name], k.sizes[b.name], k.dtypes[b.name], "zero")
        else:
            run_in[b.name] = poisoned(k.dtypes[b.name], k.sizes[b.name] // k.dtypes[b.name].itemsize)
    run_in.update(k.scalars)
    return run_in


def _sized(arr: np.ndarray, nbytes: int, dtype, fill: str) -> np.ndarray:
    """``arr`` (flat) cast to dtype, padded with random/poison or truncated to nbytes."""
    dt = np.dtype(dtype)
    count = nbytes // dt.itemsize
    a = np.ascontiguousarray(arr).reshape(-1).astype(dt, copy=False)
    if a.size == count:
        return a
    if a.size > count:
        return a[:count].copy()
    pad = poisoned(dt, count - a.size) if fill == "poison" else np.zeros(count - a.size, dt)
    return np.concatenate([a, pad])


class Checker:
    def __init__(self, plugin, engine: str | None = None, seed: int = 0, timeout: float = 300, asan: bool = True):
        self.plugin = plugin
        self.engine = engine
        self.seed = seed
        self.timeout = timeout
        self.asan = asan

    def check(self, path: Path) -> Result:
        t0 = time.perf_counter()
        dialect = EXTENSIONS.get(path.suffix) or dialect_of(str(path))
        engine = self.engine or default_engine(dialect)
        try:
            r = self._check(path, dialect, engine)
        except Exception as e:  # noqa: BLE001 -- one file's failure must not stop the run
            r = Result(str(path), dialect, "engine-gap", f"self-check failed: {type(e).__name__}: {e}"[:500])
        r.seconds = round(time.perf_counter() - t0, 3)
        return r

    def _no_case(self, path, dialect, engine, reason, status="no-case", op=""):
        ok, log = syntax_check(path, dialect, engine)
        if not ok:
            st, why = classify_build_error(log, engine)
            if st == "engine-gap":
                return Result(str(path), dialect, st, why, op=op, evidence=log[-2000:])
            return Result(str(path), dialect, "source-defect", f"original {why}", op=op, evidence=log[-2000:])
        return Result(str(path), dialect, status, reason, op=op)

    def _check(self, path: Path, dialect: str, engine: str) -> Result:
        file = str(path)
        try:
            with _PREPARE_LOCK:  # the plugin parses the file too
                case = self.plugin.case_for(file, dialect)
        except Exception as e:  # noqa: BLE001
            case = None
            reason = f"plugin error: {type(e).__name__}: {e}"
        else:
            reason = getattr(self.plugin, "LAST_REASON", "") or "the plugin has no case for this file"
        if case is None:
            return self._no_case(path, dialect, engine, reason)
        op = getattr(case, "op", "")
        extents = dict(case.extents or {})
        try:
            k = _prepare(file, case.scalars, extents, dialect=dialect)
        except XpilerError as e:
            # inference failed: declare what the reference knows about every input buffer
            ins0 = case.make_inputs(self.seed)
            extents.update({n: int(np.asarray(a).size) for n, a in ins0.items() if n not in extents})
            for n, v in (getattr(case, "sizes", None) or {}).items():
                extents.setdefault(n, int(v))
            try:
                k = _prepare(file, case.scalars, extents, dialect=dialect)
            except XpilerError as e2:
                r = self._no_case(path, dialect, engine, f"cannot prepare: {e2}", status="engine-gap", op=op)
                if r.status == "engine-gap":
                    r.reason = f"cannot prepare: {e}"[:500]
                return r
        if case.skip:
            try:
                build(k.text, dialect, k.entry, k.sizes, engine)
            except EngineError as e:
                st, why = classify_build_error(e.log, engine)
                return Result(file, dialect, st, why, op=op, evidence=e.log[-2000:])
            return Result(file, dialect, "skipped", f"builds; not run: {case.skip}", op=op)

        ins = case.make_inputs(self.seed)
        notes = []
        # inputs larger than what the kernel is known to touch: declare them (the kernel may
        # index data-dependently); kernel extents larger than the tensor: pad and say so
        grow = {n: int(np.asarray(a).size) for n, a in ins.items()
                if n in k.sizes and np.asarray(a).size * k.dtypes[n].itemsize > k.sizes[n]}
        if grow:
            extents.update(grow)
            k = _prepare(file, case.scalars, extents, dialect=dialect)
        for n, a in ins.items():
            if n in k.sizes and k.sizes[n] > np.asarray(a).size * k.dtypes[n].itemsize:
                notes.append(f"kernel touches {k.sizes[n] // k.dtypes[n].itemsize} elements of {n}, "
                             f"the tensor has {np.asarray(a).size}")
        run_in = _run_inputs(k, ins)
        expected = case.expected(ins)
        try:
            res = k.run(run_in, engine, timeout=self.timeout)
        except EngineError as e:
            if e.stage == "build":
                st, why = classify_build_error(e.log, engine)
                return Result(file, dialect, st, why, op=op, evidence=e.log[-2000:])
            st, why = classify_run_error(e, file)
            if st != "engine-gap" or "AddressSanitizer" in (e.log or "") or "timed out" in str(e) \
                    or "SIGILL" in why:
                return Result(file, dialect, st, why, op=op, evidence=(e.log or "")[-2000:])
            # a plain crash: ASan names the culprit where the engine supports it
            ev = self._asan_evidence(k, file, case, ins, dialect, engine)
            if ev and ev[0]:
                return Result(file, dialect, ev[0], f"crashes; {ev[1]}", op=op, evidence=ev[2])
            if ev:
                why += f"; {ev[1]}"
            return Result(file, dialect, st, why, op=op, evidence=(e.log or "")[-2000:])

        comps, worst = self._compare(expected, res.outputs, case)
        if all(c.ok for c in comps):
            return Result(file, dialect, "match", "; ".join(notes), worst, op=op)
        for label, fn in case.variants or []:
            vc, vworst = self._compare(fn(ins), res.outputs, case)
            if all(c.ok for c in vc):
                return Result(file, dialect, "match", "; ".join([f"matches {label}"] + notes), vworst, op=op)
        for label, make_alt, expected_alt in getattr(case, "alternatives", None) or []:
            alt_ins = make_alt(self.seed)
            alt_run = dict(run_in)
            for b in k.entry.buffers:
                if b.name in alt_ins:
                    alt_run[b.name] = _sized(alt_ins[b.name], k.sizes[b.name], k.dtypes[b.name], "zero")
            try:
                alt_res = k.run(alt_run, engine, timeout=self.timeout)
            except EngineError:
                break
            vc, vworst = self._compare(expected_alt(alt_ins), alt_res.outputs, case)
            if all(c.ok for c in vc):
                return Result(file, dialect, "match", "; ".join([f"matches {label}"] + notes), vworst, op=op)
        summary = "; ".join(c.summary() for c in comps if not c.ok)
        for name in expected:
            a = np.asarray(res.outputs[name])
            if a.size and name in k.sizes:
                pz = poisoned(a.dtype, 1).view(np.uint8)
                hits = int((a.view(np.uint8).reshape(a.size, -1) == pz).all(axis=1).sum())
                if hits:
                    summary += f" [{hits}/{a.size} elements of {name} still hold the harness's poison: never written]"
        # evidence: the kernel's own extent of an output is smaller than the operator's output
        for name, exp in expected.items():
            n_kernel = k.sizes.get(name, 0) // k.dtypes[name].itemsize if name in k.dtypes else 0
            n_op = int(np.asarray(exp).size)
            if 0 < n_kernel < n_op:
                how = "host code copies back" if not k.entry.synthesized else "kernel's inferred extent covers"
                return Result(file, dialect, "source-defect",
                              f"kernel is written for another shape: its {how} {n_kernel} elements of {name}, "
                              f"the operator's output has {n_op}", worst, op=op, evidence=summary)
        # evidence: an alternative formula that reproduces the outputs, or a sanitizer report
        if case.explain is not None:
            try:
                why = case.explain(ins, {n: res.outputs[n] for n in res.outputs})
            except Exception as e:  # noqa: BLE001
                why = None
                notes.append(f"explain failed: {e}")
            if why:
                return Result(file, dialect, "source-defect", f"mismatch explained: {why}", worst, op=op,
                              evidence=summary)
        ev = self._emu_evidence(k, run_in, res.outputs, engine)
        if ev:
            return Result(file, dialect, ev[0], f"mismatch ({summary}); {ev[1]}", worst, op=op, evidence=ev[2])
        ev = self._asan_evidence(k, file, case, ins, dialect, engine)
        if ev and ev[0]:
            return Result(file, dialect, ev[0], f"mismatch ({summary}); {ev[1]}", worst, op=op, evidence=ev[2])
        if ev:
            notes.append(ev[1])
        return Result(file, dialect, "mismatch", "; ".join([summary] + notes), worst, op=op)

    def _compare(self, expected: dict, outputs: dict, case):
        comps, worst = [], 0.0
        for name, exp in expected.items():
            exp = np.asarray(exp).reshape(-1)
            act = np.asarray(outputs[name]).reshape(-1)
            if act.size > exp.size:
                act = act[:exp.size]
            if act.dtype.kind in "iub" and exp.dtype.kind == "f":
                exp = np.rint(exp)
            exp = exp.astype(act.dtype)
            c = compare_arrays(name, exp if exp.shape == act.shape else exp, act, atol=case.atol, rtol=case.rtol)
            comps.append(c)
            worst = max(worst, c.max_abs_err)
        return comps, worst

    def _emu_evidence(self, k, run_in, outputs, engine):
        """Emulator reruns: strict hardware-rule checks, then on-chip/device memory not
        poisoned (outputs that change read memory the kernel never wrote)."""
        if engine != "emu":
            return None
        flags = STRICT_FLAGS.get(k.dialect)
        if flags:
            try:
                run_with_flags(k, run_in, engine, flags, self.timeout)
            except EngineError as e:
                m = _EMU_DIAG.search(e.log or "")
                if m and not _GAP_WORDS.search(m.group(1)):
                    return ("source-defect", f"strict emulator ({' '.join(flags)}): {m.group(1).strip()}",
                            (e.log or "")[-3000:])
            except Exception:  # noqa: BLE001 -- evidence is best effort
                pass
        flags = NO_POISON_FLAGS.get(k.dialect)
        if flags:
            try:
                other = run_with_flags(k, run_in, engine, flags, self.timeout)
            except Exception:  # noqa: BLE001
                return None
            for b in k.entry.buffers:
                if b.role not in ("out", "inout"):
                    continue
                a, o = outputs[b.name], other[b.name]
                same = (a.view(np.uint8) == o.view(np.uint8)).reshape(a.size, -1).all(axis=1) if a.size else []
                diff = int(np.size(same) - np.count_nonzero(same))
                if diff:
                    changed = np.flatnonzero(~np.asarray(same))
                    first = int(changed[0])
                    raw = a.view(np.uint8).reshape(a.size, -1)[changed]
                    zero = o.view(np.uint8).reshape(o.size, -1)[changed]
                    unwritten = int(((raw == 0xFF).all(axis=1) & (zero == 0).all(axis=1)).sum())
                    if unwritten == diff:
                        return ("source-defect",
                                f"{diff}/{a.size} elements of {b.name} hold the emulator's fill of fresh memory "
                                f"(0xFF bytes when poisoned, 0 with {' '.join(flags)}; first at index {first}): "
                                f"never computed (not written, or copied from memory nothing wrote)", "")
                    return ("source-defect",
                            f"reads uninitialized memory: {diff}/{a.size} elements of {b.name} change when the "
                            f"emulator's fresh memory is zeroed instead of poisoned ({' '.join(flags)}; first at "
                            f"index {first}: {a[first].item()!r} vs {o[first].item()!r})", "")
        return None

    def _asan_evidence(self, k, file, case, ins, dialect, engine):
        """Rerun with AddressSanitizer, every buffer exactly as large as its tensor."""
        if not self.asan or engine == "gpu":
            return None
        try:
            exact = dict(case.extents or {})
            exact.update({n: int(v) for n, v in (getattr(case, "sizes", None) or {}).items()})
            exact.update({n: int(np.asarray(a).size) for n, a in ins.items()})
            ka = _prepare(file, case.scalars, exact, dialect=dialect)
            ka.run(_run_inputs(ka, ins), engine, asan=True, timeout=self.timeout * 3)
        except EngineError as e:
            if e.stage == "build":
                return None
            log = e.log or ""
            if "ERROR: AddressSanitizer:" in log:
                where = _asan_location(log, file)
                rep = _first_asan(log, file)
                i = log.find("ERROR: AddressSanitizer:")
                if where == "runtime":
                    return "engine-gap", f"ASan report inside the emulator: {rep}", log[i:i + 3000]
                return "source-defect", f"ASan: {rep}", log[i:i + 3000]
            m = _EMU_DIAG.search(log)
            if m and not _GAP_WORDS.search(m.group(1)):
                return "source-defect", f"emulator diagnostic: {m.group(1).strip()}", log[-3000:]
            if "AddressSanitizer" in log:
                line = next((l.strip() for l in log.splitlines() if "AddressSanitizer" in l), "")
                return None, f"no ASan evidence: the engine does not run under ASan ({line[:160]})", log[-3000:]
            return None
        except XpilerError:
            return None
        return None


def selfcheck(directory: str, refs_module_path: str, jobs: int = 2, engine: str | None = None, *,
              seed: int = 0, timeout: float = 300, progress=None, files: list | None = None) -> list[Result]:
    plugin = load_plugin(refs_module_path)
    paths_ = [Path(f) for f in files] if files else kernel_files(directory)
    checker = Checker(plugin, engine, seed, timeout)
    results: list[Result] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for i, r in enumerate(pool.map(checker.check, paths_), 1):
            results.append(r)
            if progress:
                progress(i, len(paths_), r)
    return results


def counts(results: list[Result]) -> dict:
    out = {s: 0 for s in STATUSES}
    for r in results:
        out[r.status] = out.get(r.status, 0) + 1
    return out
