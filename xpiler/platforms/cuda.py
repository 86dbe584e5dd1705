"""NVIDIA CUDA: platform facts, WMMA, warp shuffles/votes, atomics, half conversions.

The builders of warp operations, atomics and half conversions also serve HIP (hip.py
calls them with its wave size and spellings).

Warp/wave-collective meanings use the *warp view*: a by-value operand that differs per
lane (``var`` of a shuffle, ``pred`` of a vote) and the result are arrays indexed by lane
(0..lanes-1); operands the hardware requires to be warp-uniform (mask, width, delta) are
scalars. The meaning assumes every lane named by the mask takes part (as *_sync
requires); reading a lane that does not is undefined (the emulator returns poison).

WMMA meanings work at fragment level: a fragment is its logical tile, row-major
(matrix_a is m x k, matrix_b k x n, accumulator m x n: element (r, c) is ``frag[r*cols +
c]``), the memory layout (row_major / col_major, ``ldm``) only says where load/store
find element (r, c). Which lane holds which element (``frag.x[e]``) is the emulator's
lane-ownership table (xpiler/verify/runtime/gpu_wmma.h, measured on sm_90), not part of
these meanings.
"""
from __future__ import annotations

from ..ir import nodes as N
from ..ir import types as T
from ..ir.interp import fragment_shape
from .meaning import (assign, cast, const, declare, if_, loop, loops, meaning_fn, select,
                      store, var)
from .registry import (C_MATH, REGISTRY, Constraint, Intrinsic, IntrinsicParam, MemoryScope,
                       PlatformFacts, register_facts)

PLATFORM = "cuda"
F16, F32, F64, I32, U32, U64, I64 = T.F16, T.F32, T.F64, T.I32, T.U32, T.U64, T.I64

GPU_INDEX_VALUES = {
    **{f"threadIdx.{a}": f"thread index in the block along {a}" for a in "xyz"},
    **{f"blockIdx.{a}": f"block index in the grid along {a}" for a in "xyz"},
    **{f"blockDim.{a}": f"threads per block along {a}" for a in "xyz"},
    **{f"gridDim.{a}": f"blocks in the grid along {a}" for a in "xyz"},
    "warpSize": "threads per warp (32 on NVIDIA, 64 on AMD CDNA)",
}
GPU_SCOPES = (
    MemoryScope("global", "", False, "device memory (kernel pointer parameters)"),
    MemoryScope("shared", "__shared__", True, "per-block shared memory"),
    MemoryScope("local", "", True, "per-thread registers / local arrays"),
)
GPU_MATH = {**C_MATH, "__expf": F32, "__logf": F32, "__sinf": F32, "__cosf": F32, "__powf": F32,
            "__fdividef": F32, "__tanf": F32, "__frsqrt_rn": F32, "__fsqrt_rn": F32,
            "__saturatef": F32, "rsqrt": F64, "hexp": F16, "hsqrt": F16, "hlog": F16,
            "__float2half": F16, "__float2half_rn": F16, "__half2float": F32,
            "__hadd": F16, "__hsub": F16, "__hmul": F16, "__hdiv": F16, "__hmax": F16, "__hmin": F16}

FACTS = register_facts(PlatformFacts(
    name=PLATFORM, index_values=GPU_INDEX_VALUES,
    barriers={"block": "__syncthreads", "warp": "__syncwarp"},
    memory_scopes=GPU_SCOPES, lanes=32, math_functions=GPU_MATH,
    constants={"wmma::mem_row_major": 0, "wmma::mem_col_major": 1},
))
# Calls written after `using namespace nvcuda::wmma;` name these without the namespace.
UNQUALIFIED = {n.split("::")[1]: n for n in ("wmma::fill_fragment", "wmma::load_matrix_sync",
                                             "wmma::mma_sync", "wmma::store_matrix_sync")}


def P(name, dtype, role, **kw) -> IntrinsicParam:
    return IntrinsicParam(name, dtype, role, **kw)


def reg(platform, name, params, doc, meaning, *, returns=None, constraints=(), collective="",
        cost=1.0, notes="", atomic=False) -> Intrinsic:
    return REGISTRY.add(Intrinsic(platform, name, tuple(params), doc, meaning_fn(meaning), returns,
                                  tuple(constraints), collective, cost, (), notes, atomic=atomic))


# --------------------------------------------------------------------------- WMMA
def frag(use, elem, layout=""):
    return T.FragmentType(use, N.Const(16, I32), N.Const(16, I32), N.Const(16, I32), elem, layout)


FRAG_A, FRAG_B = frag("matrix_a", F16, "row_major"), frag("matrix_b", F16, "col_major")
FRAG_C = frag("accumulator", F32)
ROW_MAJOR = var("wmma::mem_row_major", I32)
WHOLE_WARP = Constraint("relation", "", None, "called by all 32 lanes of the warp with the same arguments")
MPTR_ALIGN = Constraint("align", "mptr", 32, "mptr 256-bit (32-byte) aligned")
LDM_RULE = Constraint("bytes_multiple", "ldm", 16, "ldm a multiple of 16 bytes (8 halfs / 4 floats)")


# Tensorization (passes/lower/tensorize_gpu.py) emits m16n16k16 with half A/B and a float
# accumulator, the one shape and type pair the emulator and every sm_70+ GPU share; load
# and store follow MPTR_ALIGN and LDM_RULE (ldm in elements: 8 halfs, 4 floats).
TENSORIZE = {"m": 16, "n": 16, "k": 16, "elem": F16, "acc": F32, "warp": 32,
             "align_bytes": MPTR_ALIGN.value, "ldm_bytes": LDM_RULE.value}


def _shape(f):
    return fragment_shape(f.dtype)


def _index(fr, ldm, layout):
    """Where element (r, c) of fragment ``fr`` lives in memory: matrix_a/b by their type's
    layout, accumulators by the call's layout argument."""
    t = fr.dtype
    if t.use == "accumulator":
        return lambda r, c: select(layout.eq(ROW_MAJOR), r * ldm + c, r + c * ldm)
    if t.layout == "col_major":
        return lambda r, c: r + c * ldm
    return lambda r, c: r * ldm + c


def _fill(a, v):
    rows, cols = _shape(a)
    return loop(rows * cols, lambda t: store(a, t, v))


def _load(a, mptr, ldm, layout):
    rows, cols = _shape(a)
    at = _index(a, ldm, layout)
    return loops((rows, cols), lambda r, c: store(a, r * cols + c, mptr[at(r, c)]))


def _store(mptr, a, ldm, layout):
    rows, cols = _shape(a)
    at = _index(a, ldm, layout)
    return loops((rows, cols), lambda r, c: store(mptr, at(r, c), a[r * cols + c]))


def _mma(d, a, b, c):
    m, n = _shape(d)
    k = _shape(a)[1]

    def one(i, j):
        acc = var("acc", F32)  # products and sum in float; d's element type on store
        return [declare(acc, cast(F32, c[i * n + j])),
                loop(k, lambda kk: assign(acc, acc + cast(F32, a[i * k + kk]) * cast(F32, b[kk * n + j]))),
                store(d, i * n + j, acc)]
    return loops((m, n), one)


LAYOUT = P("layout", I32, "scalar", default=N.Var("wmma::mem_row_major", I32))
reg(PLATFORM, "wmma::fill_fragment", [P("a", FRAG_C, "out"), P("v", F32, "scalar", alt_dtypes=(F16,))],
    "every element of fragment a = v", _fill, collective="warp", cost=0.1, constraints=(WHOLE_WARP,))
reg(PLATFORM, "wmma::load_matrix_sync",
    [P("a", FRAG_A, "out"), P("mptr", F16, "in", alt_dtypes=(F32,)), P("ldm", U32, "scalar"), LAYOUT],
    "a[r][c] = mptr[r*ldm + c] (row_major) or mptr[r + c*ldm] (col_major); matrix_a/b take the "
    "layout from the fragment type, accumulators from the 4th argument",
    _load, collective="warp", cost=0.1, constraints=(WHOLE_WARP, MPTR_ALIGN, LDM_RULE),
    notes="Benchmark kernels load a row-major B with a col_major fragment, which transposes "
          "each B tile (platforms.md §4.2); the meaning is the documented layout, not a fix.")
reg(PLATFORM, "wmma::mma_sync",
    [P("d", FRAG_C, "out"), P("a", FRAG_A, "in"), P("b", FRAG_B, "in"), P("c", FRAG_C, "in")],
    "d[i][j] = c[i][j] + sum_k a[i][k] * b[k][j] (one tile; d may be c)", _mma,
    collective="warp", cost=0.01, constraints=(WHOLE_WARP,),
    notes="d == c is common: each d element is written after its c element is read, and no "
          "other c element is read later. Accumulates in float; a half accumulator is "
          "rounded on store (hardware's internal precision/order differ: compare with tolerance).")
reg(PLATFORM, "wmma::store_matrix_sync",
    [P("mptr", F32, "out", alt_dtypes=(F16,)), P("a", FRAG_C, "in"), P("ldm", U32, "scalar"),
     P("layout", I32, "scalar")],
    "mptr[r*ldm + c] (mem_row_major) or mptr[r + c*ldm] (mem_col_major) = a[r][c]", _store,
    collective="warp", cost=0.1, constraints=(WHOLE_WARP, MPTR_ALIGN, LDM_RULE))


# --------------------------------------------------------------------------- warp collectives
def register_shuffles(platform: str, lanes: int, names: dict, with_mask: bool):
    """Shuffles in warp view. ``names``: kind (idx/up/down/xor) -> spelling."""
    def src_lane(kind, l, arg, width):
        base = l & ~(width - 1)
        if kind == "idx":
            return base + (arg[l] & (width - 1))
        if kind == "up":
            return select(l - arg < base, l, l - arg)
        if kind == "down":
            return select(l + arg >= base + width, l, l + arg)
        return select((l ^ arg) >= base + width, l, l ^ arg)

    docs = {"idx": "result[l] = var[(l / width) * width + srcLane[l] % width]",
            "up": "result[l] = var[l - delta], or var[l] when that leaves l's width-segment",
            "down": "result[l] = var[l + delta], or var[l] when that leaves l's width-segment",
            "xor": "result[l] = var[l ^ laneMask], or var[l] when that leaves l's width-segment"}
    argname = {"idx": "srcLane", "up": "delta", "down": "delta", "xor": "laneMask"}
    for kind, name in names.items():
        def m(result, kind=kind, **kw):
            v, arg, width = kw["var"], kw[argname[kind]], kw["width"]
            return loop(lanes, lambda l: store(result, l, v[src_lane(kind, l, arg, width)]))

        params = ([P("mask", U32 if lanes == 32 else U64, "scalar")] if with_mask else []) + [
            P("var", F32, "scalar", alt_dtypes=(I32, U32, I64, U64, F64, F16)),
            P(argname[kind], I32, "scalar"),
            P("width", I32, "scalar", default=N.Const(lanes, I32))]
        reg(platform, name, params,
            docs[kind] + f" (warp view: var{', srcLane' if kind == 'idx' else ''} and result are "
            f"per-lane arrays)", m, returns=F32, collective="warp" if lanes == 32 else "wave",
            cost=1, constraints=(Constraint("relation", "width", None,
                                            f"width a power of two <= {lanes}, the same in every lane"),))


def register_votes(platform: str, lanes: int, names: dict, with_mask: bool):
    """Votes in warp view: pred is a per-lane array, the result the same in every lane."""
    mt = U32 if lanes == 32 else U64
    for kind, name in names.items():
        def m(pred, result, mask=None, kind=kind):
            bits = var("bits", mt)
            full = const((1 << lanes) - 1, mt)
            sel = full if mask is None else (mask & full)
            vote = {"ballot": bits, "any": select(bits.ne(0), 1, 0),
                    "all": select(bits.eq(sel), 1, 0)}[kind]
            return [declare(bits, const(0, mt)),
                    loop(lanes, lambda j: if_(pred[j].ne(0).land(((sel >> j) & 1).ne(0)),
                                              assign(bits, bits | (const(1, mt) << j)))),
                    loop(lanes, lambda l: store(result, l, vote))]

        params = ([P("mask", mt, "scalar")] if with_mask else []) + [P("pred", I32, "scalar")]
        reg(platform, name, params,
            {"ballot": "bit j of the result = pred[j] != 0 (lanes j named by mask)",
             "any": "1 if pred is non-zero in any lane named by mask",
             "all": "1 if pred is non-zero in every lane named by mask"}[kind] + " (warp view)",
            m, returns=mt if kind == "ballot" else I32, collective="warp" if lanes == 32 else "wave")


def register_reduces(platform: str, lanes: int):
    for kind in ("add", "min", "max"):
        def m(mask, value, result, kind=kind):
            acc = var("acc", I32)
            step = {"add": lambda l: assign(acc, acc + value[l]),
                    "min": lambda l: if_(value[l] < acc, assign(acc, value[l])),
                    "max": lambda l: if_(value[l] > acc, assign(acc, value[l]))}[kind]
            return [declare(acc, 0 if kind == "add" else value[0]), loop(lanes, step),
                    loop(lanes, lambda l: store(result, l, acc))]

        reg(platform, f"__reduce_{kind}_sync", [P("mask", U32, "scalar"), P("value", I32, "scalar", alt_dtypes=(U32,))],
            f"every lane gets the {kind} of value over the lanes named by mask (warp view; sm_80+)",
            m, returns=I32, collective="warp")


# --------------------------------------------------------------------------- atomics
ATOMICS = {  # name: (generic dtype, alternatives, meaning body(old, address, args), doc)
    "atomicAdd": (F32, (I32, U32, U64, F64, F16), lambda o, p, v: store(p, 0, o + v), "*address += val"),
    "atomicSub": (I32, (U32,), lambda o, p, v: store(p, 0, o - v), "*address -= val"),
    "atomicExch": (I32, (U32, U64, F32), lambda o, p, v: store(p, 0, v), "*address = val"),
    "atomicMax": (I32, (U32, I64, U64), lambda o, p, v: if_(o < v, store(p, 0, v)), "*address = max(*address, val)"),
    "atomicMin": (I32, (U32, I64, U64), lambda o, p, v: if_(v < o, store(p, 0, v)), "*address = min(*address, val)"),
    "atomicAnd": (I32, (U32, U64), lambda o, p, v: store(p, 0, o & v), "*address &= val"),
    "atomicOr": (I32, (U32, U64), lambda o, p, v: store(p, 0, o | v), "*address |= val"),
    "atomicXor": (I32, (U32, U64), lambda o, p, v: store(p, 0, o ^ v), "*address ^= val"),
    "atomicInc": (U32, (), lambda o, p, v: store(p, 0, select(o >= v, const(0, U32), o + 1)),
                  "*address = old >= val ? 0 : old + 1"),
    "atomicDec": (U32, (), lambda o, p, v: store(p, 0, select(o.eq(0).lor(o > v), v, o - 1)),
                  "*address = (old == 0 || old > val) ? val : old - 1"),
}


def register_atomics(platform: str):
    for name, (dt, alts, body, doc) in ATOMICS.items():
        def m(address, val, result, body=body):
            return [assign(result, address[0]), body(result, address, val)]
        reg(platform, name, [P("address", dt, "inout", alt_dtypes=alts), P("val", dt, "scalar")],
            f"returns the old *address; {doc}", m, returns=dt, cost=8, atomic=True,
            notes="Atomicity is the execution model's business; the meaning is one read-modify-write.")

    def cas(address, compare, val, result):
        return [assign(result, address[0]), if_(result.eq(compare), store(address, 0, val))]
    reg(platform, "atomicCAS", [P("address", I32, "inout", alt_dtypes=(U32, U64)),
                                P("compare", I32, "scalar"), P("val", I32, "scalar")],
        "returns the old *address; *address = old == compare ? val : old", cas, returns=I32, cost=8, atomic=True)


# --------------------------------------------------------------------------- scalar helpers
def register_half(platform: str):
    conv = {"__float2half": (F32, F16, "(half)a, to nearest even"),
            "__float2half_rn": (F32, F16, "(half)a, to nearest even"),
            "__half2float": (F16, F32, "(float)a, exact")}
    for name, (src, dst, doc) in conv.items():
        reg(platform, name, [P("a", src, "scalar")], f"returns {doc}",
            lambda a, result, dst=dst: assign(result, cast(dst, a)), returns=dst, cost=0.5)
    for name, op in (("__hadd", lambda x, y: x + y), ("__hsub", lambda x, y: x - y),
                     ("__hmul", lambda x, y: x * y)):
        reg(platform, name, [P("a", F16, "scalar"), P("b", F16, "scalar")],
            f"returns a {name[3:]} b in half (computed in float, rounded once)",
            lambda a, b, result, op=op: assign(result, cast(F16, op(cast(F32, a), cast(F32, b)))),
            returns=F16)

    reg(platform, "__ldg", [P("ptr", F32, "in", alt_dtypes=(I32, F16, U32, I64))],
        "returns *ptr through the read-only data cache", lambda ptr, result: assign(result, ptr[0]),
        returns=F32, notes="The value is *ptr; the cache path is a performance hint only.")


register_shuffles(PLATFORM, 32, {"idx": "__shfl_sync", "up": "__shfl_up_sync",
                                 "down": "__shfl_down_sync", "xor": "__shfl_xor_sync"}, True)
register_votes(PLATFORM, 32, {"ballot": "__ballot_sync", "any": "__any_sync", "all": "__all_sync"}, True)
register_reduces(PLATFORM, 32)
register_atomics(PLATFORM)
register_half(PLATFORM)
