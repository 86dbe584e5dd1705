"""What the SCons tool's actions do (site_scons/site_tools/xpiler.py).

The tool itself only declares nodes, so that reading an SConstruct stays cheap; every
heavy import (the engine, z3 through extent inference, diskcache, jinja2) happens here,
inside actions that actually run.

The reproducible artifacts of one translation are the translated kernel, its report
(JSON, without timings, absolute paths or anything else that varies between runs) and
the C API header. They are a function of the translation key (``translation_key``).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path

from . import __version__, paths
from .errors import XpilerError

KEY_FORMAT = 1
_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
_print_lock = threading.Lock()


class BuildError(XpilerError):
    """A kernel could not be built; the message names the kernel."""


# ------------------------------------------------------------------ signatures and keys

def _digest_files(files) -> str:
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: p.name):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


_fp_cache: dict = {}
# Modules that do not decide what a translation is (the CLI, the build glue, caches).
_NOT_ENGINE = {"cli.py", "cache.py", "scons_build.py", "roundtrip.py", "describe.py", "__main__.py"}
_EMU_HEADERS = {"cuda": "cuda_emu.h", "hip": "hip_emu.h", "mlu": "bang_emu.h"}


def _runtime_files(platform: str) -> set:
    """The headers a kernel of ``platform`` is verified with (emulator or prelude), transitively."""
    if platform not in _EMU_HEADERS:
        prelude = paths.include_dir() / f"{platform}_prelude.h"
        return {prelude} if prelude.is_file() else set()
    out, todo = set(), [paths.runtime_dir() / _EMU_HEADERS[platform]]
    while todo:
        f = todo.pop()
        if f in out or not f.is_file():
            continue
        out.add(f)
        todo += [f.parent / n for n in _INCLUDE.findall(f.read_text(errors="replace"))]
    return out


def _engine_files() -> list:
    pkg = paths.package_dir()
    return [f for f in pkg.rglob("*.py") if f.relative_to(pkg).as_posix() not in _NOT_ENGINE]


def _digest_tree(files) -> str:
    pkg = paths.package_dir()
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.relative_to(pkg).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def toolchain_fingerprint(source: str, target: str) -> dict:
    """Everything besides the kernel that decides a translation, as short content hashes.

    All of it is in the translation cache key. The SCons tool puts the version, the
    platform configs, the host templates and the prompt pack into the build signature
    (shown by ``scons --debug=explain`` as Value dependencies). "engine" covers xpiler's own
    translation code, so a development checkout never reuses a cached result of older code
    under the same version number.
    """
    k = (source, target)
    if k not in _fp_cache:
        cfg = paths.platform_configs_dir()
        tpl = paths.templates_dir()
        if "engine" not in _fp_cache:
            _fp_cache["engine"] = _digest_tree(_engine_files())
        _fp_cache[k] = {
            "xpiler": __version__,
            "engine": _fp_cache["engine"],
            "platform-configs": _digest_files({cfg / f"{source}.toml", cfg / f"{target}.toml"}),
            "host-templates": _digest_files((tpl / "host").glob("*.j2")),
            "prompt-pack": _digest_files((tpl / "prompts").glob("*.j2")),
            "harness-template": _digest_files((tpl / "harness").glob("*.j2")),
            "verification-runtime": _digest_files(_runtime_files(source) | _runtime_files(target)),
        }
    return _fp_cache[k]


def collect_includes(path: str, text: str, search: list[str] | None = None) -> list[tuple[str, str]]:
    """Quoted includes, recursively, as (name, content); names relative, never absolute."""
    out, seen = [], set()
    todo = [(Path(path).parent, text)]
    while todo:
        base, body = todo.pop()
        for name in _INCLUDE.findall(body):
            for d in [base, *(Path(s) for s in (search or []))]:
                p = d / name
                if p.is_file():
                    key = os.path.normpath(name)
                    if key not in seen:
                        seen.add(key)
                        content = p.read_text(errors="replace")
                        out.append((key, content))
                        todo.append((p.parent, content))
                    break
    return sorted(out)


def lock_key(kernel: str, source_text: str, includes, source: str, target: str, options: dict) -> str:
    """What a lockfile entry pins: the kernel (with includes), direction and options.

    The toolchain is deliberately not part of it: a committed entry keeps giving the same
    translation after xpiler is upgraded (and is verified again by the build).
    """
    from .cache import hash_json

    return hash_json({"format": KEY_FORMAT, "name": os.path.basename(kernel), "source": source_text,
                      "includes": includes, "from": source, "to": target, "options": options})


def translation_key(lock: str, source: str, target: str) -> str:
    """The translation cache key: the lock key plus the toolchain fingerprint."""
    from .cache import hash_json

    return hash_json({"lock": lock, "toolchain": toolchain_fingerprint(source, target)})


_VOLATILE = {"seconds", "time", "timestamp", "elapsed", "date"}


def reproducible_report(report, roots=()) -> dict:
    """The report without timings and with no absolute path (replaced by relative ones)."""
    roots = [r for r in roots if r]

    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if k not in _VOLATILE}
        if isinstance(v, list):
            return [clean(x) for x in v]
        if isinstance(v, str):
            for r in roots:
                v = v.replace(r.rstrip("/") + "/", "")
            return v
        return v

    return clean(report)


# ------------------------------------------------------------------------ output lines

def say(env, line: str, style: str = "") -> None:
    """One progress line: rich on a terminal (imported only when something is built)."""
    with _print_lock:
        if env.get("XPILER_TTY"):
            try:
                from rich.console import Console

                console = _console()
                console.print(f"[{style}]{line}[/]" if style else line, highlight=False, markup=True)
                return
            except ImportError:
                pass
        print(line, flush=True)


_CONSOLE = None


def _console():
    global _CONSOLE
    if _CONSOLE is None:
        from rich.console import Console

        _CONSOLE = Console(highlight=False)
    return _CONSOLE


# ----------------------------------------------------------------------- the actions

def _c_api_header(text: str, target: str, kernel: str) -> str:
    import jinja2

    from .ir.entry import host_entry
    from .lang import PRINTERS, parse_source
    from .platforms.config import load_platform_config

    program = parse_source(text, target, kernel)
    entry = host_entry(program, load_platform_config(target))
    if entry is None:
        raise BuildError(f"{kernel}: the translation to {target} has no host entry point")
    printer = PRINTERS[target]()
    fn = program.function(entry.name)
    ret = printer.type_decl(fn.ret, "").strip() if fn is not None else "void"
    params = ", ".join(printer.type_decl(p.dtype, p.name) for p in entry.params)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(paths.templates_dir() / "host")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    return env.get_template("c_api.h.j2").render(version=__version__, source=kernel, target=target,
                                                 functions=[f"{ret} {entry.name}({params})"])


def _options(env) -> dict:
    return json.loads(env["XPILER_OPTS"])


def translate_action(target, source, env) -> int | None:
    """Translate one kernel: lockfile, cache or engine; write kernel, report and header.

    The engine itself runs in a child process (``engine_call``): SCons runs the actions of
    a ``-j N`` build in threads of one process, and the engine's parser and z3 context are
    not thread-safe; a child also keeps an engine crash from taking the build down.
    """
    from .cache import Cache, CacheError, Lockfile
    from .fileio import atomic_write_text

    opts = _options(env)
    kernel = opts["kernel"]  # repo-relative source path: names the kernel in every message
    src_path = str(source[0])
    to = opts["target"]
    frm = opts["from"]
    text = Path(src_path).read_text()
    includes = collect_includes(src_path, text, opts.get("include_path"))
    key_opts = {k: opts[k] for k in ("scalars", "extents", "seeds", "verify", "tune", "allow_unverified")}
    lkey = lock_key(kernel, text, includes, frm, to, key_opts)
    key = translation_key(lkey, frm, to)
    roots = [os.getcwd(), str(Path(env.Dir("#").abspath)), str(paths.repo_root())]
    request = {"kernel": kernel, "src_path": src_path, "from": frm, "to": to, "opts": opts, "roots": roots}
    try:
        lock = Lockfile(opts["lockfile"])
        entry = lock.get(kernel, to)
    except CacheError as e:
        raise BuildError(str(e)) from None
    lock_name = os.path.basename(opts["lockfile"])
    stale = entry is not None and entry.get("key") != lkey
    if opts["offline"]:
        if entry is None:
            raise BuildError(f"{kernel}: offline build, but {lock_name} has no entry for {kernel} -> {to}; "
                             f"build once online with `scons target={to} lock=1` and commit {lock_name}")
        if stale:
            raise BuildError(f"{kernel}: offline build, but the {lock_name} entry for {kernel} -> {to} is stale "
                             "(the kernel, its includes or its options changed since it was locked); "
                             f"re-lock online with `scons target={to} lock=1`")
    cache = Cache(opts["cache_dir"], opts["cache_mode"])
    try:
        if entry is not None and not stale and opts["cache_mode"] != "refresh":
            out_text, report, origin = entry["text"], entry["report"], f"from {lock_name}"
            vkey = _verification_key(text, frm, out_text, to, opts)
            # A locked translation is verified again (once: the result is cached).
            reverify = opts["verify"] and (cache["verification"].get(vkey) or {}).get("status") != "verified"
            res = engine_call(dict(request, translate=False, text=out_text, verify=reverify))
            if reverify:
                result = res["verification"]
                if result.get("status") != "verified" and not opts["allow_unverified"]:
                    raise BuildError(f"{kernel}: the locked translation to {to} does not verify: "
                                     f"{result.get('reason')}")
                cache["verification"].set(vkey, result)
        else:
            if stale:
                say(env, f"note: the {lock_name} entry for {kernel} -> {to} is stale; translating again", "yellow")
            hit = cache["translation"].get(key)
            if hit is not None:
                out_text, report, origin = hit["text"], hit["report"], "cached"
                res = engine_call(dict(request, translate=False, text=out_text, verify=False))
            else:
                res = engine_call(dict(request, translate=True))
                out_text, report = res["text"], res["report"]
                origin = "verified" if res["verified"] else "UNVERIFIED"
                cache["translation"].set(key, {"text": out_text, "report": report})
                if res["verified"]:
                    cache["verification"].set(_verification_key(text, frm, out_text, to, opts),
                                              report.get("verification") or {})
        if opts["lock_update"]:
            lock.update(kernel, to, lkey, out_text, report)
    finally:
        cache.close()
    kernel_out, report_out, header_out = (str(t) for t in target[:3])
    atomic_write_text(kernel_out, out_text)
    atomic_write_text(report_out, json.dumps(report, indent=1, sort_keys=True) + "\n")
    atomic_write_text(header_out, res["header"])
    ver = report.get("verification") or {}
    engines = ver.get("engines") or {}
    how = (f"verified on {engines.get('translated', '?')}" if report.get("verified")
           else "NOT verified (allow_unverified)")
    say(env, f"  {kernel} -> {to}: {how} ({origin})", "green" if report.get("verified") else "bold red")
    return None


def engine_call(request: dict) -> dict:
    """Run ``serve(request)`` in a child Python; its answer, or BuildError naming the kernel."""
    import subprocess
    import sys

    env = dict(os.environ)
    pkg_parent = str(paths.package_dir().parent)
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    r = subprocess.run([sys.executable, "-m", "xpiler.scons_build"], input=json.dumps(request),
                       capture_output=True, text=True, env=env)
    try:
        answer = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = " | ".join(r.stderr.strip().splitlines()[-3:]) or f"exit status {r.returncode}"
        raise BuildError(f"{request['kernel']}: the xpiler engine failed: {tail}") from None
    if not answer.get("ok"):
        raise BuildError(answer["error"])
    return answer


def serve(req: dict) -> dict:
    """The child's work: translate (or take the given text), verify if asked, make the header."""
    kernel, src_path, to, opts = req["kernel"], req["src_path"], req["to"], req["opts"]
    try:
        answer = {"ok": True}
        if req["translate"]:
            text, raw_report, verified = _translate(src_path, kernel, to, opts)
            answer.update(text=text, report=reproducible_report(raw_report, req["roots"]), verified=verified)
        else:
            text = req["text"]
            if req.get("verify"):
                answer["verification"] = reproducible_report(
                    _verify(src_path, req["from"], text, to, opts), req["roots"])
        answer["header"] = _c_api_header(text, to, kernel)
        return answer
    except XpilerError as e:
        return {"ok": False, "error": _name_kernel(kernel, src_path, str(e))}


def _translate(src_path: str, kernel: str, to: str, opts: dict):
    import dataclasses

    from .translate import TranslateOptions, TranslationError, translate_file

    fields = {f.name for f in dataclasses.fields(TranslateOptions)}
    kw = {"target": to, "scalars": opts["scalars"], "extents": opts["extents"], "seeds": tuple(opts["seeds"]),
          "verify": opts["verify"], "allow_unverified": opts["allow_unverified"]}
    # Forward-compatible: tune reaches the engine once TranslateOptions has it.
    if "tune" in fields:
        kw["tune"] = opts["tune"]
    if opts.get("llm", "off") != "off":
        from .llm.client import set_lock_lookup
        from .llm.config import load_config

        kw["llm"] = opts["llm"]
        overrides = {"cache_dir": opts["cache_dir"]} if opts.get("cache_dir") else {}
        kw["llm_config"] = load_config(mode=opts["llm"], **overrides)
        set_lock_lookup(_locked_answers(opts["lockfile"]))
    try:
        t = translate_file(src_path, TranslateOptions(**kw))
    except TranslationError as e:
        raise BuildError(_name_kernel(kernel, src_path, str(e))) from None
    except XpilerError as e:
        raise BuildError(_name_kernel(kernel, src_path, str(e))) from None
    return t.text, t.report, t.verified


def _locked_answers(lockfile: str):
    """The lockfile as a source of LLM answers (``llm=replay`` reads the record, then this):
    each entry's report keeps the answers its LLM passes used, keyed by request."""
    from .cache import Lockfile

    lock = Lockfile(lockfile)  # read once, on the first lookup

    def lookup(key: str):
        for entry in lock.entries.values():
            for call in (entry.get("report") or {}).get("llm", []):
                for step in call.get("steps", []):
                    if step.get("step") == "answer" and step.get("key") == key:
                        return {"answer": step["answer"], "model": step.get("model", "")}
        return None

    return lookup


def _name_kernel(kernel: str, src_path: str, msg: str) -> str:
    msg = msg.replace(src_path, kernel)
    return msg if kernel in msg else f"{kernel}: {msg}"


def _verification_key(src_text, frm, out_text, to, opts) -> str:
    from .cache import hash_json

    return hash_json({"source": src_text, "from": frm, "translated": out_text, "to": to,
                      "scalars": opts["scalars"], "extents": opts["extents"], "seeds": opts["seeds"],
                      "toolchain": toolchain_fingerprint(frm, to)})


def _verify(src_path, frm, out_text, to, opts) -> dict:
    from types import SimpleNamespace

    from .verify.differential import verify_translation

    o = SimpleNamespace(scalars=opts["scalars"], extents=opts["extents"], seeds=tuple(opts["seeds"]), engine=None)
    return verify_translation(src_path, Path(src_path).read_text(), frm, out_text, to, o)


def unit_action(target, source, env) -> None:
    """The compile unit: translated kernel + prelude (native) or emulator runtime (emulated)."""
    from .fileio import atomic_write_text

    opts = json.loads(env["XPILER_UNIT_OPTS"])
    text = Path(str(source[0])).read_text()
    name = os.path.basename(str(source[0]))
    if opts["emulated"]:
        from .verify.emu_adapt import adapt_for_emulator

        dialect = opts["target"]
        body = adapt_for_emulator(text, "cuda" if dialect == "mlu" else dialect)
        head = (f"// EMULATED: {opts['kernel']} translated to {dialect}, compiled with g++ against the\n"
                f"// xpiler CPU emulator ({opts['header']}) because {opts['why']}.\n")
    else:
        body = text
        head = f"// {opts['kernel']} translated to {opts['target']}, compiled with {opts['compiler']}.\n"
    inc = f'#include "{opts["header"]}"\n' if opts["header"] else ""
    atomic_write_text(str(target[0]), head + inc + f'#line 1 "{name}"\n' + body)


def manifest_action(target, source, env) -> None:
    """build/<target>/xpiler-build.json: every kernel, how it was verified and compiled."""
    from .fileio import atomic_write_text

    info = json.loads(env["XPILER_MANIFEST_OPTS"])
    rows = []
    for node, k in zip(source, info["kernels"]):
        report = json.loads(Path(str(node)).read_text())
        ver = report.get("verification") or {}
        rows.append({"kernel": k["kernel"], "from": report.get("from"), "to": report.get("to"),
                     "verified": bool(report.get("verified")),
                     "verified_on": (ver.get("engines") or {}).get("translated"),
                     "max_abs_err": ver.get("max_abs_err"),
                     "compiled_with": k["compiled_with"], "emulated": k["emulated"]})
    atomic_write_text(str(target[0]), json.dumps({"target": info["target"], "kernels": rows},
                                                 indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    import sys

    _request = json.loads(sys.stdin.read())
    _stdout, sys.stdout = sys.stdout, sys.stderr  # the engine's prints must not mix with the answer
    _answer = serve(_request)
    _stdout.write("\n" + json.dumps(_answer) + "\n")
    _stdout.flush()
