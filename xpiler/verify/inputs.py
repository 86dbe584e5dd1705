"""Test inputs: dtype-aware random data from a seed, and poisoned outputs.

Signed values by default (a kernel that only works for non-negative inputs should be
caught); small integer ranges so integer kernels neither overflow nor index wildly;
output buffers filled with a poison byte pattern so that an element a kernel forgets to
write shows up as a difference, not as a lucky zero.
"""
from __future__ import annotations

import numpy as np

POISON_BYTE = 0xA5  # as float32: -2.9e-16; as int32: -1515870811 -- never a plausible result

INT_RANGES = {  # [low, high) per integer dtype
    "int8": (-8, 8), "uint8": (0, 16), "int16": (-64, 64), "uint16": (0, 64),
    "int32": (0, 16), "uint32": (0, 16), "int64": (0, 16), "uint64": (0, 16), "bool": (0, 2),
}


def random_buffer(rng: np.random.Generator, dtype: np.dtype, count: int, scale: float = 1.0) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (rng.standard_normal(count) * scale).astype(dtype)
    lo, hi = INT_RANGES.get(dtype.name, (0, 16))
    return rng.integers(lo, hi, count).astype(dtype)


def poisoned(dtype: np.dtype, count: int) -> np.ndarray:
    return np.frombuffer(bytes([POISON_BYTE]) * (np.dtype(dtype).itemsize * count), dtype=dtype).copy()


def make_inputs(buffers, sizes: dict, scalars: dict, seed: int, dtypes: dict) -> dict:
    """Arrays for every buffer (random for in/inout/unused, poison for out) plus scalars.

    ``buffers``: BufferInfo-like objects (name, role); ``dtypes``: name -> numpy dtype."""
    rng = np.random.default_rng(seed)
    out = {}
    for b in buffers:
        dt = np.dtype(dtypes[b.name])
        count = sizes[b.name] // dt.itemsize
        out[b.name] = poisoned(dt, count) if b.role == "out" else random_buffer(rng, dt, count)
    out.update(scalars)
    return out
