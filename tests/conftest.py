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
