#!/usr/bin/env python3
"""Smoke run of the CUDA/HIP CPU emulators over XpilerBench: for one (or all) shapes of every
operator, adapt the source, compile it with the emulator header, call its `extern "C"` host
entry with generously sized random inputs, and report: compile error / crash / deadlock /
non-finite output / ok. It checks that kernels *run*, not that they are right (the tests in
tests/test_runtime_gpu.py compare sampled kernels with numpy).

    python bench/emulator_bench_smoke.py [--bench ../shared/xpilerbench] [--all] [--dialect cuda|hip]
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_runtime_gpu import In, Out, Program  # noqa: E402

# int arguments of the host entry, from the shape numbers in the file name
INTS = {
    "add": lambda a: [math.prod(a)], "sub": lambda a: [math.prod(a)], "sign": lambda a: [math.prod(a)],
    "relu": lambda a: [math.prod(a)], "gelu": lambda a: [math.prod(a)],
    "softmax": lambda a: [math.prod(a[:-1]), a[-1]],
    "gemm": lambda a: a, "bmm": lambda a: a, "gemv": lambda a: a, "layernorm": lambda a: a,
    "conv1d": lambda a: [max(a), min(a)],
    "conv2d": lambda a: [a[0], a[1], a[3], a[4], a[5], a[8]],
    "conv2dnchw": lambda a: [a[0], a[2], a[1], a[4], a[6], a[8]],
    "avgpool": lambda a: [a[0], a[3], a[1], a[4], a[6]], "maxpool": lambda a: [a[0], a[3], a[1], a[4], a[6]],
    "sumpool": lambda a: [a[0], a[3], a[1], a[4], a[6]],
    "gather": lambda a: [a[-1]],
    "gqa": lambda a: a, "mha": lambda a: a,
}
SPATIAL = np.array([[84, 117], [42, 59], [21, 30], [11, 15]], np.int32)


def host_args(op: str, nums: list[int], params: list[tuple[str, str]], r) -> list:
    big = 1 << 25 if op == "deformable" else min(max(8 * math.prod([x for x in nums if x][:4]), 1 << 16), 1 << 25)
    args, ints = [], iter(INTS.get(op, lambda a: [])(nums))
    n_ptr = sum(1 for t, _ in params if "*" in t)
    seen = 0
    for ctype, name in params:
        if "*" in ctype:
            seen += 1
            base = ctype.replace("const", "").replace("*", "").replace("__restrict__", "").strip()
            is_out = seen == n_ptr if op not in ("batchnorm", "instancenorm") else seen == 2
            if op == "deformable" and seen == 2:
                args.append(In(SPATIAL))
            elif op == "deformable" and seen == 3:
                args.append(In(np.array([0, 9828, 12306, 12936], np.int32)))
            elif base in ("int", "int64_t", "long"):
                args.append(In(np.zeros(big, np.int64 if base != "int" else np.int32)))
            elif is_out:
                args.append(Out(np.float16 if base == "half" else np.float32, big))
            else:
                arr = r.random(big).astype(np.float32)
                args.append(In(arr.astype(np.float16) if base == "half" else arr))
        else:
            args.append(next(ints, 1))
    return args


def entry_signature(text: str):
    m = re.search(r'extern\s+"C"\s+void\s+(\w+)\s*\(([^)]*)\)', text)
    params = []
    for p in m.group(2).split(","):
        p = " ".join(p.split())
        name = re.findall(r"\w+", p)[-1]
        params.append((p[: p.rfind(name)].strip(), name))
    return m.group(1), params


def one(path: Path, dialect: str, work: Path) -> str:
    op = path.stem.split("_")[0]
    nums = [int(x) for x in path.stem.split("_")[1:]]
    text = path.read_text()
    entry, params = entry_signature(text)
    args = host_args(op, nums, params, np.random.default_rng(0))
    try:
        prog = Program(work / f"{dialect}_{path.stem}", text, dialect, {"c": (entry, args)})
    except Exception as e:  # adapter error
        return f"ADAPT ERROR {e}"
    if prog.compile_error:
        first = next((l for l in prog.compile_error.splitlines() if "error" in l), "")
        return "COMPILE ERROR " + first.split("error:")[-1].strip()[:120]
    try:
        r, outs = prog.run("c", timeout=300)
    except subprocess.TimeoutExpired:
        return "TIMEOUT"
    if r.returncode != 0:
        why = "deadlock" if "deadlock" in r.stderr else f"exit {r.returncode}"
        return f"RUN FAILED ({why}) {r.stderr.strip()[:200]}"
    bad = [o for o in outs if not np.isfinite(o.astype(np.float32)).all()]
    return "ok" + (" (non-finite values in the output buffer)" if bad else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "xpilerbench")
    ap.add_argument("--all", action="store_true", help="every shape, not the smallest per operator")
    ap.add_argument("--dialect", choices=["cuda", "hip"], action="append")
    args = ap.parse_args()
    jobs = []
    for dialect in args.dialect or ["cuda", "hip"]:
        files = sorted((args.bench / dialect.upper()).glob("*.cu" if dialect == "cuda" else "*.hip"))
        if not args.all:
            by_op = {}
            for f in files:
                op = f.stem.split("_")[0]
                size = math.prod(int(x) for x in f.stem.split("_")[1:])
                if op not in by_op or size < by_op[op][0]:
                    by_op[op] = (size, f)
            files = [f for _, f in sorted(by_op.values(), key=lambda t: t[1].name)]
        jobs += [(f, dialect) for f in files]
    with tempfile.TemporaryDirectory() as d, ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda j: (j, one(j[0], j[1], Path(d))), jobs)
        for (f, dialect), res in results:
            print(f"{dialect:4} {f.stem:40} {res}", flush=True)


if __name__ == "__main__":
    main()
