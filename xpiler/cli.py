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
