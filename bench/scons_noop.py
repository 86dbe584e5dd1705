"""Time a no-op rebuild of examples/: the median of 5 `scons target=cpu` runs with nothing to do.

Copies examples/ to a temporary directory (so the checkout stays clean), builds it once
(translations come from the xpiler cache when warm), then times 5 no-op builds and checks
that they really did nothing and never imported z3, openai or rich.

    .venv/bin/python bench/scons_noop.py [--target cpu] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def scons(cwd: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("scons")
    return subprocess.run([str(exe), "-Q", *args], cwd=cwd, env=env, capture_output=True, text=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="cpu")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="xpiler-noop-"))
    work = tmp / "examples"
    shutil.copytree(ROOT / "examples", work, ignore=shutil.ignore_patterns("build", ".sconsign*"))
    try:
        t0 = time.perf_counter()
        r = scons(work, "-j2", f"target={args.target}")
        if r.returncode:
            print(r.stdout + r.stderr, file=sys.stderr)
            return 1
        print(f"first build: {time.perf_counter() - t0:.1f}s")
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            r = scons(work, f"target={args.target}")
            times.append(time.perf_counter() - t0)
            if r.returncode or "is up to date" not in r.stdout or "translate" in r.stdout:
                print("not a no-op:\n" + r.stdout + r.stderr, file=sys.stderr)
                return 1
        # the same no-op under -X importtime: which heavy modules were imported?
        exe = Path(sys.executable).with_name("scons")
        r = subprocess.run([sys.executable, "-X", "importtime", str(exe), "-Q", f"target={args.target}"],
                           cwd=work, capture_output=True, text=True)
        heavy = sorted({line.split("|")[-1].strip().split(".")[0] for line in r.stderr.splitlines()
                        if line.startswith("import time:") and
                        line.split("|")[-1].strip().split(".")[0] in ("z3", "openai", "rich", "diskcache", "jinja2")})
        print("no-op rebuild times: " + " ".join(f"{t:.3f}" for t in times) + " s")
        print(f"median of {len(times)} no-op rebuilds: {statistics.median(times):.3f} s")
        print("heavy modules imported by a no-op: " + (", ".join(heavy) or "none"))
        try:
            print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        except OSError:
            pass
        return 1 if heavy else 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
