"""A kernel file made ready to run: its IR, host entry, buffer sizes and dtypes.

``prepare`` reads a file and resolves everything a run needs from the scalar arguments
the user gives: buffer byte sizes come from the host code's copies when there is host
code, and otherwise from extent inference over the kernel (or the user's declarations).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import XpilerError
from ..ir import nodes as N
from ..ir import types as T
from ..ir.consteval import try_fold
from ..ir.entry import HostEntry, host_entry
from ..lang import dialect_of, parse_source
from ..platforms.config import load_platform_config
from .engines import RunResult, numpy_dtype, run_program
from .extents import ExtentError, infer_extents
from .inputs import make_inputs


class PrepareError(XpilerError):
    pass


@dataclass
class PreparedKernel:
    path: str
    dialect: str
    text: str
    program: N.Program
    entry: HostEntry
    scalars: dict  # scalar parameter -> value
    sizes: dict  # buffer -> bytes
    dtypes: dict  # buffer -> numpy dtype

    def inputs(self, seed: int) -> dict:
        return make_inputs(self.entry.buffers, self.sizes, self.scalars, seed, self.dtypes)

    def run(self, inputs: dict, engine: str | None = None, *, asan: bool = False, timeout: float = 300,
            env: dict | None = None) -> RunResult:
        return run_program(self.text, self.dialect, self.entry, inputs, self.sizes, engine, asan=asan, timeout=timeout,
                           name=self.path, env=env)

    @property
    def outputs(self) -> list[str]:
        return [b.name for b in self.entry.buffers if b.role in ("out", "inout")]


def task_ranges(dialect: str, entry: HostEntry) -> dict:
    """Inclusive value ranges of the platform's index values for the entry's launch."""
    launch = entry.launches[0] if entry.launches else None
    if dialect == "mlu":
        cfg = load_platform_config("mlu")["launch"]
        dims = [try_fold(d) for d in launch.grid] if launch else cfg["task_dim"]
        task_dim = int(np.prod([d or 1 for d in dims]))
        cores = int(cfg.get("cores_per_cluster", 4))
        clusters = max(1, task_dim // cores)
        return {"taskId": (0, task_dim - 1), "taskIdX": (0, task_dim - 1), "taskDim": (task_dim, task_dim),
                "taskDimX": (task_dim, task_dim), "clusterId": (0, clusters - 1), "coreId": (0, cores - 1),
                "clusterDim": (clusters, clusters), "coreDim": (cores, cores)}
    if dialect in ("cuda", "hip") and launch is not None:
        out = {}
        for axis, g, b in zip("xyz", launch.grid, launch.block):
            gv, bv = try_fold(g), try_fold(b)
            if isinstance(gv, int):
                out[f"blockIdx.{axis}"] = (0, gv - 1)
                out[f"gridDim.{axis}"] = (gv, gv)
            if isinstance(bv, int):
                out[f"threadIdx.{axis}"] = (0, bv - 1)
                out[f"blockDim.{axis}"] = (bv, bv)
        return out
    return {}


def prepare(path: str, scalars: dict | None = None, extents: dict | None = None,
            dialect: str | None = None, text: str | None = None,
            sizes_by_position: list | None = None, fallback_extents: dict | None = None) -> PreparedKernel:
    """``scalars``: entry scalar values; ``extents``: declared buffer sizes in elements;
    ``sizes_by_position``: byte sizes of the buffers in parameter order, known from
    elsewhere (a translation keeps its source's C signature, so the source's sizes hold)."""
    dialect = dialect or dialect_of(path)
    text = Path(path).read_text() if text is None else text
    program = parse_source(text, dialect, path)
    cfg = load_platform_config(dialect)
    entry = host_entry(program, cfg)
    if entry is None:
        raise PrepareError(f"{path}: no kernel to run")
    scalars = dict(scalars or {})
    missing = [s for s in entry.scalars if s not in scalars]
    if missing:
        raise PrepareError(f"{path}: give a value for each scalar argument of {entry.name}: "
                           + ", ".join(f"--arg {m}=VALUE" for m in missing))
    unknown = [s for s in scalars if s not in entry.scalars]
    if unknown:
        raise PrepareError(f"{path}: {entry.name} has no scalar parameter {', '.join(unknown)}")
    dtypes = {b.name: numpy_dtype(b.elem) for b in entry.buffers}
    declared = {k: int(v) * dtypes[k].itemsize for k, v in (extents or {}).items() if k in dtypes}
    bad = [k for k in (extents or {}) if k not in dtypes]
    if bad:
        raise PrepareError(f"{path}: {entry.name} has no buffer {', '.join(bad)}")
    env = {d.name: d.value for d in program.defines if d.value is not None}
    env.update({g.name: g.init for g in program.globals  # constexpr int N = 1; at file scope
                if isinstance(g, N.Decl) and g.init is not None
                and not isinstance(g.dtype, (T.PointerType, T.ArrayType))})
    env.update(scalars)
    sizes = {}
    if sizes_by_position is not None:
        if len(sizes_by_position) != len(entry.buffers):
            raise PrepareError(f"{path}: {entry.name} has {len(entry.buffers)} buffers, expected {len(sizes_by_position)}")
        sizes = {b.name: n for b, n in zip(entry.buffers, sizes_by_position)}
    elif entry.synthesized:
        kernel = program.function(entry.launches[0].kernel)
        try:
            sizes = infer_extents(program, kernel, scalars, task_ranges(dialect, entry), declared)
        except ExtentError:
            if not fallback_extents:
                raise
            # sizes known from elsewhere (e.g. the operator's tensor shapes) fill the gaps
            fallback = {k: int(v) * dtypes[k].itemsize for k, v in fallback_extents.items() if k in dtypes}
            sizes = infer_extents(program, kernel, scalars, task_ranges(dialect, entry), {**fallback, **declared})
    else:
        need = []
        for b in entry.buffers:
            if b.name in declared:
                sizes[b.name] = declared[b.name]
                continue
            v = try_fold(b.nbytes, env) if b.nbytes is not None else None
            if not isinstance(v, int):
                need.append(b.name)
            else:
                sizes[b.name] = v
        if need:
            raise PrepareError(f"{path}: cannot tell the size of {', '.join(need)} from the host code; "
                               "declare it with --extent NAME=ELEMENTS")
    for name, nbytes in sizes.items():
        item = dtypes[name].itemsize
        sizes[name] = -(-nbytes // item) * item  # whole elements
    return PreparedKernel(path, dialect, text, program, entry, scalars, sizes, dtypes)


def inputs_by_position(ref: PreparedKernel, cand: PreparedKernel, ins: dict) -> dict:
    """The reference's inputs for a candidate with the same C signature, matched by
    parameter position (names may differ); the candidate takes the reference's sizes."""
    pairs = list(zip(ref.entry.buffers, cand.entry.buffers))
    for s, o in pairs:
        cand.sizes[o.name] = ref.sizes[s.name]
    out = {o.name: ins[s.name].copy() for s, o in pairs}
    out.update({o: ins[s] for s, o in zip(ref.entry.scalars, cand.entry.scalars)})
    return out
