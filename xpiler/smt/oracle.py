"""The execution oracle: the reference (a pass's input) run on the engines, and
candidates (an LLM's answer, a repair candidate) run on the same inputs and compared.

This is what ``llm_pass`` receives as its verifier callback (``ExecutionOracle.verify``)
and what SMT repair uses to localize a difference and to confirm a repair. Buffers are
matched by position in the host entry's C signature (a pass keeps it); a candidate may
carry extra trailing buffers (repair's hole parameters), given by the caller.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..ir import nodes as N
from ..lang import print_program
from ..verify.compare import compare_arrays
from ..verify.engines import EngineError
from ..verify.kernel import inputs_by_position, prepare


@dataclass
class Verdict:
    """The outcome of verifying a candidate against the reference by execution."""

    ok: bool
    reason: str = ""
    engine: str = ""
    seeds: tuple = ()
    # first differing output: buffer name (reference's), flat indices of differing elements
    bad_buffer: str | None = None
    bad_indices: tuple = ()
    seconds: float = 0.0
    runnable: bool = True  # False: the candidate could not be built or run at all
    unwritten: int = 0  # differing elements that the candidate never wrote (still poison)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "reason": self.reason, "engine": self.engine, "seeds": list(self.seeds),
                "bad_buffer": self.bad_buffer, "bad_count": len(self.bad_indices),
                "runnable": self.runnable, "seconds": round(self.seconds, 3)}


@dataclass
class ExecutionOracle:
    """``reference_text`` in ``reference_dialect`` defines correct behaviour; candidates
    (IR programs, any dialect) are run on the same inputs with ``engine`` (default per
    dialect)."""

    reference_text: str
    reference_dialect: str
    path: str = "<reference>"
    scalars: dict = field(default_factory=dict)
    extents: dict = field(default_factory=dict)
    seeds: tuple = (0, 1)
    engine: str | None = None
    runs: int = 0  # candidate executions (for reports and benchmarks)
    # a candidate run that takes longer than this is a failure (a repair candidate can
    # turn a bound into an endless loop); the reference runs without this limit
    candidate_timeout: float | None = None  # default: max(5 s, 20 x the reference's run)

    def __post_init__(self):
        self._ref = prepare(self.path, self.scalars, self.extents, self.reference_dialect, self.reference_text)
        self._inputs: dict = {}
        self._ref_out: dict = {}

    # ---------------------------------------------------------------- reference side
    @property
    def reference(self):
        return self._ref

    def inputs(self, seed: int) -> dict:
        if seed not in self._inputs:
            self._inputs[seed] = self._ref.inputs(seed)
        return self._inputs[seed]

    def reference_outputs(self, seed: int) -> dict:
        if seed not in self._ref_out:
            r = self._ref.run(self.inputs(seed))
            self._ref_out[seed] = r.outputs
            if self.candidate_timeout is None:
                self.candidate_timeout = max(5.0, 20 * r.run_seconds)
        return self._ref_out[seed]

    # ---------------------------------------------------------------- candidate side
    def prepare_candidate(self, program: N.Program, extra_extents: dict | None = None):
        text = print_program(program, program.dialect, format=False)
        extents = dict(self.extents)
        # the candidate's buffers have the reference's sizes (matched by position), so
        # extent inference is not needed (and holes or traces would defeat it)
        from ..ir.entry import host_entry
        from ..platforms.config import load_platform_config

        entry = host_entry(program, load_platform_config(program.dialect))
        if entry is not None and entry.synthesized:
            for s, o in zip(self._ref.entry.buffers, entry.buffers):
                extents.setdefault(o.name, self._ref.sizes[s.name] // self._ref.dtypes[s.name].itemsize)
        extents.update(extra_extents or {})
        cand = prepare(self.path + " (candidate)", self.scalars, extents, program.dialect, text)
        return cand

    def run_candidate(self, cand, seed: int, extra_inputs: dict | None = None) -> dict:
        """Outputs of a prepared candidate, keyed by the *reference's* buffer names."""
        ref = self._ref
        pairs = list(zip(ref.entry.buffers, cand.entry.buffers))
        ins_c = inputs_by_position(ref, cand, self.inputs(seed))
        for k, v in (extra_inputs or {}).items():
            ins_c[k] = v
            cand.sizes[k] = int(np.asarray(v).nbytes)
        self.runs += 1
        self.reference_outputs(seed)  # sets the candidate timeout
        r = cand.run(ins_c, self.engine if cand.dialect != "cpu" else None, timeout=self.candidate_timeout)
        return {s.name: r.outputs[o.name] for s, o in pairs}

    def crash_location(self, program: N.Program, seed: int):
        """Where ``program`` crashes: (its printed-and-reparsed IR, line, col) of the first
        frame in the kernel reported by an AddressSanitizer run, or None."""
        import re

        try:
            cand = self.prepare_candidate(program)
            ref = self._ref
            pairs = list(zip(ref.entry.buffers, cand.entry.buffers))
            ins = self.inputs(seed)
            ins_c = {o.name: ins[s.name].copy() for s, o in pairs}
            ins_c.update({o: ins[s] for s, o in zip(ref.entry.scalars, cand.entry.scalars)})
            for s, o in pairs:
                cand.sizes[o.name] = ref.sizes[s.name]
            self.runs += 1
            cand.run(ins_c, self.engine if cand.dialect != "cpu" else None, asan=True)
        except EngineError as e:
            m = re.search(r"kernel\.[a-z]+:(\d+)(?::(\d+))?", (e.log or "") + str(e))
            if m:
                return cand.program, int(m.group(1)), int(m.group(2) or 0)
        except Exception:  # noqa: BLE001 - localization is best effort
            return None
        return None

    def compare(self, outputs: dict, seed: int) -> Verdict:
        ref_out = self.reference_outputs(seed)
        for b in self._ref.entry.buffers:
            if b.role not in ("out", "inout"):
                continue
            c = compare_arrays(b.name, ref_out[b.name], outputs[b.name])
            if not c.ok:
                with np.errstate(invalid="ignore", over="ignore"):
                    e = ref_out[b.name].astype(np.float64)
                    a = outputs[b.name].astype(np.float64)
                from ..verify.compare import tolerance

                atol, rtol = tolerance(ref_out[b.name].dtype)
                with np.errstate(invalid="ignore", over="ignore"):
                    bad = np.flatnonzero(~((np.abs(e - a) <= atol + rtol * np.abs(e))
                                           | (ref_out[b.name] == outputs[b.name])))
                from ..verify.inputs import POISON_BYTE

                raw = outputs[b.name].reshape(-1).view(np.uint8).reshape(outputs[b.name].size, -1)
                untouched = (raw[bad] == POISON_BYTE).all(axis=1) if bad.size else np.zeros(0, bool)
                return Verdict(False, f"seed {seed}: {c.summary()}", seeds=(seed,), bad_buffer=b.name,
                               bad_indices=tuple(int(i) for i in bad),
                               unwritten=int(untouched.sum()) if b.role == "out" else 0)
        return Verdict(True, seeds=(seed,))

    def check(self, program: N.Program, seeds=None, extra_inputs=None, extra_extents=None) -> Verdict:
        """Run ``program`` on ``seeds`` (default: the oracle's) and compare every output."""
        t0 = time.perf_counter()
        seeds = tuple(self.seeds if seeds is None else seeds)
        try:
            cand = self.prepare_candidate(program, extra_extents)
        except Exception as e:  # noqa: BLE001 - anything that stops preparation: not runnable
            return Verdict(False, f"cannot prepare the candidate: {e}", runnable=False,
                           seconds=time.perf_counter() - t0)
        if [b.elem for b in self._ref.entry.buffers] != [b.elem for b in cand.entry.buffers][:len(self._ref.entry.buffers)]:
            return Verdict(False, "the candidate does not keep the reference's C signature (buffer types)",
                           runnable=False, seconds=time.perf_counter() - t0)
        engine = ""
        for seed in seeds:
            try:
                out = self.run_candidate(cand, seed, extra_inputs)
            except EngineError as e:
                return Verdict(False, f"{e.stage}: {e}", runnable=False, seconds=time.perf_counter() - t0)
            v = self.compare(out, seed)
            if not v.ok:
                v.seconds = time.perf_counter() - t0
                return v
        return Verdict(True, engine=engine or (self.engine or "default"), seeds=seeds,
                       seconds=time.perf_counter() - t0)

    def verify(self, program: N.Program) -> Verdict:
        """The verifier callback of ``llm_pass``: all of the oracle's seeds."""
        return self.check(program)
