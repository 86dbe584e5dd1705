"""Differential testing: a translated kernel against its source, on identical inputs.

Both kernels run on their own platform's engine; buffers are matched by position in the
host entry's C signature (the translation keeps it), inputs come from the source's
extents and several seeds, and every output buffer must agree within its dtype's
tolerance. A result records which engines verified it.

What the source itself leaves undefined is not held against the translation: elements it
never writes (found by a second run with other poison bytes) are not compared; where a
CUDA/HIP source races (its output changes when the emulator runs blocks and threads in
reverse order) the translation must give the result of one of the two orders; and a
difference in a source that AddressSanitizer convicts is the source's defect.
"""
from __future__ import annotations

import time

import numpy as np

from .compare import close_elements, compare_arrays
from .engines import EngineError
from .kernel import inputs_by_position, prepare


def verify_translation(src_path: str, src_text: str, src_dialect: str, out_text: str,
                       out_dialect: str, options) -> dict:
    t0 = time.perf_counter()
    result = {"status": "failed", "reason": "", "engines": {}, "seeds": list(options.seeds),
              "max_abs_err": 0.0, "max_rel_err": 0.0, "outputs": {}}
    try:
        src = prepare(src_path, options.scalars, options.extents, src_dialect, src_text,
                      fallback_extents=getattr(options, "fallback_extents", None))
    except Exception as e:  # noqa: BLE001 - any preparation failure means "not verifiable"
        result["reason"] = f"cannot prepare the source: {e}"
        result["side"] = "source"
        return result
    try:
        out = prepare(src_path + " (translated)", options.scalars, None, out_dialect, out_text,
                      sizes_by_position=[src.sizes[b.name] for b in src.entry.buffers])
    except Exception as e:  # noqa: BLE001
        result["reason"] = f"cannot prepare the translation: {e}"
        result["side"] = "translated"
        return result
    if [b.elem for b in src.entry.buffers] != [b.elem for b in out.entry.buffers] or \
            len(src.entry.scalars) != len(out.entry.scalars):
        result["reason"] = "the translated entry point does not keep the source's C signature"
        return result
    pairs = list(zip(src.entry.buffers, out.entry.buffers))
    compared = 0
    try:
        make_inputs = getattr(options, "inputs", None)
        for seed in options.seeds:
            ins = src.inputs(seed)
            if make_inputs is not None:  # meaningful inputs from the caller (e.g. valid indices)
                given = make_inputs(seed)
                ins.update({k: v for k, v in given.items() if k in ins and v.nbytes == src.sizes.get(k, -1)})
            ins_out = inputs_by_position(src, out, ins)
            timeout = getattr(options, "timeout", 300)
            result["side"] = "source"
            rs = src.run(ins, timeout=timeout)
            # per seed: which elements are undefined can depend on the data
            defined = _defined_elements(src, ins, rs, timeout)
            undefined = {k: int(v.size - v.sum()) for k, v in defined.items() if not v.all()}
            if undefined:
                result.setdefault("undefined_elements", {})[f"seed {seed}"] = undefined
            result["side"] = "translated"
            ro = out.run(ins_out, options.engine, timeout=timeout)
            result.pop("side")
            result["engines"] = {"source": rs.engine, "translated": ro.engine}
            if "native" in (rs.engine, ro.engine):
                from .engines import native_label

                if native_label() != "native":
                    result["engine_notes"] = native_label()
            for s, o in pairs:
                if s.role not in ("out", "inout"):
                    continue
                if defined.get(s.name) is not None and not defined[s.name].any():
                    result["reason"] = (f"every element of {s.name} is undefined in the source (it depends on "
                                        "memory the source never wrote)")
                    result["side"] = "source"
                    return result
                c = compare_arrays(s.name, rs.outputs[s.name], ro.outputs[o.name], defined=defined.get(s.name))
                if not c.ok:  # is the difference the source's own undefined behaviour?
                    order = _order_dependent(src, ins, rs, s.name, timeout)
                    if order is not None and order[0].any():
                        # where the source races, the translation must give one of the
                        # results the two orders give (not just anything)
                        racy, reverse = order
                        fwd, got = rs.outputs[s.name].reshape(-1), ro.outputs[o.name].reshape(-1)
                        legal = np.where(racy & ~close_elements(fwd, got), reverse.reshape(-1), fwd)
                        c2 = compare_arrays(s.name, legal.reshape(rs.outputs[s.name].shape), ro.outputs[o.name],
                                            defined=defined.get(s.name))
                        if c2.ok:
                            result.setdefault("order_dependent_elements", {}).setdefault(
                                f"seed {seed}", {})[s.name] = int(racy.sum())
                            c = c2
                        else:
                            result["reason"] = (f"seed {seed}: {c.summary()}; the source races on {int(racy.sum())} "
                                                f"elements of {s.name} (they change when blocks and threads run in "
                                                "reverse order), and the translation gives neither order's result")
                            return result
                    if not c.ok:
                        asan = asan_conviction(src, ins, timeout)
                        if asan:
                            result["reason"] = (f"seed {seed}: {c.summary()}; the source itself fails under "
                                                f"AddressSanitizer: {asan}")
                            result["side"] = "source"
                            return result
                compared += 1
                result["max_abs_err"] = max(result["max_abs_err"], c.max_abs_err)
                result["max_rel_err"] = max(result["max_rel_err"], c.max_rel_err)
                result["outputs"][s.name] = c.flags
                if not c.ok:
                    result["reason"] = f"seed {seed}: {c.summary()}"
                    return result
    except EngineError as e:
        result["reason"] = f"{e.stage}: {e}"
        return result
    finally:
        result["seconds"] = round(time.perf_counter() - t0, 3)
    if compared == 0:
        result["reason"] = "the kernel has no output buffer to compare"
        return result
    result["status"] = "verified"
    return result


# The second of two runs that tell unwritten outputs apart: other bytes in the output
# buffers the harness passes (the first run has inputs.POISON_BYTE) and in the engines' fresh
# device memory (the first run has their default, 0xFF).
SECOND_HOST_POISON = 0x5A
SECOND_DEVICE_POISON = 0x00


def rerun_with_other_poison(k, ins: dict, timeout, engine: str | None = None, env: dict | None = None) -> dict:
    """Outputs of ``k`` run again on ``ins`` with the second poison bytes."""
    import numpy as np

    again = dict(ins)
    for b in k.entry.buffers:
        if b.role == "out":
            arr = ins[b.name]
            again[b.name] = np.frombuffer(bytes([SECOND_HOST_POISON]) * arr.nbytes, dtype=arr.dtype).copy()
    env = dict(env or {}, XPILER_EMU_POISON_BYTE=f"{SECOND_DEVICE_POISON:#04x}")
    return k.run(again, engine, timeout=timeout, env=env).outputs


def _defined_elements(src, ins: dict, first, timeout) -> dict:
    """Run the source again with other poison bytes (output buffers and the emulators'
    uninitialized memory): elements that change were never written, so the source does
    not define them and they are not compared."""
    from .compare import identical_elements

    second = rerun_with_other_poison(src, ins, timeout)
    return {b.name: identical_elements(first.outputs[b.name], second[b.name])
            for b in src.entry.buffers if b.role in ("out", "inout")}


def _order_dependent(src, ins: dict, first, name: str, timeout):
    """(mask of the elements of ``name`` whose value depends on the order the emulator
    runs blocks and threads in -- a race in the source --, the reverse order's output), or
    None where the engine has no other order (CPU and BANG sources)."""
    from .compare import identical_elements

    if src.dialect not in ("cuda", "hip"):
        return None
    again = src.run(ins, timeout=timeout, env={"XPILER_EMU_BLOCK_ORDER": "reverse"}).outputs[name]
    return ~identical_elements(first.outputs[name].reshape(-1), again.reshape(-1)), again


def asan_conviction(k, ins: dict, timeout, engine: str | None = None) -> str | None:
    """``k`` run under AddressSanitizer: the report when it convicts the kernel's own code
    (an out-of-bounds access makes what it computes undefined), else None (a clean run, or
    a report inside an emulator: then a difference stays a difference)."""
    from .engines import EngineError
    from .selfcheck import classify_run_error

    try:
        k.run(ins, engine, asan=True, timeout=3 * timeout)
    except EngineError as e:
        if e.stage != "build":
            status, why = classify_run_error(e, k.path)
            if status == "source-defect" and why.startswith("ASan:"):
                return why
    return None
