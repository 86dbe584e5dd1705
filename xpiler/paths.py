"""Where xpiler's data files live.

Everything is derived from this file's location, never from the working directory or
an absolute path, so the same code works in every checkout. The package is installed
editable (`pip install -e .`), so the repository root is simply the package's parent
directory: that is where the top-level `templates/` and `platform_configs/` live.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def package_dir() -> Path:
    """The `xpiler/` package directory."""
    return _PACKAGE_DIR


def repo_root() -> Path:
    """The repository root (parent of the package)."""
    return _PACKAGE_DIR.parent


def templates_dir() -> Path:
    """Jinja templates: `templates/host/*.j2` and `templates/prompts/*.j2`."""
    return repo_root() / "templates"


def platform_configs_dir() -> Path:
    """Per-platform TOML configs (compilers, flags, limits)."""
    return repo_root() / "platform_configs"


def runtime_dir() -> Path:
    """Emulator runtime headers, compiled with g++ to run kernels on the CPU."""
    return _PACKAGE_DIR / "verify" / "runtime"


def include_dir() -> Path:
    """Preludes force-included when a kernel is compiled with its real compiler."""
    return _PACKAGE_DIR / "platforms" / "include"


def shared_bench_dir() -> Path:
    """The benchmark sources (`CUDA/ HIP/ MLU/ CPP/`) kept beside the repository.

    It is not part of the project and may be absent (e.g. in a plain clone); callers
    must check `.is_dir()` before use.
    """
    return repo_root().parent / "shared" / "xpilerbench"
