"""Tensorization for BANG: replace element loops by `__bang_*` vector intrinsics where the
registry's meaning matches (with z3-checked index equivalence).

Not implemented yet: kernels are emitted as scalar BANG code, reported as such."""
from __future__ import annotations


def tensorize_mlu(fn):
    return fn, []
