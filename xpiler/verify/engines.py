"""Execution engines: build a kernel with a generated harness and run it on given inputs.

Engines
- ``emu``: the CPU emulators (runtime headers compiled with g++) for cuda, hip and mlu;
- ``native``: the CPU platform compiled with g++ and run natively (AVX-512 VNNI);
- ``gpu``: CUDA compiled with nvcc and run on a real NVIDIA GPU.

The harness (templates/harness/main.cpp.j2) reads every buffer and scalar from one binary
file, calls the host entry (or launches the kernel with the platform's default launch
when the file has no host code), and writes every buffer back. Builds are cached by the
content hash of everything that goes into them, so re-running a kernel on new inputs
does not recompile it. A run's time limit is CPU time (see _run_limited).
"""
from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import paths
from ..errors import XpilerError
from ..ir import nodes as N
from ..ir import types as T
from ..ir.entry import HostEntry
from ..lang import PRINTERS

ENGINES = ("emu", "native", "gpu")
# Fiber stack size of the CUDA/HIP emulator builds (see build_command)
GPU_EMU_STACK_FLAG = "-DXPILER_FIBER_STACK_SIZE=(4*1024*1024)"
RUNTIME_HEADERS = {"cuda": "cuda_emu.h", "hip": "hip_emu.h", "mlu": "bang_emu.h"}
NUMPY_DTYPES = {
    "bool": np.bool_, "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
    "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
    "float16": np.float16, "bfloat16": np.uint16, "float32": np.float32, "float64": np.float64,
}


class EngineError(XpilerError):
    """A kernel could not be built or run on an engine (with the tool's own message)."""

    def __init__(self, message: str, stage: str, log: str = ""):
        super().__init__(message)
        self.stage = stage  # build | run | asan
        self.log = log


@dataclass
class RunResult:
    outputs: dict  # buffer name -> numpy array after the run
    engine: str
    build_seconds: float
    run_seconds: float
    log: str = ""
    cached_build: bool = False
    extras: dict = field(default_factory=dict)


def numpy_dtype(t: T.Type):
    if isinstance(t, T.ScalarType) and t.name in NUMPY_DTYPES:
        return np.dtype(NUMPY_DTYPES[t.name])
    if isinstance(t, T.VectorType):
        return numpy_dtype(t.elem)
    raise EngineError(f"no host representation for element type {t}", "build")


def default_engine(dialect: str) -> str:
    return "native" if dialect == "cpu" else "emu"


def _engine_dialect_ok(engine: str, dialect: str):
    ok = {"emu": ("cuda", "hip", "mlu"), "native": ("cpu",), "gpu": ("cuda",)}[engine]
    if dialect not in ok:
        raise EngineError(f"engine {engine!r} cannot run {dialect} kernels (it runs {', '.join(ok)})", "build")


def _call_expr(entry: HostEntry, dialect: str, printer) -> tuple[str, str]:
    args = []
    for p in entry.params:
        if isinstance(p.dtype, (T.PointerType, T.ArrayType)):
            ptype = printer.type_decl(T.PointerType(p.dtype.elem, "", getattr(p.dtype, "const", False))
                                      if isinstance(p.dtype, T.ArrayType) else p.dtype, "").strip()
            args.append(f"({ptype})xb_{p.name}")
        else:
            args.append(f"xs_{p.name}")
    joined = ", ".join(args)
    if not entry.synthesized:
        return f"{entry.name}({joined})", ""
    launch = entry.launches[0]
    if dialect == "mlu":
        dims = ", ".join(printer.expr(d) for d in launch.grid)
        return (f"xpiler_launch({launch.kernel}, cnrtDim3_t{{{dims}}}, CNRT_FUNC_TYPE_{launch.func_type or 'UNION1'})({joined})", "")
    return f"{entry.name}({joined})", ""


def render_harness(entry: HostEntry, dialect: str, kernel_file: str, sizes: dict[str, int], gpu: bool = False) -> str:
    import jinja2

    printer = PRINTERS[dialect]()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(paths.templates_dir() / "harness")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    buffers = [{"name": b.name, "nbytes": sizes[b.name], "alloc": max(1, sizes[b.name]), "role": b.role}
               for b in entry.buffers]
    scalars = [{"name": s, "ctype": printer.type_decl(_param(entry, s).dtype, "").strip()} for s in entry.scalars]
    call, _ = _call_expr(entry, dialect, printer)
    # BANG kernels launched by the harness itself take its buffers as GDRAM; host code
    # (cnrtMalloc + cnrtMemcpy) must see them as host memory, so they are not registered then
    gdram = dialect == "mlu" and entry.synthesized and not gpu
    return env.get_template("main.cpp.j2").render(entry_name=entry.name, kernel_file=kernel_file,
                                                  buffers=buffers, scalars=scalars, call=call, gpu=gpu,
                                                  gdram=gdram)


def _param(entry: HostEntry, name: str) -> N.Param:
    return next(p for p in entry.params if p.name == name)


def build_command(engine: str, dialect: str, harness: Path, exe: Path, asan: bool) -> tuple[list[str], dict]:
    from ..platforms import config as pc

    env = dict(os.environ)
    if engine == "emu":
        header = paths.runtime_dir() / RUNTIME_HEADERS[dialect]
        cmd = ["g++", "-std=c++17", "-O1" if asan else "-O2", "-w", "-fno-strict-aliasing",
               "-I", str(paths.runtime_dir()), "-include", str(header)]
        if dialect in ("cuda", "hip"):
            # Kernels translated from BANG keep a task's NRAM buffers as thread-local arrays
            # (hundreds of KiB); fiber stacks are reserved lazily, so a large size is cheap.
            cmd.append(GPU_EMU_STACK_FLAG)
        cfg = pc.load_platform_config(dialect).get("limits", {})
        if dialect == "mlu":
            for key, macro in (("nram_bytes", "XPILER_NRAM_BYTES"), ("wram_bytes", "XPILER_WRAM_BYTES"),
                               ("sram_bytes_per_cluster", "XPILER_SRAM_BYTES")):
                if key in cfg:
                    cmd.append(f"-D{macro}={cfg[key]}")
        cmd += ["-x", "c++", str(harness), "-o", str(exe), "-lpthread"]
    elif engine == "native":
        c = pc.load_platform_config("cpu")["compiler"]
        flags, prelude = list(c["flags"]), pc.prelude_path("cpu")
        if not _host_has_avx512():
            # Without AVX-512 the -mavx512 flags make g++ emit instructions this CPU
            # lacks (SIGILL even in plain C); the intrinsics then come from SIMDe.
            flags = [f for f in flags if not f.startswith("-mavx512")]
            prelude = simde_prelude()
        cmd = [c["command"], *flags, "-w", "-include", str(prelude), "-x", "c++", str(harness), "-o", str(exe)]
    else:
        c = pc.load_platform_config("cuda")["compiler"]
        cmd = [c["command"], *c["flags"], "-w", "-include", str(pc.prelude_path("cuda")),
               "-x", "cu", str(harness), "-o", str(exe)]
    if asan:
        if engine == "gpu":
            raise EngineError("--asan is for the CPU engines (emu, native)", "build")
        cmd[1:1] = ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"]
    return cmd, env


def _host_has_avx512() -> bool:
    """Whether this CPU runs the VNNI kernels natively (AVX-512 F/VL/BW and VNNI)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return True
    return {"avx512f", "avx512vl", "avx512bw", "avx512_vnni"} <= flags


def simde_prelude() -> Path:
    if not Path("/usr/include/simde/x86/avx512.h").exists():
        raise EngineError("this CPU lacks AVX-512 VNNI and SIMDe is not installed to emulate the intrinsics "
                          "(apt-get install libsimde-dev)", "build")
    return paths.include_dir() / "cpu_simde_prelude.h"


def native_label() -> str:
    """How the cpu platform runs here, for reports: natively, or with emulated intrinsics."""
    return "native" if _host_has_avx512() else "native (x86 intrinsics emulated by SIMDe: no AVX-512 here)"


def _build_dir() -> Path:
    base = Path(os.environ.get("XPILER_CACHE_DIR", paths.repo_root() / "cache")) / "builds"
    base.mkdir(parents=True, exist_ok=True)
    return base


def build(source_text: str, dialect: str, entry: HostEntry, sizes: dict[str, int], engine: str,
          *, asan: bool = False, name: str = "") -> tuple[Path, float, bool]:
    """Compile source + harness for ``engine``; returns (executable, seconds, from_cache)."""
    _engine_dialect_ok(engine, dialect)
    kernel_text = source_text
    if engine == "emu":
        from .emu_adapt import adapt_for_emulator

        # BANG launches use the same <<<...>>> syntax as CUDA; its kernel names need the
        # same protection from libm clashes.
        kernel_text = adapt_for_emulator(source_text, "cuda" if dialect == "mlu" else dialect)
    if name:  # compiler and AddressSanitizer messages name the user's file and line
        kernel_text = f'#line 1 "{_c_string(name)}"\n' + kernel_text
    ext = {"gpu": ".cu"}.get(engine, ".cpp")
    harness_text = render_harness(entry, dialect, "kernel" + ext, sizes, gpu=engine == "gpu")
    key_src = "\0".join([kernel_text, harness_text, engine, dialect, str(asan),
                         _runtime_fingerprint(engine, dialect)]
                        + (["no-avx512"] if engine == "native" and not _host_has_avx512() else []))
    key = hashlib.sha256(key_src.encode()).hexdigest()[:24]
    out_dir = _build_dir() / key
    exe = out_dir / "harness"
    if exe.exists():
        return exe, 0.0, True
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=_build_dir()))
    try:
        (tmp / ("kernel" + ext)).write_text(kernel_text)
        harness = tmp / ("harness" + ext)
        harness.write_text(harness_text)
        cmd, env = build_command(engine, dialect, harness, tmp / "harness", asan)
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=600)
        seconds = time.perf_counter() - t0
        if r.returncode != 0:
            raise EngineError(f"{engine} build failed: " + _errors(r.stderr + r.stdout, tmp), "build",
                              r.stderr + r.stdout)
        try:
            os.replace(tmp, out_dir)  # atomic publish: a concurrent builder's copy is as good
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        return exe, seconds, False
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _c_string(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _runtime_fingerprint(engine: str, dialect: str) -> str:
    h = hashlib.sha256()
    files = sorted(paths.runtime_dir().glob("*.h")) if engine == "emu" else sorted(paths.include_dir().glob("*.h"))
    for f in files:
        h.update(f.read_bytes())
    h.update((paths.platform_configs_dir() / f"{dialect}.toml").read_bytes())
    return h.hexdigest()


def _errors(output: str, tmp: Path, limit: int = 4) -> str:
    lines = [l.replace(str(tmp) + "/", "") for l in output.splitlines() if "error" in l.lower()]
    return " | ".join(lines[:limit]) or (output.strip().splitlines() or ["(no output)"])[-1]


def run(exe: Path, entry: HostEntry, inputs: dict, sizes: dict[str, int], *, timeout: float = 300,
        engine: str = "emu", env: dict | None = None) -> tuple[dict, float, str]:
    """Run a built harness; returns (buffers after the run, seconds, stderr)."""
    with tempfile.TemporaryDirectory(prefix="xpiler-run-") as tmp:
        fin, fout = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        with open(fin, "wb") as f:
            for b in entry.buffers:
                arr = np.ascontiguousarray(inputs[b.name])
                data = arr.tobytes()
                if len(data) != sizes[b.name]:
                    raise EngineError(f"buffer {b.name}: {len(data)} bytes given, {sizes[b.name]} expected", "run")
                f.write(data)
            for s in entry.scalars:
                dt = numpy_dtype(_param(entry, s).dtype)
                f.write(np.array([inputs[s]], dtype=dt).tobytes())
        # use_sigaltstack=0: the BANG emulator installs its own alternate signal stacks
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:use_sigaltstack=0", **(env or {}))
        t0 = time.perf_counter()
        r = _run_limited([str(exe), str(fin), str(fout)], env, timeout, engine)
        seconds = time.perf_counter() - t0
        if r.returncode != 0:
            stage = "asan" if "AddressSanitizer" in r.stderr else "run"
            raise EngineError(f"{engine} run failed (exit {r.returncode}): " + _run_error(r.stderr), stage, r.stderr)
        raw = fout.read_bytes()
    outputs, off = {}, 0
    for b in entry.buffers:
        n = sizes[b.name]
        outputs[b.name] = np.frombuffer(raw[off:off + n], dtype=numpy_dtype(b.elem)).copy()
        off += n
    return outputs, seconds, r.stderr


# A run may take this many times its limit (and at least a minute more) in wall-clock time:
# on a shared machine wall time grows with other people's load, so the limit is on CPU time.
WALL_FACTOR = 4


def wall_limit(timeout: float) -> float:
    return max(timeout * WALL_FACTOR, timeout + 60)


def _run_limited(cmd: list[str], env: dict, timeout: float, engine: str) -> subprocess.CompletedProcess:
    """Run ``cmd`` with ``timeout`` seconds of CPU time (all its threads together; the kernel
    stops it with SIGXCPU) and wall_limit(timeout) of wall-clock time as a backstop."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        cpu = max(1, int(timeout + 0.999))
        resource.prlimit(proc.pid, resource.RLIMIT_CPU, (cpu, cpu + 5))
    except (OSError, ValueError):  # the child already exited, or no prlimit: wall limit only
        pass
    try:
        out, err = proc.communicate(timeout=wall_limit(timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise EngineError(f"{engine} run timed out after {wall_limit(timeout):.0f}s of wall-clock time "
                          f"(the backstop of the {timeout:.0f}s CPU-time limit)", "run") from None
    if proc.returncode == -signal.SIGXCPU:
        raise EngineError(f"{engine} run timed out after {timeout:.0f}s of CPU time", "run", err)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _run_error(stderr: str) -> str:
    lines = [l for l in stderr.splitlines() if l.strip()]
    for i, l in enumerate(lines):
        if "ERROR: AddressSanitizer" in l:
            skip = ("/harness.", "sanitizer", "asan", "/verify/runtime/", "/usr/include/", "libc.so")
            frame = next((x.strip().split(" in ", 1)[1] for x in lines[i:] if x.strip().startswith("#")
                          and " in " in x and not any(k in x for k in skip)), "")
            return l.split("ERROR: ")[-1] + (f" at {frame}" if frame else "")
    return " | ".join(lines[-3:]) or "(no output)"


def run_program(source_text: str, dialect: str, entry: HostEntry, inputs: dict, sizes: dict[str, int],
                engine: str | None = None, *, asan: bool = False, timeout: float = 300, name: str = "",
                env: dict | None = None) -> RunResult:
    engine = engine or default_engine(dialect)
    exe, bsec, cached = build(source_text, dialect, entry, sizes, engine, asan=asan, name=name)
    outputs, rsec, log = run(exe, entry, inputs, sizes, timeout=timeout, engine=engine, env=env)
    return RunResult(outputs, engine, bsec, rsec, log, cached)
