"""Comparing outputs: per-dtype tolerances, error statistics and suspicious-output flags."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# (atol, rtol) per element dtype; the benchmark's intended tolerance is 1e-3 for float32.
TOLERANCES = {
    "float64": (1e-6, 1e-6), "float32": (1e-3, 1e-3), "float16": (1e-2, 1e-2),
    "uint16": (0, 0),  # bfloat16 travels as raw uint16 bits; compared exactly
}


@dataclass
class Comparison:
    name: str
    ok: bool
    max_abs_err: float
    max_rel_err: float
    mismatches: int
    count: int
    first_mismatch: int | None = None
    flags: list = field(default_factory=list)  # all-zero / constant / non-finite outputs

    def summary(self) -> str:
        s = f"{self.name}: {'ok' if self.ok else 'MISMATCH'} max_abs={self.max_abs_err:.3g} max_rel={self.max_rel_err:.3g}"
        if not self.ok:
            s += f" ({self.mismatches}/{self.count} elements differ, first at index {self.first_mismatch})"
        if self.flags:
            s += " [" + ", ".join(self.flags) + "]"
        return s


def tolerance(dtype) -> tuple[float, float]:
    dt = np.dtype(dtype)
    if dt.kind in "iub":
        return 0.0, 0.0
    return TOLERANCES.get(dt.name, (1e-3, 1e-3))


def output_flags(a: np.ndarray) -> list[str]:
    flags = []
    if a.size == 0:
        return flags
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        flags.append("non-finite values")
    if np.all(a == 0):
        flags.append("all-zero output")
    elif a.size > 1 and np.all(a == a.flat[0]):
        flags.append("constant output")
    return flags


def compare_arrays(name: str, expected: np.ndarray, actual: np.ndarray, atol=None, rtol=None,
                   defined: np.ndarray | None = None) -> Comparison:
    """``defined``: a boolean mask of the elements to compare (the others are undefined in
    ``expected``, e.g. never written by the source kernel)."""
    if defined is not None and expected.shape == actual.shape:
        c = compare_arrays(name, expected[defined], actual[defined], atol, rtol)
        if c.first_mismatch is not None:
            c.first_mismatch = int(np.flatnonzero(defined)[c.first_mismatch])
        c.count = int(expected.size)
        return c
    if expected.shape != actual.shape:
        return Comparison(name, False, float("inf"), float("inf"), max(expected.size, actual.size),
                          max(expected.size, actual.size), 0, ["shape differs"])
    close, identical, diff, rel = _closeness(expected, actual, atol, rtol)
    diff = np.where(identical, 0.0, diff)
    rel = np.where(identical, 0.0, rel)
    bad = np.flatnonzero(~close)
    finite = np.isfinite(diff)
    max_abs = float(diff[finite].max()) if finite.any() else 0.0
    max_rel = float(rel[np.isfinite(rel)].max()) if np.isfinite(rel).any() else 0.0
    if (~finite).any():
        max_abs = max_rel = float("inf")
    return Comparison(name, bad.size == 0, max_abs, max_rel, int(bad.size), int(expected.size),
                      int(bad[0]) if bad.size else None, output_flags(actual))


def identical_elements(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per element: the same bytes in ``a`` and ``b`` (same shape and dtype)."""
    if not a.size:
        return np.zeros(0, bool)
    return (a.view(np.uint8).reshape(a.size, -1) == b.view(np.uint8).reshape(b.size, -1)).all(axis=1)


def close_elements(expected: np.ndarray, actual: np.ndarray, atol=None, rtol=None) -> np.ndarray:
    """Per element: within the dtype's tolerance (as compare_arrays judges), or identical."""
    return _closeness(np.asarray(expected).reshape(-1), np.asarray(actual).reshape(-1), atol, rtol)[0]


def _closeness(expected, actual, atol, rtol):
    d_atol, d_rtol = tolerance(expected.dtype)
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol
    identical = identical_elements(expected, actual)
    e = expected.astype(np.float64)
    a = actual.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(e - a)
        rel = diff / np.maximum(np.abs(e), 1e-30)
        close = (diff <= atol + rtol * np.abs(e)) | identical
    return close, identical, diff, rel
