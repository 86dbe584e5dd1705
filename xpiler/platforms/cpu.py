"""C/C++ on the CPU with AVX-512 VNNI: platform facts and the x86 intrinsics.

Intrinsics return values, so their meanings assign the variable ``result``. A vector
(``__m512i`` is the IR's VectorType(int64, 8), as the front-end types it) is read at
another lane width through ``lanes(v, dtype)`` = ``((dtype*)&v)``: ``lanes(a, U8)[j]`` is
byte j. Semantics: Intel Intrinsics Guide pseudocode (platforms.md §6.1); the meanings
were checked against numpy references in tests/test_registry.py.
"""
from __future__ import annotations

from ..ir import types as T
from .meaning import (assign, cast, clamp, const, declare, declare_array, lanes, loop,
                      meaning_fn, store, var, view)
from .registry import (C_MATH, REGISTRY, Constraint, Intrinsic, IntrinsicParam, MemoryScope,
                       PlatformFacts, register_facts)

PLATFORM = "cpu"
I8, U8, I16, I32, I64, F32 = T.I8, T.U8, T.I16, T.I32, T.I64, T.F32
INT_VECTORS = {128: T.VectorType(I64, 2, "__m128i"), 256: T.VectorType(I64, 4, "__m256i"),
               512: T.VectorType(I64, 8, "__m512i")}
M512 = T.VectorType(F32, 16, "__m512")
PREFIX = {128: "_mm", 256: "_mm256", 512: "_mm512"}

FACTS = register_facts(PlatformFacts(
    name=PLATFORM,
    index_values={},  # loops only; parallelism, if any, is an OpenMP pragma
    barriers={},
    memory_scopes=(MemoryScope("", "", False, "host memory (stack arrays and heap)"),),
    lanes=1,
    math_functions={**C_MATH, "std::exp": "arg", "std::max": "arg", "std::min": "arg",
                    "std::sqrt": "arg", "std::abs": "arg", "std::lround": T.I64,
                    "std::round": "arg", "std::tanh": "arg", "std::pow": "arg"},
))


def P(name, dtype, role, **kw) -> IntrinsicParam:
    return IntrinsicParam(name, dtype, role, **kw)


def _reg(name, params, doc, meaning, returns=None, constraints=(), cost=1.0, notes=""):
    REGISTRY.add(Intrinsic(PLATFORM, name, tuple(params), doc, meaning_fn(meaning), returns,
                           tuple(constraints), "", cost, (), notes))


INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _sat32(x):
    return clamp(x, const(INT32_MIN, I64), const(INT32_MAX, I64))


# --------------------------------------------------------------------------- VNNI
def _dot(width, narrow, a_t, b_t, saturate):
    """Per 32-bit lane i: src[i] + sum_j a_t(a.narrow[k*i+j]) * b_t(b.narrow[k*i+j]),
    k = 4 bytes or 2 words per lane; wrapping int32 or saturated (computed in int64)."""
    per = 4 if narrow == "byte" else 2
    acc_t = I64 if saturate else I32

    def m(src, a, b, result):
        def lane(i):
            acc = var("acc", acc_t)
            body = [declare(acc, cast(acc_t, lanes(src, I32)[i])),
                    loop(per, lambda j: assign(
                        acc, acc + cast(acc_t, cast(I32, lanes(a, a_t)[i * per + j]) *
                                        cast(I32, lanes(b, b_t)[i * per + j]))))]
            value = _sat32(acc) if saturate else acc
            return body + [store(lanes(result, I32), i, cast(I32, value))]
        return loop(width // 32, lane)
    return m


VNNI = {  # name stem: (narrow, a type, b type, saturate, doc)
    "dpbusd": ("byte", U8, I8, False, "u8 x s8 byte dot products, wrap-around"),
    "dpbusds": ("byte", U8, I8, True, "u8 x s8 byte dot products, signed saturation"),
    "dpwssd": ("word", I16, I16, False, "s16 x s16 word dot products, wrap-around"),
    "dpwssds": ("word", I16, I16, True, "s16 x s16 word dot products, signed saturation"),
}
for _w, _vt in INT_VECTORS.items():
    for _stem, (_narrow, _at, _bt, _sat, _doc) in VNNI.items():
        _k = 4 if _narrow == "byte" else 2
        _reg(f"{PREFIX[_w]}_{_stem}_epi32", [P("src", _vt, "scalar"), P("a", _vt, "scalar"),
                                             P("b", _vt, "scalar")],
             f"per int32 lane i < {_w // 32}: src[i] + sum of {_k} {_doc}",
             _dot(_w, _narrow, _at, _bt, _sat), returns=_vt, cost=1.0 / (_w // 32),
             constraints=(Constraint("relation", "", None,
                                     "needs AVX512_VNNI" + ("" if _w == 512 else " + AVX512VL")),),
             notes=("a is unsigned, b signed (the operand order matters)." if _narrow == "byte" else "")
             + (" Saturation applies to the whole sum src + products, computed exactly." if _sat else
                " Products are exact (16-bit); only the 32-bit sum wraps."))

# --------------------------------------------------------------------------- loads and stores


def _copy_bytes(nbytes, to_result):
    def load_m(mem_addr, result):
        return loop(nbytes, lambda j: store(lanes(result, U8), j, view(mem_addr, U8)[j]))

    def store_m(mem_addr, a):
        return loop(nbytes, lambda j: store(view(mem_addr, U8), j, lanes(a, U8)[j]))
    return load_m if to_result else store_m


for _w, _vt in INT_VECTORS.items():
    _si = f"si{_w}"
    _ptr_elem = T.VOID if _w == 512 else _vt  # _mm512_* take void*, the others __m128i*/__m256i*
    _align = Constraint("align", "mem_addr", _w // 8, f"mem_addr {_w // 8}-byte aligned (faults otherwise)")
    for _aligned in (False, True):
        _u = "" if _aligned else "u"
        _cons = (_align,) if _aligned else ()
        _reg(f"{PREFIX[_w]}_load{_u}_{_si}", [P("mem_addr", _ptr_elem, "in")],
             f"returns the {_w // 8} bytes at mem_addr", _copy_bytes(_w // 8, True), returns=_vt,
             constraints=_cons, cost=1)
        _reg(f"{PREFIX[_w]}_store{_u}_{_si}", [P("mem_addr", _ptr_elem, "out"), P("a", _vt, "scalar")],
             f"writes the {_w // 8} bytes of a to mem_addr", _copy_bytes(_w // 8, False),
             constraints=_cons, cost=1)
    _reg(f"{PREFIX[_w]}_setzero_{_si}", [], "returns an all-zero vector",
         lambda result, _n=_w // 32: loop(_n, lambda i: store(lanes(result, I32), i, 0)),
         returns=_vt, cost=0.25)
    _reg(f"{PREFIX[_w]}_add_epi32", [P("a", _vt, "scalar"), P("b", _vt, "scalar")],
         "per int32 lane: a[i] + b[i], wrap-around",
         lambda a, b, result, _n=_w // 32: loop(_n, lambda i: store(
             lanes(result, I32), i, lanes(a, I32)[i] + lanes(b, I32)[i])), returns=_vt, cost=0.25)
    _reg(f"{PREFIX[_w]}_set1_epi32", [P("a", I32, "scalar")], "every int32 lane = a",
         lambda a, result, _n=_w // 32: loop(_n, lambda i: store(lanes(result, I32), i, a)),
         returns=_vt, cost=0.5)

# --------------------------------------------------------------------------- horizontal sums


def _tree_sum(elem, count):
    """The order GCC's _mm512_reduce_add_* uses: halves added pairwise (a[i] + a[i+8], then
    + [i+4], [i+2], [i+1]), so float results are bit-identical to the compiled intrinsic."""
    def m(a, result):
        t = var("t", elem)
        steps, s = [], count // 2
        while s:
            steps.append(loop(s, lambda i, s=s: store(t, i, t[i] + t[i + s])))
            s //= 2
        return [declare_array(t, count), loop(count, lambda i: store(t, i, lanes(a, elem)[i]))] + \
            steps + [assign(result, t[0])]
    return m


_reg("_mm512_reduce_add_epi32", [P("a", INT_VECTORS[512], "scalar")],
     "returns the sum of the 16 int32 lanes (wrap-around)", _tree_sum(I32, 16), returns=I32, cost=4)
_reg("_mm512_reduce_add_ps", [P("a", M512, "scalar")],
     "returns the sum of the 16 float lanes, as a tree: (a[i] + a[i+8]), then +4, +2, +1",
     _tree_sum(F32, 16), returns=F32, cost=4,
     notes="The summation order is the compiler's (GCC avx512fintrin.h __MM512_REDUCE_OP); "
           "a sequential loop sum can differ in the last bits.")

# --------------------------------------------------------------------------- float SIMD
_reg("_mm512_loadu_ps", [P("mem_addr", F32, "in")], "returns the 16 floats at mem_addr",
     lambda mem_addr, result: loop(16, lambda i: store(lanes(result, F32), i, mem_addr[i])),
     returns=M512)
_reg("_mm512_storeu_ps", [P("mem_addr", F32, "out"), P("a", M512, "scalar")],
     "writes the 16 floats of a to mem_addr",
     lambda mem_addr, a: loop(16, lambda i: store(mem_addr, i, lanes(a, F32)[i])))
_reg("_mm512_setzero_ps", [], "returns 16 zero floats",
     lambda result: loop(16, lambda i: store(lanes(result, F32), i, 0.0)), returns=M512, cost=0.25)
_reg("_mm512_set1_ps", [P("a", F32, "scalar")], "every float lane = a",
     lambda a, result: loop(16, lambda i: store(lanes(result, F32), i, a)), returns=M512, cost=0.5)
for _name, _op, _doc in (("add", lambda x, y: x + y, "a[i] + b[i]"),
                         ("sub", lambda x, y: x - y, "a[i] - b[i]"),
                         ("mul", lambda x, y: x * y, "a[i] * b[i]")):
    _reg(f"_mm512_{_name}_ps", [P("a", M512, "scalar"), P("b", M512, "scalar")], f"per lane: {_doc}",
         lambda a, b, result, _op=_op: loop(16, lambda i: store(
             lanes(result, F32), i, _op(lanes(a, F32)[i], lanes(b, F32)[i]))), returns=M512, cost=1 / 16)


def _fmadd(a, b, c, result):
    from .meaning import call
    return loop(16, lambda i: store(lanes(result, F32), i,
                                    call("fmaf", lanes(a, F32)[i], lanes(b, F32)[i], lanes(c, F32)[i])))


_reg("_mm512_fmadd_ps", [P("a", M512, "scalar"), P("b", M512, "scalar"), P("c", M512, "scalar")],
     "per lane: a[i] * b[i] + c[i] with one rounding (fmaf)", _fmadd, returns=M512, cost=1 / 16,
     notes="The interpreter evaluates fmaf in double then rounds: exact products of floats fit "
           "in a double, so only a rare double-rounding tie can differ from the hardware.")
