"""AMD HIP (CDNA, wave64): platform facts, MFMA matrix-core builtins, wave shuffles/votes,
atomics and half conversions (the last three built by cuda.py's builders).

MFMA meanings use the *wave view*: every by-value operand and the result are arrays
indexed by lane, vectors lane-major (``c[lane * regs + r]``). The lane rule is the HIP
emulator's (docs/platforms-gpu.md, "MFMA"), for M x N x K with ``blocks`` independent
blocks and ``kpl`` A/B values per lane (1 for f32, 4 for f16 and packed i8):
- A: lane l, value v holds A_blk[i][k] with i = l % M, g = l / M,
  k = (g % (K/kpl))*kpl + v, blk = g / (K/kpl); B likewise with j = l % N.
- D: lane l, register r holds D_blk[row][l % N] with g = l / N, G = (64/N)/blocks,
  blk = g / G, row = (r/4)*4G + 4*(g % G) + r % 4.
So 16x16x4f32: lane l gives A[l%16][l/16], B[l/16][l%16] and gets d[r] = D[4*(l/16)+r][l%16]
(the benchmark's mapping, platforms.md §5.2); 32x32x2f32: d[r] = D[8*(r/4) + 4*(l/32) + r%4][l%32].
"""
from __future__ import annotations

from ..ir import types as T
from . import cuda
from .meaning import E, assign, cast, declare, loop, loops, store, var, view
from .registry import Constraint, IntrinsicParam, PlatformFacts, register_facts

PLATFORM = "hip"
WAVE = 64
F16, F32, I8, I32 = T.F16, T.F32, T.I8, T.I32

FACTS = register_facts(PlatformFacts(
    name=PLATFORM, index_values=cuda.GPU_INDEX_VALUES,
    barriers={"block": "__syncthreads"},
    memory_scopes=cuda.GPU_SCOPES, lanes=WAVE, math_functions=cuda.GPU_MATH,
))


def P(name, dtype, role, **kw) -> IntrinsicParam:
    return IntrinsicParam(name, dtype, role, **kw)


def _mfma(m_, n_, k_, kpl, blocks, packed_i8):
    regs = m_ * n_ * blocks // WAVE  # D values per lane
    groups = WAVE // n_ // blocks  # G: lane groups of one block along D's rows
    kgroups = k_ // kpl  # lane groups of one block along K
    acc_t = I32 if packed_i8 else F32

    def operand(x, lane, e):
        if packed_i8:  # byte e of the lane's 32-bit operand
            return view(x, I8)[lane * 4 + e]
        return x[lane] if kpl == 1 else x[lane * kpl + e]

    def m(a, b, c, cbsz, abid, blgp, result):
        def one(l, r):
            g = l / n_
            blk = (g if groups == 1 else g / groups) if blocks > 1 else 0
            if groups == 1:
                row = r % 4 if regs > 4 else r
            elif regs == 4:
                row = 4 * (g % groups if blocks > 1 else g) + r
            else:
                row = 4 * groups * (r / 4) + 4 * (g % groups if blocks > 1 else g) + r % 4
            col = l % n_
            acc = var("acc", acc_t)

            def product(kk):
                # A_blk[row][kk] is held by lane row + M*(blk*K/kpl + kk/kpl), value kk % kpl;
                # B_blk[kk][col] by lane col + N*(...) likewise
                grp = kk / kpl if kpl > 1 else kk
                if blocks > 1:
                    grp = (blk if kgroups == 1 else blk * kgroups) + grp
                av = operand(a, row + m_ * grp, kk % kpl)
                bv = operand(b, col + n_ * grp, kk % kpl)
                return assign(acc, acc + cast(acc_t, av) * cast(acc_t, bv))

            return [declare(acc, c[l * regs + r]), loop(k_, product), store(result, l * regs + r, acc)]
        return loops((WAVE, regs), one)
    return m


SHAPES = {  # suffix: (M, N, K, blocks, per-lane A/B values, A/B type, packed int8)
    "f32_16x16x4f32": (16, 16, 4, 1, 1, F32, False),
    "f32_32x32x2f32": (32, 32, 2, 1, 1, F32, False),
    "f32_4x4x1f32": (4, 4, 1, 16, 1, F32, False),
    "f32_16x16x16f16": (16, 16, 16, 1, 4, T.VectorType(F16, 4), False),
    "f32_32x32x8f16": (32, 32, 8, 1, 4, T.VectorType(F16, 4), False),
    "i32_16x16x16i8": (16, 16, 16, 1, 4, I32, True),
    "i32_32x32x8i8": (32, 32, 8, 1, 4, I32, True),
}
CONFIRMED = {"f32_16x16x4f32": "Benchmark form (gemm, bmm, dense, gatemlp, gqa) and AMD lab notes.",
             "f32_32x32x2f32": "Layout from AMD's CDNA3/4 matrix-core article code examples.",
             "f32_16x16x16f16": "Layout from AMD's CDNA3/4 matrix-core article code examples."}
for _suffix, (_m, _n, _k, _blocks, _kpl, _ab, _i8) in SHAPES.items():
    _regs = _m * _n * _blocks // WAVE
    _acc = T.VectorType(I32 if _i8 else F32, _regs)
    cuda.reg(
        PLATFORM, f"__builtin_amdgcn_mfma_{_suffix}",
        [P("a", _ab, "scalar"), P("b", _ab, "scalar"), P("c", _acc, "scalar"),
         P("cbsz", I32, "scalar"), P("abid", I32, "scalar"), P("blgp", I32, "scalar")],
        f"wave-wide D({_m}x{_n}) = A({_m}x{_k}) * B({_k}x{_n}) + C"
        + (f" for each of {_blocks} blocks" if _blocks > 1 else "")
        + f"; returns this lane's {_regs} elements of D (lane layout in the hip module doc)",
        _mfma(_m, _n, _k, _kpl, _blocks, _i8), returns=_acc, collective="wave",
        cost=1.0 / (_m * _n * _k * _blocks),
        constraints=(Constraint("relation", "", None, "executed by all 64 lanes of the wave"),
                     Constraint("max", "cbsz", 0, "cbsz = abid = blgp = 0 (broadcast modes not modelled)")),
        notes=CONFIRMED.get(_suffix, "[UNCERTAIN] lane layout from the general rule (AMD matrix "
                                     "instruction calculator convention), not checked on hardware.")
        + (" Not in the HIP emulator (hip_emu.h) yet." if _i8 else "")
        + " Inactive lanes: the emulator (docs/platforms-gpu.md) reads their A/B as 0 and "
          "writes no D; the meaning assumes every lane is active.")

# Tensorization (passes/lower/tensorize_gpu.py) emits these one-block shapes, preferred
# first: the f16 one does 4x the work per instruction; the f32 one takes every operand
# type that float32 holds exactly.
TENSORIZE = ("f32_16x16x16f16", "f32_16x16x4f32")


def mfma_shape(suffix: str) -> dict:
    m_, n_, k_, blocks, kpl, ab, _ = SHAPES[suffix]
    elem = ab.elem if isinstance(ab, T.VectorType) else ab
    # f16 operands are vectors of the compiler's _Float16 (HIP's `half` is a class type)
    lane_t = T.NamedType("_Float16") if elem == F16 else elem
    return {"builtin": f"__builtin_amdgcn_mfma_{suffix}", "m": m_, "n": n_, "k": k_, "kpl": kpl,
            "elem": elem, "lane_type": lane_t, "regs": m_ * n_ * blocks // WAVE, "blocks": blocks}


def mfma_operand_coord(suffix: str, lane, v: int):
    """(row of A or column of B, k) of value ``v`` of a lane's A/B operand, as IR (``lane``
    an int expression): the lane rule of the module doc for one-block shapes."""
    s = mfma_shape(suffix)
    assert s["blocks"] == 1
    l = E(lane)
    k = (l / s["m"]) * s["kpl"] if s["kpl"] > 1 else l / s["m"]
    return (l % s["m"]).node, (k + v if v else k).node


def mfma_result_coord(suffix: str, lane, r: int):
    """(row, col) of D register ``r`` of a lane, as IR: the module doc's rule, one block."""
    s = mfma_shape(suffix)
    assert s["blocks"] == 1
    l, g = E(lane), WAVE // s["n"]
    offset = (r // 4) * 4 * g + r % 4
    row = (l / s["n"]) * 4
    return (row + offset if offset else row).node, (l % s["n"]).node


cuda.register_shuffles(PLATFORM, WAVE, {"idx": "__shfl", "up": "__shfl_up", "down": "__shfl_down",
                                        "xor": "__shfl_xor"}, False)
cuda.register_votes(PLATFORM, WAVE, {"ballot": "__ballot", "any": "__any", "all": "__all"}, False)
cuda.register_atomics(PLATFORM)
cuda.register_half(PLATFORM)
