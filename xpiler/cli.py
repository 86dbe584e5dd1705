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


def cmd_selfcheck(args) -> int:
    from . import paths
    from .verify.selfcheck import STATUSES, counts, selfcheck

    refs = args.refs or str(paths.repo_root() / "bench" / "operators.py")
    t0 = time.perf_counter()

    def progress(i, n, r):
        err = f" max_abs_err={r.max_abs_err:.3g}" if r.max_abs_err is not None else ""
        print(f"[{i}/{n}] {r.status:13} {r.file}{err}" + (f": {r.reason}" if r.reason else ""), flush=True)

    results = selfcheck(args.dir, refs, jobs=args.jobs, engine=args.engine, seed=args.seed,
                        timeout=args.timeout, progress=progress)
    c = counts(results)
    wall = time.perf_counter() - t0
    print(f"{len(results)} files: " + ", ".join(f"{c[s]} {s}" for s in STATUSES if c.get(s)) + f" ({wall:.1f}s)")
    if args.json:
        _write_json(args.json, [r.as_json() for r in results])  # a list, as `xpiler bench --selfcheck` reads
    return 0


def cmd_cache(args) -> int:
    """xpiler cache stats|clear|export|import: the content-addressed stores (xpiler/cache.py)."""
    from .cache import STORES, Cache, CacheError

    stores = args.store or list(STORES)
    cache = Cache(args.dir)
    try:
        if args.action == "stats":
            stats = cache.stats()
            if args.json:
                print(json.dumps({"dir": str(cache.directory), "stores": stats}, indent=1))
            else:
                print(f"cache {cache.directory}")
                for name in stores:
                    s = stats[name]
                    print(f"  {name:13} {s['entries']:6} entries {s['bytes'] / 1024:10.1f} KiB"
                          + (f"  ({s['corrupt']} corrupt)" if s["corrupt"] else ""))
        elif args.action == "clear":
            removed = cache.clear(stores)
            print(f"cleared {sum(removed.values())} entries ({', '.join(stores)}) in {cache.directory}")
        elif args.action == "export":
            if not args.file:
                raise XpilerError("xpiler cache export needs a FILE")
            n = cache.export(args.file, stores)
            print(f"exported {n} entries to {args.file}")
        elif args.action == "import":
            if not args.file:
                raise XpilerError("xpiler cache import needs a FILE")
            n = cache.import_(args.file)
            print(f"imported {n} entries into {cache.directory}")
    except CacheError as e:
        raise XpilerError(str(e)) from None
    finally:
        cache.close()
    return 0


def cmd_llm(args) -> int:
    """xpiler llm plan|config: the LLM passes (xpiler/llm)."""
    from .llm.config import load_config

    config = load_config()
    if args.action == "config":
        print(json.dumps(config.as_dict(), indent=1) if args.json else config.describe())
        return 0
    from .lang import dialect_of, parse_file
    from .llm.plan import format_plan, plan_translation

    if not args.src or not args.to:
        raise XpilerError("usage: xpiler llm plan SRC --to PLATFORM")
    program = parse_file(args.src, dialect_of(args.src))
    store = None
    if config.mode != "off":
        from .cache import Store

        store = Store(config.record_dir().parent, "llm", "read-only")
    items = plan_translation(program, args.to, config=config, store=store)
    if args.json:
        print(json.dumps({"file": args.src, "from": program.dialect, "to": args.to, "config": config.as_dict(),
                          "passes": [i.as_dict() for i in items]}, indent=1))
    else:
        print(format_plan(args.src, program, args.to, items, config))
    return 0


def _add_llm_parser(sub) -> None:
    sp = sub.add_parser(
        "llm", help="plan the LLM-assisted passes of a translation (tokens before anything is spent)",
        description="plan: list which passes of translating SRC to --to would call the LLM, with the prompt and "
                    "answer tokens each would spend and whether its answer is already recorded; nothing is sent. "
                    "Until the symbolic pipeline is complete, the list is derived from the constructs the kernel "
                    "uses (parallel index values, intrinsics with or without a registered meaning, on-chip "
                    "buffers, multiply-accumulate nests), and each pass is priced by rendering its real prompt "
                    "for the source program; a symbolic pass marked 'covers' is expected not to need the model. "
                    "config: show the LLM configuration (endpoint, model, mode, budget) from xpiler.toml and the "
                    "environment.")
    sp.add_argument("action", choices=["plan", "config"])
    sp.add_argument("src", nargs="?", metavar="SRC", help="kernel file (plan)")
    sp.add_argument("--to", choices=["cuda", "hip", "mlu", "cpu"], help="target platform (plan)")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.set_defaults(func=cmd_llm)


def cmd_translate(args) -> int:
    from .translate import TranslateOptions, TranslationError, translate_file

    opts = TranslateOptions(target=args.to, scalars=_kv(args.arg, "--arg"), extents=_kv(args.extent, "--extent"),
                            seeds=tuple(range(args.seed, args.seed + args.seeds)), verify=not args.no_verify,
                            allow_unverified=args.allow_unverified or args.no_verify, llm=args.llm)
    try:
        tr = translate_file(args.src, opts)
    except TranslationError as e:
        if args.output and e.report:
            import os

            _write_json(os.path.join(args.output, os.path.basename(args.src) + ".failed.json"), e.report)
        raise
    written = tr.write(args.output) if args.output else []
    if not args.output:
        print(tr.text)
    v = tr.report.get("verification") or {}
    status = "verified" if tr.verified else "UNVERIFIED"
    engines = v.get("engines", {})
    print(f"{args.src} -> {args.to}: {status}"
          + (f" ({engines.get('source')} vs {engines.get('translated')}, seeds {v.get('seeds')}, "
             f"max abs err {v.get('max_abs_err', 0):.3g})" if tr.verified else "")
          + (f"; route {tr.report.get('route')}; special instructions: {', '.join(tr.report.get('intrinsics') or []) or 'none (scalar code)'}")
          + "".join(f"\n  wrote {w}" for w in written), file=sys.stderr)
    return 0 if tr.verified else 3


def cmd_bench(args) -> int:
    from .bench import bench, format_table, summarize

    progress = None
    use_rich = sys.stdout.isatty()
    if use_rich:
        from rich.progress import Progress

        prog = Progress(transient=True)
        prog.start()
        task = prog.add_task("translating", total=None)

        def progress(i, n, row):
            prog.update(task, total=n, completed=i, description=f"{row.src}->{row.dst} {row.status}")
    else:
        def progress(i, n, row):
            print(f"[{i}/{n}] {row.src}->{row.dst} {row.status:13} {row.file}"
                  + (f": {row.reason[:300]}" if row.status != "verified" else f" ({row.seconds:.1f}s)"), flush=True)
    try:
        rows = bench(args.dir, args.src, args.dst, args.jobs, args.cases, args.selfcheck,
                     tuple(range(args.seeds)), not args.no_compile, args.limit, args.match, progress, args.out,
                     args.timeout)
    finally:
        if use_rich:
            prog.stop()
    summary = summarize(rows)
    table = format_table(summary)
    print(table)
    if args.json:
        _write_json(args.json, [r.as_json() for r in rows])
    if args.report:
        from .fileio import atomic_write_text

        failures = "\n".join(f"- {r.src}->{r.dst} `{r.file}`: {r.status}: {r.reason}" for r in rows
                              if r.status not in ("verified",))
        atomic_write_text(args.report, "# xpiler bench\n\n" + table + "\n\n## Not verified\n\n" + (failures or "none") + "\n")
    return 0


def _add_translate_parsers(sub, add_run_args) -> None:
    sp = sub.add_parser("translate", help="translate a kernel to another platform and verify it against the source")
    sp.add_argument("src", metavar="SRC")
    sp.add_argument("--to", required=True, choices=["cuda", "hip", "mlu", "cpu"])
    sp.add_argument("-o", "--output", metavar="DIR", help="write the kernel and its JSON report here (default: print)")
    sp.add_argument("--allow-unverified", action="store_true", help="emit a result that failed verification, marked UNVERIFIED")
    sp.add_argument("--no-verify", action="store_true", help="skip verification (implies --allow-unverified)")
    sp.add_argument("--seed", type=int, default=0, help="first seed")
    sp.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    sp.add_argument("--llm", choices=["off", "on", "replay", "refresh"], default="off",
                    help="where a symbolic pass declines, ask the LLM (endpoint from XPILER_LLM_BASE_URL / "
                         "OPENAI_BASE_URL; its answers are verified, repaired by z3, and recorded): on "
                         "(record-through), replay (record and lockfile only), refresh, off (default)")
    add_run_args(sp)
    sp.set_defaults(func=cmd_translate)

    sp = sub.add_parser("bench", help="translate a benchmark-layout directory and report accuracy per direction")
    sp.add_argument("dir", metavar="DIR", help="directory with CUDA/ HIP/ MLU/ CPP/ folders")
    sp.add_argument("--from", dest="src", required=True, choices=["cuda", "hip", "mlu", "cpu", "all"])
    sp.add_argument("--to", dest="dst", required=True, choices=["cuda", "hip", "mlu", "cpu", "all"])
    sp.add_argument("--jobs", "-j", type=int, default=2)
    sp.add_argument("--json", metavar="FILE", help="per-kernel results")
    sp.add_argument("--report", metavar="FILE.md", help="markdown table and every failure")
    sp.add_argument("--cases", metavar="FILE", help="cases plugin giving sizes and inputs (default: bench/operators.py)")
    sp.add_argument("--selfcheck", metavar="FILE", help="selfcheck JSON whose source-defects are counted apart")
    sp.add_argument("--seeds", type=int, default=2, help="verification seeds per kernel (default 2)")
    sp.add_argument("--no-compile", action="store_true", help="skip the real-compiler check of each output")
    sp.add_argument("--limit", type=int, help="at most this many files per direction")
    sp.add_argument("--match", metavar="TEXT", help="only files whose name contains TEXT")
    sp.add_argument("--out", metavar="DIR", help="write every verified translation and its report under DIR/<from>-<to>/")
    sp.add_argument("--timeout", type=float, default=300, help="CPU seconds per kernel run during verification (default 300; wall-clock backstop 4x that)")
    sp.set_defaults(func=cmd_bench)


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

    sp = sub.add_parser("cache", help="inspect and move the translation/verification/tuning/LLM caches")
    sp.add_argument("action", choices=["stats", "clear", "export", "import"])
    sp.add_argument("file", nargs="?", help="JSON-lines file for export/import")
    sp.add_argument("--dir", help="cache directory (default: $XPILER_CACHE_DIR or cache/)")
    sp.add_argument("--store", action="append", choices=["translation", "verification", "tuning", "llm"],
                    help="only this store (repeatable; default: all)")
    sp.add_argument("--json", action="store_true", help="stats as JSON")
    sp.set_defaults(func=cmd_cache)

    sp = sub.add_parser("selfcheck", help="run a platform directory's kernels against reference formulas and classify each")
    sp.add_argument("dir", metavar="DIR", help="a platform directory of kernel files (e.g. xpilerbench/CPP)")
    sp.add_argument("--json", metavar="FILE", help="write per-file results as JSON")
    sp.add_argument("--jobs", "-j", type=int, default=2, help="files checked in parallel (default 2)")
    sp.add_argument("--refs", metavar="FILE", help="reference plugin (default: the repository's bench/operators.py)")
    sp.add_argument("--engine", choices=["emu", "native", "gpu"], help="default: native for cpu, emu otherwise")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--timeout", type=float, default=300, help="CPU seconds per kernel run (default 300; wall-clock backstop 4x that)")
    sp.set_defaults(func=cmd_selfcheck)
    _add_llm_parser(sub)
    _add_translate_parsers(sub, add_run_args)
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
