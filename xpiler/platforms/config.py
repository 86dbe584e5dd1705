"""Platform configurations: compilers, flags, limits and launch defaults.

One TOML file per platform lives in `platform_configs/<name>.toml`. This module loads
and checks them and builds the argv and environment for compiling one source file with
the platform's real compiler.

Schema (every file; see the files themselves for values and their sources):

    name, dialect, language, description   name == file stem; dialect names xpiler.lang.<dialect>
    extensions                             source suffixes, e.g. [".cpp", ".c"]
    [compiler] available, command          available = false: no real compiler (+ reason)
        language_flags, flags,             required when available; argv is
        compile_flags, syntax_flags,         command flags include_flag PRELUDE
        include_flag, output_flag            (syntax|compile)_flags output_flag OUT
                                             language_flags SRC
    [compiler.env]                         variables set for the compiler (HIP_PLATFORM)
    [prelude] header                       file in xpiler/platforms/include/, "" for none
    [limits]                               hardware limits (threads/block, NRAM bytes ...)
    [launch]                               defaults for kernels without host code

Kept free of heavy imports: SCons imports it on every build.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import tomllib
from pathlib import Path
from typing import Any, Mapping

from xpiler import paths

PLATFORMS: tuple[str, ...] = ("cuda", "hip", "mlu", "cpu")

# Keys every config must have, as dotted paths.
_REQUIRED_KEYS = (
    "name",
    "dialect",
    "language",
    "extensions",
    "compiler.available",
    "compiler.command",
    "compiler.env",
    "prelude.header",
    "limits",
    "launch",
)
# Additionally required when the platform's compiler can actually be run here.
_REQUIRED_IF_AVAILABLE = (
    "compiler.language_flags",
    "compiler.flags",
    "compiler.compile_flags",
    "compiler.syntax_flags",
    "compiler.include_flag",
    "compiler.output_flag",
)


class PlatformConfigError(ValueError):
    """A platform config is missing, unreadable or incomplete."""


class CompilerUnavailableError(RuntimeError):
    """The platform has no real compiler (e.g. BANG's cncc is vendor-only)."""


def _lookup(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def _validate(name: str, config: Mapping[str, Any], source: Path) -> None:
    required = list(_REQUIRED_KEYS)
    if config.get("compiler", {}).get("available"):
        required += _REQUIRED_IF_AVAILABLE
    missing = []
    for key in required:
        try:
            _lookup(config, key)
        except KeyError:
            missing.append(key)
    if missing:
        raise PlatformConfigError(f"{source}: missing keys: {', '.join(missing)}")
    if config["name"] != name:
        raise PlatformConfigError(
            f"{source}: name = {config['name']!r} does not match the file name {name!r}"
        )
    if config["compiler"]["available"] and not config["prelude"]["header"]:
        raise PlatformConfigError(f"{source}: an available compiler needs a prelude header")


@functools.lru_cache(maxsize=None)
def _load_cached(name: str) -> dict[str, Any]:
    if name not in PLATFORMS:
        raise PlatformConfigError(
            f"unknown platform {name!r}; expected one of {', '.join(PLATFORMS)}"
        )
    source = paths.platform_configs_dir() / f"{name}.toml"
    try:
        with source.open("rb") as fh:
            config = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise PlatformConfigError(f"{source}: not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PlatformConfigError(f"{source}: {exc}") from exc
    _validate(name, config, source)
    return config


def load_platform_config(name: str) -> dict[str, Any]:
    """The parsed and checked config of platform `name` ("cuda", "hip", "mlu", "cpu").

    Returns a fresh copy each time, so callers may modify it freely.
    """
    return copy.deepcopy(_load_cached(name))


def platform_for_extension(suffix: str) -> str:
    """The platform whose sources use file suffix `suffix` (e.g. ".cu" -> "cuda")."""
    for name in PLATFORMS:
        if suffix.lower() in _load_cached(name)["extensions"]:
            return name
    raise PlatformConfigError(f"no platform uses the file extension {suffix!r}")


def prelude_path(name: str) -> Path | None:
    """The header force-included when compiling for `name`, or None if it has none."""
    header = _load_cached(name)["prelude"]["header"]
    return paths.include_dir() / header if header else None


def compiler_available(name: str) -> bool:
    """Whether the platform has a real compiler and it is on PATH here."""
    compiler = _load_cached(name)["compiler"]
    return bool(compiler["available"]) and shutil.which(compiler["command"]) is not None


def compile_command(
    name: str,
    src: str | os.PathLike[str],
    out: str | os.PathLike[str] | None,
    *,
    syntax_only: bool,
) -> list[str]:
    """The argv that compiles one source file with the platform's real compiler.

    The prelude header is force-included, because benchmark-style kernels have no
    #include lines of their own. `syntax_only` selects the config's fast check
    (`syntax_flags`) instead of a full object-file compile (`compile_flags`). `out` is
    the output file; None discards the output (os.devnull). The output flag is always
    passed, because some "syntax" modes still write a file (nvcc -ptx writes <src>.ptx
    into the working directory otherwise).

    Raises CompilerUnavailableError for a platform with no real compiler (mlu).
    """
    config = _load_cached(name)
    compiler = config["compiler"]
    if not compiler["available"]:
        reason = compiler.get("reason", "no real compiler configured")
        raise CompilerUnavailableError(f"{name}: {reason}")
    argv = [compiler["command"], *compiler["flags"]]
    prelude = prelude_path(name)
    if prelude is not None:
        argv += [compiler["include_flag"], str(prelude)]
    argv += compiler["syntax_flags"] if syntax_only else compiler["compile_flags"]
    argv += [compiler["output_flag"], os.devnull if out is None else os.fspath(out)]
    # The language flag applies to the inputs that follow it, so it goes right before
    # the source.
    argv += [*compiler["language_flags"], os.fspath(src)]
    return argv


def compile_env(name: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for running the platform's compiler.

    `base` (default: os.environ) overlaid with the config's `[compiler.env]`, e.g.
    HIP_PLATFORM=amd, without which hipcc picks the NVIDIA back end when nvcc is
    installed.
    """
    env = dict(os.environ if base is None else base)
    env.update(compiler_env_overrides(name))
    return env


def compiler_env_overrides(name: str) -> dict[str, str]:
    """Only the variables the config sets (for logs, or to merge into an SCons env)."""
    return {k: str(v) for k, v in _load_cached(name)["compiler"]["env"].items()}


def vendor_headers() -> set[str]:
    """Headers that belong to one platform's toolchain (``[prelude] vendor_headers``): a
    translation drops the source's, and the target's prelude brings its own."""
    return {h for name in PLATFORMS for h in _load_cached(name)["prelude"].get("vendor_headers", [])}


def is_vendor_include(line: str) -> bool:
    """Whether ``line`` is ``#include <h>`` / ``#include "h"`` of a vendor header."""
    text = line.strip()
    return text.startswith("#include") and text[len("#include"):].strip().strip('<>"') in vendor_headers()
