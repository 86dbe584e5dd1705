"""SCons tool for xpiler: translate tensor kernels at build time, verify them, compile them.

Use it from any repository::

    import xpiler
    env = Environment(tools=["default"])
    env.Tool("xpiler", toolpath=[xpiler.scons_toolpath()])
    for t in env.XpilerTargets():                       # target=cpu|cuda|hip|mlu|all
        k = env.XpilerKernel("kernels/vector_add.cu", target=t, args={"size": 4096})
        lib = env.XpilerLibrary("kernels", [k], target=t)

Builders and methods (docs/scons.md has the whole story):

- ``XpilerKernel(source, target=None, args={}, extents={}, seeds=None)``: translate one
  kernel (source platform from the extension: .cu .hip .mlu .cpp .c) to ``target`` (default
  the ``target=`` variable) and verify it. Its emitter declares every output, under
  ``build/<target>/<source dir>/``: the kernel (``x.<ext>``), the report (``x.<ext>.json``)
  and the C API header (``x.h``). ``args`` are values of the host entry's scalar
  parameters used for verification (TranslateOptions.scalars), ``extents`` buffer sizes
  in elements when they cannot be inferred.
- ``XpilerObject(kernel)``: compile a translated kernel with the target's compiler, or,
  when that compiler is absent or has no device to run on (always for mlu), with g++
  against xpiler's CPU emulator (marked EMULATED in the unit's banner and in the manifest).
- ``XpilerLibrary(name, kernels)``: a static library of the kernels' objects.
- ``XpilerSysLibs(target)``: libraries a program linking that library needs (pthread, cudart).
- ``XpilerManifest(kernels)``: ``build/<target>/xpiler-build.json``, what was built and how
  it was verified.

Variables (``scons -h``): target, llm, tune, verify, offline, cache, cache_mode, lock,
emulate, allow_unverified, VERBOSE.

Reading an SConstruct must stay cheap (a no-op build in well under a second): this module
imports only SCons, the standard library and xpiler's light modules (paths, platform
configs). The engine, z3, diskcache, jinja2 and rich are imported inside actions.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import sys

import SCons.Action
import SCons.Builder
import SCons.Errors
import SCons.Scanner.C
import SCons.Script
import SCons.Util
from SCons.Variables import BoolVariable, EnumVariable, PathVariable, Variables


def _import_real_package():
    """SCons registers this tool module as sys.modules['xpiler'], shadowing the engine
    package of the same name. Put the package back (the tool keeps working: SCons holds
    this module object directly)."""
    here = os.path.dirname(os.path.abspath(__file__))
    mod = sys.modules.get("xpiler")
    if mod is not None and getattr(mod, "__path__", None) is None:
        del sys.modules["xpiler"]
    saved = sys.path
    sys.path = [p for p in sys.path if os.path.abspath(p or ".") != here]
    try:
        try:
            pkg = importlib.import_module("xpiler")
        except ImportError:
            # Not installed: use the checkout this tool lives in (site_scons/site_tools/..).
            sys.path.insert(0, os.path.dirname(os.path.dirname(here)))
            pkg = importlib.import_module("xpiler")
    finally:
        sys.path = saved
    return pkg


_xp = _import_real_package()
from xpiler import paths as _paths  # noqa: E402  (light)
from xpiler.platforms import config as _pc  # noqa: E402  (light: tomllib)

PLATFORMS = ("cpu", "cuda", "hip", "mlu")
TARGET_EXT = {"cuda": ".cu", "hip": ".hip", "mlu": ".mlu", "cpu": ".cpp"}
EMU_HEADERS = {"cuda": "cuda_emu.h", "hip": "hip_emu.h", "mlu": "bang_emu.h"}
EMU_FLAGS = ["-std=c++17", "-O2", "-w", "-fno-strict-aliasing", "-pthread", "-DXPILER_EMULATED=1"]
# The toolchain parts in a translation's SCons signature. The others (the engine's code,
# the verification harness and runtime) are in the cache keys only: editing xpiler in a
# development checkout does not rebuild every kernel, but never reuses a stale result.
SIGNATURE_PARTS = ("xpiler", "platform-configs", "host-templates", "prompt-pack")
GPU_DEVICES = {"cuda": ("/dev/nvidiactl", "/proc/driver/nvidia/version"), "hip": ("/dev/kfd",)}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


# ---------------------------------------------------------------- actions (thin wrappers)

def _run(fn_name, target, source, env):
    from xpiler import scons_build
    from xpiler.errors import XpilerError

    try:
        getattr(scons_build, fn_name)(target, source, env)
    except XpilerError as e:
        sys.stderr.write(f"xpiler: error: {e}\n")
        return 1
    return 0


def _translate(target, source, env):
    return _run("translate_action", target, source, env)


def _unit(target, source, env):
    return _run("unit_action", target, source, env)


def _manifest(target, source, env):
    return _run("manifest_action", target, source, env)


def _translate_str(target, source, env):
    opts = json.loads(env["XPILER_OPTS"])
    if env.get("XPILER_VERBOSE"):
        args = " ".join(f"--arg {k}={v}" for k, v in sorted(opts["scalars"].items()))
        ext = " ".join(f"--extent {k}={v}" for k, v in sorted(opts["extents"].items()))
        return (f"xpiler translate {source[0]} --target {opts['target']} {args} {ext}"
                f" -o {os.path.dirname(str(target[0]))} [cache={opts['cache_dir'] or '$XPILER_CACHE_DIR or cache/'} mode={opts['cache_mode']}"
                f"{' offline' if opts['offline'] else ''}{' lock' if opts['lock_update'] else ''}]")
    return f"translate {opts['kernel']} -> {opts['target']}"


def _unit_str(target, source, env):
    o = json.loads(env["XPILER_UNIT_OPTS"])
    return f"{'emulate' if o['emulated'] else 'prepare'} {target[0]}" + (f" ({o['why']})" if o["emulated"] else "")


def _manifest_str(target, source, env):
    return f"manifest {target[0]}"


def _translate_emitter(target, source, env):
    kernel = str(target[0])
    stem = os.path.splitext(os.path.basename(kernel))[0]
    d = os.path.dirname(kernel)
    return [target[0], env.File(kernel + ".json"), env.File(os.path.join(d, stem + ".h"))], source


# ---------------------------------------------------------------------- decisions

def _emulation(env, to: str) -> tuple[bool, str]:
    """(emulated, why): does the kernel compile for the CPU emulator instead of natively?"""
    if to == "cpu":
        return False, ""
    mode = env["XPILER_EMULATE"]
    cfg = _pc.load_platform_config(to)
    command = cfg["compiler"]["command"]
    if not cfg["compiler"]["available"]:
        missing = f"{to} has no compiler here ({command} is not available)"
    elif mode == "yes":
        return True, "emulate=yes"
    elif shutil.which(command) is None:
        missing = f"{command} is not installed"
    elif mode == "no" or any(os.path.exists(p) for p in GPU_DEVICES.get(to, ())):
        return False, ""
    else:
        return True, f"there is no {to} device here to run {command}'s output"
    if mode == "no":
        raise SCons.Errors.UserError(f"emulate=no, but {missing}")
    return True, missing


def _fingerprint_values(env, frm: str, to: str):
    from xpiler.scons_build import toolchain_fingerprint

    fp = toolchain_fingerprint(frm, to)
    return [env.Value(f"xpiler {k} {fp[k]}") for k in SIGNATURE_PARTS]


def _lock_digest(env) -> dict:
    """Per-(kernel, target) digest of xpiler.lock entries (read once per SCons run)."""
    cached = env.get("_XPILER_LOCK_DIGESTS")
    path = env.File(env["XPILER_LOCKFILE"]).abspath
    if cached is not None and cached[0] == path:
        return cached[1]
    digests = {}
    if os.path.isfile(path):
        with open(path, "rb") as f:
            for line in f:
                if line.strip():
                    try:
                        e = json.loads(line)
                        digests[(e["kernel"], e["target"])] = _sha(line.strip())
                    except (ValueError, KeyError, TypeError):
                        digests[("?", "?")] = "unreadable"
    env["_XPILER_LOCK_DIGESTS"] = (path, digests)
    return digests


# ------------------------------------------------------------------ pseudo-builders

def XpilerTargets(env):
    t = env["XPILER_TARGET"]
    return list(PLATFORMS) if t == "all" else [t]


def XpilerKernel(env, source, target=None, args=None, extents=None, seeds=None):
    src = env.File(source)
    kernel = src.srcnode().get_path(env.Dir("#"))  # repo-relative: names the kernel everywhere
    suffix = os.path.splitext(kernel)[1]
    try:
        frm = _pc.platform_for_extension(suffix)
    except _pc.PlatformConfigError as e:
        raise SCons.Errors.UserError(f"{kernel}: {e} (use .cu, .hip, .mlu, .cpp or .c)") from None
    to = target or env["XPILER_TARGET"]
    if to == "all" or to not in PLATFORMS:
        raise SCons.Errors.UserError(f"XpilerKernel({kernel}): target must be one of {', '.join(PLATFORMS)}; "
                                     "loop over env.XpilerTargets() for target=all")
    stem = os.path.splitext(os.path.basename(kernel))[0]
    local = src.srcnode().get_path(env.Dir("."))  # relative to the calling SConscript
    out = env.File(os.path.join(env.subst("$XPILER_BUILD_DIR"), to, os.path.dirname(local), stem + TARGET_EXT[to]))
    opts = {
        "kernel": kernel, "from": frm, "target": to,
        "scalars": dict(sorted((args or {}).items())), "extents": dict(sorted((extents or {}).items())),
        "seeds": list(seeds or (0, 1, 2)), "verify": bool(env["XPILER_VERIFY"]),
        "allow_unverified": bool(env["XPILER_ALLOW_UNVERIFIED"]),
        "llm": env["XPILER_LLM"], "tune": bool(env["XPILER_TUNE"]),
        "offline": bool(env["XPILER_OFFLINE"]), "lock_update": bool(env["XPILER_LOCK"]),
        "cache_dir": env.Dir(env["XPILER_CACHE"]).abspath if env["XPILER_CACHE"] else "",
        "cache_mode": env["XPILER_CACHE_MODE"], "lockfile": env.File(env["XPILER_LOCKFILE"]).abspath,
        "include_path": [env.Dir(p).abspath for p in env.get("CPPPATH", []) if isinstance(p, str)],
    }
    nodes = env._XpilerTranslate(out, src, XPILER_OPTS=json.dumps(opts, sort_keys=True))
    # not "llm": it decides only whether a kernel the symbolic passes decline gets translated
    # at all; every result is verified, so an LLM-made translation is as good a cache entry
    # (and lockfile entry, which offline=1 builds read without any LLM) as a symbolic one
    key_opts = {k: opts[k] for k in ("scalars", "extents", "seeds", "verify", "tune", "allow_unverified")}
    lock_digest = _lock_digest(env).get((kernel, to), "none")
    deps = _fingerprint_values(env, frm, to) + [
        env.Value(f"xpiler options {json.dumps(key_opts, sort_keys=True)}"),
        env.Value(f"xpiler.lock entry {kernel} -> {to}: {lock_digest}"),
        # offline/lock change where the result comes from: rebuild so the build checks it
        env.Value(f"xpiler mode offline={int(opts['offline'])} lock={int(opts['lock_update'])}"),
    ]
    env.Depends(nodes, deps)
    for n in nodes:
        n.attributes.xpiler = {"kernel": kernel, "from": frm, "target": to}
    return nodes


def _kernel_info(node_list):
    first = node_list[0] if SCons.Util.is_List(node_list) else node_list
    info = getattr(first.attributes, "xpiler", None)
    if info is None:
        raise SCons.Errors.UserError(f"{first}: not a result of env.XpilerKernel")
    return first, info


def XpilerObject(env, kernel_nodes):
    kernel_node, info = _kernel_info(kernel_nodes)
    to = info["target"]
    emulated, why = _emulation(env, to)
    kpath = str(kernel_node)
    stem = os.path.splitext(kpath)[0]
    cfg = _pc.load_platform_config(to)
    uenv = env.Clone()
    if emulated:
        header = EMU_HEADERS[to]
        unit_path = stem + ".emu.cpp"
        flags = list(EMU_FLAGS)
        if to == "mlu":
            lim = cfg.get("limits", {})
            for key, macro in (("nram_bytes", "XPILER_NRAM_BYTES"), ("wram_bytes", "XPILER_WRAM_BYTES"),
                               ("sram_bytes_per_cluster", "XPILER_SRAM_BYTES")):
                if key in lim:
                    flags.append(f"-D{macro}={lim[key]}")
        uenv.Replace(XPILER_CC="g++", XPILER_CCFLAGS=flags, XPILER_LANG=["-x", "c++"],
                     CPPPATH=[str(_paths.runtime_dir())])
        compiled_with = f"g++ + {header} (emulated)"
    else:
        prelude = _pc.prelude_path(to)
        header = prelude.name if prelude else ""
        unit_path = stem + ".unit" + TARGET_EXT[to]
        c = cfg["compiler"]
        uenv.Replace(XPILER_CC=c["command"], XPILER_CCFLAGS=list(c["flags"]),
                     XPILER_LANG=list(c["language_flags"]),
                     CPPPATH=[str(prelude.parent)] if prelude else [])
        for k, v in _pc.compiler_env_overrides(to).items():
            uenv["ENV"][k] = v
        found = shutil.which(c["command"])  # SCons runs commands with its own minimal PATH
        if found:
            uenv.PrependENVPath("PATH", os.path.dirname(found))
        compiled_with = c["command"]
    unit_opts = {"kernel": info["kernel"], "target": to, "emulated": emulated, "why": why,
                 "header": header, "compiler": compiled_with}
    unit = uenv._XpilerUnit(unit_path, kernel_node, XPILER_UNIT_OPTS=json.dumps(unit_opts, sort_keys=True))
    uenv.Depends(unit, uenv.Value(f"xpiler unit {json.dumps(unit_opts, sort_keys=True)}"))
    obj = uenv._XpilerCompile(stem + ".o", unit)
    for n in obj:
        n.attributes.xpiler = dict(info, emulated=emulated, why=why, compiled_with=compiled_with)
    return obj


def XpilerLibrary(env, name, kernels, target=None):
    objs = []
    to = target
    for k in kernels:
        first = k[0] if SCons.Util.is_List(k) else k
        info = getattr(first.attributes, "xpiler", {})
        to = to or info.get("target")
        objs += XpilerObject(env, k) if str(first).endswith(tuple(TARGET_EXT.values())) else [first]
    to = to or env["XPILER_TARGET"]
    return env.StaticLibrary(os.path.join(env.subst("$XPILER_BUILD_DIR"), to, name), objs)


def XpilerSysLibs(env, target=None):
    to = target or env["XPILER_TARGET"]
    emulated, _ = _emulation(env, to)
    if to == "cuda" and not emulated:
        return ["cudart", "pthread"]
    if to == "hip" and not emulated:
        return ["amdhip64", "pthread"]
    if to == "cpu" and not emulated:
        return ["gomp", "pthread", "m"]  # cpu objects are built with -fopenmp
    return ["pthread", "m"]


def XpilerManifest(env, kernels, target=None):
    rows, reports = [], []
    to = target
    for k in kernels:
        kernel_node, info = _kernel_info(k)
        to = to or info["target"]
        emulated, why = _emulation(env, info["target"])
        compiled = "g++ (emulator)" if emulated else _pc.load_platform_config(info["target"])["compiler"]["command"]
        rows.append({"kernel": info["kernel"], "emulated": emulated, "compiled_with": compiled})
        reports.append(env.File(str(kernel_node) + ".json"))
    opts = json.dumps({"target": to, "kernels": rows}, sort_keys=True)
    out = env._XpilerManifest(os.path.join(env.subst("$XPILER_BUILD_DIR"), to or "all", "xpiler-build.json"),
                              reports, XPILER_MANIFEST_OPTS=opts)
    env.Depends(out, env.Value(f"xpiler manifest {opts}"))
    return out


# ---------------------------------------------------------------------- output

def _print_cmd_line(s, target, source, env):
    """Quiet, one line per step; rich colours on a terminal, plain lines otherwise."""
    if not s:
        return
    if env.get("XPILER_TTY") and not env.get("XPILER_VERBOSE"):
        from xpiler.scons_build import say

        word, _, rest = s.partition(" ")
        style = {"translate": "bold cyan", "emulate": "magenta", "compile": "blue", "link": "bold",
                 "archive": "bold", "test": "bold green"}.get(word, "")
        _print_cmd_line.count = getattr(_print_cmd_line, "count", 0) + 1
        say(env, f"[dim]\\[{_print_cmd_line.count:3}][/] [{style or 'default'}]{word}[/] {rest}")
        return
    sys.stdout.write(s + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------- the tool

def _variables(env):
    from xpiler.cache import MODES

    v = Variables(None, SCons.Script.ARGUMENTS)
    v.AddVariables(
        EnumVariable("target", "platform to translate kernels to", "cpu", allowed_values=PLATFORMS + ("all",)),
        EnumVariable("llm", "where a symbolic pass declines, ask an LLM: off; on (endpoint from XPILER_LLM_* / "
                     "OPENAI_* env; answers recorded); replay (recorded answers and xpiler.lock only)", "off",
                     allowed_values=("off", "on", "replay")),
        BoolVariable("tune", "search pass parameters (slower build, faster kernels)", False),
        BoolVariable("verify", "verify every translation by differential testing", True),
        BoolVariable("offline", "build only from xpiler.lock: no search, no LLM; a missing entry is an error", False),
        BoolVariable("lock", "write each kernel's translation into xpiler.lock (then commit it)", False),
        PathVariable("cache", "xpiler cache directory (default: $$XPILER_CACHE_DIR or xpiler's cache/)", "",
                     PathVariable.PathAccept),
        EnumVariable("cache_mode", "xpiler cache mode", "read-write", allowed_values=MODES),
        EnumVariable("emulate", "compile for the CPU emulator: auto (when the target's compiler or device is "
                     "missing), yes, no", "auto", allowed_values=("auto", "yes", "no")),
        BoolVariable("allow_unverified", "keep translations that fail verification (marked unverified)", False),
        BoolVariable("VERBOSE", "print full commands", False),
    )
    return v


def generate(env, **kw):
    v = _variables(env)
    v.Update(env)
    env.Help(v.GenerateHelpText(env), append=True)
    env.SetDefault(XPILER_BUILD_DIR="build", XPILER_LOCKFILE="#xpiler.lock")
    env.Replace(
        XPILER_TARGET=env["target"], XPILER_LLM=env["llm"], XPILER_TUNE=env["tune"],
        XPILER_VERIFY=env["verify"], XPILER_OFFLINE=env["offline"], XPILER_LOCK=env["lock"],
        XPILER_CACHE=env["cache"], XPILER_CACHE_MODE=env["cache_mode"], XPILER_EMULATE=env["emulate"],
        XPILER_ALLOW_UNVERIFIED=env["allow_unverified"], XPILER_VERBOSE=env["VERBOSE"],
        XPILER_TTY=sys.stdout.isatty() and os.environ.get("TERM") != "dumb",
        XPILER_VERSION=_xp.__version__,
    )
    if env["offline"] and env["lock"]:
        raise SCons.Errors.UserError("offline=1 and lock=1 cannot be combined: offline builds read xpiler.lock")
    if env["llm"] == "on" and env["offline"]:
        raise SCons.Errors.UserError("offline=1 builds never call an LLM; drop llm=on")

    c_scanner = SCons.Scanner.C.CScanner()
    env["BUILDERS"]["_XpilerTranslate"] = SCons.Builder.Builder(
        action=SCons.Action.Action(_translate, _translate_str), emitter=_translate_emitter,
        source_scanner=c_scanner, single_source=True)
    env["BUILDERS"]["_XpilerUnit"] = SCons.Builder.Builder(
        action=SCons.Action.Action(_unit, _unit_str), single_source=True)
    env["BUILDERS"]["_XpilerCompile"] = SCons.Builder.Builder(
        action=SCons.Action.Action("$XPILER_CCCOM", "$XPILER_CCCOMSTR"), source_scanner=c_scanner,
        single_source=True)
    env["BUILDERS"]["_XpilerManifest"] = SCons.Builder.Builder(
        action=SCons.Action.Action(_manifest, _manifest_str))
    env["XPILER_CCCOM"] = "$XPILER_CC $XPILER_CCFLAGS $_CPPINCFLAGS -c -o $TARGET $XPILER_LANG $SOURCE"
    for name in ("XpilerKernel", "XpilerObject", "XpilerLibrary", "XpilerSysLibs", "XpilerManifest",
                 "XpilerTargets"):
        env.AddMethod(globals()[name], name)
    if not env["VERBOSE"]:
        env.Replace(XPILER_CCCOMSTR="compile $SOURCE", CXXCOMSTR="compile $SOURCE", CCCOMSTR="compile $SOURCE",
                    SHCXXCOMSTR="compile $SOURCE", LINKCOMSTR="link $TARGET", ARCOMSTR="archive $TARGET",
                    RANLIBCOMSTR="index $TARGET", SHLINKCOMSTR="link $TARGET")
    env["PRINT_CMD_LINE_FUNC"] = _print_cmd_line
    # Native GPU builds link the vendor runtime: add its library directory.
    for to, lib in (("cuda", "lib64"), ("hip", "lib")):
        if env["target"] in (to, "all") and not _emulation(env, to)[0]:
            cc = shutil.which(_pc.load_platform_config(to)["compiler"]["command"])
            if cc:
                env.AppendUnique(LIBPATH=[os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(cc))), lib)])


def exists(env):
    return True
