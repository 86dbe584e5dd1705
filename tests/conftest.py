"""Shared test fixtures. The benchmark lives beside the repository (../shared), never in it."""
from __future__ import annotations

import pytest

from xpiler import paths

BENCH = paths.shared_bench_dir()
DIALECT_DIRS = {"cuda": "CUDA", "hip": "HIP", "mlu": "MLU", "cpu": "CPP"}


@pytest.fixture(scope="session")
def bench_dir():
    if not BENCH.is_dir():
        pytest.skip("../shared/xpilerbench is not available")
    return BENCH


def bench_files(dialect: str) -> list:
    d = BENCH / DIALECT_DIRS[dialect]
    return sorted(p for p in d.iterdir() if p.is_file()) if d.is_dir() else []


def run_strict_bang(tmp_path):
    """Build ``tmp_path/k.mlu`` with ``tmp_path/main.cpp`` against the BANG emulator in its
    strict hardware mode (128-byte vector lengths, operands on chip) and run it."""
    import subprocess

    rt = paths.runtime_dir()
    exe = tmp_path / "strict"
    subprocess.run(["g++", "-std=c++17", "-O1", "-w", "-I", str(rt), "-include", str(rt / "bang_emu.h"),
                    "-DXPILER_BANG_STRICT=1", "-DXPILER_BANG_ALIGN_BYTES=128",
                    "-x", "c++", str(tmp_path / "k.mlu"), "-x", "c++", str(tmp_path / "main.cpp"),
                    "-o", str(exe), "-lpthread"], check=True)
    return subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
