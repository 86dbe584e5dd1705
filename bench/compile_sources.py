#!/usr/bin/env python3
"""Compile every benchmark source with its platform's real compiler and report failures.

Each file is compiled alone, with the platform's prelude force-included (benchmark
sources have no #include lines), using the command from platform_configs/<name>.toml.
The object file is discarded. MLU is skipped: it has no real compiler (cncc is
vendor-only).

    .venv/bin/python bench/compile_sources.py --jobs 2 --json build/compile.json
    .venv/bin/python bench/compile_sources.py --dialect hip --syntax-only

Exit status: 0 when the run completed (failing sources are a result, not an error),
2 on bad usage or a missing benchmark directory or compiler.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Allow running from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xpiler import paths  # noqa: E402
from xpiler.platforms import config  # noqa: E402

# Benchmark sub-directory per platform.
BENCH_SUBDIR = {"cuda": "CUDA", "hip": "HIP", "cpu": "CPP"}

# "file.cu(12): error: ..." (nvcc) and "file.hip:12:3: error: ..." (clang, gcc).
_LOCATION = re.compile(r"^\S+?(?:\(\d+\)|:\d+(?::\d+)?):\s*")


def first_error(stderr: str) -> str:
    """The first line that reports an error, else the first non-empty line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if re.search(r"\berror\b", line, re.IGNORECASE):
            return line
    return lines[0] if lines else "(no diagnostic)"


def cause(reason: str) -> str:
    """A reason with its file location removed, so that equal causes group together."""
    return _LOCATION.sub("", reason)


def compile_one(dialect: str, src: Path, bench_dir: Path, syntax_only: bool,
                timeout: float) -> dict:
    argv = config.compile_command(dialect, src, None, syntax_only=syntax_only)
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, env=config.compile_env(dialect), capture_output=True,
                              text=True, timeout=timeout)
        ok = proc.returncode == 0
        reason = "" if ok else first_error(proc.stderr + proc.stdout)
    except subprocess.TimeoutExpired:
        ok, reason = False, f"timeout after {timeout:g} s"
    return {
        "file": src.relative_to(bench_dir).as_posix(),
        "dialect": dialect,
        "ok": ok,
        "reason": reason,
        "seconds": round(time.monotonic() - start, 2),
    }


def summarize(results: list[dict], dialects: list[str]) -> str:
    out = []
    for dialect in dialects:
        rows = [r for r in results if r["dialect"] == dialect]
        failed = [r for r in rows if not r["ok"]]
        out.append(f"{dialect}: {len(rows) - len(failed)}/{len(rows)} compile, "
                   f"{len(failed)} fail")
        groups: dict[str, list[str]] = defaultdict(list)
        for r in failed:
            groups[cause(r["reason"])].append(Path(r["file"]).name)
        for why, files in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            out.append(f"  [{len(files)}] {why}")
            out.append(f"      {' '.join(sorted(files))}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench-dir", type=Path, default=paths.shared_bench_dir(),
                        help="benchmark root with CUDA/ HIP/ CPP/ (default: %(default)s)")
    parser.add_argument("--dialect", action="append", choices=sorted(BENCH_SUBDIR),
                        help="platform to compile (repeatable; default: all three)")
    parser.add_argument("--jobs", "-j", type=int, default=2,
                        help="parallel compiler processes (default: %(default)s)")
    parser.add_argument("--syntax-only", action="store_true",
                        help="use each config's fast check instead of a full compile")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds allowed per file (default: %(default)s)")
    parser.add_argument("--filter", default="",
                        help="only files whose name contains this string")
    parser.add_argument("--json", type=Path, help="write [{file, dialect, ok, reason, "
                        "seconds}] to this file")
    args = parser.parse_args(argv)

    dialects = args.dialect or list(BENCH_SUBDIR)
    if not args.bench_dir.is_dir():
        parser.error(f"benchmark directory not found: {args.bench_dir}")
    for dialect in dialects:
        if not config.compiler_available(dialect):
            command = config.load_platform_config(dialect)["compiler"]["command"]
            parser.error(f"{dialect}: compiler {command!r} not found on PATH")

    jobs = []
    for dialect in dialects:
        for src in sorted((args.bench_dir / BENCH_SUBDIR[dialect]).iterdir()):
            if src.is_file() and args.filter in src.name:
                jobs.append((dialect, src))

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(
            lambda job: compile_one(job[0], job[1], args.bench_dir, args.syntax_only,
                                    args.timeout),
            jobs))
    elapsed = time.monotonic() - start

    print(summarize(results, dialects))
    mode = "syntax-only" if args.syntax_only else "compile"
    print(f"{len(results)} files ({mode}) in {elapsed:.0f} s with {args.jobs} jobs")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
