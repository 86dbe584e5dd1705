"""Cambricon BANG C (MLU): platform facts and the ``__bang_*`` builtins.

Semantics follow ../shared/notes/platforms.md §3 and, for every [UNCERTAIN] row, the
default of the BANG emulator (xpiler/verify/runtime/bang_emu.h, decisions documented in
docs/platforms.md), so that a meaning, the emulator and the prompts say the same thing.

How the meanings express the emulator's "aliasing-safe" rule (inputs are read before the
output is written, bang_emu.h ``unalias``):
- pointwise builtins (dst[i] depends on src[i] only) are written as one loop that reads
  element i before writing element i; that equals read-all-then-write whenever dst and a
  source are identical (in place, the common case) or disjoint. Partially overlapping
  operands are outside the meaning (stated as a constraint).
- every other builtin (pools, transpose, matmul, mlp, conv, cycle ops' segment) computes
  into a temporary array first and copies it to dst afterwards.

Arithmetic is done in float32 whatever the element type (the emulator's to_f/from_f):
half inputs are widened, and results are narrowed on store; integer destinations are
rounded to nearest even and saturated. The generic signatures are float32; ``alt_dtypes``
lists the other element types the emulator's templates accept.
"""
from __future__ import annotations

from ..ir import nodes as N
from ..ir import types as T
from .meaning import (E, assign, block, call, cast, const, declare, declare_array,
                      elem_of, if_, loop, loops, maximum, meaning_fn, minimum, select,
                      store, var, view)
from .registry import (C_MATH, REGISTRY, Constraint, Intrinsic, IntrinsicParam, MemoryScope,
                       PlatformFacts, register_facts)

PLATFORM = "mlu"
F32, F16, I32, U32, F64 = T.F32, T.F16, T.I32, T.U32, T.F64
NRAM, WRAM = "nram", "wram"
HALF = (F16,)
EMU = "xpiler/verify/runtime/bang_emu.h"

# --------------------------------------------------------------------------- facts
FACTS = register_facts(PlatformFacts(
    name=PLATFORM,
    index_values={
        "taskId": "task index, 0..taskDim-1 (= clusterId * coreDim + coreId in UNION launches)",
        "taskDim": "number of tasks of the launch (taskDimX * taskDimY * taskDimZ)",
        "clusterId": "cluster of this task, 0..clusterDim-1",
        "clusterDim": "clusters in the launch (taskDim / coreDim)",
        "coreId": "core within the cluster, 0..coreDim-1",
        "coreDim": "cores per cluster (4; 1 for BLOCK launches)",
        "taskIdX": "x of taskId in the launch's cnrtDim3_t", "taskIdY": "y", "taskIdZ": "z",
        "taskDimX": "cnrtDim3_t.x", "taskDimY": "cnrtDim3_t.y", "taskDimZ": "cnrtDim3_t.z",
    },
    barriers={"cluster": "__sync_cluster", "all": "__sync_all", "io": "__sync_io",
              "compute": "__sync_compute"},
    memory_scopes=(
        MemoryScope("global", "", False, "GDRAM: kernel pointer parameters (device memory)"),
        MemoryScope("nram", "__nram__", True, "per-core neuron RAM: operands of __bang_* vector ops"),
        MemoryScope("wram", "__wram__", True, "per-core weight RAM: filters of mlp/matmul/conv; "
                    "written only by __memcpy, not scalar-readable on hardware"),
        MemoryScope("sram", "__mlu_shared__", True, "per-cluster shared RAM"),
        MemoryScope("ldram", "__ldram__", False, "per-task off-chip local memory"),
    ),
    lanes=1,
    math_functions=dict(C_MATH),
))

# __memcpy is the IR's Dma statement, not an intrinsic. Its rules, as data for passes
# and prompts (the interpreter executes the 4- and 7-argument forms).
MEMCPY = {
    "forms": {
        4: "__memcpy(dst, src, size_bytes, dir)",
        7: "__memcpy(dst, src, size_bytes, dir, dst_stride, src_stride, segnum): segnum + 1 "
           "segments of size bytes, dst/src advance by their byte strides per segment",
        12: "__memcpy(dst, src, size, dir, dst_stride0, dst_segnum1, dst_stride1, dst_segnum2, "
            "src_stride0, src_segnum1, src_stride1, src_segnum2): 3-D (both sides must "
            "describe the same segment counts in the emulator)",
    },
    "directions": ("GDRAM2NRAM", "NRAM2GDRAM", "GDRAM2WRAM", "WRAM2GDRAM", "NRAM2WRAM",
                   "WRAM2NRAM", "NRAM2NRAM", "GDRAM2SRAM", "SRAM2GDRAM", "SRAM2NRAM",
                   "NRAM2SRAM", "SRAM2WRAM", "WRAM2SRAM", "SRAM2SRAM", "GDRAM2GDRAM"),
    "constraints": ("size and strides are in bytes", "segnum = number of segments - 1",
                    "overlapping NRAM2NRAM copies behave like memmove in the emulator",
                    "__memcpy_async completes immediately in the emulator (__sync_io is a no-op)"),
    "source": "bang_device_functions.h (2020); platforms.md §3.2",
}

# --------------------------------------------------------------------------- helpers
# Hardware alignment rules from the MLU200-era BANG guide as we remember it; the
# benchmark itself breaks them (mha: n = 6 floats), so they are advisory (the emulator
# checks them only with XPILER_BANG_STRICT=1 and XPILER_BANG_ALIGN_BYTES=128).
VECTOR_RULES = (
    Constraint("align", "dst", 64, "NRAM operand addresses 64-byte aligned [UNCERTAIN]", True),
    Constraint("bytes_multiple", "n", 128, "n * sizeof(T) a multiple of 128 bytes [UNCERTAIN]", True),
)
POINTWISE = Constraint("relation", "dst", None,
                       "dst and each source are identical (in place) or disjoint")


def P(name, dtype, role, scope="", **kw) -> IntrinsicParam:
    return IntrinsicParam(name, dtype, role, scope, **kw)


def vec(name, role, dtype=F32, alts=HALF, scope=NRAM) -> IntrinsicParam:
    return P(name, dtype, role, scope, alt_dtypes=alts)


N_ = P("n", I32, "scalar")


def _reg(name, params, doc, meaning, *, constraints=VECTOR_RULES, cost=1.0, notes="",
         returns=None, overloads=(), add=True) -> Intrinsic:
    intr = Intrinsic(PLATFORM, name, tuple(params), doc, meaning_fn(meaning), returns,
                     tuple(constraints), "", cost, (), notes, tuple(overloads))
    return REGISTRY.add(intr) if add else intr


def f(buf: E, i) -> E:
    """Element i of buf widened to float32 (the emulator's to_f)."""
    x = buf[i]
    return x if elem_of(buf) == F32 else cast(F32, x)


def out(dst: E, v, rnd: str = "rintf") -> E:
    """A float result narrowed to dst's element type like the emulator's from_f: float
    types round to nearest on store; integers are rounded by ``rnd`` (to nearest even
    by default) and saturate (NaN gives 0)."""
    t = elem_of(dst)
    if not t.is_int:
        return v
    bits = t.bytes * 8
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if t.is_signed else (0, (1 << bits) - 1)
    r = call(rnd, v)
    # compare in float, but produce the bounds as integers: float(INT32_MAX) rounds up
    return select(v.ne(v), const(0, t),
                  select(r <= const(float(lo), F32), const(lo, t),
                         select(r >= const(float(hi), F32), const(hi, t), cast(t, r))))


def _copy_out(dst, tmp, count):
    return loop(count, lambda t: store(dst, t, tmp[t]))


# --------------------------------------------------------------------------- elementwise
SQRT1_2 = 0.70710678118654752


def _gelu_erf(x):
    return 0.5 * x * (1.0 + call("erff", x * SQRT1_2))


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + call("tanhf", 0.7978845608028654 * (x + 0.044715 * x * x * x)))


def _sign(x):
    # XPILER_BANG_SIGN_ZERO = 0: sign(0) = 0 as torch.sign
    return select(x > 0.0, 1.0, select(x < 0.0, -1.0, 0.0))


def _one(v):
    return select(v, 1.0, 0.0)


UNARY = {  # name: (float32 expression of x, doc)
    "__bang_active_exp": (lambda x: call("expf", x), "dst[i] = exp(src[i])"),
    "__bang_active_exphp": (lambda x: call("expf", x), "dst[i] = exp(src[i]) (high-precision name)"),
    "__bang_exp": (lambda x: call("expf", x), "dst[i] = exp(src[i])"),
    "__bang_active_relu": (lambda x: maximum(x, 0.0), "dst[i] = max(src[i], 0)"),
    "__bang_relu": (lambda x: maximum(x, 0.0), "dst[i] = max(src[i], 0)"),
    "__bang_active_sigmoid": (lambda x: 1.0 / (1.0 + call("expf", -x)), "dst[i] = 1 / (1 + exp(-src[i]))"),
    "__bang_sigmoid": (lambda x: 1.0 / (1.0 + call("expf", -x)), "dst[i] = 1 / (1 + exp(-src[i]))"),
    "__bang_active_gelu": (_gelu_tanh, "GELU, tanh approximation"),
    "__bang_active_gelup": (_gelu_erf, "GELU 'precision' form: 0.5 x (1 + erf(x / sqrt 2))"),
    "__bang_gelu": (_gelu_erf, "GELU: 0.5 x (1 + erf(x / sqrt 2))"),
    "__bang_active_sign": (_sign, "dst[i] = -1, 0, +1 by the sign of src[i]"),
    "__bang_sign": (_sign, "dst[i] = -1, 0, +1 by the sign of src[i]"),
    "__bang_active_recip": (lambda x: 1.0 / x, "dst[i] = 1 / src[i]"),
    "__bang_active_reciphp": (lambda x: 1.0 / x, "dst[i] = 1 / src[i] (high-precision name)"),
    "__bang_recip": (lambda x: 1.0 / x, "dst[i] = 1 / src[i]"),
    "__bang_active_sqrt": (lambda x: call("sqrtf", x), "dst[i] = sqrt(src[i])"),
    "__bang_active_sqrthp": (lambda x: call("sqrtf", x), "dst[i] = sqrt(src[i]) (high-precision name)"),
    "__bang_sqrt": (lambda x: call("sqrtf", x), "dst[i] = sqrt(src[i])"),
    "__bang_active_rsqrt": (lambda x: 1.0 / call("sqrtf", x), "dst[i] = 1 / sqrt(src[i])"),
    "__bang_rsqrt": (lambda x: 1.0 / call("sqrtf", x), "dst[i] = 1 / sqrt(src[i])"),
    "__bang_active_tanh": (lambda x: call("tanhf", x), "dst[i] = tanh(src[i])"),
    "__bang_tanh": (lambda x: call("tanhf", x), "dst[i] = tanh(src[i])"),
    "__bang_active_log": (lambda x: call("logf", x), "dst[i] = ln(src[i])"),
    "__bang_log": (lambda x: call("logf", x), "dst[i] = ln(src[i])"),
    "__bang_active_abs": (lambda x: call("fabsf", x), "dst[i] = |src[i]|"),
    "__bang_abs": (lambda x: call("fabsf", x), "dst[i] = |src[i]|"),
    "__bang_active_sin": (lambda x: call("sinf", x), "dst[i] = sin(src[i])"),
    "__bang_sin": (lambda x: call("sinf", x), "dst[i] = sin(src[i])"),
    "__bang_active_cos": (lambda x: call("cosf", x), "dst[i] = cos(src[i])"),
    "__bang_cos": (lambda x: call("cosf", x), "dst[i] = cos(src[i])"),
    "__bang_square": (lambda x: x * x, "dst[i] = src[i]^2"),
    "__bang_active_square": (lambda x: x * x, "dst[i] = src[i]^2"),
    "__bang_floor": (lambda x: call("floorf", x), "dst[i] = floor(src[i])"),
    "__bang_not": (lambda x: _one(x.eq(0.0)), "dst[i] = src[i] == 0 ? 1 : 0"),
}
UNARY_NOTES = {
    "__bang_active_gelup": "[UNCERTAIN] erf vs tanh form: exact erf form, the header says "
                           "'gelu precision' (emulator XPILER_BANG_GELUP_TANH=0).",
    "__bang_active_sign": "[UNCERTAIN] value at 0: 0 like torch.sign (emulator "
                          "XPILER_BANG_SIGN_ZERO=0); mlu-ops comments only give x<0 and x>0.",
    "__bang_active_recip": "Old approximate 'active' op; hardware had input-range limits. "
                           "Modelled as exact 1/x.",
}
UNARY_COST = {"__bang_active_exp": 4, "__bang_exp": 4, "__bang_active_sigmoid": 6,
              "__bang_sigmoid": 6, "__bang_active_gelu": 8, "__bang_active_gelup": 8,
              "__bang_gelu": 8, "__bang_active_tanh": 6, "__bang_tanh": 6, "__bang_active_log": 4,
              "__bang_log": 4, "__bang_active_sin": 4, "__bang_sin": 4, "__bang_active_cos": 4,
              "__bang_cos": 4, "__bang_active_sqrt": 2, "__bang_sqrt": 2, "__bang_recip": 2}


def _unary(name, fn, doc):
    def m(dst, src, n):
        return loop(n, lambda i: store(dst, i, out(dst, fn(f(src, i)))))

    _reg(name, [vec("dst", "out"), vec("src", "in"), N_], doc + " for i < n", m,
         constraints=VECTOR_RULES + (POINTWISE,), cost=UNARY_COST.get(name, 1.0),
         notes=UNARY_NOTES.get(name, ""))


for _name, (_fn, _doc) in UNARY.items():
    _unary(_name, _fn, _doc)

BINARY = {
    "__bang_add": (lambda x, y: x + y, "dst[i] = src0[i] + src1[i]"),
    "__bang_sub": (lambda x, y: x - y, "dst[i] = src0[i] - src1[i]"),
    "__bang_mul": (lambda x, y: x * y, "dst[i] = src0[i] * src1[i]"),
    "__bang_maxequal": (maximum, "dst[i] = max(src0[i], src1[i])"),
    "__bang_minequal": (minimum, "dst[i] = min(src0[i], src1[i])"),
    "__bang_maximum": (maximum, "dst[i] = max(src0[i], src1[i])"),
    "__bang_minimum": (minimum, "dst[i] = min(src0[i], src1[i])"),
    "__bang_gt": (lambda x, y: _one(x > y), "dst[i] = src0[i] > src1[i] ? 1 : 0"),
    "__bang_ge": (lambda x, y: _one(x >= y), "dst[i] = src0[i] >= src1[i] ? 1 : 0"),
    "__bang_lt": (lambda x, y: _one(x < y), "dst[i] = src0[i] < src1[i] ? 1 : 0"),
    "__bang_le": (lambda x, y: _one(x <= y), "dst[i] = src0[i] <= src1[i] ? 1 : 0"),
    "__bang_eq": (lambda x, y: _one(x.eq(y)), "dst[i] = src0[i] == src1[i] ? 1 : 0"),
    "__bang_ne": (lambda x, y: _one(x.ne(y)), "dst[i] = src0[i] != src1[i] ? 1 : 0"),
    "__bang_and": (lambda x, y: _one(x.ne(0.0).land(y.ne(0.0))), "dst[i] = src0[i] && src1[i]"),
    "__bang_or": (lambda x, y: _one(x.ne(0.0).lor(y.ne(0.0))), "dst[i] = src0[i] || src1[i]"),
    "__bang_xor": (lambda x, y: _one(x.ne(0.0).ne(y.ne(0.0))), "dst[i] = (src0[i] != 0) xor (src1[i] != 0)"),
}


def _binary_meaning(fn):
    def m(dst, src0, src1, n):
        return loop(n, lambda i: store(dst, i, out(dst, fn(f(src0, i), f(src1, i)))))
    return m


def _binary_params():
    return [vec("dst", "out"), vec("src0", "in"), vec("src1", "in"), N_]


for _name, (_fn, _doc) in BINARY.items():
    _reg(_name, _binary_params(), _doc + " for i < n", _binary_meaning(_fn),
         constraints=VECTOR_RULES + (POINTWISE,))

SCALAR = {
    "__bang_add_const": (lambda x, y: x + y, "dst[i] = src[i] + value"),
    "__bang_add_scalar": (lambda x, y: x + y, "dst[i] = src[i] + value"),
    "__bang_sub_scalar": (lambda x, y: x - y, "dst[i] = src[i] - value"),
    "__bang_mul_const": (lambda x, y: x * y, "dst[i] = src[i] * value"),
    "__bang_mul_scalar": (lambda x, y: x * y, "dst[i] = src[i] * value"),
    "__bang_div_scalar": (lambda x, y: x / y, "dst[i] = src[i] / value"),
    "__bang_maxeq_scalar": (maximum, "dst[i] = max(src[i], value)"),
    "__bang_mineq_scalar": (minimum, "dst[i] = min(src[i], value)"),
    "__bang_gt_scalar": (lambda x, y: _one(x > y), "dst[i] = src[i] > value ? 1 : 0"),
    "__bang_ge_scalar": (lambda x, y: _one(x >= y), "dst[i] = src[i] >= value ? 1 : 0"),
    "__bang_lt_scalar": (lambda x, y: _one(x < y), "dst[i] = src[i] < value ? 1 : 0"),
    "__bang_le_scalar": (lambda x, y: _one(x <= y), "dst[i] = src[i] <= value ? 1 : 0"),
    "__bang_eq_scalar": (lambda x, y: _one(x.eq(y)), "dst[i] = src[i] == value ? 1 : 0"),
    "__bang_ne_scalar": (lambda x, y: _one(x.ne(y)), "dst[i] = src[i] != value ? 1 : 0"),
}


def _scalar_meaning(fn):
    def m(dst, src, value, n):
        # the scalar converts to the element type first, as on hardware (and emulator)
        y = cast(elem_of(dst), value)
        y = y if elem_of(dst) == F32 else cast(F32, y)
        return loop(n, lambda i: store(dst, i, out(dst, fn(f(src, i), y))))
    return m


def _scalar_params():
    return [vec("dst", "out"), vec("src", "in"), P("value", F32, "scalar"), N_]


for _name, (_fn, _doc) in SCALAR.items():
    _reg(_name, _scalar_params(), _doc + " for i < n", _scalar_meaning(_fn),
         constraints=VECTOR_RULES + (POINTWISE,))


# __bang_div: vector (4 args), scalar (4 args, 3rd by value) and the old 5-argument form
# whose 4th operand is scratch.
def _div_scratch(dst, src0, src1, tmp, n):
    return block(
        _binary_meaning(lambda x, y: x / y)(dst, src0, src1, n),
        # XPILER_BANG_DIV_SCRATCH = 1: scratch is poisoned (NaN) after the call
        loop(n, lambda i: store(tmp, i, const(0.0, F32) / const(0.0, F32))))


_DIV_NOTES = ("[UNCERTAIN] no public doc for the 5-argument form: its 4th operand is "
              "scratch of >= n elements (old reciprocal-based division) whose contents "
              "are undefined afterwards; the meaning poisons it with NaN like the emulator "
              "default (XPILER_BANG_DIV_SCRATCH=1). The scalar overload (rmsnorm, mha) must "
              "exist for the benchmark to compile. Pick an overload with "
              "Registry.resolve(..., arg_types).")
_reg("__bang_div", _binary_params(), "dst[i] = src0[i] / src1[i] for i < n",
     _binary_meaning(lambda x, y: x / y), constraints=VECTOR_RULES + (POINTWISE,), cost=4,
     notes=_DIV_NOTES, overloads=(
         _reg("__bang_div", _scalar_params(), "dst[i] = src[i] / value for i < n",
              _scalar_meaning(lambda x, y: x / y), constraints=VECTOR_RULES + (POINTWISE,),
              cost=4, notes=_DIV_NOTES, add=False),
         _reg("__bang_div", [vec("dst", "out"), vec("src0", "in"), vec("src1", "in"),
                             vec("tmp", "out"), N_],
              "dst[i] = src0[i] / src1[i] for i < n; tmp is scratch (undefined afterwards)",
              _div_scratch, constraints=VECTOR_RULES + (POINTWISE,), cost=4, notes=_DIV_NOTES,
              add=False)))

# --------------------------------------------------------------------------- cycle ops
CYCLE = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
         "div": lambda x, y: x / y, "maxequal": maximum, "minequal": minimum,
         "gt": lambda x, y: _one(x > y), "ge": lambda x, y: _one(x >= y),
         "lt": lambda x, y: _one(x < y), "le": lambda x, y: _one(x <= y),
         "eq": lambda x, y: _one(x.eq(y)), "ne": lambda x, y: _one(x.ne(y))}


def _cycle_meaning(fn):
    def m(dst, src, seg, n, seg_n):
        # seg is read at i % seg_n, so it is copied first (dst may overlap it)
        s = var("seg_copy", elem_of(seg))
        return [declare_array(s, seg_n), loop(seg_n, lambda k: store(s, k, seg[k])),
                loop(n, lambda i: store(dst, i, out(dst, fn(f(src, i), f(s, i % seg_n)))))]
    return m


for _op, _fn in CYCLE.items():
    _reg(f"__bang_cycle_{_op}",
         [vec("dst", "out"), vec("src", "in"), vec("seg", "in"), N_, P("seg_n", I32, "scalar")],
         f"dst[i] = src[i] {_op} seg[i % seg_n] for i < n (seg repeats along src)",
         _cycle_meaning(_fn),
         constraints=VECTOR_RULES + (Constraint("multiple", "n", "seg_n", "n is a multiple of seg_n"),
                                     Constraint("relation", "dst", None, "dst and src identical or disjoint")))

# --------------------------------------------------------------------------- fills, conversions


def _fill(dst, n, value=None):
    v = 0 if value is None else value
    return loop(n, lambda i: store(dst, i, v))


_reg("__bang_write_zero", [vec("dst", "out"), N_], "dst[i] = 0 for i < n",
     lambda dst, n: _fill(dst, n), cost=0.5)
_reg("__bang_write_value", [vec("dst", "out"), N_, P("value", F32, "scalar")],
     "dst[i] = (T)value for i < n", lambda dst, n, value: _fill(dst, n, value), cost=0.5)
for _name in ("__memset_nram", "__nramset", "__nramset_float", "__nramset_half"):
    _reg(_name, [vec("dst", "out"), N_, P("value", F32, "scalar", alt_dtypes=HALF)],
         "dst[i] = value for i < n elements of value's type", lambda dst, n, value: _fill(dst, n, value),
         cost=0.5, notes="element count, not bytes; the element type is the type of value "
         "(bang_device_functions.h overloads); a double literal means float")
_reg("__gdramset", [vec("dst", "out", scope="global"), N_, P("value", F32, "scalar")],
     "dst[i] = value for i < n (GDRAM)", lambda dst, n, value: _fill(dst, n, value),
     constraints=(), cost=2)


def _convert_meaning(rnd):
    def m(dst, src, n):
        return loop(n, lambda i: store(dst, i, out(dst, f(src, i), rnd)))
    return m


def _conv_reg(name, dt, st, rnd, doc):
    _reg(name, [P("dst", dt, "out", NRAM), P("src", st, "in", NRAM), N_], doc,
         _convert_meaning(rnd), constraints=VECTOR_RULES + (POINTWISE,))


_conv_reg("__bang_half2float", F32, F16, "", "dst[i] = (float)src[i]")
_conv_reg("__bang_float2half", F16, F32, "", "dst[i] = (half)src[i], to nearest even")
_conv_reg("__bang_float2half_rn", F16, F32, "", "dst[i] = (half)src[i], to nearest even")
ROUNDING = {"": ("rintf", "to nearest even"), "_rn": ("rintf", "to nearest even"),
            "_tz": ("truncf", "toward zero"), "_rd": ("floorf", "down"),
            "_ru": ("ceilf", "up"), "_dn": ("rintf", "to nearest even")}
for _base, _dt, _st in (("__bang_float2int32", I32, F32), ("__bang_float2int16", T.I16, F32),
                        ("__bang_float2int8", T.I8, F32), ("__bang_half2int16", T.I16, F16),
                        ("__bang_half2int8", T.I8, F16)):
    for _suf, (_fn, _how) in ROUNDING.items():
        _conv_reg(_base + _suf, _dt, _st, _fn,
                  f"dst[i] = src[i] rounded {_how}, saturated to the integer type")
for _name, _dt, _st in (("__bang_int82float", F32, T.I8), ("__bang_int162float", F32, T.I16),
                        ("__bang_int322float", F32, I32), ("__bang_int82half", F16, T.I8),
                        ("__bang_int162half", F16, T.I16)):
    _conv_reg(_name, _dt, _st, "", "dst[i] = src[i] converted exactly")

# --------------------------------------------------------------------------- reductions


def _extreme(better):
    def m(dst, src, n):
        best = var("best", I32)
        return [declare(best, 0),
                loop(n, lambda i: if_(better(f(src, i), f(src, best)), assign(best, i)), start=1),
                store(dst, 0, src[best]),
                store(view(dst, U32), 1, cast(U32, best))]
    return m


for _name, _better, _what in (("__bang_max", lambda a, b: a > b, "maximum"),
                              ("__bang_argmax", lambda a, b: a > b, "maximum"),
                              ("__bang_min", lambda a, b: a < b, "minimum"),
                              ("__bang_argmin", lambda a, b: a < b, "minimum")):
    _reg(_name, [vec("dst", "out"), vec("src", "in"), N_],
         f"dst[0] = {_what} of src[0..n); ((uint32_t*)dst)[1] = index of its first occurrence",
         _extreme(_better), constraints=VECTOR_RULES + (Constraint("min", "n", 1, "n >= 1"),),
         notes="[UNCERTAIN] where the index goes: the 32-bit word after the value, as mlu-ops "
               "reads it after __bang_argmax (emulator default). Old and new names behave alike.")


def _reduce_sum(dst, src, n):
    seg = max(1, 128 // max(1, elem_of(src).bytes))  # XPILER_BANG_REDUCE_SEGMENT_BYTES = 128

    def segment(k):
        s = var("sum", F32)
        return [declare(s, 0.0),
                loop(minimum(n, (k + 1) * seg), lambda i: assign(s, s + f(src, i)), start=k * seg),
                store(dst, k * seg, out(dst, s))]

    return loop((n + (seg - 1)) / seg, segment)


_reg("__bang_reduce_sum", [vec("dst", "out"), vec("src", "in"), N_],
     "dst[k*S] = sum of the k-th 128-byte segment of src (S = 128 / sizeof(T)); other dst "
     "elements unchanged", _reduce_sum,
     notes="[UNCERTAIN] segment semantics (not a total sum): callers read the sums at dst[0], "
           "dst[32], ... for float (emulator XPILER_BANG_REDUCE_SEGMENT_BYTES=128).")


def _count(src, n, result):
    return [assign(result, 0), loop(n, lambda i: if_(f(src, i).ne(0.0), assign(result, result + 1)))]


_reg("__bang_count", [vec("src", "in"), N_], "returns the number of non-zero src[i], i < n",
     _count, returns=I32)


def _pack(dst, src, mask, n, k):
    return loop(n, lambda i: if_(f(mask, i).ne(0.0), [store(dst, k, src[i]), assign(k, k + 1)]))


def _collect(dst, src, mask, n):
    k = var("k", I32)
    return [declare(k, 0), _pack(dst, src, mask, n, k)]


def _select(dst, src, mask, n):
    k = var("k", I32)
    data = E(N.Cast(T.PointerType(elem_of(dst)), (view(dst, T.U8) + 128).node, "reinterpret"))
    return [declare(k, 0), _pack(data, src, mask, n, k), store(view(dst, U32), 0, cast(U32, k))]


_MASK_PARAMS = lambda: [vec("dst", "out"), vec("src", "in"), vec("mask", "in"), N_]  # noqa: E731
_reg("__bang_collect", _MASK_PARAMS(),
     "packs the src[i] whose mask[i] != 0 to the front of dst (in order)", _collect,
     constraints=VECTOR_RULES + (Constraint("relation", "dst", None, "dst disjoint from src and mask"),))
_reg("__bang_select", _MASK_PARAMS(),
     "like __bang_collect, but ((uint32_t*)dst)[0] = count and the elements start 128 bytes into dst",
     _select, constraints=VECTOR_RULES + (Constraint("relation", "dst", None, "dst disjoint from src and mask"),),
     notes="[UNCERTAIN] layout of the result: count in the first 32-bit word, data from byte 128 "
           "(mlu-ops reads ((uint32_t*)dst)[0]; emulator XPILER_BANG_SELECT_DATA_OFFSET=128).")

# --------------------------------------------------------------------------- pooling
POOL_PARAMS = ("channel", "height", "width", "kernel_height", "kernel_width")
INF = E(N.Var("INFINITY", F32))


def _pool_meaning(kind):
    def m(dst, src, channel, height, width, kernel_height, kernel_width, stride_x, stride_y):
        ho, wo, tmp = var("Ho", I32), var("Wo", I32), var("tmp", elem_of(dst))

        def one(oh, ow, c):
            acc = var("acc", F32)
            init = {"sum": 0.0, "avg": 0.0, "max": -INF, "min": INF}[kind]

            def tap(i, j):
                v = f(src, ((oh * stride_y + i) * width + (ow * stride_x + j)) * channel + c)
                combined = {"max": lambda: maximum(acc, v), "min": lambda: minimum(acc, v)}.get(kind, lambda: acc + v)()
                return assign(acc, combined)

            result = acc / cast(F32, kernel_height * kernel_width) if kind == "avg" else acc
            return [declare(acc, init), loops((kernel_height, kernel_width), tap),
                    store(tmp, (oh * wo + ow) * channel + c, out(dst, result))]

        return [declare(ho, (height - kernel_height) / stride_y + 1),
                declare(wo, (width - kernel_width) / stride_x + 1),
                declare_array(tmp, ho * wo * channel),
                loops((ho, wo, channel), one),
                _copy_out(dst, tmp, ho * wo * channel)]
    return m


_POOL_NOTES = ("src is [H][W][C] (C innermost), dst [Ho][Wo][C], Ho = (H - kh) / stride_y + 1, "
               "Wo = (W - kw) / stride_x + 1, no padding. stride_x (along W) comes before "
               "stride_y; the 7-argument form uses stride = kernel size. Source: "
               "__clang_bang_math.h (2018); the reduction use (dst, src, 1, 1, n, 1, n, 1, 1) "
               "gives dst[0] = sum of src[0..n).")
for _kind, _doc in (("sum", "sum"), ("avg", "mean"), ("max", "maximum"), ("min", "minimum")):
    _reg(f"__bang_{_kind}pool",
         [vec("dst", "out"), vec("src", "in")] + [P(p, I32, "scalar") for p in POOL_PARAMS] +
         [P("stride_x", I32, "scalar", default=N.Var("kernel_width")),
          P("stride_y", I32, "scalar", default=N.Var("kernel_height"))],
         f"dst[oh][ow][c] = {_doc} over the kernel_height x kernel_width window of src[H][W][C]",
         _pool_meaning(_kind), cost=2, notes=_POOL_NOTES,
         constraints=VECTOR_RULES[:1] + (Constraint("max", "kernel_height", "height", "kernel fits: kh <= H, kw <= W"),))

# Tensorization reduces with the pools whose window covers the whole reduced axis (their
# accumulator and combine step are read from the meanings above; avgpool divides, so it
# is not a plain reduction). The two layouts, as pool arguments for a tile of n outputs
# each reducing k inputs:
#   rows: tile [n][k] (each output's inputs contiguous) = src [H=n][W=k][C=1], window 1 x k
#   cols: tile [k][n] (inputs k apart by a stride)      = src [H=k][W=1][C=n], window k x 1
REDUCING_POOLS = ("__bang_sumpool", "__bang_maxpool", "__bang_minpool")
POOL_REDUCTION_ARGS = {
    "rows": lambda n, k: {"channel": 1, "height": n, "width": k, "kernel_height": 1, "kernel_width": k,
                          "stride_x": k, "stride_y": 1},
    "cols": lambda n, k: {"channel": n, "height": k, "width": 1, "kernel_height": k, "kernel_width": 1,
                          "stride_x": 1, "stride_y": 1},
}


def _pad(dst, src, channel, height, width, pad_top, pad_bottom, pad_left, pad_right):
    wo = var("Wo", I32)
    tmp = var("tmp", elem_of(src))
    total = channel * height * width
    return [declare(wo, width + pad_left + pad_right),
            declare_array(tmp, total), loop(total, lambda t: store(tmp, t, src[t])),
            loop((height + pad_top + pad_bottom) * wo * channel, lambda t: store(dst, t, 0)),
            loops((height, width, channel), lambda h, w, c: store(
                dst, ((h + pad_top) * wo + (w + pad_left)) * channel + c,
                tmp[(h * width + w) * channel + c]))]


_reg("__bang_pad",
     [vec("dst", "out"), vec("src", "in")] + [P(p, I32, "scalar") for p in
                                              ("channel", "height", "width", "pad_top", "pad_bottom",
                                               "pad_left", "pad_right")],
     "src [H][W][C] into a zero-filled dst [H+top+bottom][W+left+right][C]", _pad,
     notes="[UNCERTAIN] argument order (channel, height, width, top, bottom, left, right) as in "
           "the emulator; no public signature was available.")

# --------------------------------------------------------------------------- matrix ops


def _scale(acc, pos):
    """``float(acc * 2^pos)``; omitted when the call has no pos (the float forms)."""
    if isinstance(pos.node, N.Const) and pos.node.value == 0:
        return acc if acc.dtype == F32 else cast(F32, acc)
    return cast(F32, cast(F64, acc) * call("ldexp", const(1.0, F64), pos))


def _acc_type(buf):
    # integer inputs accumulate exactly (the emulator uses double), floats in float
    return F64 if elem_of(buf).is_int else F32


def _matmul(dst, lhs, rhs, m_, k_, n_, pos, rhs_index):
    at = _acc_type(lhs)
    tmp = var("tmp", at)

    def one(m, n):
        acc = var("acc", at)
        return [declare(acc, const(0.0, at)),
                loop(k_, lambda k: assign(acc, acc + cast(at, lhs[m * k_ + k]) * cast(at, rhs[rhs_index(k, n)]))),
                store(tmp, m * n_ + n, acc)]

    return [declare_array(tmp, m_ * n_), loops((m_, n_), one),
            loop(m_ * n_, lambda t: store(dst, t, _scale(tmp[t], pos)))]


MATRIX_ALTS = (F16, T.I8, T.I16)
POS = P("pos", I32, "scalar", default=N.Const(0, I32))


def _matmul_meaning(dst, lhs, rhs, M, K, N, pos):
    return _matmul(dst, lhs, rhs, M, K, N, pos, lambda kk, nn: kk * N + nn)


_reg("__bang_matmul",
     [vec("dst", "out", alts=HALF), vec("lhs", "in", alts=MATRIX_ALTS),
      vec("rhs", "in", alts=MATRIX_ALTS, scope=WRAM), P("M", I32, "scalar"), P("K", I32, "scalar"),
      P("N", I32, "scalar"), POS],
     "dst[M][N] = lhs[M][K] x rhs[K][N] (rhs row-major in WRAM), times 2^pos",
     _matmul_meaning, cost=0.05,
     notes="[UNCERTAIN] WRAM layout of rhs: row-major [K][N] as the benchmark stores it; public "
           "tutorials say hardware wants column-major / __bang_reshape_filter layout (emulator "
           "XPILER_BANG_MATMUL_RHS_LAYOUT=0). int8/int16 inputs accumulate exactly; pos scales "
           "fixed-point results (0 in the benchmark).")


def _mlp(dst, src, filter, height, width, pos):
    return _matmul(dst, src, filter, 1, height, width, pos, lambda h, w: h * width + w)


_reg("__bang_mlp",
     [vec("dst", "out", alts=HALF), vec("src", "in", alts=MATRIX_ALTS),
      vec("filter", "in", alts=MATRIX_ALTS, scope=WRAM), P("height", I32, "scalar"),
      P("width", I32, "scalar"), POS],
     "dst[w] = sum_h src[h] * filter[h][w] for w < width (filter [height][width] in WRAM), times 2^pos",
     _mlp, cost=0.05,
     notes="[UNCERTAIN] convention: src[K] x filter[K][N] (the benchmark's and the research "
           "code's doc text), not the 2018 header's transposed form with bias (emulator "
           "XPILER_BANG_MLP_CONVENTION=0). All benchmark calls are square.")


def _conv(dst, src, filter, channel_input, height, width, kernel_height, kernel_width,
          stride_x, stride_y, channel_output, pos):
    at = _acc_type(src)
    ho, wo, tmp = var("Ho", I32), var("Wo", I32), var("tmp", at)
    ci, co, kh, kw = channel_input, channel_output, kernel_height, kernel_width

    def one(oh, ow, o):
        acc = var("acc", at)

        def tap(i, j, c):
            x = src[((oh * stride_y + i) * width + (ow * stride_x + j)) * ci + c]
            w = filter[((o * kh + i) * kw + j) * ci + c]  # OHWI
            return assign(acc, acc + cast(at, x) * cast(at, w))

        return [declare(acc, const(0.0, at)), loops((kh, kw, ci), tap),
                store(tmp, (oh * wo + ow) * co + o, acc)]

    return [declare(ho, (height - kh) / stride_y + 1), declare(wo, (width - kw) / stride_x + 1),
            declare_array(tmp, ho * wo * co), loops((ho, wo, co), one),
            loop(ho * wo * co, lambda t: store(dst, t, _scale(tmp[t], pos)))]


_reg("__bang_conv",
     [vec("dst", "out", alts=HALF), vec("src", "in", alts=MATRIX_ALTS),
      vec("filter", "in", alts=MATRIX_ALTS, scope=WRAM)] +
     [P(p, I32, "scalar") for p in ("channel_input", "height", "width", "kernel_height",
                                    "kernel_width", "stride_x", "stride_y", "channel_output")] + [POS],
     "dst[Ho][Wo][Co] = valid convolution of src[H][W][Ci] with filter[Co][kh][kw][Ci] (WRAM), times 2^pos",
     _conv, cost=0.05,
     notes="[UNCERTAIN] float 11-argument overload and WRAM filter layout: OHWI copied unchanged "
           "from GDRAM, no reshape (what the benchmark feeds; emulator "
           "XPILER_BANG_CONV_FILTER_LAYOUT=0). The public header has only fixed-point overloads "
           "(..., Co, fix_position). Ho = (H - kh) / stride_y + 1, no padding.")


def _transpose(dst, src, height, width):
    tmp = var("tmp", elem_of(src))
    return [declare_array(tmp, height * width),
            loop(height * width, lambda t: store(tmp, t, src[t])),
            loops((height, width), lambda i, j: store(dst, j * height + i, tmp[i * width + j]))]


_reg("__bang_transpose", [vec("dst", "out", alts=MATRIX_ALTS), vec("src", "in", alts=MATRIX_ALTS),
                          P("height", I32, "scalar"), P("width", I32, "scalar")],
     "dst[w][h] = src[h][w]: src [height][width] -> dst [width][height]", _transpose, cost=1,
     constraints=VECTOR_RULES[:1] + (Constraint("bytes_multiple", "height", 128,
                                                "hardware wants 128-byte aligned dims [UNCERTAIN]; mha breaks it", True),),
     notes="Cambricon forum example (forum.cambricon.com id=684).")


def _reshape_filter(dst, src, n, h, w, c):
    return loop(n * h * w * c, lambda t: store(dst, t, src[t]))


_reg("__bang_reshape_filter",
     [vec("dst", "out", alts=MATRIX_ALTS), vec("src", "in", alts=MATRIX_ALTS)] +
     [P(p, I32, "scalar") for p in ("n", "h", "w", "c")],
     "dst = src unchanged (xpiler's WRAM layout decision is 'no reshape')", _reshape_filter,
     notes="[UNCERTAIN] on hardware this produces the undocumented WRAM filter layout; since "
           "__bang_matmul/__bang_conv meanings read filters unreshaped, reshape is a copy here. "
           "Not provided by the emulator yet.")
