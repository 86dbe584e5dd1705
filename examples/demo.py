"""`make demo`: build examples/ with `scons target=T` for every platform and tabulate it.

This driver belongs to xpiler, not to the example repository. For each target it runs
scons (-k, so every kernel is tried), then reads build/<target>/xpiler-build.json and
the errors scons printed, and prints one row per kernel: where it came from, whether
the translation was verified and on which engine, how it was compiled (natively or
against the CPU emulator) and whether the repository's own test passed.

Exit status 0 unless something the engine produced fails to build, link or pass the
repository's test (translations the engine declines are listed, not failures).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ("cpu", "cuda", "hip", "mlu")
OPS = ("vector_add", "row_softmax", "tiled_gemm", "avgpool2d")
EXT = {"cpu": ".cpp", "cuda": ".cu", "hip": ".hip", "mlu": ".mlu"}


def main() -> int:
    scons = str(Path(sys.executable).with_name("scons"))
    rows, unexpected = [], []
    for t in TARGETS:
        t0 = time.perf_counter()
        print(f"== scons target={t}", flush=True)
        r = subprocess.run([scons, "-Q", "-k", "-j2", f"target={t}"], cwd=HERE, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        for line in r.stdout.splitlines():
            if line.startswith(("translate ", "  kernels/", "emulate ", "test ")):
                print("   " + line)
        errors = dict(re.findall(r"^xpiler: error: (kernels/\S+?): (.*)$", r.stderr, re.M))
        manifest = HERE / "build" / t / "xpiler-build.json"
        built = {}
        if r.returncode == 0 and manifest.is_file():
            built = {k["kernel"]: k for k in json.loads(manifest.read_text())["kernels"]}
        passed = HERE / "build" / t / "test_kernels.passed"
        test = "passed" if r.returncode == 0 and passed.is_file() else "not run" if errors else "FAILED"
        if test == "FAILED" and not errors:
            unexpected.append(f"target={t}: " + (r.stdout + r.stderr).strip()[-400:])
        kdir = HERE / "build" / t / "kernels"
        for op in OPS:
            k = next((k for k in built if Path(k).stem == op), None)
            if k is not None:
                b = built[k]
                rows.append((t, k, "verified on " + str(b["verified_on"]) if b["verified"] else "UNVERIFIED",
                             b["compiled_with"], test))
                continue
            k, why = next(((k, e) for k, e in errors.items() if Path(k).stem == op), (None, ""))
            report = kdir / f"{op}{EXT[t]}.json"
            if k is None and report.is_file():  # translated, but the build stopped elsewhere
                rep = json.loads(report.read_text())
                ver = (rep.get("verification") or {}).get("engines", {}).get("translated")
                emulated = (kdir / f"{op}.emu.cpp").is_file()
                rows.append((t, f"kernels/{rep.get('source')}", f"verified on {ver}" if rep.get("verified")
                             else "UNVERIFIED", "g++ (emulator)" if emulated else "-", test))
                continue
            if "not available yet" in why:
                why = re.sub(r"^.*translation from (\w+) to (\w+) is not available yet.*$",
                             r"not available yet (\1 -> \2)", why)
            elif why:
                why = "declined: " + why[:70] + ("..." if len(why) > 70 else "")
            rows.append((t, k or f"kernels/{op}.*", "-", why or "not built", test))
        print(f"   ({seconds:.1f}s, exit {r.returncode})")
    head = ("target", "kernel", "translation", "built with", "repo test")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    print()
    for r in [head, tuple("-" * w for w in widths)] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    if unexpected:
        print("\nunexpected failures:\n  " + "\n  ".join(unexpected))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
