"""The `xpiler` command line."""
from __future__ import annotations

import argparse
import json
import sys
import time

from . import __version__
from .errors import XpilerError


def _write_json(path: str, data) -> None:
    from .fileio import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def cmd_parse(args) -> int:
    from .describe import describe, describe_text
    from .lang import dialect_of, parse_file
    from .platforms.config import load_platform_config

    dialect = args.dialect or dialect_of(args.file)
    program = parse_file(args.file, dialect)
    info = describe(program, load_platform_config(dialect))
    info["file"] = args.file
    print(json.dumps(info, indent=1) if args.json else describe_text(info))
    return 0


def cmd_roundtrip(args) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from .roundtrip import as_json, collect_sources, roundtrip_file

    files = collect_sources(args.paths)
    if not files:
        raise XpilerError("no kernel sources found in " + " ".join(args.paths))
    t0 = time.perf_counter()
    counts = {"ok": 0, "source-invalid": 0, "failed": 0}
    results = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for i, r in enumerate(pool.map(lambda f: roundtrip_file(f, compile=not args.no_compile), files), 1):
            results.append(r)
            counts[r.status] += 1
            if r.status != "ok" or args.verbose:
                print(f"[{i}/{len(files)}] {r.status:14} {r.file}" + (f": {r.reason}" if r.reason else ""), flush=True)
    wall = time.perf_counter() - t0
    parse_total = sum(r.parse_seconds for r in results)
    print(f"{len(files)} files: {counts['ok']} ok, {counts['source-invalid']} source-invalid, "
          f"{counts['failed']} failed ({wall:.1f}s; parsing {parse_total:.2f}s)")
    if args.json:
        _write_json(args.json, as_json(results))
    return 1 if counts["failed"] else 0


def _kv(items, what, cast=int) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise XpilerError(f"{what} must look like NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = cast(v) if cast is not int else int(v, 0)
        except ValueError:
            try:
                out[k.strip()] = float(v)
            except ValueError:
                raise XpilerError(f"{what} {k}: {v!r} is not a number") from None
    return out


def cmd_run(args) -> int:
    import numpy as np

    from .verify.compare import output_flags
    from .verify.kernel import prepare

    k = prepare(args.file, _kv(args.arg, "--arg"), _kv(args.extent, "--extent"))
    inputs = k.inputs(args.seed)
    result = k.run(inputs, args.engine, asan=args.asan)
    print(f"{args.file}: ran {k.entry.name} on {result.engine}"
          f"{' (asan)' if args.asan else ''}: build {result.build_seconds:.2f}s"
          f"{' (cached)' if result.cached_build else ''}, run {result.run_seconds:.3f}s")
    for name in k.outputs:
        a = result.outputs[name]
        flags = output_flags(a)
        stats = f"min {a.min():.6g} max {a.max():.6g} mean {a.astype('float64').mean():.6g}" if a.size else "empty"
        print(f"  {name}: {a.size} x {a.dtype} {stats}" + (f"  [{', '.join(flags)}]" if flags else ""))
    if args.output:
        from .fileio import atomic_write_bytes
        import io

        buf = io.BytesIO()
        np.savez(buf, **{f"in_{n}": v for n, v in inputs.items() if hasattr(v, "dtype")},
                 **{f"out_{n}": v for n, v in result.outputs.items()})
        atomic_write_bytes(args.output, buf.getvalue())
        print(f"  wrote {args.output}")
    return 0


def cmd_compare(args) -> int:
    from .verify.compare import compare_arrays
    from .verify.kernel import prepare

    scalars, extents = _kv(args.arg, "--arg"), _kv(args.extent, "--extent")
    a = prepare(args.a, scalars, extents)
    b = prepare(args.b, scalars, extents)
    if len(a.entry.buffers) != len(b.entry.buffers) or len(a.entry.scalars) != len(b.entry.scalars):
        raise XpilerError(f"{args.a} and {args.b} do not have the same C signature")
    pairs = list(zip(a.entry.buffers, b.entry.buffers))
    for x, y in pairs:
        if a.dtypes[x.name] != b.dtypes[y.name]:
            raise XpilerError(f"buffer {x.name} is {a.dtypes[x.name]} in {args.a} but {y.name} is {b.dtypes[y.name]} in {args.b}")
        b.sizes[y.name] = a.sizes[x.name]  # identical inputs: the first kernel's extents rule
    failed = False
    for seed in range(args.seed, args.seed + args.seeds):
        ins = a.inputs(seed)
        ins_b = {y.name: ins[x.name] for x, y in pairs}
        ins_b.update({ys: ins[xs] for xs, ys in zip(a.entry.scalars, b.entry.scalars)})
        ra = a.run(ins, args.engine_a)
        rb = b.run(ins_b, args.engine_b)
        for x, y in pairs:
            if x.role not in ("out", "inout") and y.role not in ("out", "inout"):
                continue
            c = compare_arrays(x.name, ra.outputs[x.name], rb.outputs[y.name])
            failed |= not c.ok or bool(c.flags)
            print(f"seed {seed}: {c.summary()}")
    print("outputs agree" if not failed else "outputs DIFFER (or are suspicious)")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xpiler", description="Translate tensor kernels between CUDA, HIP, BANG C (mlu) and C with VNNI (cpu).")
    p.add_argument("--version", action="version", version=f"xpiler {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sp = sub.add_parser("parse", help="show what xpiler understood of a kernel file")
    sp.add_argument("file")
    sp.add_argument("--dialect", choices=["cuda", "hip", "mlu", "cpu"], help="override the dialect implied by the extension")
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")
    sp.set_defaults(func=cmd_parse)

    sp = sub.add_parser("roundtrip", help="parse, print and re-parse files; check the IR fixpoint and compile the printed code")
    sp.add_argument("paths", nargs="+", metavar="PATH", help="kernel files or directories (searched recursively)")
    sp.add_argument("--json", metavar="FILE", help="write per-file results as JSON")
    sp.add_argument("--jobs", "-j", type=int, default=2, help="parallel compiler processes (default 2)")
    sp.add_argument("--no-compile", action="store_true", help="only check the IR fixpoint")
    sp.add_argument("--verbose", "-v", action="store_true", help="list ok files too")
    sp.set_defaults(func=cmd_roundtrip)

    def add_run_args(sp):
        sp.add_argument("--arg", action="append", metavar="NAME=VALUE", help="value of a scalar argument of the host entry (repeatable)")
        sp.add_argument("--extent", action="append", metavar="NAME=ELEMENTS", help="declare a buffer's size in elements instead of inferring it (repeatable)")

    sp = sub.add_parser("run", help="build a kernel with its host wrapper for an engine and run it on random inputs")
    sp.add_argument("file")
    sp.add_argument("--engine", choices=["emu", "native", "gpu"], help="emu (CPU emulator: cuda/hip/mlu), native (cpu), gpu (real NVIDIA GPU); default: native for cpu, emu otherwise")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--asan", action="store_true", help="build with AddressSanitizer and report out-of-bounds accesses")
    sp.add_argument("-o", "--output", metavar="OUT.npz", help="save inputs and outputs")
    add_run_args(sp)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("compare", help="run two kernels with the same C signature on the same inputs and compare outputs")
    sp.add_argument("a")
    sp.add_argument("b")
    sp.add_argument("--seed", type=int, default=0, help="first seed")
    sp.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    sp.add_argument("--engine-a", choices=["emu", "native", "gpu"])
    sp.add_argument("--engine-b", choices=["emu", "native", "gpu"])
    add_run_args(sp)
    sp.set_defaults(func=cmd_compare)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except XpilerError as e:
        print(f"xpiler: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"xpiler: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xpiler: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
