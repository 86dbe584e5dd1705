"""`xpiler bench`: translate a benchmark-layout directory and measure accuracy.

The directory has one folder per platform (CUDA/, HIP/, MLU/, CPP/ as in xpilerbench).
Problem sizes and meaningful inputs for each kernel come from a cases plugin (a Python
file with ``case_for(path, dialect)``, by default the repo's bench/operators.py), so the
translator itself never sees operator names. Sources that are defects (they do not
parse, build or run on their own platform, or a selfcheck JSON says so) are counted
apart from failures.
"""
from __future__ import annotations

import importlib.util
import json
import statistics
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import SourceError, XpilerError
from .translate import PLATFORMS, TranslateOptions, TranslationError, translate_file

FOLDERS = {"cuda": "CUDA", "hip": "HIP", "mlu": "MLU", "cpu": "CPP"}
EXTS = {"cuda": ".cu", "hip": ".hip", "mlu": ".mlu", "cpu": ".cpp"}


@dataclass
class BenchRow:
    file: str
    src: str  # the JSON writes it as "from"
    dst: str
    status: str  # verified | unverified | failed | source-defect | skipped (too large to run here)
    reason: str = ""
    seconds: float = 0.0
    intrinsics: list = field(default_factory=list)
    compiled: bool | None = None  # by the target's real compiler (None: not available)
    route: str = ""

    def as_json(self) -> dict:
        d = asdict(self)
        d["from"], d["to"] = d.pop("src"), d.pop("dst")
        return d


def load_cases(path: str | None):
    if path is None:
        from . import paths

        path = str(paths.repo_root() / "bench" / "operators.py")
    spec = importlib.util.spec_from_file_location("xpiler_bench_cases", path)
    if spec is None or not Path(path).exists():
        raise XpilerError(f"cases plugin {path} not found")
    import sys

    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses in the plugin look their module up
    spec.loader.exec_module(mod)
    return mod


def _defects_from_selfcheck(path: str | None) -> dict:
    if not path:
        return {}
    rows = json.loads(Path(path).read_text())
    if isinstance(rows, dict):  # older selfcheck files: {"results": [...], ...}
        rows = rows.get("results", [])
    return {Path(r["file"]).name: r.get("reason", "") for r in rows if r.get("status") == "source-defect"}


def _compiles(target: str, text: str, name: str) -> bool | None:
    from .roundtrip import check_compiles

    ok, _ = check_compiles(target, text, name)
    return ok


def run_one(path: Path, src: str, dst: str, cases, defects: dict, seeds, compile_check: bool,
            out_dir: str | None = None, timeout: float = 300) -> BenchRow:
    t0 = time.perf_counter()
    name = str(path)
    if path.name in defects:
        return BenchRow(name, src, dst, "source-defect", f"selfcheck: {defects[path.name]}")
    try:
        case = cases.case_for(name, src)
    except Exception as e:  # noqa: BLE001 - a plugin failure is reported, not fatal
        return BenchRow(name, src, dst, "source-defect", f"no case: {e}")
    if case is None:
        return BenchRow(name, src, dst, "source-defect", f"no case: {getattr(cases, 'LAST_REASON', '')}")
    if getattr(case, "skip", None):
        return BenchRow(name, src, dst, "skipped", case.skip)
    opts = TranslateOptions(target=dst, scalars=dict(case.scalars), extents=dict(case.extents), seeds=seeds,
                            fallback_extents=dict(getattr(case, "sizes", {}) or {}),
                            inputs=case.make_inputs, timeout=timeout)
    try:
        tr = translate_file(name, opts)
    except SourceError as e:
        return BenchRow(name, src, dst, "source-defect", str(e), time.perf_counter() - t0)
    except TranslationError as e:
        v = e.report.get("verification") or {}
        status = "source-defect" if v.get("side") == "source" else "failed"
        if not v:  # a pass declined: that is the source's fault only if it is not valid code
            from .roundtrip import check_compiles

            ok, msg = check_compiles(src, path.read_text(), name)
            if ok is False:
                return BenchRow(name, src, dst, "source-defect", f"the source does not compile: {msg}",
                                time.perf_counter() - t0)
        return BenchRow(name, src, dst, status, str(e), time.perf_counter() - t0,
                        e.report.get("intrinsics", []), None, e.report.get("route", ""))
    except XpilerError as e:
        return BenchRow(name, src, dst, "failed", str(e), time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - an xpiler bug fails this kernel, not the whole run
        where = traceback.extract_tb(e.__traceback__)[-1]
        return BenchRow(name, src, dst, "failed", f"internal error: {type(e).__name__}: {e} "
                        f"({Path(where.filename).name}:{where.lineno})", time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    if out_dir:
        tr.write(Path(out_dir) / f"{src}-{dst}")
    compiled = _compiles(dst, tr.text, name) if compile_check else None
    return BenchRow(name, src, dst, "verified" if tr.verified else "unverified", "", seconds,
                    tr.report.get("intrinsics", []), compiled, tr.report.get("route", ""))


def directions(src: str, dst: str) -> list[tuple[str, str]]:
    srcs = PLATFORMS if src == "all" else (src,)
    dsts = PLATFORMS if dst == "all" else (dst,)
    return [(a, b) for a in srcs for b in dsts if a != b]


def summarize(rows: list[BenchRow]) -> list[dict]:
    out = []
    by_dir: dict = {}
    for r in rows:
        by_dir.setdefault((r.src, r.dst), []).append(r)
    for (a, b), rs in sorted(by_dir.items()):
        valid = [r for r in rs if r.status not in ("source-defect", "skipped")]
        ver = [r for r in valid if r.status == "verified"]
        secs = [r.seconds for r in valid if r.status in ("verified", "unverified")]
        out.append({
            "from": a, "to": b, "files": len(rs), "skipped": sum(r.status == "skipped" for r in rs),
            "source_defects": sum(r.status == "source-defect" for r in rs), "valid": len(valid),
            "translated": sum(r.status in ("verified", "unverified") for r in valid),
            "compiled": sum(bool(r.compiled) for r in valid),
            "verified": len(ver), "rate": (len(ver) / len(valid)) if valid else 0.0,
            "special_instructions": sum(bool(r.intrinsics) for r in ver),
            "median_seconds": statistics.median(secs) if secs else 0.0,
        })
    return out


def format_table(summary: list[dict]) -> str:
    head = ("| direction | files | skipped | source-defects | valid | translated | compiled | verified | rate "
            "| special instr. | median s |")
    lines = [head, "|" + "---|" * 11]
    for s in summary:
        lines.append(f"| {s['from']}->{s['to']} | {s['files']} | {s['skipped']} | {s['source_defects']} | {s['valid']} | "
                     f"{s['translated']} | {s['compiled']} | {s['verified']} | {100 * s['rate']:.1f}% | "
                     f"{s['special_instructions']} | {s['median_seconds']:.1f} |")
    return "\n".join(lines)


def bench(root: str, src: str, dst: str, jobs: int = 2, cases_path: str | None = None,
          selfcheck: str | None = None, seeds=(0, 1), compile_check: bool = True, limit: int | None = None,
          match: str | None = None, progress=None, out_dir: str | None = None,
          timeout: float = 300) -> list[BenchRow]:
    load_cases(cases_path)  # fail early, in this process, if the plugin is broken
    defects = _defects_from_selfcheck(selfcheck)
    work = []
    for a, b in directions(src, dst):
        folder = Path(root) / FOLDERS[a]
        if not folder.is_dir():
            raise XpilerError(f"{folder} does not exist (expected one folder per platform: {', '.join(FOLDERS.values())})")
        files = sorted(f for f in folder.iterdir() if f.suffix == EXTS[a])
        if match:
            files = [f for f in files if match in f.name]
        if limit:
            files = files[:limit]
        work += [(f, a, b) for f in files]
    rows = []
    # Processes, not threads: translation is Python-heavy and z3 is not thread-safe.
    with ProcessPoolExecutor(max_workers=max(1, jobs), initializer=_init_worker, initargs=(cases_path,)) as pool:
        futures = [pool.submit(_run_in_worker, f, a, b, defects, tuple(seeds), compile_check, out_dir, timeout)
                   for f, a, b in work]
        for i, fut in enumerate(futures, 1):
            row = fut.result()
            rows.append(row)
            if progress:
                progress(i, len(futures), row)
    return rows


_WORKER_CASES = None


def _init_worker(cases_path):
    global _WORKER_CASES
    _WORKER_CASES = load_cases(cases_path)


def _run_in_worker(f, a, b, defects, seeds, compile_check, out_dir, timeout):
    return run_one(f, a, b, _WORKER_CASES, defects, seeds, compile_check, out_dir, timeout)
