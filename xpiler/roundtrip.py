"""Round trip: parse, print, re-parse, check the IR is a fixpoint, compile what was printed.

Each file ends as
- ok: the IR of the printed file has the same structural hash as the original's, and
  the printed file compiles with the platform's real compiler (the BANG emulator's g++
  check for mlu, which has no public compiler);
- source-invalid: the original itself does not compile (the compiler's message is the
  reason), so nothing printed from it can be expected to;
- failed: xpiler lost or changed something (the reason says what).
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import SourceError
from .ir import structural_hash
from .lang import dialect_of, parse_source, print_program

DIALECT_DIRS = {"CUDA": "cuda", "HIP": "hip", "MLU": "mlu", "CPP": "cpu"}


@dataclass
class RoundtripResult:
    file: str
    dialect: str
    status: str  # ok | source-invalid | failed
    reason: str = ""
    hash: str = ""
    parse_seconds: float = 0.0


def collect_sources(paths: list[str]) -> list[Path]:
    """Kernel sources named directly or found (recursively) under directories."""
    from .lang.frontend import EXTENSIONS

    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.suffix.lower() in EXTENSIONS and f.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    return out


def check_compiles(dialect: str, text: str, name: str) -> tuple[bool | None, str]:
    """(True, "") when ``text`` compiles; (False, first error lines) when not; (None, why)
    when no compiler is available for the dialect here."""
    from .platforms import config as pc

    suffix = {"cuda": ".cu", "hip": ".hip", "mlu": ".mlu", "cpu": ".cpp"}[dialect]
    with tempfile.TemporaryDirectory(prefix="xpiler-rt-") as tmp:
        src = Path(tmp) / (Path(name).stem + suffix)
        if dialect == "mlu":
            argv, env = _emulator_syntax_check(text, src)
            if argv is None:
                return None, env
        else:
            if not pc.compiler_available(dialect):
                return None, f"{pc.load_platform_config(dialect)['compiler']['command']} is not installed"
            src.write_text(text)
            argv = pc.compile_command(dialect, src, None, syntax_only=True)
            env = pc.compile_env(dialect)
        try:
            r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, cwd=tmp)
        except subprocess.TimeoutExpired:
            return False, "compiler timed out"
        if r.returncode == 0:
            return True, ""
        return False, _first_errors(r.stderr + r.stdout, str(src), name)


def _emulator_syntax_check(text: str, src: Path):
    from . import paths

    header = paths.runtime_dir() / "bang_emu.h"
    if not header.exists():
        return None, "the BANG emulator header is not available"
    try:
        from .verify.emu_adapt import adapt_for_emulator

        text = adapt_for_emulator(text, "mlu")
    except ImportError:
        pass
    src.write_text(text)
    argv = ["g++", "-std=c++17", "-fsyntax-only", "-include", str(header), "-x", "c++", str(src)]
    return argv, dict(os.environ)


def _first_errors(output: str, tmp_name: str, real_name: str, limit: int = 3) -> str:
    lines = [l.replace(tmp_name, real_name) for l in output.splitlines() if "error" in l]
    return " | ".join(lines[:limit]) or output.strip().splitlines()[-1:][0] if output.strip() else "compiler failed"


def roundtrip_file(path: Path, compile: bool = True, format: bool = True) -> RoundtripResult:
    name = str(path)
    try:
        dialect = dialect_of(name)
    except SourceError as e:
        return RoundtripResult(name, "?", "failed", str(e))
    data = path.read_bytes()
    t0 = time.perf_counter()
    try:
        ir1 = parse_source(data, dialect, name)
    except SourceError as e:
        return _explain_rejection(name, dialect, data, str(e), compile, time.perf_counter() - t0)
    parse_s = time.perf_counter() - t0
    h1 = structural_hash(ir1)
    try:
        printed = print_program(ir1, format=format)
    except (ValueError, TypeError, NotImplementedError) as e:
        return RoundtripResult(name, dialect, "failed", f"printer: {e}", h1, parse_s)
    try:
        ir2 = parse_source(printed, dialect, name + " (printed)")
    except SourceError as e:
        return RoundtripResult(name, dialect, "failed", f"printed code does not re-parse: {e}", h1, parse_s)
    h2 = structural_hash(ir2)
    if h1 != h2:
        return RoundtripResult(name, dialect, "failed", "IR is not a fixpoint: " + _first_difference(ir1, ir2), h1, parse_s)
    if not compile:
        return RoundtripResult(name, dialect, "ok", "IR fixpoint (compile skipped)", h1, parse_s)
    ok, msg = check_compiles(dialect, printed, name)
    if ok is None:
        return RoundtripResult(name, dialect, "ok", f"IR fixpoint; not compiled: {msg}", h1, parse_s)
    if ok:
        return RoundtripResult(name, dialect, "ok", "", h1, parse_s)
    orig_ok, orig_msg = check_compiles(dialect, data.decode(errors="replace"), name)
    if orig_ok is False:
        return RoundtripResult(name, dialect, "source-invalid", orig_msg, h1, parse_s)
    return RoundtripResult(name, dialect, "failed", f"printed code does not compile: {msg}", h1, parse_s)


def _explain_rejection(name, dialect, data, error, compile, seconds) -> RoundtripResult:
    """The front-end rejected the file: that is right when the file is not valid code."""
    if compile:
        ok, msg = check_compiles(dialect, data.decode(errors="replace"), name)
        if ok is False:
            return RoundtripResult(name, dialect, "source-invalid", msg, "", seconds)
    return RoundtripResult(name, dialect, "failed", error, "", seconds)


def _first_difference(a, b, path="program") -> str:
    from .ir.visitor import _is_ir, fields_of

    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, tuple):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    elif _is_ir(a):
        where = getattr(a, "span", None)
        for (k, x), (_, y) in zip(fields_of(a), fields_of(b)):
            if x != y:
                return _first_difference(x, y, f"{path}.{k}" if where is None else f"{where}: {type(a).__name__}.{k}")
    return f"{path}: {a!r} vs {b!r}"


def as_json(results: list[RoundtripResult]) -> list[dict]:
    return [asdict(r) for r in results]
