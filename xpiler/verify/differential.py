"""Differential testing: a translated kernel against its source, on identical inputs.

Both kernels run on their own platform's engine; buffers are matched by position in the
host entry's C signature (the translation keeps it), inputs come from the source's
extents and several seeds, and every output buffer must agree within its dtype's
tolerance. A result records which engines verified it.
"""
from __future__ import annotations

import time

from .compare import compare_arrays
from .engines import EngineError
from .kernel import prepare


def verify_translation(src_path: str, src_text: str, src_dialect: str, out_text: str,
                       out_dialect: str, options) -> dict:
    t0 = time.perf_counter()
    result = {"status": "failed", "reason": "", "engines": {}, "seeds": list(options.seeds),
              "max_abs_err": 0.0, "max_rel_err": 0.0, "outputs": {}}
    try:
        src = prepare(src_path, options.scalars, options.extents, src_dialect, src_text)
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
    for s, o in pairs:
        out.sizes[o.name] = src.sizes[s.name]
    compared = 0
    try:
        make_inputs = getattr(options, "inputs", None)
        for seed in options.seeds:
            ins = src.inputs(seed)
            if make_inputs is not None:  # meaningful inputs from the caller (e.g. valid indices)
                given = make_inputs(seed)
                ins.update({k: v for k, v in given.items() if k in ins and v.nbytes == src.sizes.get(k, -1)})
            ins_out = {o.name: ins[s.name] for s, o in pairs}
            ins_out.update({o: ins[s] for s, o in zip(src.entry.scalars, out.entry.scalars)})
            result["side"] = "source"
            rs = src.run(ins)
            result["side"] = "translated"
            ro = out.run(ins_out, options.engine)
            result.pop("side")
            result["engines"] = {"source": rs.engine, "translated": ro.engine}
            for s, o in pairs:
                if s.role not in ("out", "inout"):
                    continue
                c = compare_arrays(s.name, rs.outputs[s.name], ro.outputs[o.name])
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
